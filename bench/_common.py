"""Helpers shared by the benchmark scripts: timing summaries, machine facts, JSON output.

Every duration handed to these helpers is in seconds (``time.perf_counter``
differences); every duration they report is in milliseconds, so the JSON
files read the same way across benchmarks.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sqlite3
import statistics
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from facelens.errors import FacelensError
from facelens.storage.crops import CropMetadata
from facelens.storage.local import LocalObjectStore

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"


def testdata_dir() -> Path:
    """The shared test photos: ``$FACELENS_TESTDATA``, else ``<repo>/../shared/testdata``."""
    configured = os.environ.get("FACELENS_TESTDATA")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "testdata"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted values, linearly interpolated."""
    if not sorted_values:
        raise ValueError("no values")
    position = (len(sorted_values) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    """p50, p95, min, max and mean of durations given in seconds, reported in milliseconds.

    ``n`` is the sample count; an empty list gives ``{"n": 0}`` so a benchmark
    that had nothing to time still writes a valid document.
    """
    if not seconds:
        return {"n": 0}
    ms = sorted(s * 1000.0 for s in seconds)
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "min_ms": round(ms[0], 3),
        "max_ms": round(ms[-1], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far, in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def blas_name() -> str | None:
    """The BLAS numpy was built against (e.g. "scipy-openblas"), when numpy says."""
    try:
        config = np.show_config(mode="dicts")
        return str(config["Build Dependencies"]["blas"]["name"])
    except Exception:  # older numpy, or a build without the section: not worth failing over
        return None


def machine_facts() -> dict[str, Any]:
    """Where the figures were measured; timings mean little without it.

    ``load_average_1_5_15`` is the run queue when this was called: on a small
    shared machine other processes' load shows in the percentiles. The BLAS
    thread variables matter for the index search: a multi-threaded
    matrix-vector product must wake its helper threads on every query.
    """
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "blas": blas_name(),
        "blas_thread_env": {
            name: os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
        },
        "sqlite": sqlite3.sqlite_version,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def write_result(name: str, document: dict[str, Any]) -> Path:
    """Writes ``document`` (plus a UTC timestamp) to bench/results/<name>.json and prints it."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    stamped = {"benchmark": name, "measured_at": datetime.now(UTC).isoformat(), **document}
    text = json.dumps(stamped, indent=2)
    path.write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"wrote {path}")
    return path


def stored_crops(home: Path) -> dict[str, CropMetadata]:
    """Every object in ``home``'s local object store (``<home>/objects``, every bucket) with
    the edge's crop metadata, by key: what a ``facelens up`` run uploaded. Read through the
    store itself (its listing and HeadObject), not its files, so the layout stays its own."""
    root = home / "objects"
    store = LocalObjectStore(root)
    out: dict[str, CropMetadata] = {}
    for bucket in sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else ():
        token: str | None = None
        while True:
            page = store.list_objects(bucket, next_token=token)
            for info in page.objects:
                crop = crop_metadata(home, bucket, info.key, store=store)
                if crop is not None and crop.captured_at is not None:
                    out[info.key] = crop
            token = page.next_token
            if token is None:
                break
    return out


def crop_metadata(
    home: Path, bucket: str, key: str, *, store: LocalObjectStore | None = None
) -> CropMetadata | None:
    """The crop metadata of one object in ``home``'s local object store; None when it is not
    there (or the bucket or key is not one the store takes)."""
    store = store or LocalObjectStore(home / "objects")
    try:
        info = store.head_object(bucket, key)
    except FacelensError:
        return None
    return CropMetadata.from_metadata(info.metadata)
