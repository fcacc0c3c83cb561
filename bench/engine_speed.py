"""Speed of the engine's parts: detection per image size, alignment and embedding per face.

Why: ``collection_latency`` times whole API calls; this splits the engine so
a reader can see what one frame or one face costs, which detector to pick
for a frame size, whether batching or the mirrored-chip average
(``flip=True``) is worth it, what ONNX Runtime gains over dlib for the same
network, and how many faces a second the machine embeds with one process and
with one process per core (each embedder uses one core per process, so more
cores need more processes).

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
* ``embedding``: dlib's ResNet run two ways, ``dlib`` (:class:`DlibEmbedder`)
  and ``onnx`` (:class:`OnnxEmbedder`, the same weights through ONNX Runtime
  with one thread), with ``flip`` False and True, one chip per call
  (``single``) and 8 chips per call (``batched``, per face and per call), on
  one core: every thread of this process is pinned to ``--cpu`` for the
  section. ``--embed-rounds`` rounds, each timing every chip alone once and
  ``--embed-repeat`` batched calls per setting, settings interleaved; each
  figure summarises the rounds' medians (``p50_ms`` the median round, with
  ``min_ms`` and ``max_ms``). ``max_abs_diff_to_dlib``: the largest
  difference between the two embedders' raw descriptors (chips and mirrors)
  and unit embeddings (flip off and on). See :mod:`bench.engine_embedding`.
* ``faces``: a face end to end as collections embed it
  (``OnnxEmbedder.embed_faces``: alignment, with ``embed_views`` "five+68"
  the 68-point landmark pass and dlib's chip, the network on every chip and
  mirror), for each ``embed_views`` setting, flip on, one ORT thread, pinned
  to ``--cpu``: the faces HOG finds in the chip photos. See
  :func:`bench.engine_embedding.face_embedding`.
* ``throughput``: faces embedded per second by 1 and by 2 worker processes
  (``ProcessPoolExecutor``, spawn, not pinned), each worker with its own
  prepared embedders of both kinds and the same aligned chips,
  ``--per-worker`` faces each in batches of 8. The workers start together at
  a barrier; a round's time runs from the first worker's start to the last
  one's end (``perf_counter`` is the system-wide monotonic clock on Linux, so
  the workers' readings compare). ``cpu_per_wall`` (CPU seconds over wall
  seconds, per worker) shows whether a worker had its core to itself.

Not timed: decoding and resizing the photos, building and preparing the
detectors and embedders (model loading), starting the worker processes, and
one warm-up call of each thing timed.

Run from the repository root::

    python -m bench.engine_speed [--detect-repeat 10] [--embed-rounds 5] [--embed-repeat 2]
        [--cpu 0] [--rounds 3] [--per-worker 64] [--workers 1 2]

Writes bench/results/engine_speed.json. The machine is shared: the load
average at the start and at the end is in the document; compare runs only
at similar load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import dlib
import numpy as np
import onnxruntime

from bench._common import REPO_ROOT, machine_facts, summarize_ms, testdata_dir, write_result
from bench.engine_embedding import BATCH, Photo, embedding, face_embedding, throughput
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


def collect_faces(root: Path, count: int) -> list[Photo]:
    """The photos of :data:`CHIP_PHOTOS` with HOG's faces in them, ``count`` faces at most."""
    hog = HogDetector()
    photos: list[Photo] = []
    left = count
    for name in CHIP_PHOTOS:
        image = load_rgb(root / name)
        found = hog.detect(image)[:left]
        if found:
            photos.append((image, found))
            left -= len(found)
        if left <= 0:
            break
    return photos


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--detect-repeat", type=int, default=10, help="calls per detector, size")
    parser.add_argument("--align-repeat", type=int, default=200, help="alignments per face")
    parser.add_argument(
        "--embed-rounds", type=int, default=5, help="embedding rounds (figures: their medians)"
    )
    parser.add_argument(
        "--embed-repeat", type=int, default=2, help="batched calls per setting per round"
    )
    parser.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="CPU the embedding section is pinned to (default: the highest this process may use)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per setting")
    parser.add_argument(
        "--per-worker", type=int, default=64, help="faces each worker embeds per round"
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare"
    )
    args = parser.parse_args(argv)
    counts = (args.detect_repeat, args.align_repeat, args.embed_rounds, args.embed_repeat)
    if min(*counts, args.rounds) < 1:
        parser.error("every repeat count must be at least 1")
    allowed = os.sched_getaffinity(0)
    cpu = max(allowed) if args.cpu is None else args.cpu
    if cpu not in allowed:
        parser.error(f"--cpu {cpu} is not one of this process's CPUs {sorted(allowed)}")
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
    with tempfile.TemporaryDirectory(prefix="facelens-bench-") as cache:
        # the first prepare converts the model (untimed, in untimed_ms); the rest load it
        embed_report, embed_prepare = embedding(
            chips, args.embed_rounds, args.embed_repeat, cpu, Path(cache)
        )
        untimed.update(embed_prepare)

        print("faces end to end ...", flush=True)
        faces_report = face_embedding(
            collect_faces(root, BATCH), args.embed_rounds, cpu, Path(cache)
        )

        print("throughput ...", flush=True)
        throughput_report, startup = throughput(
            chips, sorted(set(args.workers)), args.per_worker, args.rounds, Path(cache)
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
                "embed_rounds": args.embed_rounds,
                "embed_repeat": args.embed_repeat,
                "embed_cpu": cpu,
                "onnxruntime": onnxruntime.__version__,
                "chips_from": chip_origins,
            },
            "testdata": str(root),
            "untimed_ms": {name: round(ms, 1) for name, ms in untimed.items()},
            "detection": detect_report,
            "alignment": align_report,
            "embedding": embed_report,
            "faces": faces_report,
            "throughput": throughput_report,
            "total_run_s": round(time.perf_counter() - began, 1),
            "note": (
                "hog includes HogDetector's one upsampling for longer side <= 1024 px and the "
                "68-point landmarks; dlib_hog_upsample_0 is the bare detector. Embedding: "
                "one core, medians of rounds; per_face divides an 8-chip call by 8; "
                "flip=True embeds each chip and its mirror. Throughput: faces / (last "
                "worker's end - first worker's start)."
            ),
        },
    )


if __name__ == "__main__":
    main()
