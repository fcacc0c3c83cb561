"""Approximate nearest-neighbour search (HNSW) for collections too large to scan.

Why: :class:`~facelens.collection.index.ExactIndex` reads every stored vector
per query, which is tens of milliseconds at 1M x 128 on a small machine. An
HNSW graph (faiss ``IndexHNSWFlat``) visits a few thousand vectors instead
(about 4 ms at 1M on 2 cores, see :data:`EF_SEARCH`), and that cost grows
roughly with the logarithm of the collection's size. Results stay as exact
as the candidate set allows: the graph proposes ``max(4 * limit, 64)``
candidates, which are re-ranked by exact distance from the vectors kept
here, so distances are the same numbers ExactIndex would report.

Trade-offs:

- Build time: inserting a vector walks the graph. On 2 cores at M=32,
  efConstruction=80 and uniformly random 128-d vectors (the worst case) that
  is 1.3 s for 10k, 31 s for 100k and 8.5-9 min for 1M; clustered face
  embeddings build several times faster. A cold start should therefore
  :meth:`HnswIndex.load` a saved graph (about 4 s at 1M) rather than rebuild.
- Memory: the graph keeps its own float32 copy of every vector (faiss
  needs them to walk it) plus 2 * M int32 links per vector on level 0, and
  the live vectors are kept once more in an ExactIndex (for user templates
  and exact re-ranking), with the id maps: building 1M x 128 added 1.4 GiB
  of RSS (512 MB of it the ExactIndex copy).
- faiss HNSW cannot delete: a removed or overwritten id leaves a tombstone
  (a graph node no result may name). Once tombstones exceed
  ``rebuild_ratio`` (20%) of the graph, it is rebuilt from the live vectors,
  which costs a full build but happens only after that many removals.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from facelens.collection.index import ExactIndex, FloatMatrix, Neighbor, unit_distances

if TYPE_CHECKING:
    import faiss

HNSW_M = 32
"""Links per node (level 0 keeps 2 * M, 256 bytes per vector at 32). A common
choice for 128-d data; a smaller M saves link memory but needs a larger efSearch
for the same recall (not measured here)."""
EF_CONSTRUCTION = 80
"""Candidate list while inserting: higher builds a better graph, linearly slower."""
EF_SEARCH = 256
"""Candidate list while searching (raised to the candidate count when that is larger).

Chosen on the hardest data we measure, 1M uniformly random 128-d unit vectors
queried by "second photos" (a stored vector moved by Euclidean 0.4), 1000
queries, 2 cores: efSearch 64 -> recall@1 0.865 at 1.4 ms p50, 128 -> 0.97,
192 -> 0.989, 256 -> 0.995 at 3.7 ms p50, 320 -> 0.997 at 4.7 ms. Clustered,
face-like data reaches 1.0 with far less; at 100k, 64 already gave 1.0."""
REBUILD_RATIO = 0.2
"""Rebuild the graph once tombstones exceed this fraction of its nodes."""
MIN_CANDIDATES = 64
CANDIDATE_FACTOR = 4
"""The graph is asked for ``max(CANDIDATE_FACTOR * limit, MIN_CANDIDATES)`` labels,
so tombstones among them and re-ranking still leave ``limit`` good ones."""
STATE_FILE = "hnsw.npz"
"""Inside a save directory: header, ids, labels and live vectors; it names its graph file."""
_FORMAT = 1
_SPOT_CHECKS = 16
"""Live vectors compared against the graph's own copy on load (a cheap "same save" test)."""


