"""Face search over 10k, 100k and 1M stored faces: index alone, through SQLite, memory, ANN.

Why: facelens searches by brute force (:class:`~facelens.collection.index.ExactIndex`,
one matrix-vector product per query) on an in-process cache that the SQLite
store builds from the database. This shows how far that goes before an
approximate index is worth having, what a restart costs (the first search
rebuilds the cache), and how fast faces can be loaded.

The faces are random unit 128-d float32 vectors from a fixed seed, with
random UUID4 face ids (as the service mints them); queries are further random
unit vectors. For each size (ascending; one SQLite file grows from one size
to the next):

(a) ``index``: ``ExactIndex.search`` alone, limit 10, max_distance 2.0 (every
    face qualifies, so the top-10 selection does full work), and at the
    distance of FaceMatchThreshold 80 (the default: almost nothing
    qualifies), p50/p95 in ms over ``--queries`` queries; plus the time to
    fill the index;
(b) ``store``: ``SQLiteCollectionStore.add_faces`` in batches of ``--batch``
    NewFace records (one transaction each): insert rate in faces/s; then a
    fresh store instance on the same file (a restart): the first
    ``search_faces`` (connection, reading every embedding, building the
    cache, the search) and the warm searches after it, in ms; and
    ``describe_collection``, which ``CollectionService`` calls before every
    IndexFaces and SearchFacesByImage;
(c) ``memory``: bytes of the index matrix (rows in use, and as allocated,
    since it grows by doubling), the database file size, and the process's
    peak RSS so far;
(d) ``ann`` (with ``--ann``): :class:`~facelens.collection.ann.HnswIndex`
    built over the same faces: build time and the RSS it added; search
    p50/p95 in ms at limit 10 (max_distance 2.0 and the threshold-80
    distance) over ``--ann-queries`` queries that are stored faces plus
    noise (a second photo of an enrolled person, about ``--ann-noise``
    Euclidean distance from the stored one); recall@1 of those queries
    against exact search (numpy over all faces); recall@1 of the unrelated
    random queries of (a) for context (those match nobody at any sensible
    threshold); and ``save``/``load`` times and file sizes (a restart
    without a rebuild).

Run from the repository root::

    python -m bench.search_scale [--sizes 10000 100000 1000000] [--queries 50] [--ann]
    python -m bench.search_scale --ann-only --name search_scale_ann  # (d) alone

Writes bench/results/search_scale.json (``--name`` changes the file name).

The BLAS thread count matters here: numpy's OpenBLAS splits the
matrix-vector product over all cores, and on a small or busy machine waking
those threads can cost more than the product itself. Compare a run with
``OPENBLAS_NUM_THREADS=1 python -m bench.search_scale --name search_scale_blas1``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench._common import machine_facts, peak_rss_bytes, summarize_ms, write_result
from facelens.collection.ann import HnswIndex
from facelens.collection.index import ExactIndex
from facelens.collection.models import NewFace
from facelens.collection.similarity import distance_for_similarity
from facelens.collection.sqlite_store import SQLiteCollectionStore
from facelens.engine.types import BoundingBox

DIM = 128
COLLECTION = "scale"
LIMIT = 10
LARGE_DISTANCE = 2.0
"""The largest Euclidean distance between unit vectors: every stored face qualifies."""
THRESHOLD_80_DISTANCE = distance_for_similarity(80.0)
BOX = BoundingBox(width=0.25, height=0.3, left=0.375, top=0.2)

FloatMatrix = npt.NDArray[np.float32]


@contextmanager
def lap(samples: list[float]) -> Iterator[None]:
    """Appends the wall-clock duration of the ``with`` body to ``samples``, in seconds."""
    start = time.perf_counter()
    yield
    samples.append(time.perf_counter() - start)


def unit_vectors(rng: np.random.Generator, count: int) -> FloatMatrix:
    """``count`` random directions in 128-d, float32, each row L2-normalised."""
    vectors = rng.standard_normal((count, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def random_face_ids(rng: np.random.Generator, count: int) -> list[str]:
    """UUID4 strings from ``rng``: random keys, like the service's, but reproducible."""
    raw = rng.bytes(16 * count)
    return [str(uuid.UUID(bytes=raw[16 * i : 16 * i + 16], version=4)) for i in range(count)]


