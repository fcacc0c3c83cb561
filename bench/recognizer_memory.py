"""Peak resident memory of `facelens recognizer` with 1M faces enrolled, and its restart.

Why: one recognizer host should hold a large collection. Its memory is the
collection's search index (vectors, graph, id maps) on top of the engine's
models; the restart shows whether the saved index is loaded or rebuilt.

How: a home like a user's (SQLite collections and profiles, local object
store, SQLite outbox) gets one enrolled photo per identity under
``testdata/people`` (a user and a profile each), then ``--faces`` synthetic
faces (random unit 128-d vectors, UUID4 ids) added through the collection
store in batches, and ``--events`` crops of the identities' other photos
queued as ObjectCreated events. ``facelens recognizer --drain`` then runs as
a user runs it, three times, each measured by ``os.wait4`` (the child's own
``ru_maxrss``) and its wall time:

- ``baseline``: the same home without the synthetic faces (engine, stores);
- ``first_start``: with them, the first search builds the face index from
  the database (and saves it, where the store persists indexes);
- ``restart``: a second process on the same home, with fresh events: it
  should load the saved index rather than build it.

Every event must be identified (the JSON counts them from the ledger).

Run from the repository root::

    python -m bench.recognizer_memory [--faces 1000000] [--events 20]

Writes bench/results/recognizer_memory.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import machine_facts, write_result
from bench.edge_fps import models_dir
from bench.recognizer_throughput import _crop, crop_store, prepare
from facelens.config import Settings
from facelens.wiring.stores import build_analyzer, open_collections

COLLECTION = "faces"
BATCH = 20_000


def add_synthetic_faces(home: Path, count: int, seed: int) -> float:
    """Adds ``count`` random faces to the collection through its store; returns seconds."""
    from facelens.collection.models import NewFace
    from facelens.values.boxes import BoundingBox

    box = BoundingBox(width=0.25, height=0.3, left=0.375, top=0.2)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    with ExitStack() as stack:
        store = open_collections(Settings(home=home, models_dir=models_dir()), stack).store
        for start in range(0, count, BATCH):
            n = min(BATCH, count - start)
            vectors = rng.standard_normal((n, 128), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            raw = rng.bytes(16 * n)
            faces = []
            for i in range(n):
                face_id = str(uuid.UUID(bytes=raw[16 * i : 16 * i + 16], version=4))
                faces.append(
                    NewFace(
                        face_id=face_id,
                        image_id=face_id,
                        external_image_id=None,
                        bounding_box=box,
                        confidence=99.9,
                        embedding=vectors[i],
                    )
                )
            store.add_faces(COLLECTION, faces)
    return time.perf_counter() - started


def queue_more_events(home: Path, count: int, tag: str) -> None:
    """Puts ``count`` more crops under ``faces/`` (each queues one ObjectCreated event)."""
    from bench._common import testdata_dir
    from facelens.storage.crops import CropMetadata

    settings = Settings(home=home, models_dir=models_dir())
    analyzer = build_analyzer(settings)
    with ExitStack() as stack:
        objects = crop_store(settings, stack)
        crops: list[bytes] = []
        for person in sorted((testdata_dir() / "people").iterdir()):
            photos = sorted(p for p in person.iterdir() if p.suffix in (".jpg", ".png"))
            crops += [c for c in (_crop(analyzer, p) for p in photos[1:2]) if c is not None]
        meta = CropMetadata(camera="bench").to_metadata()
        for i in range(count):
            key = f"faces/bench-{tag}/{i:05d}.jpg"
            objects.put_object("facelens", key, crops[i % len(crops)], metadata=meta)


def run_recognizer(home: Path) -> dict[str, Any]:
    """``facelens recognizer --drain`` on ``home``: its own peak RSS (bytes) and wall time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACELENS_")}
    env.update(FACELENS_HOME=str(home), FACELENS_MODELS_DIR=str(models_dir()))
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "facelens", "recognizer", "--drain"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"recognizer failed: {stderr[-2000:]}")
    return {
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        **ledger_counts(home),
    }


def ledger_counts(home: Path) -> dict[str, int]:
    """Ledger records by status, read straight from its SQLite file (whatever it is named)."""
    counts: dict[str, int] = {}
    for path in home.glob("*.db"):
        with sqlite3.connect(path) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "recognitions" not in tables:
                continue
            for status, n in conn.execute(
                "SELECT status, COUNT(*) FROM recognitions GROUP BY status"
            ):
                counts[str(status)] = counts.get(str(status), 0) + int(n)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=1_000_000, help="synthetic faces enrolled")
    parser.add_argument("--events", type=int, default=20, help="crops recognized per run")
    parser.add_argument("--seed", type=int, default=20240607)
    args = parser.parse_args(argv)
    machine = machine_facts()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="facelens-memory-") as tmp:
        base = Path(tmp) / "base"
        prepare(base, None, args.events)
        big = Path(tmp) / "big"
        shutil.copytree(base, big)
        baseline = run_recognizer(base)
        insert_s = add_synthetic_faces(big, args.faces, args.seed)
        first = run_recognizer(big)
        queue_more_events(big, args.events, "restart")
        restart = run_recognizer(big)
        saved = sorted(
            str(p.relative_to(big)) for p in big.rglob("*") if p.is_file() and "index" in p.name
        )
    write_result(
        "recognizer_memory",
        {
            "machine": machine,
            "faces": args.faces,
            "events_per_run": args.events,
            "insert_s": round(insert_s, 1),
            "baseline": baseline,
            "first_start": first,
            "restart": restart,
            "index_files": saved,
            "rss_added_by_faces_bytes": first["peak_rss_bytes"] - baseline["peak_rss_bytes"],
            "total_s": round(time.perf_counter() - started, 1),
            "note": (
                "peak_rss_bytes is each recognizer process's own ru_maxrss (os.wait4). "
                "Statuses are cumulative ledger counts in the home after each run."
            ),
        },
    )


if __name__ == "__main__":
    main()
