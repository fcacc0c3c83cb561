"""Face search at 10k, 100k, 1M and 10M faces: build, save, restart, search, recall, memory.

Why: a collection's face index is exact (one matrix-vector product per query)
below :data:`~facelens.collection.index.collection_index.ANN_THRESHOLD` faces and an inverted
file (IVF-SQ8 with exact re-ranking, :mod:`facelens.collection.index.ann`) from
there, saved beside the database so a restart loads it. This measures what
each size costs: building the index, saving it, a restart that loads it,
catching up with another process's writes, search latency, recall@1 against
exact search, and the memory of the process holding the index.

Data: random unit 128-d float32 vectors (the hardest case for an IVF: no
clusters) with random UUID4 face ids, from a fixed seed, so each size's faces
are the first faces of the next size. Queries are "second photos": a stored
face moved by ``--noise`` (Euclidean, default 0.4, a typical distance between
two photos of one person), normalised; recall@1 is the fraction whose top hit
is the exact nearest neighbour (numpy over all faces).

Sizes up to ``--store-max`` (1M) go through ``SQLiteCollectionStore``: one
file grows from one size to the next (``add_faces`` in batches of
``--batch``); a fresh store instance's first search builds the index (and
saves it); a restart is a new process whose first search loads the saved file
(its resident memory before and after is the index's); then another store
instance adds ``--catch-up`` faces and deletes a tenth of them, and the
restarted store's next search catches up. Larger sizes (10M) measure the index
and its file alone, without SQLite rows (inserting 10M rows takes about 10
minutes here): one subprocess generates the faces, builds, saves and measures
exact truth; a second one (the restart) loads the file and searches, so its
resident memory is the index's alone.

Search latency: ``--rounds`` rounds of ``--queries`` queries at limit 10,
max_distance 2.0 (every face qualifies); per round p50 and p95; reported as
the median of the rounds with min and max. ``index`` times
``CollectionIndex.faces.search``; ``store`` times ``search_faces`` (plus the
token check and reading the hits' rows).

Run from the repository root (about 5 minutes on 2 cores)::

    python -m bench.search_scale [--sizes 10000 100000 1000000 10000000]

Writes bench/results/search_scale.json (``--name`` changes the file name).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench._common import REPO_ROOT, machine_facts, peak_rss_bytes, write_result
from bench.search_data import (
    DIM,
    LazyIds,
    exact_nearest,
    second_photos,
    unit_vectors,
)

COLLECTION = "scale"
LIMIT = 10
MAX_DISTANCE = 2.0


# -- the main process: store sizes in-process, their restarts and 10M in subprocesses --
def insert(store: Any, ids: Sequence[str], vectors: npt.NDArray[np.float32], batch: int) -> float:
    """Adds faces ``ids[start:stop]`` through ``add_faces``; returns the seconds it took."""
    from bench.search_data import new_faces

    took = 0.0
    for start in range(0, len(ids), batch):
        faces = new_faces(ids[start : start + batch], vectors[start : start + batch])
        began = time.perf_counter()
        store.add_faces(COLLECTION, faces)
        took += time.perf_counter() - began
    return took


def run_worker(job: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """Runs ``job`` in a fresh Python process (its own memory); returns its JSON answer."""
    path = tmp / f"job-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(job))
    command = [sys.executable, "-m", "bench.search_scale", "--worker", str(path)]
    subprocess.run(command, cwd=REPO_ROOT, check=True)
    answer: dict[str, Any] = json.loads(path.with_suffix(".out.json").read_text())
    return answer


def measure_store_size(
    size: int, db: Path, args: argparse.Namespace, tmp: Path, vectors: Any, ids: LazyIds
) -> dict[str, Any]:
    """Build, restart (a subprocess), catch-up and recall for the first ``size`` faces."""
    from facelens.collection.stores.sqlite import SQLiteCollectionStore

    rng = np.random.default_rng([args.seed, size])
    queries, sources = second_photos(rng, vectors[:size], args.queries, args.noise)
    truth = exact_nearest(vectors[:size], queries)
    np.save(tmp / "queries.npy", queries)

    builder = SQLiteCollectionStore(str(db))
    began = time.perf_counter()
    builder.search_faces(COLLECTION, queries[0], limit=LIMIT, max_distance=MAX_DISTANCE)
    first_search_s = time.perf_counter() - began
    stats = builder._indexes.stats
    cached = builder._indexes.cached(COLLECTION)
    kind = type(cached[1].faces).__name__ if cached else None
    build = {
        "index": kind,
        "first_search_s": round(first_search_s, 3),
        "build_s": round(stats.seconds.get("build", 0.0), 3),
        "saved": stats.saves == 1,
        "save_s": round(stats.seconds["save"], 3) if stats.saves else None,
        "note": "first_search_s: a fresh store instance reads every face, builds, saves",
    }
    builder.close()
    job = {"kind": "store", "db": str(db), "queries": str(tmp / "queries.npy")}
    restart = run_worker({**job, "rounds": args.rounds}, tmp)
    found = restart.pop("top_ids")
    recall = float(np.mean([f == ids[t] for f, t in zip(found, truth.tolist(), strict=True)]))
    return {
        "faces": size,
        "via": "SQLiteCollectionStore",
        "build": build,
        **restart,
        "recall_at_1": recall,
        "queries_whose_source_is_nearest": float(np.mean(truth == sources)),
        "catch_up": catch_up(db, size, args, ids),
    }


def catch_up(db: Path, size: int, args: argparse.Namespace, ids: LazyIds) -> dict[str, Any]:
    """A restarted store catches up after another instance adds and deletes faces."""
    from bench.search_data import new_faces
    from facelens.collection.stores.sqlite import SQLiteCollectionStore

    reader, writer = SQLiteCollectionStore(str(db)), SQLiteCollectionStore(str(db))
    query = unit_vectors(args.seed + 7, 1)[0]
    reader.search_faces(COLLECTION, query, limit=LIMIT, max_distance=MAX_DISTANCE)
    extra_ids = LazyIds(args.seed + size, args.catch_up)[:]  # UUIDs, as the service mints
    extra = unit_vectors(args.seed + size, args.catch_up)
    writer.add_faces(COLLECTION, new_faces(extra_ids, extra))
    writer.delete_faces(COLLECTION, extra_ids[: args.catch_up // 10])
    began = time.perf_counter()
    hit = reader.search_faces(COLLECTION, extra[-1], limit=1, max_distance=MAX_DISTANCE)
    took = time.perf_counter() - began
    stats = reader._indexes.stats
    writer.delete_faces(COLLECTION, extra_ids)  # the next size starts from its own faces
    reader.close()  # saves the caught-up index if it is worth it
    writer.close()
    return {
        "added": args.catch_up,
        "deleted": args.catch_up // 10,
        "search_with_catch_up_s": round(took, 3),
        "caught_up_not_rebuilt": stats.catch_ups == 1 and stats.builds == 0,
        "new_face_found": bool(hit and hit[0].face.face_id == extra_ids[-1]),
    }


def measure_index_size(size: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The index and its file alone: build+save in one subprocess, restart in another."""
    built = run_worker({"kind": "build", "size": size, "seed": args.seed, **_query_args(args)}, tmp)
    restart = run_worker({"kind": "load", "file": built.pop("file"), "rounds": args.rounds}, tmp)
    found, truth = restart.pop("top_ids"), built.pop("truth_ids")
    return {
        "faces": size,
        "via": "index and its file only (no SQLite rows: inserting 10M takes ~10 min)",
        **built,
        **restart,
        "recall_at_1": float(np.mean([f == t for f, t in zip(found, truth, strict=True)])),
    }


