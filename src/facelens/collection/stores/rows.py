"""Rows of the collection store: how one becomes a model, and back.

Why a module of its own: the SQL store (:mod:`facelens.collection.stores.sql`)
reads and writes the same columns on every database, and what a row means
(its columns in order, an embedding checked against its dimension, a missing
collection or user reported in the same words) is apart from which SQL asks
for it. Timestamps are written as the dialect stores them (ISO text in
SQLite, ``timestamptz`` in PostgreSQL); reading accepts either.

Embeddings are little-endian float32 bytes with their dimension stored beside
them, so a truncated or foreign value is caught on read rather than searched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from facelens.collection.index.collection_index import CollectionIndex
from facelens.collection.models import NewFace, StoredFace, UserInfo, UserStatus
from facelens.collection.sources import FaceSource
from facelens.engine.types import Embedding
from facelens.errors import (
    ConflictException,
    InvalidParameterException,
    ResourceNotFoundException,
    StorageError,
)
from facelens.values.boxes import BoundingBox

BLOB_DTYPE = np.dtype("<f4")
FACE_COLUMNS = (
    "face_id, image_id, external_image_id, box_width, box_height, box_left, box_top,"
    " confidence, user_id, indexed_at"
)
"""The columns :func:`face_from_row` reads, in its order."""
INSERT_COLUMNS = (
    "collection_id, face_id, image_id, external_image_id, box_width, box_height, box_left,"
    " box_top, confidence, indexed_at, embedding_dim, embedding, generation"
)
"""The columns :func:`face_values` fills, in its order (``user_id`` starts NULL).

``generation`` is the collection's generation after the write that added the
face or last changed its user: a cached or saved search index at generation
g catches up by reading the rows above g (see
:mod:`facelens.collection.stores.index_cache`)."""

SOURCE_COLUMNS = "collection_id, face_id, width, height, geometry, jpeg"
"""The columns of a face's source (:func:`source_values`), keyed like its face."""


def face_values(
    collection_id: str,
    face: NewFace,
    vector: Embedding,
    indexed_at: str | datetime,
    generation: int,
) -> tuple[Any, ...]:
    """One new face in :data:`INSERT_COLUMNS` order; ``indexed_at`` as the database takes it."""
    box = face.bounding_box
    return (
        *(collection_id, face.face_id, face.image_id, face.external_image_id),
        *(box.width, box.height, box.left, box.top, face.confidence, indexed_at),
        *(vector.shape[0], vector.astype(BLOB_DTYPE).tobytes(), generation),
    )


def source_values(collection_id: str, face_id: str, source: FaceSource) -> tuple[Any, ...]:
    """One face's source in :data:`SOURCE_COLUMNS` order."""
    return (collection_id, face_id, source.width, source.height, source.geometry(), source.jpeg)


def source_from_row(row: Sequence[Any]) -> FaceSource:
    """A source from ``(width, height, geometry, jpeg)``."""
    return FaceSource.from_stored(row[3], row[0], row[1], row[2])


def replacement_vectors(
    embeddings: Mapping[str, Embedding],
) -> tuple[list[str], list[npt.NDArray[np.float32]]]:
    """The ids and float32 vectors of a re-embedding, checked: 1-D, one dimension."""
    ids = list(embeddings)
    vectors = [np.asarray(embeddings[i], dtype=np.float32) for i in ids]
    if any(v.ndim != 1 or v.shape != vectors[0].shape or v.shape[0] == 0 for v in vectors):
        raise InvalidParameterException("Embeddings must be 1-D and of one dimension")
    return ids, vectors


def other_model(collection_id: str, stored: str, given: str) -> InvalidParameterException:
    """A collection of ``stored``'s embeddings offered ``given``'s (the service's words)."""
    return InvalidParameterException(
        f"collection {collection_id} holds {stored} faces; "
        f"this engine makes {given} embeddings, which do not compare"
    )


