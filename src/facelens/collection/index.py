"""Nearest-neighbour indexes over unit embeddings.

Stores keep their vectors durable elsewhere; an index is an in-memory,
rebuildable view used only to answer "which ids are nearest to this query".
:class:`VectorIndex` is the seam where an approximate index replaces
:class:`ExactIndex` once collections outgrow a brute-force scan:
:class:`CollectionIndex` combines a collection's face index (exact below
:data:`ANN_THRESHOLD` faces, :class:`~facelens.collection.ann.HnswIndex` from
there) with the user templates that SearchUsers needs, so every store back
end can share it.

All distances are Euclidean between unit vectors, so they lie in 0-2
(0: identical direction, about 1.41: orthogonal, 2: opposite).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float32]
"""An n x d float32 matrix, one L2-normalised vector per row."""

ANN_THRESHOLD = 250_000
"""Faces from which a collection's face index is an HNSW graph instead of a scan.

Trade-off, measured on 2 cores with random 128-d vectors (bench/search_scale.py
``--ann``): exact search p50 is 1.0 ms at 50k, 3.3 ms at 100k and 72 ms at 1M;
HNSW 1.5, 2.8 and 3.9 ms (efSearch 256, set for 1M), so the graph pays off
from about 100k on. But the stores do not persist the graph yet, so every cold
start (and every rebuild after another process wrote) pays its build: 35 s
at 100k, 9.5 min at 1M. Until they load a saved graph, the switch waits until
a scan costs well over 10 ms.
"""
_MIN_CAPACITY = 16
_SQUARED_NOISE = 1e-5
"""Squared distances below this are float32 rounding of identical vectors (distance < 0.003)."""


@dataclass(frozen=True, slots=True)
class Neighbor:
    """One search hit: ``distance`` is Euclidean between unit vectors (0-2)."""

    id: str
    distance: float


class VectorIndex(Protocol):
    """A mutable set of (id, unit vector) pairs searchable by Euclidean distance."""

    def add(self, ids: Sequence[str], vectors: FloatMatrix) -> None:
        """Inserts ``vectors[i]`` under ``ids[i]``; an id already present is overwritten."""
        ...

    def remove(self, ids: Sequence[str]) -> None:
        """Removes the ids that are present; unknown ids are ignored."""
        ...

    def search(
        self, query: npt.NDArray[np.float32], *, limit: int, max_distance: float
    ) -> list[Neighbor]:
        """Up to ``limit`` ids within ``max_distance`` (0-2) of ``query``, nearest first."""
        ...

    def __len__(self) -> int: ...


class FaceIndex(VectorIndex, Protocol):
    """What :class:`CollectionIndex` needs of its face index (ExactIndex or HnswIndex)."""

    @property
    def dim(self) -> int | None: ...

    def __contains__(self, item: object) -> bool: ...

    def vectors(self, ids: Sequence[str]) -> FloatMatrix:
        """A copy of the vectors of ``ids`` (KeyError for an unknown id)."""
        ...


class ExactIndex:
    """Brute-force index: one matrix-vector product per query.

    Vectors live in a single contiguous float32 matrix so a search is one BLAS
    call (about 512 MiB and a few tens of milliseconds for 1M x 128). The
    matrix grows by doubling, so ``add`` is amortised O(1) per vector, and
    ``remove`` moves the last row into the hole, so rows stay dense without
    ever compacting. The dimension is fixed by the first vectors added and may
    only change again once the index is empty.
    """

    def __init__(self, dim: int | None = None) -> None:
        self._dim = dim
        self._matrix: FloatMatrix = np.empty((0, dim or 0), dtype=np.float32)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}

    @property
    def dim(self) -> int | None:
        """Vector length, or None while nothing has fixed it."""
        return self._dim

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        return item in self._rows

    @classmethod
    def from_matrix(
        cls, ids: Sequence[str], vectors: FloatMatrix, *, copy: bool = True
    ) -> ExactIndex:
        """An index of ``vectors[i]`` under ``ids[i]``, built in one step (a cold start).

        Why: the id-to-row map is one ``dict(zip(...))`` (0.3-0.5 s per
        million ids on a small VM, against about 3 s for a loop over the
        ids), and with ``copy=False`` the index adopts ``vectors`` as its
        matrix when it is already a writable C-contiguous float32 array,
        which saves a 512 MB copy at 1M x 128. The caller then hands
        ``vectors`` over: ``remove`` reorders its rows in place. Any other
        array is copied, as :meth:`add` does.
        """
        index = cls()
        matrix = np.asarray(vectors, dtype=np.float32)
        adoptable = matrix.ndim == 2 and matrix.flags.c_contiguous and matrix.flags.writeable
        if copy or not adoptable or not ids:
            index.add(ids, matrix)
            return index
        rows = _row_map(ids, 0, matrix)
        index._dim = int(matrix.shape[1])
        index._matrix, index._ids, index._rows = matrix, list(ids), rows
        return index

    def add(self, ids: Sequence[str], vectors: FloatMatrix) -> None:
        """Inserts or overwrites; ids must be unique within one call.

        Ids that are all new (the common case) cost one dict update and one
        slice copy, with no Python loop per id; only an overwrite takes the
        per-id path.
        """
        matrix = np.asarray(vectors, dtype=np.float32)
        start = len(self._ids)
        fresh = _row_map(ids, start, matrix)
        if not ids:
            return
        if self._dim != matrix.shape[1]:
            if self._ids:
                raise ValueError(f"expected dimension {self._dim}, got {matrix.shape[1]}")
            self._dim = int(matrix.shape[1])
            self._matrix = np.empty((0, self._dim), dtype=np.float32)
        if self._rows.keys().isdisjoint(fresh):  # all new: one contiguous slice copy
            self._reserve(start + len(ids))
            self._matrix[start : start + len(ids)] = matrix
            if self._rows:
                self._rows.update(fresh)
            else:  # a first fill: the map is ready, so no second pass of hashing
                self._rows = fresh
            self._ids.extend(ids)
            return
        targets = np.empty(len(ids), dtype=np.intp)
        for i, item in enumerate(ids):
            row = self._rows.get(item)
            if row is None:
                row = len(self._ids)
                self._rows[item] = row
                self._ids.append(item)
            targets[i] = row
        self._reserve(len(self._ids))
        self._matrix[targets] = matrix

    def remove(self, ids: Sequence[str]) -> None:
        """Swap-with-last removal keeps rows dense in O(1) per id."""
        for item in ids:
            row = self._rows.pop(item, None)
            if row is None:
                continue
            last = len(self._ids) - 1
            if row != last:
                moved = self._ids[last]
                self._matrix[row] = self._matrix[last]
                self._ids[row] = moved
                self._rows[moved] = row
            self._ids.pop()

    def ids(self) -> list[str]:
        """Every id present, in row order (a new list)."""
        return list(self._ids)

    def vectors(self, ids: Sequence[str]) -> FloatMatrix:
        """A copy of the rows of ``ids`` (KeyError for an unknown id)."""
        rows = np.fromiter((self._rows[i] for i in ids), dtype=np.intp, count=len(ids))
        return self._matrix[rows]

    def search(
        self, query: npt.NDArray[np.float32], *, limit: int, max_distance: float
    ) -> list[Neighbor]:
        """Exact top-``limit`` by distance; ties keep no particular order."""
        size = len(self._ids)
        if limit <= 0 or size == 0 or max_distance < 0:
            return []
        q = np.asarray(query, dtype=np.float32)
        if q.shape != (self._dim,):
            raise ValueError(f"expected a query of shape ({self._dim},), got {q.shape}")
        # For unit vectors |a - b|^2 = 2 - 2 a.b, so ranking by dot product is
        # ranking by distance, and max_distance becomes a dot-product floor.
        dots = self._matrix[:size] @ q
        candidates: npt.NDArray[np.intp] | None = None
        scores = dots
        if max_distance < 2.0:
            floor = 1.0 - max_distance * max_distance / 2.0 - 1e-5  # slack for rounding
            candidates = np.flatnonzero(dots >= floor)
            scores = dots[candidates]
        k = min(limit, scores.shape[0])
        if k == 0:
            return []
        # Partition on the scores themselves (not their negation, which would
        # copy the whole vector): the k largest dot products end up last.
        top = np.argpartition(scores, -k)[-k:] if k < scores.shape[0] else np.arange(k)
        top = top[np.argsort(-scores[top], kind="stable")]
        rows = top if candidates is None else candidates[top]
        distances = unit_distances(dots[rows])
        return [
            Neighbor(self._ids[row], distance)
            for row, distance in zip(rows.tolist(), distances.tolist(), strict=True)
            if distance <= max_distance
        ]

    def _reserve(self, needed: int) -> None:
        capacity = self._matrix.shape[0]
        if needed <= capacity:
            return
        grown = np.empty((max(needed, 2 * capacity, _MIN_CAPACITY), self._dim or 0), np.float32)
        grown[:capacity] = self._matrix
        self._matrix = grown


def unit_distances(dots: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Euclidean distances (0-2) between unit vectors, from their dot products.

    For unit vectors |a - b|^2 = 2 - 2 a.b, computed in float64 and clipped
    to 0-4 against rounding.
    """
    squared = np.clip(2.0 - 2.0 * dots.astype(np.float64), 0.0, 4.0)
    # A float32 unit vector dotted with itself is 1 +- ~1e-6, which sqrt would
    # blow up to a distance of ~1e-3; below that floor the vectors are equal.
    squared[squared < _SQUARED_NOISE] = 0.0
    return np.sqrt(squared)