def measure_index(
    ids: list[str], vectors: FloatMatrix, queries: FloatMatrix
) -> tuple[dict[str, Any], list[str]]:
    """(a) and the index part of (c); also returns the first query's top-10 ids (a cross-check)."""
    fill: list[float] = []
    index = ExactIndex()
    with lap(fill):
        index.add(ids, vectors)
    large: list[float] = []
    threshold: list[float] = []
    first: list[str] = []
    for i, query in enumerate(queries):
        with lap(large):
            hits = index.search(query, limit=LIMIT, max_distance=LARGE_DISTANCE)
        with lap(threshold):
            index.search(query, limit=LIMIT, max_distance=THRESHOLD_80_DISTANCE)
        if i == 0:
            first = [h.id for h in hits]
    allocated = int(index._matrix.nbytes)  # private: as grown (doubling), not just rows in use
    return {
        "fill_ms": round(fill[0] * 1000.0, 1),
        "search_max_distance_2": summarize_ms(large),
        "search_threshold_80": {
            "max_distance": round(THRESHOLD_80_DISTANCE, 4),
            **summarize_ms(threshold),
        },
        "matrix_bytes_used": len(ids) * DIM * 4,
        "matrix_bytes_allocated": allocated,
    }, first


def insert(
    store: SQLiteCollectionStore,
    ids: list[str],
    vectors: FloatMatrix,
    batch: int,
    progress: Progress,
    label: str,
) -> dict[str, Any]:
    """Adds ``ids``/``vectors`` through ``add_faces`` in batches; rates are faces per second.

    Building the NewFace records is timed apart from ``add_faces`` (it is the
    caller's work, not the store's).
    """
    add_s: list[float] = []
    records_s: list[float] = []
    task = progress.add_task(label, total=len(ids))
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        with lap(records_s):
            faces = [
                NewFace(
                    face_id=face_id,
                    image_id=face_id,
                    external_image_id=None,
                    bounding_box=BOX,
                    confidence=99.9,
                    embedding=vectors[start + i],
                )
                for i, face_id in enumerate(chunk)
            ]
        with lap(add_s):
            store.add_faces(COLLECTION, faces)
        progress.advance(task, len(chunk))
    total = sum(add_s)
    return {
        "faces_inserted": len(ids),
        "batch": batch,
        "batches": len(add_s),
        "add_faces_total_s": round(total, 2),
        "insert_rate_faces_per_s": round(len(ids) / total) if total else None,
        "add_faces_batch": summarize_ms(add_s),
        "build_new_face_records_total_s": round(sum(records_s), 2),
    }


def measure_store(
    path: Path, queries: FloatMatrix, expected_first: list[str], describe_repeat: int
) -> dict[str, Any]:
    """(b) after a restart: cold first search, warm searches, describe_collection (ms)."""
    store = SQLiteCollectionStore(str(path))
    try:
        cold: list[float] = []
        with lap(cold):
            first = store.search_faces(
                COLLECTION, queries[0], limit=LIMIT, max_distance=LARGE_DISTANCE
            )
        warm: list[float] = []
        for query in queries:
            with lap(warm):
                store.search_faces(COLLECTION, query, limit=LIMIT, max_distance=LARGE_DISTANCE)
        warm_threshold: list[float] = []
        for query in queries:
            with lap(warm_threshold):
                store.search_faces(
                    COLLECTION, query, limit=LIMIT, max_distance=THRESHOLD_80_DISTANCE
                )
        describe: list[float] = []
        for _ in range(describe_repeat):
            with lap(describe):
                info = store.describe_collection(COLLECTION)
    finally:
        store.close()
    return {
        "face_count": info.face_count,
        "cold_first_search_ms": round(cold[0] * 1000.0, 1),
        "warm_search_max_distance_2": summarize_ms(warm),
        "warm_search_threshold_80": summarize_ms(warm_threshold),
        "describe_collection": summarize_ms(describe),
        "same_top10_as_index": [n.face.face_id for n in first] == expected_first,
    }


def file_bytes(path: Path) -> int:
    """The database with its WAL and shared-memory files, in bytes."""
    return sum(
        p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
    )