def _query_args(args: argparse.Namespace) -> dict[str, Any]:
    return {"queries": args.queries, "noise": args.noise}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 10_000_000]
    )
    parser.add_argument("--store-max", type=int, default=1_000_000, help="largest size in SQLite")
    parser.add_argument("--queries", type=int, default=200, help="queries per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of queries")
    parser.add_argument("--noise", type=float, default=0.4, help="query distance from its face")
    parser.add_argument("--batch", type=int, default=10_000, help="faces per add_faces call")
    parser.add_argument("--catch-up", type=int, default=1_000, help="faces another store adds")
    parser.add_argument("--seed", type=int, default=20240607)
    parser.add_argument("--name", default="search_scale", help="bench/results/<name>.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        from bench.search_worker import work

        work(Path(args.worker))
        return
    sizes = sorted(set(args.sizes))
    if sizes[0] < args.queries or args.rounds < 1 or args.catch_up < 10:
        parser.error("sizes must hold --queries faces; --rounds >= 1, --catch-up >= 10")

    started = time.perf_counter()
    machine = machine_facts()
    store_sizes = [s for s in sizes if s <= args.store_max]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="facelens-scale-") as folder:
        tmp = Path(folder)
        if store_sizes:
            results += measure_store_sizes(store_sizes, args, tmp)
        for size in sizes[len(store_sizes) :]:
            results.append(measure_index_size(size, args, tmp))
            print(summary_line(results[-1]), flush=True)
    write_result(
        args.name,
        {
            "machine": machine,
            "settings": {
                "sizes": sizes,
                "store_max": args.store_max,
                "queries": args.queries,
                "rounds": args.rounds,
                "noise": args.noise,
                "limit": LIMIT,
                "max_distance": MAX_DISTANCE,
                "dimension": DIM,
                "batch": args.batch,
                "catch_up": args.catch_up,
                "seed": args.seed,
            },
            "summary": [summary(r) for r in results],
            "results": results,
            "peak_rss_bytes_main_process": peak_rss_bytes(),
            "total_s": round(time.perf_counter() - started, 1),
            "note": (
                "Times in seconds (_s) or milliseconds (_ms); memory in bytes. restart.* is a new "
                "process: rss_before is after imports and opening the store, rss_after after the "
                "first search (which loads the saved index, or rebuilds below the ANN threshold); "
                "index_rss_bytes is the difference. The OS page cache still holds files just "
                "written, so loads are warm-cache figures."
            ),
        },
    )


