"""An append-only float32 row matrix in fixed-size blocks, for indexes of millions of rows.

Why blocks: one contiguous matrix must be reallocated to grow, and growing a
5 GB matrix (10M x 128 float32) by copying needs the old and the new one at
once, which alone would break a 10 GB budget. Blocks of :data:`BLOCK_ROWS`
rows (32 MiB at 128-d) are allocated one at a time and never move, so the
peak stays at the rows held plus one block. A bulk build can adopt a
caller's matrix as views (no copy); the first append past its end copies
only the last, partial block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float32]
BLOCK_SHIFT = 16
BLOCK_ROWS = 1 << BLOCK_SHIFT
_SMALL_TAKE = 32
"""Up to this many rows, :meth:`BlockMatrix.take` copies row by row (cheaper than grouping)."""


class BlockMatrix:
    """Rows ``0..len-1`` of dimension ``dim``; row ``r`` lives in block ``r >> BLOCK_SHIFT``."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._blocks: list[FloatMatrix] = []
        self._count = 0

    @classmethod
    def adopting(cls, matrix: FloatMatrix) -> BlockMatrix:
        """Rows of ``matrix`` (C-contiguous float32) held as views: the caller hands it over."""
        blocks = cls(int(matrix.shape[1]))
        blocks._blocks = [matrix[i : i + BLOCK_ROWS] for i in range(0, len(matrix), BLOCK_ROWS)]
        blocks._count = len(matrix)
        return blocks

    @classmethod
    def reading(
        cls, dim: int, rows: int, read: Callable[[Iterator[FloatMatrix]], None]
    ) -> BlockMatrix:
        """``rows`` rows filled by ``read``, which takes new blocks one at a time (a load).

        Memory is allocated only as ``read`` asks for it, so loading holds
        no second copy of the rows.
        """
        matrix = cls(dim)

        def blocks() -> Iterator[FloatMatrix]:
            while True:
                matrix._blocks.append(np.empty((BLOCK_ROWS, dim), dtype=np.float32))
                yield matrix._blocks[-1]

        read(blocks())
        matrix._count = rows
        if len(matrix._blocks) != -(-rows // BLOCK_ROWS):
            raise ValueError("the rows read do not fill their blocks")
        return matrix

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of the blocks' memory (a partial, adopted last block counts as its rows)."""
        return sum(b.nbytes for b in self._blocks)

    def blocks(self) -> list[FloatMatrix]:
        """The filled part of each block, in row order (views: do not keep them across writes)."""
        last = self._count - (len(self._blocks) - 1) * BLOCK_ROWS
        return [*self._blocks[:-1], self._blocks[-1][:last]] if self._blocks else []

    def append(self, matrix: FloatMatrix) -> int:
        """Appends rows; returns the first new row number."""
        first = self._count
        done = 0
        while done < len(matrix):
            block, offset = divmod(self._count, BLOCK_ROWS)
            if block == len(self._blocks):
                self._blocks.append(np.empty((BLOCK_ROWS, self.dim), dtype=np.float32))
            elif len(self._blocks[block]) < BLOCK_ROWS:  # an adopted partial block: own it now
                full = np.empty((BLOCK_ROWS, self.dim), dtype=np.float32)
                full[:offset] = self._blocks[block][:offset]
                self._blocks[block] = full
            step = min(BLOCK_ROWS - offset, len(matrix) - done)
            self._blocks[block][offset : offset + step] = matrix[done : done + step]
            done += step
            self._count += step
        return first

    def take(self, rows: npt.NDArray[np.int64]) -> FloatMatrix:
        """A new matrix of the given rows, in the given order."""
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        if len(rows) <= _SMALL_TAKE:
            blocks = self._blocks
            for i, row in enumerate(rows.tolist()):
                out[i] = blocks[row >> BLOCK_SHIFT][row & (BLOCK_ROWS - 1)]
            return out
        which = rows >> BLOCK_SHIFT
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(len(self._blocks) + 1))
        edges = bounds.tolist()
        for block in range(len(self._blocks)):
            lo, hi = edges[block], edges[block + 1]
            if hi > lo:
                picked = order[lo:hi]
                out[picked] = self._blocks[block][rows[picked] & (BLOCK_ROWS - 1)]
        return out

    def compact(self, keep: npt.NDArray[np.bool_]) -> None:
        """Keeps only the rows flagged in ``keep`` (one flag per row), in order, in place.

        Rows only ever move to lower numbers, so each block is read before
        anything is written over it, and memory never holds two copies.
        """
        write = 0
        for block, rows in enumerate(self.blocks()):
            kept = rows[keep[block * BLOCK_ROWS : block * BLOCK_ROWS + len(rows)]]
            self._count = write  # append() writes from here, over rows already read
            self.append(np.array(kept))  # a copy: ``kept`` may overlap where it lands
            write += len(kept)
        self._count = write
        self._blocks = self._blocks[: -(-write // BLOCK_ROWS)]
