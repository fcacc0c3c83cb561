"""Approximate face search for collections too large to scan: an inverted file (IVF).

Why IVF: :class:`~facelens.collection.index.exact.ExactIndex` reads every vector per
query (72 ms at 1M x 128 on 2 cores). k-means splits the vectors into
``nlist`` lists; a query reads only the ``nprobe`` lists whose centroids are
nearest, from a compact 8-bit copy (faiss ``IndexIVFScalarQuantizer``,
128 bytes per face), and the best :data:`MIN_CANDIDATES` are re-ranked by
exact float32 distance, so reported distances are exactly ExactIndex's.

Measured on 2 shared cores (AMD EPYC, AVX-512; other work kept the load
average at 2-4), random 128-d unit vectors queried by "second photos" (a
stored vector moved by Euclidean 0.4), the hardest data we test; recall@1
is against exact search:

========================  ============  ==========  ========  =========================
index                     build         p50         recall@1  memory beyond float32
========================  ============  ==========  ========  =========================
HNSW flat M=32, ef 256    505 s @1M     3.7 ms      0.995     +512 MB copy, +256 MB links
HNSW SQ8 M=32, ef 64      55 s @100k*   0.4 ms      1.0       +128 MB codes, +256 MB links
usearch f16 M=16, ef 128  48 s @100k*   0.6 ms      1.0       +256 MB at 1M (graph incl.)
IVF-SQ8 1024 lists, 64    7.4-13.5 s    1.1-1.4 ms  1.0       +128 MB codes (at 1M)
IVF-SQ8 1024 lists, 32    same          0.55 ms     0.990     same
IVF-SQ8 2048 lists @10M   90-147 s      3.9-5.8 ms  1.0       +1.3 GB codes
========================  ============  ==========  ========  =========================

(* at load 6, niced: graph builds are about 50x an IVF build of the same size
under the same load, so 1M takes minutes to hours.) Building the graph is what
rules HNSW out: a restart that cannot load must rebuild, and a benchmark must
build 1M and 10M in minutes; an IVF build is k-means on a sample plus one
matrix product per vector against the centroids (BLAS), about 1.5-3 us per
vector per 1000 lists on these cores. An HNSW coarse quantizer (to assign
vectors to lists faster) was slower than that product up to 4096 lists
(2.3x at 1024) and disagreed with it on 3-30% of vectors, so assignment stays
brute force. :data:`NPROBE` 64 rather than 32 buys the margin above 0.99:
at 10M, 1024 lists gave 0.977 at 16 and 1.0 at 32 probes; 2048 lists 0.987
at 32 and 0.997-1.0 at 64.

Memory per face at 128-d: 512 B float32 (re-ranking, user templates), 128 B
of codes plus 8 B of label in the lists, 36 B of id (see
:mod:`facelens.collection.index.keys`), 5 B of row state: about 0.7 KB; a process
holding a loaded 10M index measured 6.98 GB resident (6.94 GB of it the
index), and a 10M build peaked at 7.4 GB. faiss lists grow by doubling under
steady adds after a bulk build or load, which can add up to 1.3 GB at 10M.

Removal takes the row out of its list at once (swap with the list's last
entry); its float32 row stays as a tombstone until they exceed
:data:`COMPACT_RATIO` of the rows, then rows are renumbered in place. Growth
to :data:`RETRAIN_GROWTH` times the trained size re-trains with more lists.
Not thread-safe for writes, like ExactIndex.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from facelens.collection.index import ivf_lists
from facelens.collection.index.blocks import BlockMatrix
from facelens.collection.index.exact import FloatMatrix, Neighbor, unit_distances
from facelens.collection.index.keys import KeyMap

if TYPE_CHECKING:
    import faiss

MAX_LISTS = 2048
"""Cap on ``nlist``: assignment costs ~1.5-3 us per vector per 1000 lists on 2 cores, so 10M
faces build in about 2 minutes; 4096 lists would double that to read half the codes
(10M at 2048 lists and 64 probes already searches in 4-6 ms). 1024 would halve the
build but double the codes read (about 10 ms at 10M)."""
POINTS_PER_LIST = 40
"""k-means training points per list (faiss warns below 39); also caps nlist at n / 40."""
KMEANS_ITERATIONS = 10
NPROBE = 64
"""Lists read per query (all of them when there are fewer). See the module's table."""
MIN_CANDIDATES = 64
CANDIDATE_FACTOR = 4
"""Codes hand ``max(CANDIDATE_FACTOR * limit, MIN_CANDIDATES)`` candidates to exact re-ranking."""
COMPACT_RATIO = 0.2
"""Tombstoned rows, as a fraction of all rows, that trigger renumbering them away."""
RETRAIN_GROWTH = 4
"""Re-train (new centroids, more lists) once the index holds this many times its trained size."""
SEED = 20240607


