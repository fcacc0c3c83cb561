"""The embedding and throughput sections of ``bench.engine_speed``: dlib's ResNet, two runtimes.

Both embedders run the same network with the same weights: ``dlib`` is
:class:`DlibEmbedder` (dlib's own code), ``onnx`` is :class:`OnnxEmbedder`
(the network converted from dlib's file, run by ONNX Runtime with one intra-op
thread). The per-face figures are taken with every thread of this process
pinned to one CPU (``os.sched_setaffinity``), so neither runtime borrows a
second core; the throughput figures use separate worker processes, unpinned,
one embedder each way per worker.

Reported per embedder and flip setting, as ``summarize_ms`` over rounds
(``p50_ms`` is the median of the rounds, with ``min_ms`` and ``max_ms``):
``single`` is a round's median time of one-chip calls, ``batched.per_face``
a round's median 8-chip call divided by 8. ``max_abs_diff_to_dlib`` compares
the raw 128-d descriptors (the network's output, chips and mirrors) and the
unit embeddings, flip on and off.

``faces`` (:func:`face_embedding`) times a face end to end as collections
embed it: ``OnnxEmbedder.embed_faces`` on a detected face in its photo
(five-point alignment; with views "five+68" also the 68-point landmark pass
and dlib's chip; the network on every chip and mirror in one call), for each
``embed_views`` setting (facelens.engine.views), flip on, one ORT thread,
pinned to one CPU like the chip figures. ``single`` is one face per call,
``per_photo`` one call per photo with all its faces, divided by its faces;
``single_cpu`` is the calling thread's CPU time per face in the single calls
(ONNX Runtime with one thread computes in the caller's thread): on a shared
machine it leaves out the time the core was given to other processes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from threading import BrokenBarrierError
from typing import Any

import numpy as np

from bench._common import summarize_ms
from facelens.engine.alignment import mirrored
from facelens.engine.dlib_embedder import DlibEmbedder
from facelens.engine.onnx_embedder import OnnxEmbedder
from facelens.engine.types import DetectedFace, RGBImage
from facelens.engine.views import VIEW_SETTINGS

EMBEDDERS = ("dlib", "onnx")
BATCH = 8
"""Chips per ``embed`` call in the batched and throughput figures."""
BARRIER_TIMEOUT_S = 300.0
"""How long a worker waits for the others at the start of a round before giving up, in s."""
TARGET_MS_PER_FACE = 30.0
"""The goal for the default embedder: under this per face on one core (flip on, single)."""

Embedder = DlibEmbedder | OnnxEmbedder


def make_embedder(name: str, *, flip: bool, cache_dir: Path) -> Embedder:
    """An unprepared embedder; ``onnx`` with one ORT thread, its model cached in ``cache_dir``."""
    if name == "dlib":
        return DlibEmbedder(flip=flip)
    return OnnxEmbedder(flip=flip, threads=1, cache_dir=cache_dir)


def _thread_ids() -> list[int]:
    return [int(tid) for tid in os.listdir("/proc/self/task")]


@contextlib.contextmanager
def pinned(cpu: int) -> Iterator[None]:
    """Every thread of this process on ``cpu`` for the ``with`` body (and threads started in it).

    ``sched_setaffinity(0, ...)`` moves only the calling thread; thread pools
    that libraries started at import (BLAS) would stay free, so each thread
    is pinned by its id. The previous CPU set is restored afterwards, so
    processes spawned later (the throughput workers) are not pinned.
    """
    before = os.sched_getaffinity(0)
    _set_every_thread({cpu})
    try:
        yield
    finally:
        _set_every_thread(before)


def _set_every_thread(cpus: set[int]) -> None:
    for tid in _thread_ids():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(tid, cpus)


def _lap(samples: list[float], call: Any, *args: Any) -> None:
    start = time.perf_counter()
    call(*args)
    samples.append(time.perf_counter() - start)


def embedding(
    chips: Sequence[RGBImage], rounds: int, repeat: int, cpu: int, cache_dir: Path
) -> tuple[dict[str, Any], dict[str, float]]:
    """Both embedders, flip False and True, single chips and batches, pinned to ``cpu``.

    Each round times every chip alone once and ``repeat`` calls with all
    chips, for every embedder and flip setting in turn (so load from other
    processes falls on all of them). Returns the report and the untimed
    preparation times (ms): model loading, or conversion for a cold cache.
    """
    keys = [(name, flip) for name in EMBEDDERS for flip in (False, True)]
    prepare_ms: dict[str, float] = {}
    single: dict[tuple[str, bool], list[list[float]]] = {k: [] for k in keys}
    calls: dict[tuple[str, bool], list[list[float]]] = {k: [] for k in keys}
    with pinned(cpu):
        embedders = {k: make_embedder(k[0], flip=k[1], cache_dir=cache_dir) for k in keys}
        for (name, flip), embedder in embedders.items():
            start = time.perf_counter()
            embedder.prepare()
            prepare_ms[f"{name}_embedder_flip_{flip}"] = (time.perf_counter() - start) * 1000.0
            embedder.embed(chips[:1])  # warm-up
            embedder.embed(chips)
        for _ in range(rounds):
            for key, embedder in embedders.items():
                single[key].append([])
                for chip in chips:
                    _lap(single[key][-1], embedder.embed, [chip])
                calls[key].append([])
                for _ in range(repeat):
                    _lap(calls[key][-1], embedder.embed, chips)
        agreement = max_abs_diff(embedders, chips)

    report: dict[str, Any] = {
        "cpu": cpu,
        "onnx_threads": 1,
        "rounds": rounds,
        "per_round": {"single_calls": len(chips), "batched_calls": repeat},
    }
    for name in EMBEDDERS:
        block: dict[str, Any] = {}
        for flip in (False, True):
            per_call = [statistics.median(r) for r in calls[name, flip]]
            block[f"flip_{str(flip).lower()}"] = {
                "single": summarize_ms([statistics.median(r) for r in single[name, flip]]),
                "batched": {
                    "batch_size": len(chips),
                    "per_face": summarize_ms([c / len(chips) for c in per_call]),
                    "per_call": summarize_ms(per_call),
                },
            }
        for kind in ("single", "batched"):
            block[f"flip_cost_{kind}_p50"] = _ratio(block["flip_true"], block["flip_false"], kind)
        report[name] = block
    report["speedup_onnx_over_dlib_p50"] = {
        flip: {
            kind: _ratio(report["dlib"][flip], report["onnx"][flip], kind)
            for kind in ("single", "batched")
        }
        for flip in ("flip_false", "flip_true")
    }
    report["max_abs_diff_to_dlib"] = agreement
    worst = max(
        _p50(report["onnx"][flip], kind)
        for flip in ("flip_false", "flip_true")
        for kind in ("single", "batched")
    )
    report["onnx_under_30_ms_per_face_one_core"] = {
        "met": worst < TARGET_MS_PER_FACE,
        "worst_p50_ms": worst,
        "note": "worst median per face over single/batched and flip off/on",
    }
    return report, prepare_ms


Photo = tuple[RGBImage, Sequence[DetectedFace]]
"""A decoded photo and the faces a detector found in it."""


def face_embedding(
    photos: Sequence[Photo], rounds: int, cpu: int, cache_dir: Path
) -> dict[str, Any]:
    """``embed_faces`` per face for each ``embed_views`` setting (ONNX, flip on), pinned to ``cpu``.

    Each round embeds every face alone once and every photo's faces in one
    call, for each views setting in turn (so load from other processes falls
    on both); a figure summarises the rounds' medians (``single``) or the
    rounds' totals per face (``per_photo``), in ms. Untimed: preparing the
    embedders (model and predictor loading) and one warm-up pass.
    """
    faces = [(image, face) for image, found in photos for face in found]
    if not faces:
        raise SystemExit("no faces to embed")
    single: dict[str, list[float]] = {views: [] for views in VIEW_SETTINGS}
    per_photo: dict[str, list[float]] = {views: [] for views in VIEW_SETTINGS}
    cpu_single: dict[str, list[float]] = {views: [] for views in VIEW_SETTINGS}
    with pinned(cpu):
        embedders = {
            views: OnnxEmbedder(flip=True, views=views, threads=1, cache_dir=cache_dir)
            for views in VIEW_SETTINGS
        }
        for embedder in embedders.values():
            embedder.prepare()
            for image, found in photos:  # warm-up
                embedder.embed_faces(image, found)
        for _ in range(rounds):
            for views, embedder in embedders.items():
                laps: list[float] = []
                used = time.thread_time()
                for image, face in faces:
                    _lap(laps, embedder.embed_faces, image, [face])
                cpu_single[views].append((time.thread_time() - used) / len(faces))
                single[views].append(statistics.median(laps))
                calls: list[float] = []
                for image, found in photos:
                    _lap(calls, embedder.embed_faces, image, found)
                per_photo[views].append(sum(calls) / len(faces))
    report: dict[str, Any] = {
        "cpu": cpu,
        "onnx_threads": 1,
        "flip": True,
        "rounds": rounds,
        "faces": len(faces),
        "photos": len(photos),
    }
    for views in VIEW_SETTINGS:
        report[f"views_{views}"] = {
            "model_version": embedders[views].model_version,
            "single": summarize_ms(single[views]),
            "per_photo": summarize_ms(per_photo[views]),
            "single_cpu": summarize_ms(cpu_single[views]),
        }
    first, second = (report[f"views_{views}"] for views in VIEW_SETTINGS)
    report["five_68_over_five_single_p50"] = round(
        second["single"]["p50_ms"] / first["single"]["p50_ms"], 3
    )
    worst = max(
        float(report[f"views_{views}"][kind]["p50_ms"])
        for views in VIEW_SETTINGS
        for kind in ("single", "per_photo")
    )
    report["under_30_ms_per_face_one_core"] = {
        "met": worst < TARGET_MS_PER_FACE,
        "worst_p50_ms": worst,
        "note": "worst median per face over single/per_photo and both views settings",
    }
    return report


def _p50(block: dict[str, Any], kind: str) -> float:
    figure = block["single"] if kind == "single" else block["batched"]["per_face"]
    return float(figure["p50_ms"])


def _ratio(numerator: dict[str, Any], denominator: dict[str, Any], kind: str) -> float:
    return round(_p50(numerator, kind) / _p50(denominator, kind), 3)


def max_abs_diff(
    embedders: dict[tuple[str, bool], Embedder], chips: Sequence[RGBImage]
) -> dict[str, float]:
    """Largest difference, over all values, between ONNX and dlib: raw and unit embeddings."""
    both = list(chips) + [mirrored(chip) for chip in chips]
    raw_dlib = embedders["dlib", False].descriptors(both)
    raw_onnx = embedders["onnx", False].descriptors(both)
    result = {
        "raw_descriptors": float(np.abs(raw_onnx - raw_dlib).max()),
        "raw_descriptor_max_abs": float(np.abs(raw_dlib).max()),
        "descriptors_compared": len(both),
    }
    for flip in (False, True):
        ours = embedders["onnx", flip].embed(chips)
        theirs = embedders["dlib", flip].embed(chips)
        result[f"embeddings_flip_{str(flip).lower()}"] = float(np.abs(ours - theirs).max())
    return result


# --- throughput: worker-process side -------------------------------------------------------

_worker_embedders: dict[tuple[str, bool], Embedder] = {}
_worker_chips: list[RGBImage] = []
_worker_barrier: Any = None  # multiprocessing Barrier (its class is not importable for typing)


def _start_worker(chips: list[RGBImage], barrier: Any, cache_dir: Path) -> None:
    """Pool initializer: builds, prepares and warms this worker's own embedders (untimed)."""
    global _worker_barrier
    _worker_chips.extend(chips)
    _worker_barrier = barrier
    for name in EMBEDDERS:
        for flip in (False, True):
            embedder = make_embedder(name, flip=flip, cache_dir=cache_dir)
            embedder.prepare()
            embedder.embed(chips)
            _worker_embedders[name, flip] = embedder