def current_rss_bytes() -> int:
    """Resident memory of this process now, in bytes (Linux: /proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def exact_nearest(vectors: FloatMatrix, queries: FloatMatrix) -> npt.NDArray[np.intp]:
    """Row of the nearest stored vector per query, by brute force in chunks of 16 queries.

    Chunked so that the distance block stays small (16 x 1M float32 = 64 MB).
    """
    rows = [np.argmax(vectors @ queries[i : i + 16].T, axis=0) for i in range(0, len(queries), 16)]
    return np.concatenate(rows)


def measure_ann(
    ids: list[str],
    vectors: FloatMatrix,
    random_queries: FloatMatrix,
    rng: np.random.Generator,
    count: int,
    noise: float,
) -> dict[str, Any]:
    """(d): build, search latency, recall@1 against exact, memory, save/load."""
    before = current_rss_bytes()
    build: list[float] = []
    with lap(build):
        index = HnswIndex.from_matrix(ids, vectors)
    grown = current_rss_bytes() - before
    sources = rng.choice(len(ids), size=count, replace=False)
    queries = vectors[sources] + rng.standard_normal((count, DIM), dtype=np.float32) * (
        noise / np.sqrt(DIM)
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    large: list[float] = []
    threshold: list[float] = []
    found: list[str] = []
    for query in queries:
        with lap(large):
            hits = index.search(query, limit=LIMIT, max_distance=LARGE_DISTANCE)
        with lap(threshold):
            index.search(query, limit=LIMIT, max_distance=THRESHOLD_80_DISTANCE)
        found.append(hits[0].id)
    truth = exact_nearest(vectors, queries)
    recall = sum(f == ids[t] for f, t in zip(found, truth.tolist(), strict=True)) / count
    random_truth = exact_nearest(vectors, random_queries)
    random_found = [
        index.search(q, limit=1, max_distance=LARGE_DISTANCE)[0].id for q in random_queries
    ]
    random_recall = sum(
        f == ids[t] for f, t in zip(random_found, random_truth.tolist(), strict=True)
    ) / len(random_queries)
    saved: list[float] = []
    loaded: list[float] = []
    with tempfile.TemporaryDirectory(prefix="facelens-ann-") as folder:
        with lap(saved):
            index.save(folder)
        files = sum(p.stat().st_size for p in Path(folder).iterdir())
        with lap(loaded):
            reloaded = HnswIndex.load(folder)
        same = reloaded.search(queries[0], limit=LIMIT, max_distance=LARGE_DISTANCE) == (
            index.search(queries[0], limit=LIMIT, max_distance=LARGE_DISTANCE)
        )
        del reloaded
    return {
        "build_s": round(build[0], 2),
        "params": {
            "m": index._m,
            "ef_construction": index._ef_construction,
            "ef_search": index._ef_search,
        },
        "queries": count,
        "query_noise_distance": noise,
        "search_max_distance_2": summarize_ms(large),
        "search_threshold_80": summarize_ms(threshold),
        "recall_at_1": recall,
        "random_query_recall_at_1": random_recall,
        "rss_added_by_build_bytes": grown,
        "peak_rss_bytes_so_far": peak_rss_bytes(),
        "save_s": round(saved[0], 2),
        "load_s": round(loaded[0], 2),
        "saved_files_bytes": files,
        "load_gives_same_answers": same,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="faces stored"
    )
    parser.add_argument("--queries", type=int, default=50, help="queries per measurement")
    parser.add_argument("--batch", type=int, default=10_000, help="faces per add_faces call")
    parser.add_argument("--seed", type=int, default=20240607, help="random seed")
    parser.add_argument(
        "--describe-repeat", type=int, default=5, help="describe_collection calls timed per size"
    )
    parser.add_argument("--ann", action="store_true", help="also measure HnswIndex, (d)")
    parser.add_argument("--ann-only", action="store_true", help="measure (d) alone")
    parser.add_argument("--ann-queries", type=int, default=200, help="queries for (d)")
    parser.add_argument(
        "--ann-noise", type=float, default=0.4, help="query distance from its stored face, (d)"
    )
    parser.add_argument(
        "--name",
        default="search_scale",
        help="result name: bench/results/<name>.json (e.g. for a run with OPENBLAS_NUM_THREADS=1)",
    )
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes))
    if sizes[0] < 1 or args.queries < 1 or args.batch < 1 or args.describe_repeat < 1:
        parser.error("sizes, --queries, --batch and --describe-repeat must be at least 1")
    if args.ann_queries < 1 or args.ann_queries > sizes[0]:
        parser.error("--ann-queries must lie between 1 and the smallest size")
    ann = args.ann or args.ann_only

    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    generate: list[float] = []
    with lap(generate):
        vectors = unit_vectors(rng, sizes[-1])
        ids = random_face_ids(rng, sizes[-1])
        queries = unit_vectors(rng, args.queries)

    machine = machine_facts()  # load average before this script adds its own
    results: list[dict[str, Any]] = []
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with tempfile.TemporaryDirectory(prefix="facelens-scale-") as tmp, Progress(*columns) as bar:
        path = Path(tmp) / "facelens.db"
        writer = SQLiteCollectionStore(str(path))  # never searches, so it never builds a cache
        writer.create_collection(COLLECTION, face_model_version="synthetic-128")
        stored = 0
        try:
            for size in sizes:
                if ann:
                    ann_report = measure_ann(
                        ids[:size], vectors[:size], queries, rng, args.ann_queries, args.ann_noise
                    )
                    bar.console.print(
                        f"{size:>9,} faces: HNSW build {ann_report['build_s']} s, p50 "
                        f"{ann_report['search_max_distance_2']['p50_ms']} ms, p95 "
                        f"{ann_report['search_max_distance_2']['p95_ms']} ms, recall@1 "
                        f"{ann_report['recall_at_1']}"
                    )
                    if args.ann_only:
                        results.append({"faces": size, "ann": ann_report})
                        continue
                index_report, first = measure_index(ids[:size], vectors[:size], queries)
                inserted = insert(
                    writer,
                    ids[stored:size],
                    vectors[stored:size],
                    args.batch,
                    bar,
                    f"add_faces to {size:,}",
                )
                inserted["table_rows_before"] = stored
                stored = size
                store_report = measure_store(path, queries, first, args.describe_repeat)
                results.append(
                    {
                        "faces": size,
                        **({"ann": ann_report} if ann else {}),
                        "index": index_report,
                        "store": {**inserted, **store_report},
                        "memory": {
                            "index_matrix_bytes_used": index_report["matrix_bytes_used"],
                            "index_matrix_bytes_allocated": index_report["matrix_bytes_allocated"],
                            "database_file_bytes": file_bytes(path),
                            "peak_rss_bytes_so_far": peak_rss_bytes(),
                        },
                    }
                )
                bar.console.print(
                    f"{size:>9,} faces: index p50 "
                    f"{index_report['search_max_distance_2']['p50_ms']} ms, store warm p50 "
                    f"{store_report['warm_search_max_distance_2']['p50_ms']} ms, cold "
                    f"{store_report['cold_first_search_ms']} ms, insert "
                    f"{inserted['insert_rate_faces_per_s']} faces/s"
                )
        finally:
            writer.close()

    write_result(
        args.name,
        {
            "machine": machine,
            "settings": {
                "sizes": sizes,
                "queries": args.queries,
                "limit": LIMIT,
                "dimension": DIM,
                "batch": args.batch,
                "seed": args.seed,
                "large_max_distance": LARGE_DISTANCE,
                "threshold_80_max_distance": round(THRESHOLD_80_DISTANCE, 4),
                "ann": ann,
                "ann_only": args.ann_only,
                "ann_queries": args.ann_queries,
                "ann_noise_distance": args.ann_noise,
            },
            "generate_data_s": round(generate[0], 2),
            "results": results,
            "total_s": round(time.perf_counter() - started, 1),
            "note": (
                "One SQLite file grows from one size to the next, so each size's insert rate "
                "is for the rows added on top of the previous size (table_rows_before). "
                "cold_first_search_ms is a fresh store instance's first search (open, read all "
                "embeddings, build the cache, search); the operating system's page cache still "
                "holds the file, which was just written, so it is not a cold-disk figure. "
                "peak_rss_bytes_so_far includes the generated vectors and ids for the largest "
                "size, held for the whole run. "
                "ann.rss_added_by_build_bytes is the HNSW graph (with its own copy of the "
                "vectors) plus the index's live copy of the vectors. "
                "Timings in ms; memory in bytes."
            ),
        },
    )


if __name__ == "__main__":
    main()