def not_re_embedded(collection_id: str, count: int) -> ConflictException:
    return ConflictException(
        f"{count} face(s) were added to collection {collection_id} while it was being "
        "re-embedded: nothing was changed; run the reindex again"
    )


def stored_face(face: NewFace, now: datetime) -> StoredFace:
    return StoredFace(
        face.face_id, face.image_id, face.external_image_id, face.bounding_box, face.confidence,
        None, now,
    )  # fmt: skip


def instant(value: str | datetime) -> datetime:
    """A stored timestamp (ISO text or a driver's aware datetime) as an aware UTC datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value.astimezone(UTC)


def face_from_row(row: Sequence[Any]) -> StoredFace:
    """A face from the :data:`FACE_COLUMNS` of one row."""
    box = BoundingBox(width=row[3], height=row[4], left=row[5], top=row[6])
    return StoredFace(row[0], row[1], row[2], box, row[7], row[8], instant(row[9]))


def user_from_row(row: Sequence[Any]) -> UserInfo:
    """A user from ``(user_id, face count)``."""
    return UserInfo(row[0], UserStatus.ACTIVE if row[1] else UserStatus.CREATED, row[1])


def read_index(
    count: int, dim: object, batches: Iterable[Sequence[Sequence[Any]]], *, ann_threshold: int
) -> CollectionIndex:
    """A new search index of ``count`` faces of dimension ``dim`` (a cold start).

    ``batches`` yields lists of ``(face_id, user_id, embedding_dim,
    embedding)`` rows, all read within the transaction that counted them.
    Why this shape: at 1M faces, a fetchall holds about 0.6 GB of row
    objects at once and joining every blob copies 512 MB more. Reading a
    batch at a time into one preallocated float32 matrix keeps the row
    objects small and short-lived, and the index adopts that matrix without
    a further copy.
    """
    if count == 0:
        return CollectionIndex(ann_threshold=ann_threshold)
    if not isinstance(dim, int) or dim <= 0:
        raise bad_embeddings()
    matrix = np.empty((count, dim), dtype=np.float32)
    face_ids: list[str] = []
    user_ids: list[str | None] = []
    for rows in batches:
        start, stop = len(face_ids), len(face_ids) + len(rows)
        if stop > count:  # cannot happen within one read transaction
            raise StorageError("The faces changed while the search index was being read")
        matrix[start:stop] = decode_embeddings([r[2] for r in rows], [r[3] for r in rows], dim)
        face_ids += [r[0] for r in rows]
        user_ids += [r[1] for r in rows]
    if len(face_ids) != count:
        raise StorageError("The faces changed while the search index was being read")
    return CollectionIndex.build(
        face_ids, matrix, user_ids, copy=False, ann_threshold=ann_threshold
    )


def decode_embeddings(dims: Sequence[int], blobs: Sequence[bytes], dim: int) -> Embedding:
    """Blobs recorded as ``dim``-dimensional, as a read-only len(blobs) x dim matrix.

    One join and no per-blob numpy call; every blob is checked first, so a
    truncated or foreign one raises StorageError instead of being searched.
    """
    valid = isinstance(dim, int) and dim > 0 and set(dims) == {dim}
    if not valid or set(map(len, blobs)) != {4 * dim}:
        raise bad_embeddings()
    try:
        joined = b"".join(blobs)
    except TypeError as exc:  # a TEXT value of the right length, written by someone else
        raise bad_embeddings() from exc
    return np.frombuffer(joined, dtype=BLOB_DTYPE).reshape(len(blobs), dim)


def bad_embeddings() -> StorageError:
    return StorageError("Stored embeddings do not match their recorded dimension")


def no_collection(collection_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"The collection id: {collection_id} does not exist")


def no_user(collection_id: str, user_id: str) -> ResourceNotFoundException:
    message = f"The user id: {user_id} does not exist in the collection {collection_id}"
    return ResourceNotFoundException(message)