def lists_for(count: int) -> int:
    """``nlist`` for ``count`` vectors: the power of two nearest sqrt(count), capped."""
    if count < 2 * POINTS_PER_LIST:
        return 1
    nearest = 1 << round(math.log2(math.sqrt(count)))
    return int(min(MAX_LISTS, nearest, count // POINTS_PER_LIST))


class IvfIndex:
    """An inverted-file :class:`~facelens.collection.index.collection_index.FaceIndex`.

    Rows are numbered in insertion order and are faiss's labels; ``_alive``
    flags the rows that still hold an id, ``_lists`` the list of each row
    (both over-allocated like a list: use ``[:rows]``).
    """

    def __init__(self, dim: int | None = None, *, nprobe: int = NPROBE) -> None:
        if nprobe < 1:
            raise ValueError("nprobe must be at least 1")
        self._dim = dim
        self._nprobe = nprobe
        self._keys = KeyMap()
        self._vectors = BlockMatrix(dim or 0)
        self._alive = np.zeros(0, dtype=bool)
        self._lists = np.zeros(0, dtype=np.int32)
        self._ivf: faiss.IndexIVFScalarQuantizer | None = None
        self._trained_size = 0

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def nlist(self) -> int:
        return 0 if self._ivf is None else int(self._ivf.nlist)

    @property
    def tombstones(self) -> int:
        return self._keys.rows - len(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def memory_bytes(self) -> int:
        """Bytes held in arrays: float32 rows, list codes and labels, ids, row state."""
        lists = 0 if self._ivf is None else self._ivf.ntotal * (self._ivf.code_size + 8)
        keys = sum(a.nbytes for a in self._keys.arrays().values())
        return self._vectors.nbytes + lists + keys + self._alive.nbytes + self._lists.nbytes

    @property
    def _rows(self) -> int:
        return self._keys.rows

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str) and int(self._keys.lookup([item])[0]) >= 0

    @classmethod
    def from_matrix(
        cls, ids: Sequence[str], vectors: FloatMatrix, *, copy: bool = True, nprobe: int = NPROBE
    ) -> IvfIndex:
        """An index of ``vectors[i]`` under ``ids[i]``, trained on them in one step.

        ``copy=False`` adopts ``vectors`` when it is a C-contiguous float32
        matrix (the caller hands it over), saving a 5 GB copy at 10M.
        """
        matrix = np.asarray(vectors, dtype=np.float32)
        _check_shape(matrix, len(ids))
        if copy or not matrix.flags.c_contiguous:
            matrix = np.array(matrix, dtype=np.float32, order="C")
        index = cls(int(matrix.shape[1]) if len(ids) else None, nprobe=nprobe)
        if not len(ids):
            return index
        index._keys = KeyMap.from_ids(ids)
        index._vectors = BlockMatrix.adopting(matrix)
        index._alive = np.ones(len(ids), dtype=bool)
        index._lists = np.zeros(len(ids), dtype=np.int32)
        index._train()
        return index

    def add(self, ids: Sequence[str], vectors: FloatMatrix) -> None:
        """Inserts or overwrites (an overwritten id's old row becomes a tombstone)."""
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        _check_shape(matrix, len(ids))
        if not len(ids):
            return
        if self._dim is not None and len(self) and matrix.shape[1] != self._dim:
            raise ValueError(f"expected dimension {self._dim}, got {matrix.shape[1]}")
        keys = self._keys.encode(ids)
        if len(set(keys.tolist())) != len(keys):
            raise ValueError("duplicate ids in one add")
        if self._dim != matrix.shape[1]:  # the first vectors, or a new dimension once empty
            self._reset(int(matrix.shape[1]))
            keys = self._keys.encode(ids)
        old = self._keys.lookup_keys(keys)
        self._drop(old[old >= 0])
        rows = self._keys.append(keys)
        self._vectors.append(matrix)
        self._alive = _grown(self._alive, self._rows)
        self._lists = _grown(self._lists, self._rows)
        self._alive[rows] = True
        if self._ivf is None or (
            len(self) >= RETRAIN_GROWTH * self._trained_size and lists_for(len(self)) > self.nlist
        ):
            self._compact()
            self._train()
        else:
            self._lists[rows] = self._assign(matrix)
            self._fill(rows)
        self._compact_if_worn()

    def remove(self, ids: Sequence[str]) -> None:
        """Removes the ids that are present; unknown ids are ignored."""
        rows = self._keys.lookup(list(dict.fromkeys(ids)))
        self._drop(rows[rows >= 0])
        self._compact_if_worn()

    def vectors(self, ids: Sequence[str]) -> FloatMatrix:
        """A copy of the vectors of ``ids`` (KeyError for an unknown id)."""
        rows = self._keys.lookup(ids)
        if (rows < 0).any():
            raise KeyError(ids[int(np.flatnonzero(rows < 0)[0])])
        return self._vectors.take(rows)

    def search(
        self, query: npt.NDArray[np.float32], *, limit: int, max_distance: float
    ) -> list[Neighbor]:
        """Up to ``limit`` ids within ``max_distance`` (0-2) of ``query``, nearest first.

        Approximate: an id outside the probed lists is not returned. When the
        candidates would cover the whole index, the search is exact.
        """
        if limit <= 0 or not len(self) or max_distance < 0:
            return []
        q = np.asarray(query, dtype=np.float32)
        if q.shape != (self._dim,):
            raise ValueError(f"expected a query of shape ({self._dim},), got {q.shape}")
        wanted = max(CANDIDATE_FACTOR * limit, MIN_CANDIDATES)
        if self._ivf is None or wanted >= len(self):
            rows = np.flatnonzero(self._alive[: self._rows]).astype(np.int64)
        else:
            _, labels = self._ivf.search(q[np.newaxis, :], wanted)
            rows = labels[0][labels[0] >= 0]
            rows = rows[self._alive[rows]]
        distances = unit_distances(self._vectors.take(rows) @ q)
        keep = np.flatnonzero(distances <= max_distance)
        order = keep[np.argsort(distances[keep], kind="stable")][:limit]
        ids = self._keys.ids(rows[order])
        return [Neighbor(i, d) for i, d in zip(ids, distances[order].tolist(), strict=True)]

    # -- persistence: plain arrays, written and checked by facelens.collection.index.file --
    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(meta, arrays) describing the whole index, as views (no copies).

        ``vectors`` is a list of row blocks; ``list_labels`` and ``list_codes``
        are every list's contents in list order, so a load reads them straight
        into faiss's memory (:func:`facelens.collection.index.ivf_lists.load`).
        """
        import faiss

        if self._ivf is None or self._dim is None:
            raise ValueError("an empty index has no state to save")
        contents = ivf_lists.views(self._ivf)
        store = ivf_lists.invlists(self._ivf)
        sizes = np.array([store.list_size(n) for n in range(self._ivf.nlist)], dtype=np.int64)
        meta = {"dim": self._dim, "nprobe": self._nprobe, "trained_size": self._trained_size}
        arrays: dict[str, Any] = {
            **self._keys.arrays(),
            "alive": self._alive[: self._rows],
            "centroids": self._ivf.quantizer.reconstruct_n(0, self._ivf.nlist),
            "sq_trained": faiss.vector_to_array(self._ivf.sq.trained),
            "list_sizes": sizes,
            "list_labels": [labels for labels, _ in contents] or [np.zeros(0, np.int64)],
            "list_codes": [codes for _, codes in contents] or [np.zeros((0, 0), np.uint8)],
            "vectors": self._vectors.blocks() or [np.zeros((0, self._dim), np.float32)],
        }
        return {**meta, "keys_mode": self._keys.mode}, arrays

    @classmethod
    def from_state(
        cls,
        meta: dict[str, Any],
        arrays: dict[str, npt.NDArray[Any]],
        vectors: BlockMatrix,
        read: Callable[[str, Iterator[npt.NDArray[Any]]], None],
    ) -> IvfIndex:
        """The index :meth:`state` described; ValueError if its parts disagree.

        ``arrays`` holds the small arrays; ``read`` streams the lists' contents
        into place (see :func:`facelens.collection.index.ivf_lists.load`).
        """
        dim, rows = int(meta["dim"]), len(vectors)
        index = cls(dim, nprobe=int(meta["nprobe"]))
        keys = KeyMap.from_arrays(str(meta["keys_mode"]), arrays)
        alive = arrays["alive"]
        if vectors.dim != dim or keys.rows != rows or alive.shape != (rows,):
            raise ValueError("the saved rows differ in count or dimension")
        if int(alive.sum()) != len(keys) or not alive[keys.arrays()["sorted_rows"]].all():
            raise ValueError("the saved ids and live rows disagree")
        ivf = ivf_lists.new_ivf(dim, arrays["centroids"], arrays["sq_trained"], index._nprobe)
        ivf_lists.load(ivf, arrays["list_sizes"], read)
        lists = np.full(rows, -1, dtype=np.int32)
        for number, (labels, _) in enumerate(ivf_lists.views(ivf)):
            if len(labels) and (labels.min() < 0 or labels.max() >= rows):
                raise ValueError("a list holds a row that does not exist")
            lists[labels] = number
        if ivf.ntotal != len(keys) or not (lists[alive] >= 0).all():
            raise ValueError("the saved lists do not hold exactly the live rows")
        index._keys, index._vectors, index._ivf = keys, vectors, ivf
        index._alive, index._lists = alive.astype(bool), lists
        index._trained_size = int(meta["trained_size"])
        return index

    # -- internals --
    def _reset(self, dim: int) -> None:
        self._dim = dim
        self._keys, self._vectors = KeyMap(), BlockMatrix(dim)
        self._alive, self._lists = np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int32)
        self._ivf, self._trained_size = None, 0

    def _train(self) -> None:
        """New centroids and scalar-quantizer ranges from a sample, then every live row listed."""
        import faiss

        count, dim = len(self), self._vectors.dim
        nlist = lists_for(count)
        rng = np.random.default_rng(SEED)
        sample_rows = np.sort(
            rng.choice(count, size=min(count, POINTS_PER_LIST * nlist), replace=False)
        )
        live = np.flatnonzero(self._alive[: self._rows]).astype(np.int64)
        sample = self._vectors.take(live[sample_rows])
        centroids = sample[:1]
        if nlist > 1:
            kmeans = faiss.Kmeans(dim, nlist, niter=KMEANS_ITERATIONS, seed=SEED, spherical=True)
            kmeans.train(sample)
            centroids = np.asarray(kmeans.centroids, dtype=np.float32)
        sq = faiss.ScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit)
        sq.train(sample)
        self._ivf = ivf_lists.new_ivf(
            dim, centroids, faiss.vector_to_array(sq.trained), self._nprobe
        )
        self._trained_size = count
        start = 0
        for block in self._vectors.blocks():
            self._lists[start : start + len(block)] = self._assign(block)
            start += len(block)
        self._fill(live)

    def _assign(self, matrix: FloatMatrix) -> npt.NDArray[np.int32]:
        """The nearest list of each row of ``matrix`` (one BLAS product against the centroids)."""
        if self._ivf is None:
            raise ValueError("the index is not trained")
        _, nearest = self._ivf.quantizer.search(matrix, 1)
        lists: npt.NDArray[np.int32] = nearest[:, 0].astype(np.int32)
        return lists

    def _fill(self, rows: npt.NDArray[np.int64]) -> None:
        if self._ivf is not None:
            lists = self._lists[rows].astype(np.int64)
            ivf_lists.fill(self._ivf, rows, lists, self._vectors.take)

    def _drop(self, rows: npt.NDArray[np.int64]) -> None:
        """Tombstones live ``rows`` and takes them out of their lists."""
        if not len(rows):
            return
        self._keys.discard(rows.tolist())
        self._alive[rows] = False
        if self._ivf is not None:
            ivf_lists.drop(self._ivf, rows, self._lists[rows].astype(np.int64))

    def _compact_if_worn(self) -> None:
        if self.tombstones > COMPACT_RATIO * self._keys.rows:
            self._compact()

    def _compact(self) -> None:
        """Renumbers the live rows 0..n-1 in place and relabels the lists to match."""
        if not self.tombstones:
            return
        keep = self._alive[: self._rows].copy()
        renumbered = np.cumsum(keep, dtype=np.int64) - 1
        self._vectors.compact(keep)
        self._keys.compact(keep)
        self._lists = self._lists[: len(keep)][keep]
        self._alive = np.ones(len(self._lists), dtype=bool)
        if self._ivf is not None:
            ivf_lists.relabel(self._ivf, renumbered)


def _grown(array: npt.NDArray[Any], size: int) -> npt.NDArray[Any]:
    """``array`` if it holds ``size`` items, else a copy with room for a quarter more.

    Per-row state grows like a list, so adding one face to 10M copies nothing
    (a plain concatenate would copy 50 MB per add)."""
    if len(array) >= size:
        return array
    grown = np.zeros(max(size, len(array) + len(array) // 4 + 1024), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


def _check_shape(matrix: FloatMatrix, count: int) -> None:
    if matrix.ndim != 2 or matrix.shape[0] != count:
        raise ValueError(f"expected a {count} x d matrix, got shape {matrix.shape}")