class HnswIndex:
    """A :class:`~facelens.collection.index.ExactIndex` look-alike searched through an HNSW graph.

    Graph labels are positions in the graph (a counter per added vector);
    ``_owners[label]`` is the id a label stands for, or None once the label
    is a tombstone. ``_labels`` maps every live id to its current label.
    Search results are approximate (recall@1 >= 0.99 on face-like data), but
    their distances are exact. Not thread-safe for writes, like ExactIndex.
    """

    def __init__(
        self,
        dim: int | None = None,
        *,
        m: int = HNSW_M,
        ef_construction: int = EF_CONSTRUCTION,
        ef_search: int = EF_SEARCH,
        rebuild_ratio: float = REBUILD_RATIO,
    ) -> None:
        if m < 2 or ef_construction < 1 or ef_search < 1 or not 0.0 < rebuild_ratio < 1.0:
            raise ValueError("need m >= 2, ef_construction >= 1, ef_search >= 1, 0 < ratio < 1")
        self._m = m
        self._ef_construction = ef_construction
        self._ef_search = ef_search
        self._rebuild_ratio = rebuild_ratio
        self._live = ExactIndex(dim)
        self._graph: faiss.IndexHNSWFlat | None = None
        self._labels: dict[str, int] = {}
        self._owners: list[str | None] = []

    @property
    def dim(self) -> int | None:
        """Vector length, or None while nothing has fixed it."""
        return self._live.dim

    @property
    def tombstones(self) -> int:
        """Graph nodes that no longer stand for a live id."""
        return len(self._owners) - len(self._labels)

    @property
    def graph_size(self) -> int:
        """Nodes in the graph, live and tombstoned."""
        return len(self._owners)

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, item: object) -> bool:
        return item in self._labels

    @classmethod
    def from_matrix(
        cls,
        ids: Sequence[str],
        vectors: FloatMatrix,
        *,
        copy: bool = True,
        m: int = HNSW_M,
        ef_construction: int = EF_CONSTRUCTION,
        ef_search: int = EF_SEARCH,
    ) -> HnswIndex:
        """An index of ``vectors[i]`` under ``ids[i]``, with its graph built in one step.

        ``copy=False`` lets the live store adopt ``vectors`` as
        :meth:`ExactIndex.from_matrix` does; the graph always holds its own copy.
        """
        index = cls(m=m, ef_construction=ef_construction, ef_search=ef_search)
        matrix = np.asarray(vectors, dtype=np.float32)
        index._live = ExactIndex.from_matrix(ids, matrix, copy=copy)  # validates shape and ids
        if ids:
            index._build(list(ids), matrix)
        return index

    @classmethod
    def from_exact(cls, exact: ExactIndex, **params: Any) -> HnswIndex:
        """An index over the vectors of ``exact``, which it adopts: the caller hands it over."""
        index = cls(**params)
        index._live = exact
        ids = exact.ids()
        if ids:
            index._build(ids, exact.vectors(ids))
        return index

    def add(self, ids: Sequence[str], vectors: FloatMatrix) -> None:
        """Inserts or overwrites (the old node of an overwritten id becomes a tombstone)."""
        matrix = np.asarray(vectors, dtype=np.float32)
        self._live.add(ids, matrix)  # refuses bad shapes and duplicates before any change
        if not ids:
            return
        if self._graph is None or self._graph.d != matrix.shape[1]:
            # The first vectors, or a new dimension, which the live store takes only when empty.
            self._build(list(ids), matrix)
            return
        if not self._labels.keys().isdisjoint(ids):
            for item in ids:
                old = self._labels.get(item)
                if old is not None:
                    self._owners[old] = None
        start = len(self._owners)
        self._graph.add(np.ascontiguousarray(matrix))
        self._owners.extend(ids)
        self._labels.update(zip(ids, range(start, start + len(ids)), strict=True))
        self._rebuild_if_worn()

    def remove(self, ids: Sequence[str]) -> None:
        """Tombstones the ids that are present; unknown ids are ignored."""
        for item in ids:
            label = self._labels.pop(item, None)
            if label is not None:
                self._owners[label] = None
        self._live.remove(ids)
        self._rebuild_if_worn()

    def vectors(self, ids: Sequence[str]) -> FloatMatrix:
        """A copy of the vectors of ``ids`` (KeyError for an unknown id)."""
        return self._live.vectors(ids)

    def search(
        self, query: npt.NDArray[np.float32], *, limit: int, max_distance: float
    ) -> list[Neighbor]:
        """Up to ``limit`` ids within ``max_distance`` (0-2) of ``query``, nearest first.

        Approximate: an id the graph search misses is not returned. When the
        candidate count would cover the whole index, the search is exact.
        """
        from faiss import SearchParametersHNSW  # type: ignore[attr-defined]  # not in its stubs

        size = len(self._labels)
        if limit <= 0 or size == 0 or max_distance < 0:
            return []
        q = np.asarray(query, dtype=np.float32)
        if q.shape != (self.dim,):
            raise ValueError(f"expected a query of shape ({self.dim},), got {q.shape}")
        wanted = max(CANDIDATE_FACTOR * limit, MIN_CANDIDATES)
        if self._graph is None or wanted >= size:
            return self._live.search(q, limit=limit, max_distance=max_distance)
        params = SearchParametersHNSW(efSearch=max(self._ef_search, wanted))
        _, found = self._graph.search(q[np.newaxis, :], wanted, params=params)
        owners = self._owners
        ids = [owners[label] for label in found[0].tolist() if label >= 0]
        live = [item for item in ids if item is not None]
        if not live:
            return []
        distances = unit_distances(self._live.vectors(live) @ q)
        order = np.argsort(distances, kind="stable")
        hits = [
            Neighbor(live[i], d)
            for i, d in zip(order.tolist(), distances[order].tolist(), strict=True)
            if d <= max_distance
        ]
        return hits[:limit]

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Writes the graph and the live state into ``directory`` (created if missing).

        The graph goes to a new uniquely named file first; then the state
        file, which names that graph file, replaces the old one atomically,
        so a reader sees the old pair or the new pair, never a mix. Graph
        files no state names any more are deleted last.
        """
        import faiss

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        graph_name: str | None = None
        graph_bytes = 0
        if self._graph is not None:
            graph = self._graph
            graph_name = f"graph-{uuid.uuid4().hex}.faiss"
            _write_atomically(folder / graph_name, lambda path: faiss.write_index(graph, path))
            graph_bytes = (folder / graph_name).stat().st_size
        ids = list(self._labels)
        header = {
            "format": _FORMAT,
            "dim": self.dim,
            "graph": graph_name,
            "graph_bytes": graph_bytes,
            "graph_nodes": len(self._owners),
            "live": len(ids),
            "m": self._m,
            "ef_construction": self._ef_construction,
            "ef_search": self._ef_search,
            "rebuild_ratio": self._rebuild_ratio,
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            "ids": np.frombuffer(json.dumps(ids).encode(), dtype=np.uint8),  # exact for any str
            "labels": np.fromiter(self._labels.values(), dtype=np.int64, count=len(ids)),
            "vectors": self._live.vectors(ids),
        }
        _write_atomically(folder / STATE_FILE, lambda path: _save_npz(path, arrays))
        for stale in folder.glob("graph-*.faiss"):
            if stale.name != graph_name:
                stale.unlink(missing_ok=True)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> HnswIndex:
        """The index :meth:`save` wrote to ``directory``, without rebuilding its graph.

        Raises ValueError when the saved files are missing, unreadable or do
        not belong together; the caller then rebuilds from its own data.
        """
        import faiss

        folder = Path(directory)
        try:
            with np.load(folder / STATE_FILE, allow_pickle=False) as state:
                header = json.loads(state["header"].tobytes())
                ids = json.loads(state["ids"].tobytes())
                labels = state["labels"]
                vectors = state["vectors"]
            graph = None
            if header["graph"] is not None:
                graph_path = folder / str(header["graph"])
                if graph_path.stat().st_size != header["graph_bytes"]:
                    raise ValueError("the graph file is not the one the state was saved with")
                graph = faiss.read_index(str(graph_path))
            index = cls(
                m=int(header["m"]),
                ef_construction=int(header["ef_construction"]),
                ef_search=int(header["ef_search"]),
                rebuild_ratio=float(header["rebuild_ratio"]),
            )
            index._restore(header, ids, labels, vectors, graph)
        except (OSError, KeyError, TypeError, ValueError, RuntimeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"no usable saved HNSW index in {folder}: {exc}") from exc
        return index

    def _restore(
        self,
        header: dict[str, Any],
        ids: list[str],
        labels: npt.NDArray[np.int64],
        vectors: FloatMatrix,
        graph: faiss.Index | None,
    ) -> None:
        """Adopts loaded parts after checking that they belong together (ValueError if not)."""
        import faiss

        nodes, dim = int(header["graph_nodes"]), header["dim"]
        if header["format"] != _FORMAT:
            raise ValueError(f"unknown format {header['format']}")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError("the ids are not a list of strings")
        count = len(ids)
        if header["live"] != count or labels.shape != (count,) or vectors.shape[0] != count:
            raise ValueError("the ids, labels and vectors differ in count")
        if (graph is None) != (nodes == 0):
            raise ValueError("a graph is missing or unexpected")
        if graph is not None:
            if not isinstance(graph, faiss.IndexHNSWFlat):
                raise ValueError(f"the graph file holds a {type(graph).__name__}")
            if graph.ntotal != nodes or graph.d != dim or vectors.shape[1] != dim:
                raise ValueError("the graph's size or dimension differs from the state's")
            if count and (labels.min() < 0 or labels.max() >= nodes):
                raise ValueError("a label lies outside the graph")
            if np.unique(labels).shape[0] != count:
                raise ValueError("two ids share a label")
            for row in np.linspace(0, count - 1, num=min(count, _SPOT_CHECKS), dtype=np.intp):
                if not np.array_equal(graph.reconstruct(int(labels[row])), vectors[row]):
                    raise ValueError("the graph holds other vectors than the state")
            graph.hnsw.efSearch = self._ef_search
        owners: list[str | None] = [None] * nodes
        label_list: list[int] = labels.tolist()
        for item, label in zip(ids, label_list, strict=True):
            owners[label] = item
        live = ExactIndex.from_matrix(ids, vectors, copy=False) if count else ExactIndex(dim)
        self._live, self._graph, self._owners = live, graph, owners
        self._labels = dict(zip(ids, label_list, strict=True))

    def _build(self, ids: list[str], matrix: FloatMatrix) -> None:
        """A new graph of ``matrix`` (rows: ``ids``), replacing any old one and its tombstones."""
        import faiss

        graph = faiss.IndexHNSWFlat(int(matrix.shape[1]), self._m)
        graph.hnsw.efConstruction = self._ef_construction
        graph.hnsw.efSearch = self._ef_search
        graph.add(np.ascontiguousarray(matrix, dtype=np.float32))
        self._graph = graph
        self._owners = list(ids)
        self._labels = dict(zip(ids, range(len(ids)), strict=True))

    def _rebuild_if_worn(self) -> None:
        """Rebuilds from the live vectors once tombstones exceed the rebuild ratio."""
        if self.tombstones <= self._rebuild_ratio * len(self._owners):
            return
        ids = list(self._labels)
        if not ids:
            self._graph, self._owners = None, []
            return
        self._build(ids, self._live.vectors(ids))


def _save_npz(path: str, arrays: dict[str, npt.NDArray[Any]]) -> None:
    with open(path, "wb") as file:
        np.savez(file, **arrays)  # type: ignore[arg-type]  # numpy's stub wants one dtype


def _write_atomically(target: Path, write: Callable[[str], None]) -> None:
    """``write(temp path)`` beside ``target``, flushed to disk, then renamed onto ``target``."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(temp)
        with open(temp, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
