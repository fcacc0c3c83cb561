"""Speed of the engine's parts: detection per image size, alignment and embedding per face.

Why: ``collection_latency`` times whole API calls; this splits the engine so
a reader can see what one frame or one face costs, which detector to pick
for a frame size, whether batching or the mirrored-chip average
(``DlibEmbedder(flip=True)``) is worth it, and how many faces a second the
machine embeds with one process and with one process per core (dlib's
network holds the GIL, so more cores need more processes).

What is timed (``time.perf_counter``, reported in milliseconds; every
figure is a summary of several repeats: ``p50_ms`` is the median):

* ``detection``: one real photo per frame size, center-cropped to the
  target aspect and resized: 512x512 (``people/obama/obama_1.jpg``),
  640x360 and 1280x720 (``groups/obama_biden_1.jpg``, two faces).
  ``hog`` is :class:`HogDetector` as the engine runs it: images whose
  longer side is at most 1024 px are upsampled once inside it (so 512x512
  and 640x360 are scanned at twice the size), and the 68-point landmarks
  are found for each face. ``dlib_hog_upsample_0`` is dlib's frontal face
  detector called directly without upsampling or landmarks, for reference.
  ``yunet`` is :class:`YuNetDetector` (skipped, with a note, if the model
  is not in ``$FACELENS_MODELS_DIR``). Detectors and sizes are interleaved
  within each repeat, so load from other processes falls on all of them.
* ``alignment``: :meth:`DlibEmbedder.align` of one detected face (a
  similarity warp to a 150x150 chip), per face.
* ``embedding``: :meth:`DlibEmbedder.embed` with ``flip`` False and True,
  one chip per call (``single``) and 8 chips per call (``batched``, reported
  per face and per call).
* ``throughput``: faces embedded per second by 1 and by 2 worker processes
  (``ProcessPoolExecutor``, spawn), each worker with its own prepared
  ``DlibEmbedder`` and the same aligned chips, ``--per-worker`` faces each in
  batches of 8. The workers start together at a barrier; a round's time runs
  from the first worker's start to the last one's end (``perf_counter`` is
  the system-wide monotonic clock on Linux, so the workers' readings
  compare). ``cpu_per_wall`` (CPU seconds over wall seconds, per worker)
  shows whether a worker had its core to itself.

Not timed: decoding and resizing the photos, building and preparing the
detectors and embedders (model loading), starting the worker processes, and
one warm-up call of each thing timed.

Run from the repository root::

    python -m bench.engine_speed [--detect-repeat 10] [--embed-repeat 3] [--rounds 3]

Writes bench/results/engine_speed.json. The machine is shared: the load
average at the start and at the end is in the document; compare runs only
at similar load.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from threading import BrokenBarrierError
from typing import Any

import cv2
import dlib
import numpy as np

from bench._common import REPO_ROOT, machine_facts, summarize_ms, testdata_dir, write_result
from facelens.engine.dlib_embedder import DlibEmbedder
from facelens.engine.hog import HogDetector
from facelens.engine.images import decode_image
from facelens.engine.pipeline import PipelineEngine
from facelens.engine.types import DetectedFace, RGBImage
from facelens.engine.yunet import YuNetDetector, find_model

UPSAMPLE_UP_TO = 1024
"""Longer side (px) up to which :class:`HogDetector` upsamples once (about 4x the pixels).