def _embed_round(name: str, flip: bool, faces: int) -> tuple[float, float, float, int]:
    """Waits for the other workers, then embeds ``faces`` chips in batches of :data:`BATCH`.

    Returns (start, end) on the ``perf_counter`` clock in s, the CPU seconds
    this process used in between, and the faces embedded.
    """
    embedder = _worker_embedders[name, flip]
    chips = _worker_chips
    _worker_barrier.wait(BARRIER_TIMEOUT_S)
    cpu = time.process_time()
    start = time.perf_counter()
    done = 0
    while done < faces:
        take = min(BATCH, faces - done)
        embedder.embed([chips[(done + i) % len(chips)] for i in range(take)])
        done += take
    end = time.perf_counter()
    return start, end, time.process_time() - cpu, done


# --- throughput: parent side ---------------------------------------------------------------

Key = tuple[str, bool]


@dataclass
class Pool:
    """A running pool of ``workers`` processes, all past their initializer."""

    workers: int
    executor: ProcessPoolExecutor
    rounds: dict[Key, list[tuple[float, float, list[float]]]] = field(default_factory=dict)
    """Per (embedder, flip): (faces, wall s, each worker's CPU/wall) of every round."""

    def run(self, key: Key, per_worker: int) -> None:
        futures = [
            self.executor.submit(_embed_round, key[0], key[1], per_worker)
            for _ in range(self.workers)
        ]
        try:
            results = [f.result() for f in futures]
        except BrokenBarrierError as exc:
            raise SystemExit(f"{self.workers} workers did not all start a round") from exc
        wall = max(r[1] for r in results) - min(r[0] for r in results)
        faces = sum(r[3] for r in results)
        ratios = [r[2] / (r[1] - r[0]) for r in results]
        self.rounds.setdefault(key, []).append((faces, wall, ratios))


