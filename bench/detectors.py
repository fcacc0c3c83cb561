"""HOG or YuNet at the edge: recall by face size, false detections, and time per frame.

Why: the edge runner's detector decides which faces ever reach the
recognizer, and how many frames a core can keep up with. The issue's rule:
whichever of HOG and YuNet is faster *at equal recall* becomes the edge
default when its model is present. Speed alone would be unfair to the
detector that finds more, so this measures recall against a known truth, by
face size, and time on the same frames.

How: LFW images (250x250, one centred face whose dlib box is about 43% of
the image side) are scaled so the face is ``h`` pixels tall, for ``h`` in
``--sizes``, and pasted at a seeded random place into a 640x360 frame cut
from a photo without faces (``testdata/noface``). Each detector runs as the
edge runner builds it (``build_edge_detector`` + ``FrameDetector`` with the
edge's ``detect_side`` and ``min_confidence``): a hit is a detection whose
centre lies inside the pasted face's box grown by 25%, at 0.5-2x the
expected height. Detections elsewhere are false. The same frames, enlarged
to 1280x720, time the detector on a larger frame (the runner detects on a
640 px copy, so this adds the resize). One core (sched_setaffinity, OpenCV
on one thread); detectors interleaved frame by frame, so load falls on both.

Run from the repository root::

    python -m bench.detectors [--images 150] [--sizes 16 20 24 32 48 64 96 128] [--rounds 3]

Writes bench/results/detectors.json; ``decision`` names the detector that is
at least as good at every size and faster, if there is one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from bench._common import machine_facts, summarize_ms, testdata_dir, write_result

if TYPE_CHECKING:
    from facelens.values.boxes import PixelBox

FRAME = (640, 360)
LARGE_FRAME = (1280, 720)
LFW_FACE_FRACTION = 0.43
"""dlib's HOG box on an LFW image is about 0.43 of the image side (measured on 368 images)."""
HIT_GROWTH = 0.25
DETECTORS = ("hog", "yunet")

BGR = npt.NDArray[np.uint8]


def pin_one_core() -> int:
    """Pins this process to one CPU (the first allowed) and OpenCV to one thread."""
    import cv2

    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    cv2.setNumThreads(1)
    return cpu


def lfw_images(root: Path, count: int) -> list[Path]:
    """The first ``count`` distinct images named by the development pairs, in file order."""
    seen: dict[Path, None] = {}
    lines = (root / "pairs_dev.txt").read_text(encoding="utf-8").splitlines()[1:]
    for line in lines:
        parts = line.split()
        names = [(parts[0], parts[1]), (parts[0], parts[2])] if len(parts) == 3 else []
        if len(parts) == 4:
            names = [(parts[0], parts[1]), (parts[2], parts[3])]
        for name, number in names:
            seen[root / "images" / name / f"{name}_{int(number):04d}.jpg"] = None
        if len(seen) >= count:
            break
    return list(seen)[:count]


def read_face(path: Path) -> BGR:
    """An LFW image as BGR; every image the pairs name is there, so one that is not is an error."""
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"cannot read {path}")
    return np.asarray(image, dtype=np.uint8)  # imread's default: 8-bit BGR