def measure_store_sizes(
    sizes: list[int], args: argparse.Namespace, tmp: Path
) -> list[dict[str, Any]]:
    from facelens.collection.stores.sqlite import SQLiteCollectionStore

    vectors = unit_vectors(args.seed, sizes[-1])
    ids = LazyIds(args.seed, sizes[-1])
    db = tmp / "faces.db"
    writer = SQLiteCollectionStore(str(db), save_indexes=False)  # never searches
    writer.create_collection(COLLECTION, face_model_version="synthetic-128")
    results, stored = [], 0
    for size in sizes:
        took = insert(writer, ids[stored:size], vectors[stored:size], args.batch)
        inserted = {"rows_before": stored, "rows_added": size - stored, "seconds": round(took, 2)}
        stored = size
        result = {**measure_store_size(size, db, args, tmp, vectors, ids), "insert": inserted}
        results.append(result)
        print(summary_line(result), flush=True)
    writer.close()
    del vectors
    gc.collect()
    return results


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one size (what bench.report reads)."""
    search = result["search"]["index"]
    build = result["build"]
    return {
        "faces": result["faces"],
        "index": result["index"]["kind"],
        "build_s": build.get("build_s"),
        "save_s": build.get("save_s"),
        "restart_s": result["restart_s"],
        "search_p50_ms": search["p50_ms"],
        "search_p95_ms": search["p95_ms"],
        "recall_at_1": result["recall_at_1"],
        "index_rss_bytes": result["memory"]["index_rss_bytes"],
        "rss_after_restart_bytes": result["memory"]["rss_after_bytes"],
    }


def summary_line(result: dict[str, Any]) -> str:
    search = result["search"]["index"]
    return (
        f"{result['faces']:>10,} faces: restart {result['restart_s']} s, p50 "
        f"{search['p50_ms']['median']} ms, p95 {search['p95_ms']['median']} ms, recall@1 "
        f"{result['recall_at_1']:.3f}, index RSS {result['memory']['index_rss_bytes'] / 1e9:.2f} GB"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