def start_pool(workers: int, chips: list[RGBImage], cache_dir: Path) -> tuple[Pool, float]:
    """A pool of ``workers`` spawned processes, warmed; returns it and its start-up time in ms."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    start = time.perf_counter()
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(chips, barrier, cache_dir),
    )
    pool = Pool(workers, executor)
    # A tiny round per setting makes every worker finish its initializer and
    # reach the barrier before anything is timed.
    for name in EMBEDDERS:
        for flip in (False, True):
            pool.run((name, flip), 1)
    pool.rounds = {}
    return pool, (time.perf_counter() - start) * 1000.0


def throughput(
    chips: list[RGBImage],
    worker_counts: Sequence[int],
    per_worker: int,
    rounds: int,
    cache_dir: Path,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Faces per second for each embedder, worker count and flip setting, ``rounds`` rounds each.

    Settings and worker counts alternate within each round. Returns the
    report and the untimed pool start-up times (ms).
    """
    pools: list[Pool] = []
    startup_ms: dict[str, float] = {}
    try:
        for workers in worker_counts:
            pool, elapsed = start_pool(workers, chips, cache_dir)
            pools.append(pool)
            startup_ms[f"pool_{workers}_workers"] = elapsed
        for _ in range(rounds):
            for name in EMBEDDERS:
                for flip in (False, True):
                    for pool in pools:
                        pool.run((name, flip), per_worker)
    finally:
        for pool in pools:
            pool.executor.shutdown(wait=True, cancel_futures=True)

    report: dict[str, Any] = {
        "faces_per_worker_per_round": per_worker,
        "batch_size": BATCH,
        "rounds": rounds,
    }
    for name in EMBEDDERS:
        report[name] = {
            f"flip_{str(flip).lower()}": _by_workers(pools, (name, flip)) for flip in (False, True)
        }
    return report, startup_ms


def _by_workers(pools: Sequence[Pool], key: Key) -> dict[str, Any]:
    by_workers: dict[str, Any] = {}
    for pool in pools:
        samples = pool.rounds[key]
        rates = [faces / wall for faces, wall, _ in samples]
        by_workers[f"{pool.workers}_processes"] = {
            "faces_per_s_p50": round(statistics.median(rates), 2),
            "faces_per_s_min": round(min(rates), 2),
            "faces_per_s_max": round(max(rates), 2),
            "round_wall": summarize_ms([wall for _, wall, _ in samples]),
            "ms_per_face_p50": round(1000.0 / statistics.median(rates), 2),
            "cpu_per_wall_p50": round(
                statistics.median(r for _, _, ratios in samples for r in ratios), 3
            ),
        }
    first, last = pools[0], pools[-1]
    if last is not first:
        by_workers[f"speedup_{last.workers}_over_{first.workers}_p50"] = round(
            by_workers[f"{last.workers}_processes"]["faces_per_s_p50"]
            / by_workers[f"{first.workers}_processes"]["faces_per_s_p50"],
            3,
        )
    return by_workers