Mirrors ``facelens.engine.hog._UPSAMPLE_UP_TO``; reported next to each size
so the HOG figures read right.
"""
SQUARE_PHOTO = "people/obama/obama_1.jpg"
LANDSCAPE_PHOTO = "groups/obama_biden_1.jpg"
CHIP_PHOTOS = ("groups/compreface_eight-faces.jpg", LANDSCAPE_PHOTO, SQUARE_PHOTO)
"""Where the aligned chips for the embedding figures come from (first 8 faces found)."""
BATCH = 8
"""Chips per ``embed`` call in the batched and throughput figures."""
BARRIER_TIMEOUT_S = 300.0
"""How long a worker waits for the others at the start of a round before giving up, in s."""
MAX_DECODE_PIXELS = 50_000_000


@dataclass(frozen=True)
class Frame:
    """One detection input: a real photo cropped to the target aspect and resized."""

    label: str
    source: str
    pixels: RGBImage
    crop: tuple[int, int, int, int]  # left, top, width, height in the source, px

    @property
    def longer_side(self) -> int:
        return int(max(self.pixels.shape[:2]))


@dataclass
class Timed:
    """Samples in seconds of one measured operation, plus what it found."""

    seconds: list[float] = field(default_factory=list)
    faces_found: int | None = None


@contextmanager
def lap(samples: list[float]) -> Iterator[None]:
    """Appends the wall-clock duration of the ``with`` body to ``samples``, in seconds."""
    start = time.perf_counter()
    yield
    samples.append(time.perf_counter() - start)


def models_dir() -> Path:
    """The optional ONNX models: ``$FACELENS_MODELS_DIR``, else ``<repo>/../shared/models``."""
    configured = os.environ.get("FACELENS_MODELS_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "models"


def load_rgb(path: Path) -> RGBImage:
    """The photo's upright RGB pixels, decoded the way the service decodes uploads."""
    data = path.read_bytes()
    return decode_image(data, max_bytes=len(data), max_pixels=MAX_DECODE_PIXELS).pixels


def make_frame(root: Path, source: str, width: int, height: int) -> Frame:
    """``source`` center-cropped to ``width:height`` and resized to exactly that size.

    INTER_AREA when shrinking, INTER_CUBIC when enlarging, as a camera or a
    client-side resize would produce.
    """
    image = load_rgb(root / source)
    src_h, src_w = image.shape[:2]
    target = width / height
    if src_w / src_h > target:
        crop_w, crop_h = round(src_h * target), src_h
    else:
        crop_w, crop_h = src_w, round(src_w / target)
    left, top = (src_w - crop_w) // 2, (src_h - crop_h) // 2
    cropped = image[top : top + crop_h, left : left + crop_w]
    shrinking = width <= crop_w
    resized = cv2.resize(
        cropped,
        (width, height),
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC,
    )
    return Frame(
        f"{width}x{height}",
        source,
        np.ascontiguousarray(resized, dtype=np.uint8),
        (left, top, crop_w, crop_h),
    )


