"""In-process search indexes kept coherent with a database that others write too, and saved.

Why: searching means a scan of every embedding of a collection, far too slow
to read from the database per query, so each store instance keeps a
:class:`~facelens.collection.index.collection_index.CollectionIndex` per collection. Any SQL
back end then needs the same bookkeeping: every write to a collection's
faces or users bumps ``generation`` in the same transaction, and a
collection's token is ``(incarnation, generation)``, where the incarnation
(its creation time) tells a re-created collection from the old one. One
cheap query before a search tells whether anyone changed the collection
since its index was built; a writer patches its own index in place.

An index that is behind (another process wrote: enrolment by the CLI or the
API while the recognizer searches is normal) catches up from the database
instead of being rebuilt: each face row records the generation that last
added it or changed its user, and a per-collection deletion log records
removals, so only the rows and deletions past the index's generation are
read (see :class:`IndexSource`). Large indexes are also saved to a file
tagged with their token (:mod:`facelens.collection.index.saved`), so a
restart loads the file and catches up the same way. A full rebuild happens
only when no index is at hand, the saved one is unusable or foreign, or the
database's log no longer reaches back to it.

Saving costs time proportional to the index (about 1.5 s per million faces,
18-24 s at 10M once the disk must keep up), so it is amortised: after a build,
once unsaved changes reach :data:`SAVE_FRACTION` of the index (at least
:data:`SAVE_MIN_CHANGES`), and on close.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from facelens.collection.index.collection_index import ANN_THRESHOLD, CollectionIndex, FaceIndex
from facelens.collection.index.exact import Neighbor
from facelens.collection.stores.rows import decode_embeddings
from facelens.engine.types import Embedding
from facelens.errors import IndexFileError, InvalidParameterException

_log = logging.getLogger(__name__)

Token = tuple[object, int]
"""(incarnation, generation) of one collection, as read in one transaction."""
Update = Callable[[CollectionIndex], None]
"""One change a committed write made, replayed on a cached index."""
C = TypeVar("C")
SAVE_MIN_CHANGES = 1_000
SAVE_FRACTION = 0.05
"""Unsaved changes (faces added, removed or moved) that make a save due, as a fraction of
the index: at 1M faces a save (~1.5 s) every 50k changes, and a restart never replays more."""
CATCH_UP_FRACTION = 1.0
"""A saved or cached index more than this fraction of its size behind is rebuilt instead."""
SUFFIX = ".faceindex"


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in a collection after some generation, as its database tells it."""

    deleted: list[str]
    """Face ids deleted since (some may have been added again: they are in ``rows`` too)."""
    rows: Iterable[Sequence[Sequence[Any]]]
    """Batches of ``(face_id, user_id, embedding_dim, embedding)`` rows written since."""


class IndexSource(Protocol):
    """One collection as a store's open read transaction sees it (the token's snapshot)."""

    def read_all(self, *, ann_threshold: int) -> CollectionIndex:
        """Every face, read into a new index (a full rebuild)."""
        ...

    def changes_since(self, generation: int, *, limit: int) -> Changes | None:
        """Changes after ``generation``; None if the deletion log no longer reaches back
        that far or more than ``limit`` faces changed (then a rebuild is due)."""
        ...

    def face_count(self) -> int: ...


@dataclass
class WriteTx(Generic[C]):
    """A write transaction on one collection, and the cache updates it implies."""

    conn: C
    token: Token
    updates: list[Update] = field(default_factory=list)
    changes: int = 0
    """Faces added, removed or moved: what a saved index would have to catch up on."""

    @property
    def generation(self) -> int:
        """The collection's generation once this write commits (rows written record it)."""
        return int(self.token[1]) + 1


@dataclass
class CacheStats:
    """What the cache did, counted per process: for tests and benchmarks, not for logic."""

    builds: int = 0
    loads: int = 0
    catch_ups: int = 0
    caught_up_faces: int = 0
    saves: int = 0
    refused_files: int = 0
    save_failures: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    """Duration of the latest "build", "load" (file read, before any catch-up), "catch_up"
    and "save", in seconds."""

    def timed(self, what: str, started: float) -> None:
        self.seconds[what] = time.perf_counter() - started


@dataclass
class _Entry:
    token: Token
    index: CollectionIndex
    unsaved: int = 0
    """Changes applied since the index was last saved (or loaded)."""
    saved: bool = False
    """Whether a saved file holds an earlier state of this index (else it was built here)."""