def backgrounds(root: Path) -> list[BGR]:
    """640x360 frames cut (centre, resized) from the photos without faces."""
    import cv2

    frames = []
    for path in sorted((root / "noface").glob("*.jpg")):
        image = cv2.imread(str(path))
        if image is None:
            continue
        height, width = image.shape[:2]
        target = FRAME[0] / FRAME[1]
        if width / height > target:
            new_width = int(height * target)
            image = image[:, (width - new_width) // 2 : (width + new_width) // 2]
        else:
            new_height = int(width / target)
            image = image[(height - new_height) // 2 : (height + new_height) // 2]
        resized = cv2.resize(image, FRAME, interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(resized, dtype=np.uint8))  # imread's default: uint8
    return frames


def compose(
    face: BGR, background: BGR, height: int, rng: np.random.Generator
) -> tuple[BGR, tuple[float, float, float, float]]:
    """``face`` (an LFW image) scaled so its face is ``height`` px, pasted into a frame.

    Returns the frame and the expected face box (left, top, right, bottom) in it.
    """
    import cv2

    side = max(8, round(height / LFW_FACE_FRACTION))
    scaled = cv2.resize(
        face, (side, side), interpolation=cv2.INTER_AREA if side < 250 else cv2.INTER_CUBIC
    )
    frame = background.copy()
    side_x = min(side, FRAME[0])
    side_y = min(side, FRAME[1])
    left = int(rng.integers(0, FRAME[0] - side_x + 1))
    top = int(rng.integers(0, FRAME[1] - side_y + 1))
    offset_x = (side - side_x) // 2
    offset_y = (side - side_y) // 2
    frame[top : top + side_y, left : left + side_x] = scaled[
        offset_y : offset_y + side_y, offset_x : offset_x + side_x
    ]
    centre_x = left - offset_x + side / 2.0
    centre_y = top - offset_y + side / 2.0
    half = height / 2.0
    return frame, (centre_x - half, centre_y - half, centre_x + half, centre_y + half)


def is_hit(box: PixelBox, expected: tuple[float, float, float, float]) -> bool:
    """Whether a detection's centre lies in the expected box grown by 25%, at a similar size."""
    left, top, right, bottom = expected
    size = bottom - top
    grow = size * HIT_GROWTH
    centre_x = (box.left + box.right) / 2.0
    centre_y = (box.top + box.bottom) / 2.0
    inside = left - grow <= centre_x <= right + grow and top - grow <= centre_y <= bottom + grow
    return inside and 0.5 * size <= box.height <= 2.0 * size


def build(name: str, models: Path) -> Any:
    """The edge's frame detector for ``name``, as the runner builds it, prepared."""
    from facelens.config import Settings
    from facelens.edge.detection import FrameDetector, build_edge_detector

    settings = Settings(home=Path("/nonexistent"), detector=name, models_dir=models)
    detector = FrameDetector(
        build_edge_detector(settings),
        detect_side=settings.edge.detect_side,
        min_confidence=settings.edge.min_confidence,
    )
    detector.prepare()
    return detector


def run(args: argparse.Namespace) -> dict[str, Any]:
    import cv2

    from bench.edge_fps import models_dir

    cpu = pin_one_core()
    root = testdata_dir()
    faces = [read_face(path) for path in lfw_images(root / "lfw", args.images)]
    frames_bg = backgrounds(root)
    models = models_dir()
    available = [name for name in DETECTORS if name == "hog" or (models / _YUNET).is_file()]
    detectors = {name: build(name, models) for name in available}
    rng = np.random.default_rng(args.seed)

    hits = {name: {h: 0 for h in args.sizes} for name in available}
    false = {name: 0 for name in available}
    times: dict[str, dict[str, list[float]]] = {
        name: {"640x360": [], "1280x720": []} for name in available
    }
    frames = 0
    for height in args.sizes:
        for i, face in enumerate(faces):
            frame, expected = compose(face, frames_bg[i % len(frames_bg)], height, rng)
            large = cv2.resize(frame, LARGE_FRAME, interpolation=cv2.INTER_LINEAR)
            frames += 1
            for name, detector in detectors.items():
                found = detector.detect(frame)
                times[name]["640x360"].append(found.seconds)
                matched = [is_hit(f.box, expected) for f in found.faces]
                hits[name][height] += int(any(matched))
                false[name] += sum(not m for m in matched)
                if height == args.sizes[-1] or i % 4 == 0:  # a sample of the large frames
                    times[name]["1280x720"].append(detector.detect(large).seconds)

    empty_false = {name: 0 for name in available}
    for _ in range(args.rounds):
        for background in frames_bg:
            for name, detector in detectors.items():
                empty_false[name] += len(detector.detect(background).faces)

    per_detector = {}
    for name in available:
        recall = {str(h): round(hits[name][h] / len(faces), 4) for h in args.sizes}
        per_detector[name] = {
            "recall_by_face_height_px": recall,
            "false_detections_per_frame": round(false[name] / frames, 4),
            "detections_on_faceless_frames": empty_false[name],
            "ms_per_frame": {size: summarize_ms(t) for size, t in times[name].items()},
        }
    return {
        "cpu": cpu,
        "images": len(faces),
        "frames_per_size": len(faces),
        "per_detector": per_detector,
        "decision": decide(per_detector, args.sizes),
    }


_YUNET = "face_detection_yunet_2023mar.onnx"


def decide(per_detector: dict[str, Any], sizes: list[int]) -> dict[str, Any]:
    """The detector with at least the other's recall at every size, and faster at 640x360.

    "At equal recall" is read as: compare speed only where both detectors see
    the faces (sizes at which both reach 95% recall); a detector that is also
    never worse elsewhere wins outright.
    """
    if len(per_detector) < 2:
        return {"edge_default": next(iter(per_detector)), "why": "only one detector available"}
    names = list(per_detector)
    recall = {n: per_detector[n]["recall_by_face_height_px"] for n in names}
    speed = {n: per_detector[n]["ms_per_frame"]["640x360"]["p50_ms"] for n in names}
    both = [h for h in sizes if all(recall[n][str(h)] >= 0.95 for n in names)]
    faster = min(names, key=lambda n: speed[n])
    other = next(n for n in names if n != faster)
    never_worse = all(recall[faster][str(h)] >= recall[other][str(h)] - 0.01 for h in sizes)
    smallest = {n: min((h for h in sizes if recall[n][str(h)] >= 0.9), default=None) for n in names}
    return {
        "sizes_both_see_95pct": both,
        "ms_per_frame_p50_640x360": speed,
        "smallest_face_height_at_90pct_recall": smallest,
        "faster": faster,
        "faster_never_worse_recall": never_worse,
        "speedup": round(speed[other] / speed[faster], 2) if speed[faster] else None,
        "edge_default": faster if never_worse else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=150, help="LFW images per face size")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[16, 20, 24, 32, 48, 64, 96, 128],
        help="face heights in pixels, in a 640x360 frame",
    )
    parser.add_argument("--rounds", type=int, default=3, help="passes over the faceless frames")
    parser.add_argument("--seed", type=int, default=7, help="placement seed")
    args = parser.parse_args(argv)
    args.sizes = sorted(set(args.sizes))
    machine = machine_facts()
    started = time.perf_counter()
    report = run(args)
    report["total_s"] = round(time.perf_counter() - started, 1)
    medians = {
        name: statistics.median(list(d["recall_by_face_height_px"].values()))
        for name, d in report["per_detector"].items()
    }
    write_result(
        "detectors",
        {
            "machine": machine,
            "settings": {"images": args.images, "sizes": args.sizes, "seed": args.seed},
            **report,
            "median_recall_over_sizes": medians,
        },
    )


if __name__ == "__main__":
    main()