def detection(
    frames: Sequence[Frame], yunet_path: Path | None, repeat: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """Per frame size and detector: summary (ms) over ``repeat`` calls and the faces found.

    Returns the report and the untimed preparation times (ms). One warm-up
    call per detector and frame is made first and not timed.
    """
    prepare_ms: dict[str, float] = {}
    hog = HogDetector()
    start = time.perf_counter()
    hog.prepare()
    prepare_ms["hog"] = (time.perf_counter() - start) * 1000.0
    raw = dlib.get_frontal_face_detector()

    def run_raw(image: RGBImage) -> int:
        rects, _, _ = raw.run(image, 0, 0.0)
        return len(rects)

    detectors: dict[str, Callable[[RGBImage], int]] = {
        "hog": lambda image: len(hog.detect(image)),
        "dlib_hog_upsample_0": run_raw,
    }
    if yunet_path is not None:
        yunet = YuNetDetector(yunet_path)
        start = time.perf_counter()
        yunet.prepare()
        prepare_ms["yunet"] = (time.perf_counter() - start) * 1000.0
        detectors["yunet"] = lambda image: len(yunet.detect(image))

    timed = {(f.label, name): Timed() for f in frames for name in detectors}
    for frame in frames:
        for name, run in detectors.items():
            timed[frame.label, name].faces_found = run(frame.pixels)  # warm-up
    for _ in range(repeat):
        for frame in frames:
            for name, run in detectors.items():
                with lap(timed[frame.label, name].seconds):
                    run(frame.pixels)

    report: dict[str, Any] = {}
    for frame in frames:
        upsampled = frame.longer_side <= UPSAMPLE_UP_TO
        block: dict[str, Any] = {
            "source": frame.source,
            "crop_left_top_width_height": list(frame.crop),
            "hog_upsamples_once": upsampled,
        }
        for name in detectors:
            entry = timed[frame.label, name]
            block[name] = {**summarize_ms(entry.seconds), "faces_found": entry.faces_found}
        if upsampled:
            block["hog"]["scanned_size"] = (
                f"{frame.pixels.shape[1] * 2}x{frame.pixels.shape[0] * 2}"
            )
        report[frame.label] = block
    return report, prepare_ms


def face_sources(frames: Sequence[Frame]) -> list[tuple[str, RGBImage, DetectedFace]]:
    """Every HOG face in the detection frames, with the frame it lies in (for alignment)."""
    hog = HogDetector()
    return [(f.label, f.pixels, face) for f in frames for face in hog.detect(f.pixels)]


def alignment(faces: Sequence[tuple[str, RGBImage, DetectedFace]], repeat: int) -> dict[str, Any]:
    """Summary (ms) of ``DlibEmbedder.align`` per face, each face ``repeat`` times."""
    embedder = DlibEmbedder(flip=False)
    samples: list[float] = []
    for _, image, face in faces:
        embedder.align(image, face)  # warm-up
    for _ in range(repeat):
        for _, image, face in faces:
            with lap(samples):
                embedder.align(image, face)
    return {
        **summarize_ms(samples),
        "faces": [label for label, _, _ in faces],
        "chip_size_px": embedder.chip_size,
    }


def collect_chips(root: Path, count: int) -> tuple[list[RGBImage], list[str]]:
    """``count`` aligned chips, the way the engine makes them (detect, then align).

    Taken from :data:`CHIP_PHOTOS` in order; reused cyclically if those hold
    fewer faces. Returns the chips and which photo each came from.
    """
    engine = PipelineEngine(HogDetector(), DlibEmbedder(flip=False))
    found: list[tuple[RGBImage, str]] = []
    for name in CHIP_PHOTOS:
        image = load_rgb(root / name)
        found += [(engine.align(image, detail), name) for detail in engine.detect(image)]
        if len(found) >= count:
            break
    if not found:
        raise SystemExit(f"no face found in {', '.join(CHIP_PHOTOS)} under {root}")
    picked = [found[i % len(found)] for i in range(count)]
    chips = [chip for chip, _ in picked]
    origins = [name for _, name in picked]
    return chips, origins


def embedding(chips: Sequence[RGBImage], repeat: int) -> tuple[dict[str, Any], dict[str, float]]:
    """``DlibEmbedder.embed`` per face, flip False and True, single chips and batches of 8.

    ``single``: one chip per call, every chip ``repeat`` times. ``batched``:
    all 8 chips in one call, ``3 * repeat`` calls; ``per_face`` divides each
    call by 8. Flip settings alternate within each repeat. Returns the report
    and the untimed preparation times (ms).
    """
    embedders = {flip: DlibEmbedder(flip=flip) for flip in (False, True)}
    prepare_ms: dict[str, float] = {}
    for flip, embedder in embedders.items():
        start = time.perf_counter()
        embedder.prepare()
        prepare_ms[f"dlib_embedder_flip_{flip}"] = (time.perf_counter() - start) * 1000.0
        embedder.embed(chips[:1])  # warm-up
        embedder.embed(chips)
    single: dict[bool, list[float]] = {flip: [] for flip in embedders}
    batch_calls: dict[bool, list[float]] = {flip: [] for flip in embedders}
    for _ in range(repeat):
        for flip, embedder in embedders.items():
            for chip in chips:
                with lap(single[flip]):
                    embedder.embed([chip])
            for _ in range(3):
                with lap(batch_calls[flip]):
                    embedder.embed(chips)
    report: dict[str, Any] = {}
    for flip in embedders:
        single_s = summarize_ms(single[flip])
        per_face = summarize_ms([s / len(chips) for s in batch_calls[flip]])
        report[f"flip_{str(flip).lower()}"] = {
            "single": single_s,
            "batched": {
                "batch_size": len(chips),
                "per_face": per_face,
                "per_call": summarize_ms(batch_calls[flip]),
            },
            "batched_speedup_p50": round(float(single_s["p50_ms"]) / float(per_face["p50_ms"]), 3),
        }
    report["flip_cost_single_p50"] = round(
        float(report["flip_true"]["single"]["p50_ms"])
        / float(report["flip_false"]["single"]["p50_ms"]),
        3,
    )
    report["flip_cost_batched_p50"] = round(
        float(report["flip_true"]["batched"]["per_face"]["p50_ms"])
        / float(report["flip_false"]["batched"]["per_face"]["p50_ms"]),
        3,
    )
    return report, prepare_ms


# --- throughput: worker-process side -------------------------------------------------------

_worker_embedders: dict[bool, DlibEmbedder] = {}
_worker_chips: list[RGBImage] = []
_worker_barrier: Any = None  # multiprocessing Barrier (its class is not importable for typing)


def _start_worker(chips: list[RGBImage], barrier: Any) -> None:
    """Pool initializer: builds, prepares and warms this worker's own embedders (untimed)."""
    global _worker_barrier
    _worker_chips.extend(chips)
    _worker_barrier = barrier
    for flip in (False, True):
        embedder = DlibEmbedder(flip=flip)
        embedder.prepare()
        embedder.embed(chips)
        _worker_embedders[flip] = embedder


def _embed_round(flip: bool, faces: int) -> tuple[float, float, float, int]:
    """Waits for the other workers, then embeds ``faces`` chips in batches of :data:`BATCH`.

    Returns (start, end) on the ``perf_counter`` clock in s, the CPU seconds
    this process used in between, and the faces embedded.
    """
    embedder = _worker_embedders[flip]
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


@dataclass
class Pool:
    """A running pool of ``workers`` processes, all past their initializer."""

    workers: int
    executor: ProcessPoolExecutor
    rounds: dict[bool, list[tuple[float, float, list[float]]]] = field(
        default_factory=lambda: {False: [], True: []}
    )
    """Per flip: (faces, wall s, each worker's CPU/wall) of every round."""

    def run(self, flip: bool, per_worker: int) -> None:
        futures = [
            self.executor.submit(_embed_round, flip, per_worker) for _ in range(self.workers)
        ]
        try:
            results = [f.result() for f in futures]
        except BrokenBarrierError as exc:
            raise SystemExit(f"{self.workers} workers did not all start a round") from exc
        wall = max(r[1] for r in results) - min(r[0] for r in results)
        faces = sum(r[3] for r in results)
        self.rounds[flip].append((faces, wall, [r[2] / (r[1] - r[0]) for r in results]))


def start_pool(workers: int, chips: list[RGBImage]) -> tuple[Pool, float]:
    """A pool of ``workers`` spawned processes, warmed; returns it and its start-up time in ms."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    start = time.perf_counter()
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(chips, barrier),
    )
    pool = Pool(workers, executor)
    # A tiny round per flip makes every worker finish its initializer and
    # reach the barrier before anything is timed.
    for flip in (False, True):
        pool.run(flip, 1)
    pool.rounds = {False: [], True: []}
    return pool, (time.perf_counter() - start) * 1000.0


def throughput(
    chips: list[RGBImage], worker_counts: Sequence[int], per_worker: int, rounds: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """Faces per second for each worker count and flip setting, ``rounds`` rounds each.

    Worker counts and flip settings alternate within each round. Returns the
    report and the untimed pool start-up times (ms).
    """
    pools: list[Pool] = []
    startup_ms: dict[str, float] = {}
    try:
        for workers in worker_counts:
            pool, elapsed = start_pool(workers, chips)
            pools.append(pool)
            startup_ms[f"pool_{workers}_workers"] = elapsed
        for _ in range(rounds):
            for flip in (False, True):
                for pool in pools:
                    pool.run(flip, per_worker)
    finally:
        for pool in pools:
            pool.executor.shutdown(wait=True, cancel_futures=True)

    report: dict[str, Any] = {
        "faces_per_worker_per_round": per_worker,
        "batch_size": BATCH,
        "rounds": rounds,
    }
    for flip in (False, True):
        by_workers: dict[str, Any] = {}
        for pool in pools:
            samples = pool.rounds[flip]
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
        report[f"flip_{str(flip).lower()}"] = by_workers
    return report, startup_ms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--detect-repeat", type=int, default=10, help="calls per detector, size")
    parser.add_argument("--align-repeat", type=int, default=200, help="alignments per face")
    parser.add_argument(
        "--embed-repeat", type=int, default=3, help="passes of single and batched embedding"
    )
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per setting")
    parser.add_argument(
        "--per-worker", type=int, default=64, help="faces each worker embeds per round"
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare"
    )
    args = parser.parse_args(argv)
    if min(args.detect_repeat, args.align_repeat, args.embed_repeat, args.rounds) < 1:
        parser.error("every repeat count must be at least 1")
    if args.per_worker < 1 or min(args.workers) < 1:
        parser.error("--per-worker and --workers must be at least 1")

    machine = machine_facts()  # load average before this script adds its own
    began = time.perf_counter()
    root = testdata_dir()
    yunet_path = find_model(models_dir())

    print("detection ...", flush=True)
    frames = [
        make_frame(root, SQUARE_PHOTO, 512, 512),
        make_frame(root, LANDSCAPE_PHOTO, 640, 360),
        make_frame(root, LANDSCAPE_PHOTO, 1280, 720),
    ]
    detect_report, untimed = detection(frames, yunet_path, args.detect_repeat)
    if yunet_path is None:
        detect_report["yunet_note"] = (
            f"skipped: no YuNet model in {models_dir()} (set FACELENS_MODELS_DIR)"
        )

    print("alignment ...", flush=True)
    align_report = alignment(face_sources(frames), args.align_repeat)

    print("embedding ...", flush=True)
    chips, chip_origins = collect_chips(root, BATCH)
    embed_report, embed_prepare = embedding(chips, args.embed_repeat)
    untimed.update(embed_prepare)

    print("throughput ...", flush=True)
    throughput_report, startup = throughput(
        chips, sorted(set(args.workers)), args.per_worker, args.rounds
    )
    untimed.update(startup)

    write_result(
        "engine_speed",
        {
            "machine": machine,
            "load_average_at_end_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "settings": {
                "dlib": dlib.__version__,
                "dlib_use_cuda": bool(getattr(dlib, "DLIB_USE_CUDA", False)),
                "opencv": cv2.__version__,
                "opencv_threads": cv2.getNumThreads(),
                "yunet_model": str(yunet_path) if yunet_path else None,
                "hog_upsamples_up_to_px": UPSAMPLE_UP_TO,
                "detect_repeat": args.detect_repeat,
                "align_repeat": args.align_repeat,
                "embed_repeat": args.embed_repeat,
                "chips_from": chip_origins,
            },
            "testdata": str(root),
            "untimed_ms": {name: round(ms, 1) for name, ms in untimed.items()},
            "detection": detect_report,
            "alignment": align_report,
            "embedding": embed_report,
            "throughput": throughput_report,
            "total_run_s": round(time.perf_counter() - began, 1),
            "note": (
                "hog includes HogDetector's one upsampling for longer side <= 1024 px and the "
                "68-point landmarks; dlib_hog_upsample_0 is the bare detector. Embedding "
                "per_face divides an 8-chip call by 8; flip=True embeds each chip and its "
                "mirror. Throughput: faces / (last worker's end - first worker's start)."
            ),
        },
    )


if __name__ == "__main__":
    main()