def _row_map(ids: Sequence[str], start: int, matrix: FloatMatrix) -> dict[str, int]:
    """``{ids[i]: start + i}``, after checking that ``matrix`` has one row per id.

    Raises ValueError for a wrong shape or an id given twice (the map then
    comes out shorter than ``ids``).
    """
    if matrix.ndim != 2 or matrix.shape[0] != len(ids):
        raise ValueError(f"expected a {len(ids)} x d matrix, got shape {matrix.shape}")
    rows = dict(zip(ids, range(start, start + len(ids)), strict=True))
    if len(rows) != len(ids):
        raise ValueError("duplicate ids in one add")
    return rows


class CollectionIndex:
    """The search view of one collection: its faces, and one template per user.

    A user's template is the L2-renormalised mean of its faces' embeddings,
    so searching users is one more exact search over far fewer vectors.
    Templates are recomputed only for the users a change touches.

    The face index is exact below ``ann_threshold`` faces and an HNSW graph
    from there: :meth:`build` picks by size, and :meth:`add_faces` switches
    an exact index over once it reaches the threshold. It never switches
    back when faces are removed (no flapping around the threshold); the next
    :meth:`build` picks again. Users are few, so templates stay exact.
    """

    def __init__(self, *, ann_threshold: int = ANN_THRESHOLD) -> None:
        self.faces: FaceIndex = ExactIndex()
        self.users = ExactIndex()
        self._ann_threshold = ann_threshold
        self._face_user: dict[str, str] = {}
        self._user_faces: dict[str, set[str]] = {}

    @classmethod
    def build(
        cls,
        face_ids: Sequence[str],
        vectors: FloatMatrix,
        user_ids: Sequence[str | None],
        *,
        copy: bool = True,
        ann_threshold: int = ANN_THRESHOLD,
    ) -> CollectionIndex:
        """An index of faces ``face_ids`` (rows of ``vectors``), owned by ``user_ids``.

        ``copy=False`` lets the face index adopt ``vectors`` (see
        :meth:`ExactIndex.from_matrix`): a store rebuilding its cache passes
        a matrix it has just filled and will not touch again. From
        ``ann_threshold`` faces on, the face index is an
        :class:`~facelens.collection.ann.HnswIndex`, whose graph build takes
        0.3-0.55 ms per face on 2 cores (see its module).
        """
        index = cls(ann_threshold=ann_threshold)
        if len(face_ids) >= ann_threshold:
            from facelens.collection.ann import HnswIndex  # faiss loads only when needed

            index.faces = HnswIndex.from_matrix(face_ids, vectors, copy=copy)
        else:
            index.faces = ExactIndex.from_matrix(face_ids, vectors, copy=copy)
        for face_id, user_id in zip(face_ids, user_ids, strict=True):
            if user_id is not None:
                index._face_user[face_id] = user_id
                index._user_faces.setdefault(user_id, set()).add(face_id)
        index._refresh(list(index._user_faces))
        return index

    def face_count(self, user_id: str) -> int:
        return len(self._user_faces.get(user_id, ()))

    def add_faces(self, face_ids: Sequence[str], vectors: FloatMatrix) -> None:
        """New faces belong to no user yet; reaching the threshold builds the HNSW graph."""
        self.faces.add(face_ids, vectors)
        if isinstance(self.faces, ExactIndex) and len(self.faces) >= self._ann_threshold:
            from facelens.collection.ann import HnswIndex

            self.faces = HnswIndex.from_exact(self.faces)

    def remove_faces(self, face_ids: Sequence[str]) -> None:
        self.assign(face_ids, None)
        self.faces.remove(face_ids)

    def assign(self, face_ids: Iterable[str], user_id: str | None) -> None:
        """Moves known faces to ``user_id`` (None: to no user), refreshing touched templates."""
        touched: set[str] = set()
        for face_id in face_ids:
            old = self._face_user.pop(face_id, None)
            if old is not None:
                self._user_faces[old].discard(face_id)
                touched.add(old)
            if user_id is not None and face_id in self.faces:
                self._face_user[face_id] = user_id
                self._user_faces.setdefault(user_id, set()).add(face_id)
                touched.add(user_id)
        self._refresh(touched)

    def _refresh(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            members = self._user_faces.get(user_id)
            if not members:
                self._user_faces.pop(user_id, None)
                self.users.remove([user_id])
                continue
            mean = self.faces.vectors(sorted(members)).mean(axis=0, dtype=np.float64)
            norm = float(np.linalg.norm(mean))
            if norm < 1e-12:  # faces that cancel out have no direction to search by
                self.users.remove([user_id])
            else:
                self.users.add([user_id], (mean / norm).astype(np.float32)[np.newaxis, :])
