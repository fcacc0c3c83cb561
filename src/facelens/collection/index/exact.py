"""Exact nearest-neighbour search over unit embeddings: one matrix-vector product per query.

Why a module of its own: :class:`ExactIndex` is the brute-force index every
collection starts with, and the re-ranking step of the approximate one
(:mod:`facelens.collection.index.ann`) shares its distance arithmetic
(:func:`unit_distances`). All distances are Euclidean between unit vectors,
so they lie in 0-2 (0: identical direction, about 1.41: orthogonal, 2:
opposite).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float32]
"""An n x d float32 matrix, one L2-normalised vector per row."""
_MIN_CAPACITY = 16
_SQUARED_NOISE = 1e-5
"""Squared distances below this are float32 rounding of identical vectors (distance < 0.003)."""


@dataclass(frozen=True, slots=True)
class Neighbor:
    """One search hit: ``distance`` is Euclidean between unit vectors (0-2)."""

    id: str
    distance: float


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

    def release(self) -> tuple[list[str], FloatMatrix]:
        """Hands over the ids and the rows in use (a view, no copy); the index is empty after."""
        ids, matrix = self._ids, self._matrix[: len(self._ids)]
        self._matrix = np.empty((0, self._dim or 0), dtype=np.float32)
        self._ids, self._rows = [], {}
        return ids, matrix

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
