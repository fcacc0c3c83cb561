"""A collection's search index saved to one file, and loaded back without a rebuild.

Why: an inverted file over 1M faces takes about 9 s to train and fill, 10M
about a minute, and reading every embedding back from the database costs as
much again; a restart that loads its saved index instead reads arrays at
disk speed and re-encodes the lists (about 0.7 s per million faces). The
file records the collection's token (incarnation, generation) it reflects,
so the store can tell whether it is current, behind (then it catches up from
the database, see :mod:`facelens.collection.stores.index_cache`) or foreign.

Only inverted-file face indexes are saved: below ``ann_threshold`` faces a
rebuild from the database is cheaper than the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from facelens.collection.index.blocks import BlockMatrix
from facelens.collection.index.collection_index import CollectionIndex
from facelens.collection.index.file import IndexFile, write_file
from facelens.errors import IndexFileError

KIND = "ivf-sq8"


def can_save(index: CollectionIndex) -> bool:
    """Whether ``index`` has a face index worth saving (a trained inverted file)."""
    from facelens.collection.index.ann import IvfIndex

    return isinstance(index.faces, IvfIndex) and index.faces.nlist > 0


def save_index(path: Path, index: CollectionIndex, meta: dict[str, Any]) -> int:
    """Writes ``index`` with ``meta`` (JSON-able: the token, the collection) to ``path``.

    Atomic (see :func:`facelens.collection.index.file.write_file`); returns
    the file's size in bytes. Raises ValueError for an index that
    :func:`can_save` refuses.
    """
    from facelens.collection.index.ann import IvfIndex

    faces = index.faces
    if not isinstance(faces, IvfIndex):
        raise ValueError("only an inverted-file face index is saved")
    face_meta, arrays = faces.state()
    links = json.dumps(sorted(index.face_users().items())).encode()
    arrays["face_users"] = np.frombuffer(links, dtype=np.uint8)
    header = {**meta, "kind": KIND, "faces": face_meta, "ann_threshold": index.ann_threshold}
    return write_file(path, header, arrays)


def read_meta(path: Path) -> dict[str, Any]:
    """The meta a saved index was written with, without reading its arrays."""
    with IndexFile(path) as file:
        return file.meta


def load_index(path: Path, *, ann_threshold: int) -> tuple[dict[str, Any], CollectionIndex]:
    """(meta, index) from a file :func:`save_index` wrote.

    Raises IndexFileError for a missing, truncated, corrupt or
    inconsistent file; the caller then rebuilds from its database.
    """
    from facelens.collection.index.ann import IvfIndex

    with IndexFile(path) as file:
        meta = file.meta
        try:
            if meta.get("kind") != KIND:
                raise IndexFileError(f"the file holds a {meta.get('kind')!r} index")
            face_meta = meta["faces"]
            dim = int(face_meta["dim"])
            names = ("keys", "sorted_keys", "sorted_rows", "alive", "centroids", "sq_trained")
            arrays = {name: file.array(name) for name in (*names, "list_sizes")}
            rows = file.shape("vectors")
            if len(rows) != 2 or rows[1] != dim:
                raise IndexFileError("the saved vectors do not have the saved dimension")
            vectors = BlockMatrix.reading(dim, rows[0], lambda b: file.rows_into("vectors", b))
            faces = IvfIndex.from_state(face_meta, arrays, vectors, file.rows_into)
            links = json.loads(file.array("face_users").tobytes())
            face_users = {str(f): str(u) for f, u in links}
            index = CollectionIndex.restore(faces, face_users, ann_threshold=ann_threshold)
        except IndexFileError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFileError(f"the saved index is inconsistent: {exc}") from exc
    return meta, index
