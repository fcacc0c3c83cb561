"""In-process search indexes kept coherent with a database that others write too.

Why: searching means a scan of every embedding of a collection, far too slow
to read from the database per query, so each store instance keeps a
:class:`~facelens.collection.index.CollectionIndex` per collection. Any SQL
back end then needs the same bookkeeping: every write to a collection's
faces or users bumps ``generation`` in the same transaction, and a
collection's token is ``(incarnation, generation)``, where the incarnation
(its creation time) tells a re-created collection from the old one. One
cheap query before a search tells whether anyone changed the collection
since its index was built; a writer patches its own index in place instead
of rebuilding it, but only if nobody else wrote in between.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from facelens.collection.index import CollectionIndex, FaceIndex, Neighbor
from facelens.engine.types import Embedding
from facelens.errors import InvalidParameterException

Token = tuple[object, int]
"""(incarnation, generation) of one collection, as read in one transaction."""
Update = Callable[[CollectionIndex], None]
"""One change a committed write made, replayed on a cached index."""
Caches = dict[str, tuple[Token, CollectionIndex]]
"""collection id -> (the token the index reflects, the index)."""


def fresh_index(
    caches: Caches, collection_id: str, token: Token, load: Callable[[], CollectionIndex]
) -> CollectionIndex:
    """The cached index if it reflects ``token``, else ``load()``-ed and cached under it.

    A stale index is dropped before loading, so two never coexist in memory.
    """
    cached = caches.pop(collection_id, None)
    index = cached[1] if cached is not None and cached[0] == token else None
    if index is None:
        index = load()
    caches[collection_id] = (token, index)
    return index


def patch_index(
    caches: Caches, collection_id: str, before: Token, updates: Sequence[Update]
) -> None:
    """After a committed write that found ``before`` and bumped the generation once.

    The cached index is patched only if it was current when the write began
    (so nobody else wrote since it was built); otherwise it is dropped and
    the next search rebuilds it from the database.
    """
    cached = caches.get(collection_id)
    if not updates or cached is None:
        return
    del caches[collection_id]
    if cached[0] == before:
        for update in updates:
            update(cached[1])
        caches[collection_id] = ((before[0], before[1] + 1), cached[1])


def search(index: FaceIndex, query: Embedding, limit: int, max_distance: float) -> list[Neighbor]:
    """``index.search`` after checking the query's shape against the collection's dimension."""
    q = np.asarray(query, dtype=np.float32)
    if q.ndim != 1 or (len(index) and q.shape[0] != index.dim):
        message = f"The query has shape {q.shape}; the collection holds dimension {index.dim}"
        raise InvalidParameterException(message)
    return index.search(q, limit=limit, max_distance=max_distance)