@dataclass
class IndexCache:
    """The indexes of one store instance, by collection id; callers hold the store's lock.

    ``directory`` is where indexes are saved (None: never saved, e.g. an
    in-memory database). Only inverted-file indexes are saved, so the file
    appears from ``ann_threshold`` faces on.
    """

    directory: Path | None = None
    ann_threshold: int = ANN_THRESHOLD
    save_min_changes: int = SAVE_MIN_CHANGES
    save_fraction: float = SAVE_FRACTION
    stats: CacheStats = field(default_factory=CacheStats)
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def cached(self, collection_id: str) -> tuple[Token, CollectionIndex] | None:
        """The cached index and the token it reflects, if any (a white box for tests)."""
        entry = self._entries.get(collection_id)
        return None if entry is None else (entry.token, entry.index)

    def path(self, collection_id: str) -> Path | None:
        """Where the collection's index is saved (a readable, collision-free file name)."""
        if self.directory is None:
            return None
        digest = hashlib.sha256(collection_id.encode()).hexdigest()[:16]
        readable = re.sub(r"[^A-Za-z0-9_.-]", "_", collection_id)[:48]
        return self.directory / f"{readable}-{digest}{SUFFIX}"

    def fresh(self, collection_id: str, token: Token, source: IndexSource) -> CollectionIndex:
        """The collection's index as of ``token``: cached, caught up, loaded or rebuilt.

        A stale index is dropped before a load or rebuild, so two never
        coexist in memory.
        """
        entry = self._entries.pop(collection_id, None)
        if entry is not None and entry.token == token:
            self._entries[collection_id] = entry
            return entry.index
        caught_up: _Entry | None = None
        if entry is not None and entry.token[0] == token[0] and entry.token[1] < token[1]:
            caught_up = self._catch_up(entry, token, source)
        entry = None
        if caught_up is None:
            caught_up = self._load(collection_id, token, source)
        if caught_up is None:
            started = time.perf_counter()
            caught_up = _Entry(token, source.read_all(ann_threshold=self.ann_threshold))
            self.stats.builds += 1
            self.stats.timed("build", started)
        self._entries[collection_id] = caught_up
        self._save_if_due(collection_id, caught_up)
        return caught_up.index

    def patch(
        self, collection_id: str, before: Token, updates: Sequence[Update], changes: int
    ) -> None:
        """After a committed write that found ``before`` and bumped the generation once.

        The cached index is patched only if it was current when the write
        began; one that was behind stays as it is and catches up at the next
        search; one of another incarnation is dropped.
        """
        entry = self._entries.get(collection_id)
        if not updates or entry is None:
            return
        del self._entries[collection_id]
        if entry.token == before:
            for update in updates:
                update(entry.index)
            entry.token = (before[0], before[1] + 1)
            entry.unsaved += changes
            self._entries[collection_id] = entry
            self._save_if_due(collection_id, entry)
        elif entry.token[0] == before[0]:
            self._entries[collection_id] = entry

    def forget(self, collection_id: str) -> None:
        """Drops the collection's index and its saved file (the collection is deleted)."""
        self._entries.pop(collection_id, None)
        path = self.path(collection_id)
        if path is not None:
            path.unlink(missing_ok=True)

    def close(self, *, current: Callable[[str], Token | None] | None = None) -> None:
        """Saves every index with unsaved changes, then forgets them all.

        ``current``: the collection's token now in the database (None: gone or
        unreadable). An index that is not current is not saved: it is stale, and
        after ``facelens forget`` in another process it may still hold the
        forgotten person's vectors, which must not come back into a file.
        """
        for collection_id, entry in list(self._entries.items()):
            if entry.unsaved and current is not None and current(collection_id) != entry.token:
                continue
            self._save_if_due(collection_id, entry, closing=True)
        self._entries.clear()

    def clear(self) -> None:
        self._entries.clear()

    # -- internals --
    def _catch_up(self, entry: _Entry, token: Token, source: IndexSource) -> _Entry | None:
        """``entry`` brought up to ``token`` from the database, or None if it cannot be."""
        started = time.perf_counter()
        index = entry.index
        limit = max(self.save_min_changes, int(CATCH_UP_FRACTION * len(index.faces)))
        changes = source.changes_since(entry.token[1], limit=limit)
        if changes is None:
            return None
        face_ids: list[str] = []
        user_ids: list[str | None] = []
        blocks: list[Embedding] = []
        for rows in changes.rows:
            if rows:
                face_ids += [r[0] for r in rows]
                user_ids += [r[1] for r in rows]
                blocks.append(
                    decode_embeddings([r[2] for r in rows], [r[3] for r in rows], rows[0][2])
                )
        dim = index.faces.dim or (blocks[0].shape[1] if blocks else 0)
        vectors = np.concatenate(blocks) if blocks else np.empty((0, dim), dtype=np.float32)
        index.apply_changes(changes.deleted, face_ids, vectors.astype(np.float32), user_ids)
        if len(index.faces) != source.face_count():
            _log.warning("a caught-up face index disagrees with the database; rebuilding it")
            return None
        changed = len(face_ids) + len(changes.deleted)
        self.stats.catch_ups += 1
        self.stats.caught_up_faces += changed
        self.stats.timed("catch_up", started)
        return _Entry(token, index, entry.unsaved + changed, entry.saved)

    def _load(self, collection_id: str, token: Token, source: IndexSource) -> _Entry | None:
        """The saved index, caught up to ``token``; None if there is none that fits."""
        from facelens.collection.index.saved import load_index, read_meta

        path = self.path(collection_id)
        if path is None or not path.exists():
            return None
        try:
            meta = read_meta(path)
            if not self._fits(meta, collection_id, token):
                self.stats.refused_files += 1
                path.unlink(missing_ok=True)  # an old incarnation's, or from another database
                return None
            if source.changes_since(int(meta["generation"]), limit=self._limit(meta)) is None:
                return None  # too far behind: rebuilt, then saved over
            started = time.perf_counter()
            meta, index = load_index(path, ann_threshold=self.ann_threshold)
            self.stats.timed("load", started)
        except IndexFileError as exc:
            self.stats.refused_files += 1
            _log.warning("ignoring the saved index %s: %s", path, exc)
            return None
        if not self._fits(meta, collection_id, token):  # replaced by another process meanwhile
            return None
        self.stats.loads += 1
        loaded = _Entry((token[0], int(meta["generation"])), index, 0, saved=True)
        if loaded.token == token:
            if len(index.faces) != source.face_count():
                _log.warning("the saved index %s disagrees with the database; rebuilding", path)
                return None
            return loaded
        return self._catch_up(loaded, token, source)

    def _fits(self, meta: dict[str, Any], collection_id: str, token: Token) -> bool:
        generation = meta.get("generation")
        return (
            meta.get("collection") == collection_id
            and meta.get("incarnation") == incarnation_text(token[0])
            and isinstance(generation, int)
            and 0 <= generation <= token[1]
        )

    def _limit(self, meta: dict[str, Any]) -> int:
        count = meta.get("face_count")
        size = count if isinstance(count, int) else 0
        return max(self.save_min_changes, int(CATCH_UP_FRACTION * size))

    def _save_if_due(self, collection_id: str, entry: _Entry, *, closing: bool = False) -> None:
        from facelens.collection.index.saved import can_save, save_index

        path = self.path(collection_id)
        if path is None or not can_save(entry.index):
            return
        threshold = max(self.save_min_changes, self.save_fraction * len(entry.index.faces))
        due = not entry.saved or entry.unsaved >= threshold or (closing and entry.unsaved > 0)
        if not due:
            return
        meta = {
            "collection": collection_id,
            "incarnation": incarnation_text(entry.token[0]),
            "generation": entry.token[1],
            "face_count": len(entry.index.faces),
        }
        started = time.perf_counter()
        try:
            save_index(path, entry.index, meta)
        except OSError as exc:  # saving is an optimisation: the database has everything
            self.stats.save_failures += 1
            _log.warning("could not save the face index to %s: %s", path, exc)
            return
        self.stats.saves += 1
        self.stats.timed("save", started)
        entry.unsaved, entry.saved = 0, True


def incarnation_text(incarnation: object) -> str:
    """A collection's incarnation (creation time: ISO text or a datetime) as saved text."""
    isoformat = getattr(incarnation, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(incarnation)


def search(index: FaceIndex, query: Embedding, limit: int, max_distance: float) -> list[Neighbor]:
    """``index.search`` after checking the query's shape against the collection's dimension."""
    q = np.asarray(query, dtype=np.float32)
    if q.ndim != 1 or (len(index) and q.shape[0] != index.dim):
        message = f"The query has shape {q.shape}; the collection holds dimension {index.dim}"
        raise InvalidParameterException(message)
    return index.search(q, limit=limit, max_distance=max_distance)
