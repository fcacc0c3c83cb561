"""The subprocess side of bench.search_scale: a restart, and the index-only sizes.

Why subprocesses: a restart is a new process, and only a fresh process shows
what holding an index costs in resident memory (a process that built and
dropped one keeps freed pages). Each job is a JSON file; the answer goes to
``<job>.out.json``.

Jobs:

- ``store``: open the SQLite store, first search (loads the saved index, or
  rebuilds one below the ANN threshold), then rounds of searches.
- ``build``: generate ``size`` faces, build the index, find the exact truth
  for second-photo queries, save the index file (as the stores do).
- ``load``: load an index file (a restart without a database), then rounds.
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import peak_rss_bytes
from bench.search_data import (
    LazyIds,
    current_rss_bytes,
    exact_nearest,
    rounds_summary,
    second_photos,
    unit_vectors,
)

COLLECTION = "scale"
LIMIT = 10
MAX_DISTANCE = 2.0


def work(job_path: Path) -> None:
    job = json.loads(job_path.read_text())
    jobs = {"store": restart_store, "build": build_index, "load": load_index_file}
    answer = jobs[job["kind"]](job, job_path.parent)
    job_path.with_suffix(".out.json").write_text(json.dumps(answer))


def restart_store(job: dict[str, Any], tmp: Path) -> dict[str, Any]:
    import faiss  # noqa: F401  # the library's own pages are not the index's

    from facelens.collection.stores.sqlite import SQLiteCollectionStore

    queries = np.load(job["queries"])
    store = SQLiteCollectionStore(job["db"])
    store.describe_collection(COLLECTION)  # the connection and schema, outside the timing
    before = current_rss_bytes()
    began = time.perf_counter()
    store.search_faces(COLLECTION, queries[0], limit=LIMIT, max_distance=MAX_DISTANCE)
    restart_s = time.perf_counter() - began
    after = current_rss_bytes()
    stats = store._indexes.stats
    cached = store._indexes.cached(COLLECTION)
    if cached is None:
        raise RuntimeError("the store holds no index after a search")
    index = cached[1]

    def store_search(q: np.ndarray) -> Any:
        return store.search_faces(COLLECTION, q, limit=LIMIT, max_distance=MAX_DISTANCE)

    index_rounds, top = timed_rounds(index.faces.search, queries, job["rounds"])
    store_rounds, _ = timed_rounds(lambda q, **_: store_search(q), queries, job["rounds"])
    store.close()
    return {
        "restart_s": round(restart_s, 3),
        "restart": {
            "loaded_saved_index": stats.loads == 1 and stats.builds == 0,
            "load_s": _seconds(stats.seconds.get("load")),
            "rebuilt_s": _seconds(stats.seconds.get("build")),
        },
        "index": describe(index.faces),
        "search": {"index": index_rounds, "store": store_rounds},
        "memory": memory(before, after, index.faces),
        "top_ids": top,
    }


def build_index(job: dict[str, Any], tmp: Path) -> dict[str, Any]:
    from facelens.collection.index.ann import IvfIndex
    from facelens.collection.index.collection_index import CollectionIndex
    from facelens.collection.index.saved import save_index

    size, seed = job["size"], job["seed"]
    began = time.perf_counter()
    vectors, ids = unit_vectors(seed, size), LazyIds(seed, size)
    generate_s = time.perf_counter() - began
    before = current_rss_bytes()
    began = time.perf_counter()
    faces = IvfIndex.from_matrix(ids, vectors, copy=False)  # adopts the vectors: no copy
    build_s = time.perf_counter() - began
    built_rss = current_rss_bytes()
    index = CollectionIndex.restore(faces, {})
    queries, sources = second_photos(
        np.random.default_rng([seed, size]), vectors, job["queries"], job["noise"]
    )
    began = time.perf_counter()
    truth = exact_nearest(vectors, queries)
    truth_s = time.perf_counter() - began
    path = tmp / f"index-{size}.faceindex"
    began = time.perf_counter()
    file_bytes = save_index(path, index, {"collection": COLLECTION, "generation": 0})
    save_s = time.perf_counter() - began
    np.save(tmp / f"queries-{size}.npy", queries)
    return {
        "generate_s": round(generate_s, 2),
        "build": {
            "index": type(faces).__name__,
            "build_s": round(build_s, 2),
            "save_s": round(save_s, 2),
            "file_bytes": file_bytes,
            "rss_after_build_bytes": built_rss,
            "rss_before_build_bytes": before,
            "peak_rss_bytes": peak_rss_bytes(),
            "note": "the build adopts the generated vectors, so they count as the index's",
        },
        "exact_truth_s": round(truth_s, 2),
        "queries_whose_source_is_nearest": float(np.mean(truth == sources)),
        "truth_ids": [ids[int(t)] for t in truth.tolist()],
        "file": str(path),
    }


def load_index_file(job: dict[str, Any], tmp: Path) -> dict[str, Any]:
    import faiss  # noqa: F401

    from facelens.collection.index.saved import load_index

    path = Path(job["file"])
    size = path.stem.split("-")[-1]
    queries = np.load(tmp / f"queries-{size}.npy")
    gc.collect()
    before = current_rss_bytes()
    began = time.perf_counter()
    _, index = load_index(path, ann_threshold=1)
    restart_s = time.perf_counter() - began
    after = current_rss_bytes()
    rounds, top = timed_rounds(index.faces.search, queries, job["rounds"])
    return {
        "restart_s": round(restart_s, 3),
        "restart": {"loaded_saved_index": True, "load_s": round(restart_s, 3)},
        "index": describe(index.faces),
        "search": {"index": rounds},
        "memory": {**memory(before, after, index.faces), "peak_rss_bytes": peak_rss_bytes()},
        "top_ids": top,
    }


def timed_rounds(search: Any, queries: np.ndarray, rounds: int) -> tuple[dict[str, Any], list[str]]:
    """Rounds of one search per query; (summary, the first round's top hit per query)."""
    durations: list[list[float]] = []
    top: list[str] = []
    for number in range(rounds):
        lap: list[float] = []
        for query in queries:
            began = time.perf_counter()
            hits = search(query, limit=LIMIT, max_distance=MAX_DISTANCE)
            lap.append(time.perf_counter() - began)
            if number == 0:
                first = hits[0]
                top.append(first.id if hasattr(first, "id") else first.face.face_id)
        durations.append(lap)
    return rounds_summary(durations), top


def describe(faces: Any) -> dict[str, Any]:
    described = {"kind": type(faces).__name__, "faces": len(faces)}
    if hasattr(faces, "nlist"):
        described |= {"nlist": faces.nlist, "nprobe": min(faces._nprobe, faces.nlist)}
    return described


def memory(before: int, after: int, faces: Any) -> dict[str, Any]:
    accounted = faces.memory_bytes() if hasattr(faces, "memory_bytes") else None
    return {
        "rss_before_bytes": before,
        "rss_after_bytes": after,
        "index_rss_bytes": after - before,
        "index_array_bytes": accounted,
    }


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
