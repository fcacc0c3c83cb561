"""facelens side by side with face_recognition 1.3.0, the library most people install today.

Why: "how does it compare with what I use now?" is the first question a
user asks; absolute figures depend on the machine, but the ratio peer/ours
for the same work on the same images on the same core carries across
machines. ``face_recognition`` is a benchmark-only peer (``pip install
--no-deps face_recognition==1.3.0`` on top of the ``dlib-bin`` facelens
already needs); without it, facelens is still measured and the document
says why the peer was skipped.

How: each side runs in its own worker process (``bench.compare_sides``),
both pinned to the same CPU with OpenCV and BLAS on one thread, and the
parent alternates them (ours, peer, ours, peer...) so that load from other
processes falls on both. Every timed figure is the median over ``--rounds``
rounds (with min and max); a round is the mean of enough calls to last
about ``--target-ms``, after one untimed warm-up call.

Stages (``--stages``, all by default):

* ``decode``: JPEG bytes to RGB pixels: facelens' ``decode_image`` (what
  the service runs on every upload: size limits, EXIF orientation) vs
  ``face_recognition.load_image_file``; 640x360 and 1280x720 frames cut
  from a test photo (JPEG quality 90) and two real photos.
* ``detect``: 640x360 and 1280x720 frames: the engine ``build_engine``
  makes with ``hog`` and with ``yunet`` (``engine.detect``: detection,
  landmarks, pose, quality) vs ``face_locations(img)`` (HOG, upsample 1);
  faces found by each.
* ``embed``: align + embed per face of the 8 faces of a group photo, one
  face per call and 8 per call: ``engine.embed`` (the registry's default
  embedder and flip setting, the other flip setting, and dlib's own runtime
  of the same network) vs ``face_encodings(img, known_face_locations=...)``
  at the same boxes.
* ``search``: one query against 10k, 100k and 1M random unit 128-d faces
  (each query a stored face moved by 0.3, a "second photo"):
  ``CollectionIndex.build(...).faces.search``, whichever index it picks for
  the size (limit 10, FaceMatchThreshold 80; its recall@1 is reported) vs
  ``face_distance(known, one)`` over a float64 matrix (exact).
* ``edge``: frames of the Hamilton clip (640x360): face_recognition's
  ``facerec_from_webcam_faster.py`` loop body (quarter-size frame,
  ``face_locations``, ``face_encodings``, ``compare_faces`` against the two
  people in the clip), and the same on full-size frames, vs facelens doing
  the same job (engine detect on the frame, embed each face, search a
  collection of the same two people); faces found and identified by each.
* ``lfw``: verification accuracy and TAR at FAR 0.001 on the LFW
  development pairs, both pipelines through the same
  ``verification_figures`` (``bench.compare_lfw``), 2 worker processes
  each (not pinned), blocks of images interleaved; ``--lfw-folds`` (3 of
  the 5 by default, see :data:`LFW_DEFAULT_FOLDS`).

Run from the repository root::

    python -m bench.compare [--stages decode detect embed search edge lfw] [--quick]
                            [--lfw-folds 5]

Writes bench/results/compare.json: ``rows`` (one flat row per stage and
variant: ours, peer, ``peer_over_ours``) and one detailed section per stage.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench._common import REPO_ROOT, machine_facts, summarize_ms, testdata_dir, write_result
from bench.compare_report import make_row, ms, rates, single, spread, table

STAGES = ("decode", "detect", "embed", "search", "edge", "lfw")
PEER_PIP = "pip install --no-deps face_recognition==1.3.0"
FRAME_PHOTO = "groups/obama_biden_1.jpg"
"""Source of the 640x360 and 1280x720 frames (two faces), as bench.engine_speed."""
DECODE_PHOTOS = ("people/obama/obama_1.jpg", "people/paul_rudd/paul_rudd_1.jpg")
"""Real photos decoded as they are (1137x910, 280 kB and 2048x1638, 940 kB)."""
EMBED_PHOTO = "groups/compreface_eight-faces.jpg"
EMBED_FACES = 8
SIZES = ((640, 360), (1280, 720))
CLIP = "video/short_hamilton_clip.mp4"
EDGE_PEOPLE = ("alex_lacamoire", "lin_manuel_miranda")
PEER_SEARCH_MEMORY_LIMIT = 4 * 1024**3
"""Skip the peer's scan above this estimated memory, in bytes (see :func:`peer_search_bytes`)."""
PEER_RECIPE_SCALE = 0.25
"""facerec_from_webcam_faster.py shrinks each frame to a quarter before detecting."""
EdgePass = tuple[float, int, int, dict[str, int]]
"""One pass of the edge loop: seconds, frames, faces found, identifications per name."""
SEARCH_DIM = 128
SEARCH_LIMIT = 10
"""MaxFaces of SearchFacesByImage by default."""
SEARCH_QUERIES = 64
QUERY_DISTANCE = 0.3
"""Euclidean distance of each query from the stored face it was made from (a "second photo",
inside FaceMatchThreshold 80's 0.39, so every search has a match to return)."""
LFW_DEFAULT_FOLDS = 3
"""LFW is most of a run's time, nearly all of it the peer's (12-17 images a second on 2
workers against our 60-100). Measured on the 2 shared cores with other work running: the
other stages take about 90 s; a default run took 4.1 minutes with 3 folds (2320 images) and
6.9 with 4 (3074), so all 5 (3811) take 8 or more. The price of 3 folds: 900
different-person pairs, so FAR <= 0.001 allows no false accept and TAR at it is set by the
single closest stranger pair (it moves by several points between fold counts); 4 or 5 folds
(``--lfw-folds``) allow one, as the full protocol does."""

Sides = tuple[Any, Any | None]
"""(ours, peer) SideProcess; peer None when it is skipped."""


def models_dir() -> Path:
    """The optional ONNX models: ``$FACELENS_MODELS_DIR``, else ``<repo>/../shared/models``."""
    configured = os.environ.get("FACELENS_MODELS_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "models"


def peer_search_bytes(n: int, dim: int = SEARCH_DIM) -> int:
    """Memory the peer's scan needs at ``n`` faces: the float64 matrix and two temporaries.

    ``np.linalg.norm(known - one, axis=1)`` makes the difference (n x dim
    float64) and its square before summing, so about three matrices.
    """
    return 3 * n * dim * 8


def far_allowance(negatives: int) -> str:
    """What FAR <= 0.001 means over ``negatives`` different-person pairs, in words.

    Below 1000 such pairs it allows no false accept at all, so the TAR is
    set by the single closest stranger pair and moves a lot between runs
    with different pair sets.
    """
    allowed = negatives // 1000
    return f"{allowed} false accept(s) allowed among {negatives} different-person pairs"


def peer_missing() -> str | None:
    """Why the peer cannot run here, or None when its packages are installed."""
    for module in ("face_recognition", "face_recognition_models", "dlib"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed; install the peer with: {PEER_PIP}"
    return None


def load_rgb(path: Path) -> Any:
    from facelens.engine.images import read_image_file

    return read_image_file(path, max_bytes=50 * 1024**2, max_pixels=50_000_000).pixels


def make_frame(image: Any, width: int, height: int) -> Any:
    """``image`` center-cropped to ``width:height`` and resized (INTER_AREA down, CUBIC up)."""
    import cv2
    import numpy as np

    src_h, src_w = image.shape[:2]
    if src_w / src_h > width / height:
        crop_w, crop_h = round(src_h * width / height), src_h
    else:
        crop_w, crop_h = src_w, round(src_w * height / width)
    left, top = (src_w - crop_w) // 2, (src_h - crop_h) // 2
    cropped = image[top : top + crop_h, left : left + crop_w]
    method = cv2.INTER_AREA if width <= crop_w else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(cropped, (width, height), interpolation=method))


def jpeg(image: Any, quality: int = 90) -> bytes:
    import cv2

    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(data)


class Run:
    """Settings of one run and the rounds loop shared by the timed stages."""

    def __init__(self, args: argparse.Namespace, advance: Callable[[str], None]) -> None:
        self.args = args
        self.root = testdata_dir()
        self.advance = advance
        self.default_detector: str | None = None

    def detector_label(self, detector: str) -> str:
        """``detector``, marked when it is the one the default settings resolve to."""
        return f"{detector} (default)" if detector == self.default_detector else detector

    def rounds(self, stage: str, body: Callable[[int], None], count: int | None = None) -> None:
        for i in range(count or self.args.rounds):
            body(i)
            self.advance(stage)


def both(sides: Sides, method: str, *args: Any) -> None:
    for side in sides:
        if side is not None:
            side.call(method, *args)


def peer_summary(samples: list[float] | None) -> dict[str, Any] | None:
    return None if samples is None else summarize_ms(samples)


def stage_decode(run: Run, sides: Sides) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ours, peer = sides
    frame_source = load_rgb(run.root / FRAME_PHOTO)
    inputs: dict[str, bytes] = {
        f"{w}x{h} JPEG q90": jpeg(make_frame(frame_source, w, h)) for w, h in SIZES
    }
    for name in DECODE_PHOTOS:
        inputs[name] = (run.root / name).read_bytes()
    for key, data in inputs.items():
        both(sides, "put", key, data)
    samples: dict[str, dict[str, list[float]]] = {k: {"ours": [], "peer": []} for k in inputs}
    sizes: dict[str, list[int]] = {}

    def body(_: int) -> None:
        for key in inputs:
            seconds, sizes[key] = ours.call("decode", key)
            samples[key]["ours"].append(seconds)
            if peer is not None:
                samples[key]["peer"].append(peer.call("decode", key)[0])

    run.rounds("decode", body)
    rows, detail = [], {}
    for key, data in inputs.items():
        got = samples[key]
        peer_ms = spread(ms(got["peer"])) if peer is not None else None
        width, height = sizes[key]
        rows.append(
            make_row(
                "decode",
                key,
                "ms",
                spread(ms(got["ours"])),
                peer_ms,
                f"{width}x{height}, {len(data)} bytes",
            )
        )
        detail[key] = {
            "bytes": len(data),
            "decoded_width_height": sizes[key],
            "ours": summarize_ms(got["ours"]),
            "peer": peer_summary(got["peer"] if peer is not None else None),
        }
    detail["note"] = (
        "ours: facelens.engine.images.decode_image (format sniffing, size limits, EXIF "
        "orientation, RGB); peer: face_recognition.load_image_file (PIL open, convert RGB)"
    )
    return rows, detail


def stage_detect(
    run: Run, sides: Sides, detectors: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ours, peer = sides
    source = load_rgb(run.root / FRAME_PHOTO)
    labels = [f"{w}x{h}" for w, h in SIZES]
    for (w, h), label in zip(SIZES, labels, strict=True):
        both(sides, "put", label, make_frame(source, w, h))
    got: dict[tuple[str, str], list[float]] = {}
    faces: dict[tuple[str, str], int] = {}

    def body(_: int) -> None:
        for label in labels:
            for detector in detectors:
                seconds, faces[label, detector] = ours.call("detect", label, detector)
                got.setdefault((label, detector), []).append(seconds)
                if peer is not None and detector == detectors[0]:
                    seconds, faces[label, "peer"] = peer.call("detect", label)
                    got.setdefault((label, "peer"), []).append(seconds)

    run.rounds("detect", body)
    rows, detail = [], {}
    for label in labels:
        peer_ms = spread(ms(got[label, "peer"])) if peer is not None else None
        block: dict[str, Any] = {"source": FRAME_PHOTO}
        for detector in detectors:
            note = f"faces found: ours {faces[label, detector]}"
            if peer is not None:
                note += f", peer {faces[label, 'peer']}"
            rows.append(
                make_row(
                    "detect",
                    f"{label} {run.detector_label(detector)}",
                    "ms",
                    spread(ms(got[label, detector])),
                    peer_ms,
                    note,
                )
            )
            block[detector] = {
                **summarize_ms(got[label, detector]),
                "faces_found": faces[label, detector],
            }
        if peer is not None:
            block["peer"] = {
                **summarize_ms(got[label, "peer"]),
                "faces_found": faces[label, "peer"],
            }
        detail[label] = block
    detail["note"] = (
        "ours: engine.detect (detector, 5 landmarks, pose, quality; HOG upsamples once up to "
        "1024 px long side, so 640x360 is scanned at 1280x720); peer: face_locations(img) "
        "(HOG, upsample 1 at every size, no landmarks); the same peer figures stand against "
        "each of our detectors"
    )
    return rows, detail


def embed_variants() -> list[dict[str, Any]]:
    """Settings overrides for the embedding stage: the default first, then the alternatives.

    The registry's default embedder and flip setting is what users get; the
    other flip setting, and dlib's own runtime when the default is another
    runtime of the same network, show where the difference comes from.
    """
    from facelens.config import Settings

    defaults = Settings()
    fields = Settings.model_fields
    variants: list[dict[str, Any]] = [{}]
    if "embed_flip" in fields:
        variants.append({"embed_flip": not defaults.embed_flip})
    if "embedder" in fields and getattr(defaults, "embedder", "dlib") != "dlib":
        variants.append({"embedder": "dlib"})
    return variants


def variant_label(about: dict[str, Any]) -> str:
    """E.g. "OnnxEmbedder flip=True (default)", from Ours.describe."""
    label = f"{about['embedder_class']} flip={about['embedder_flip']}"
    return label + (" (default)" if not about["overrides"] else "")


def stage_embed(
    run: Run, sides: Sides, variants: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ours, peer = sides
    both(sides, "put", "group", load_rgb(run.root / EMBED_PHOTO))
    boxes = ours.call("embed_faces", "group", EMBED_FACES)
    described = [ours.call("describe", "hog", v) for v in variants]
    labels = [variant_label(about) for about in described]
    modes = {"single": False, f"batched {EMBED_FACES}": True}
    got: dict[tuple[str, str], list[float]] = {}

    def body(_: int) -> None:
        for mode, batched in modes.items():
            for label, overrides in zip(labels, variants, strict=True):
                got.setdefault((mode, label), []).append(
                    ours.call("embed", "group", batched, overrides)[0]
                )
            if peer is not None:
                got.setdefault((mode, "peer"), []).append(
                    peer.call("embed", "group", boxes, batched)[0]
                )

    run.rounds("embed", body)
    rows: list[dict[str, Any]] = []
    detail: dict[str, Any] = {
        "faces_from": EMBED_PHOTO,
        "boxes_top_right_bottom_left": boxes,
        "ours_engines": dict(zip(labels, described, strict=True)),
    }
    for mode in modes:
        peer_ms = spread(ms(got[mode, "peer"])) if peer is not None else None
        for label in labels:
            rows.append(
                make_row(
                    "embed",
                    f"{mode}, {label}",
                    "ms/face",
                    spread(ms(got[mode, label])),
                    peer_ms,
                    "align + embed per face; peer: face_encodings (5-point landmarks, 1 jitter, "
                    "one network pass per face) at the same boxes",
                )
            )
            detail[f"{mode}, {label}"] = summarize_ms(got[mode, label])
        if peer is not None:
            detail[f"{mode}, peer"] = summarize_ms(got[mode, "peer"])
    detail["note"] = (
        "per face: a call's time divided by its faces; flip=True embeds each chip and its mirror"
    )
    return rows, detail


def stage_search(run: Run, sides: Sides) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from facelens.collection.service import DEFAULT_FACE_MATCH_THRESHOLD
    from facelens.collection.similarity import distance_for_similarity

    ours, peer = sides
    max_distance = distance_for_similarity(DEFAULT_FACE_MATCH_THRESHOLD)
    rows: list[dict[str, Any]] = []
    detail: dict[str, Any] = {
        "limit": SEARCH_LIMIT,
        "max_distance": round(max_distance, 4),
        "queries": f"{SEARCH_QUERIES} stored faces each moved by Euclidean {QUERY_DISTANCE}",
    }
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for n in run.args.search_sizes:
        setup = (n, SEARCH_DIM, run.args.seed, SEARCH_QUERIES, QUERY_DISTANCE)
        built = ours.call("search_setup", *setup, SEARCH_LIMIT, max_distance)
        needed = peer_search_bytes(n)
        skip_peer = None
        if peer is not None and needed > min(PEER_SEARCH_MEMORY_LIMIT, available // 2):
            skip_peer = (
                f"peer skipped: its scan needs about {needed / 1024**3:.1f} GB (float64 matrix "
                f"and two temporaries), over min(4 GB, half the {available / 1024**3:.1f} GB free)"
            )
        peer_info = None
        if peer is not None and skip_peer is None:
            peer_info = peer.call("search_setup", *setup)
        got: dict[str, list[float]] = {"ours": [], "peer": []}

        def body(
            _: int,
            n: int = n,
            got: dict[str, list[float]] = got,
            with_peer: bool = peer_info is not None,
        ) -> None:
            got["ours"].append(ours.call("search", n, SEARCH_LIMIT, max_distance)[0])
            if with_peer and peer is not None:
                got["peer"].append(peer.call("search", n)[0])

        run.rounds("search", body)
        both(sides, "search_free")
        notes = [
            f"ours: CollectionIndex.build picked {built['index']} (recall@1 "
            f"{built['recall_at_1']:g}), limit {SEARCH_LIMIT} within FaceMatchThreshold 80; "
            "peer: face_distance over an (n, 128) float64 ndarray (exact)"
        ]
        if skip_peer:
            notes.append(skip_peer)
        peer_ms = spread(ms(got["peer"]), digits=4) if got["peer"] else None
        rows.append(
            make_row(
                "search",
                f"{n} faces",
                "ms/query",
                spread(ms(got["ours"]), digits=4),
                peer_ms,
                "; ".join(notes),
            )
        )
        detail[str(n)] = {
            "ours": {**summarize_ms(got["ours"]), **built},
            "peer": {**summarize_ms(got["peer"]), **peer_info} if peer_info else skip_peer,
            "peer_estimated_bytes": needed,
        }
    return rows, detail


def read_clip_frames(path: Path, count: int) -> list[Any]:
    """``count`` frames spread evenly over the clip (BGR, as a camera hands them over)."""
    import cv2
    import numpy as np

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"cannot read frames from {path}")
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return [np.ascontiguousarray(frames[i]) for i in picks]


def stage_edge(
    run: Run, sides: Sides, detectors: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from facelens.collection.service import DEFAULT_FACE_MATCH_THRESHOLD
    from facelens.collection.similarity import distance_for_similarity

    ours, peer = sides
    frames = read_clip_frames(run.root / CLIP, run.args.edge_frames)
    known = [
        (name, path.read_bytes())
        for name in EDGE_PEOPLE
        for path in sorted((run.root / "people" / name).iterdir())
    ]
    max_distance = distance_for_similarity(DEFAULT_FACE_MATCH_THRESHOLD)
    both(sides, "put", "edge_frames", frames)
    enrolled: dict[str, Any] = {"ours": ours.call("edge_setup", known, max_distance, detectors)}
    if peer is not None:
        enrolled["peer"] = peer.call("edge_setup", known, max_distance)
    got: dict[str, list[EdgePass]] = {}
    peer_scales = {"recipe": PEER_RECIPE_SCALE, "full frame": 1.0}

    def body(_: int) -> None:
        for i, detector in enumerate(detectors):
            got.setdefault(detector, []).append(ours.call("edge", detector))
            if peer is not None and i < len(peer_scales):  # alternate: ours, peer, ours, peer
                variant, scale = list(peer_scales.items())[i]
                got.setdefault(variant, []).append(peer.call("edge", "", scale))
        if peer is not None:
            for variant, scale in list(peer_scales.items())[len(detectors) :]:
                got.setdefault(variant, []).append(peer.call("edge", "", scale))

    run.rounds("edge", body, run.args.edge_rounds)

    def fps(results: list[EdgePass]) -> dict[str, float]:
        return spread(rates([r[1] for r in results], [r[0] for r in results]), digits=2)

    def outcome(results: list[EdgePass]) -> dict[str, Any]:
        _, count, found, named = results[-1]
        return {"frames": count, "faces_found": found, "identified": named}

    def counts(results: list[EdgePass]) -> str:
        seen = outcome(results)
        return f"{seen['faces_found']}/{sum(seen['identified'].values())}"

    rows: list[dict[str, Any]] = []
    detail: dict[str, Any] = {
        "clip": CLIP,
        "frames": len(frames),
        "enrolled_photos": enrolled,
        "ours_max_distance": round(max_distance, 4),
        "peer_tolerance": 0.6,
    }
    default = run.default_detector if run.default_detector in detectors else detectors[0]
    pairs = [(d, "recipe") for d in detectors] + [(default, "full frame")]
    for detector, variant in pairs:
        note = f"faces found/identified per pass of {len(frames)} frames: ours " + counts(
            got[detector]
        )
        if peer is not None:
            note += f", peer {counts(got[variant])}"
        rows.append(
            make_row(
                "edge",
                f"640x360 clip, ours {run.detector_label(detector)} vs peer {variant}",
                "fps",
                fps(got[detector]),
                fps(got[variant]) if peer is not None else None,
                note,
            )
        )
    for name in [*detectors, *(peer_scales if peer is not None else ())]:
        detail[name if name in detectors else f"peer {name}"] = {
            "fps": fps(got[name]),
            **outcome(got[name]),
        }
    detail["note"] = (
        "peer recipe: facerec_from_webcam_faster.py's body on every frame (resize to 1/4, "
        "BGR->RGB, face_locations, face_encodings, compare_faces + face_distance best match at "
        "0.6; the recipe also skips every other frame, which would double both sides' rate); "
        "peer full frame: the same without the resize (a quarter of 640x360 leaves faces too "
        "small for its HOG at upsample 1); ours: "
        "BGR->RGB, engine.detect on the full frame, engine.embed of every face, collection "
        "index search (FaceMatchThreshold 80); enrolment untimed. facelens' real edge runner "
        "(tracking, one embedding per track, in the recognizer) is bench.edge_fps"
    )
    return rows, detail


def stage_lfw(run: Run, with_peer: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from bench import compare_lfw

    root = run.root / "lfw"
    report = compare_lfw.run(
        root / "pairs_dev.txt",
        root / "images",
        folds=run.args.lfw_folds,
        per_fold=run.args.lfw_pairs_per_fold,
        workers=run.args.lfw_workers,
        models_dir=models_dir(),
        detector=run.args.lfw_detector,
        with_peer=with_peer,
        progress=lambda done, total: run.advance("lfw", done=done, total=total),
    )
    ours, peer = report["ours"], report.get("peer")
    scope = (
        f"{report['pairs']} pairs, {report['folds']} of {report['folds_available']} folds, "
        f"{report['images']} images; ours: {report['ours_engine']['detector']}, "
        f"{report['ours_engine']['embedder']} flip={report['ours_engine']['embed_flip']}; "
        "peer: HOG upsample 1, 5-point, 1 jitter"
    )
    rows = [
        make_row(
            "lfw",
            key,
            "fraction",
            single(ours[key]),
            single(peer[key]) if peer else None,
            f"{scope}; {what}",
        )
        for key, what in (
            (
                "accuracy",
                "cross-validated over the folds"
                if report["folds"] > 1
                else "one fold: threshold chosen on the same pairs",
            ),
            (
                "tar_at_far_1e3",
                "same-person pairs accepted at FAR <= 0.001: "
                f"{far_allowance(report['pairs'] // 2)}",
            ),
        )
    ]
    rows.append(
        make_row(
            "lfw",
            f"time, {report['workers']} workers",
            "s",
            single(ours["seconds"], digits=2),
            single(peer["seconds"], digits=2) if peer else None,
            f"{scope}; undetected: ours {ours['undetected']}"
            + (f", peer {peer['undetected']}" if peer else ""),
        )
    )
    return rows, report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast check: fewer rounds, frames, sizes and LFW pairs",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per timed figure (median)")
    parser.add_argument(
        "--target-ms",
        type=float,
        default=200.0,
        help="a round repeats a fast call until it lasts about this long",
    )
    parser.add_argument("--search-sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--edge-frames",
        type=int,
        default=24,
        help="clip frames per edge pass, spread over the clip",
    )
    parser.add_argument("--edge-rounds", type=int, default=3)
    parser.add_argument(
        "--lfw-folds",
        type=int,
        default=LFW_DEFAULT_FOLDS,
        help=f"LFW folds to run (5: all 3000 pairs; default {LFW_DEFAULT_FOLDS})",
    )
    parser.add_argument(
        "--lfw-pairs-per-fold",
        type=int,
        default=None,
        help="only this many same and as many different pairs per fold",
    )
    parser.add_argument("--lfw-workers", type=int, default=2)
    parser.add_argument(
        "--lfw-detector",
        default=None,
        help="our detector on LFW (default: the configured one, 'auto' = YuNet with its model)",
    )
    parser.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="CPU both workers are pinned to (default: the last one allowed)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--name", default="compare", help="result file bench/results/<name>.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = min(args.rounds, 3)
        args.target_ms = min(args.target_ms, 50.0)
        args.search_sizes = [n for n in args.search_sizes if n <= 100_000] or [10_000]
        args.edge_frames = min(args.edge_frames, 6)
        args.edge_rounds = 1
        args.lfw_folds = 1
        args.lfw_pairs_per_fold = min(args.lfw_pairs_per_fold or 20, 20)
    if min(args.rounds, args.edge_frames, args.edge_rounds, args.lfw_folds, args.lfw_workers) < 1:
        parser.error("counts must be at least 1")
    if args.cpu is None:
        args.cpu = max(os.sched_getaffinity(0))
    return args


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bench.compare_sides import SideFailed, SideProcess, SideUnavailable

    args = parse_args(argv)
    # Read by numpy's BLAS when it loads: the workers (spawned below) inherit them.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    machine = machine_facts()
    began = time.perf_counter()
    # rich renders 80 columns into a file or pipe: the final table needs more
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 170)
    from facelens.engine.yunet import find_model

    yunet = find_model(models_dir())
    detectors = ["hog"] + (["yunet"] if yunet else [])
    variants = embed_variants()
    totals = {
        "decode": args.rounds,
        "detect": args.rounds,
        "embed": args.rounds,
        "search": args.rounds * len(args.search_sizes),
        "edge": args.edge_rounds,
        "lfw": 1,
    }
    document: dict[str, Any] = {"machine": machine}
    rows: list[dict[str, Any]] = []
    stage_seconds: dict[str, float] = {}
    peer_skip = peer_missing()
    timed = [s for s in STAGES if s in args.stages and s != "lfw"]

    with Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks = {s: progress.add_task(s, total=totals[s]) for s in STAGES if s in args.stages}

        def advance(stage: str, done: int | None = None, total: int | None = None) -> None:
            if done is None:
                progress.advance(tasks[stage])
            else:
                progress.update(tasks[stage], completed=done, total=total)

        run = Run(args, advance)
        if timed:
            sides: list[Any] = []
            target_s = args.target_ms / 1000.0
            try:
                ours = SideProcess("ours", cpu=args.cpu, models_dir=models_dir(), target_s=target_s)
                sides.append(ours)
                peer = None
                if peer_skip is None:
                    try:
                        peer = SideProcess("peer", cpu=args.cpu, models_dir=None, target_s=target_s)
                        sides.append(peer)
                    except SideUnavailable as exc:
                        peer_skip = f"face_recognition did not start ({exc}); {PEER_PIP}"
                document["ours"] = ours.call("describe", None, None)
                run.default_detector = document["ours"]["detector"]
                if peer is not None:
                    document["peer"] = peer.call("describe")
                stage_fns: dict[str, Callable[[], tuple[list[dict[str, Any]], dict[str, Any]]]] = {
                    "decode": lambda: stage_decode(run, (ours, peer)),
                    "detect": lambda: stage_detect(run, (ours, peer), detectors),
                    "embed": lambda: stage_embed(run, (ours, peer), variants),
                    "search": lambda: stage_search(run, (ours, peer)),
                    "edge": lambda: stage_edge(run, (ours, peer), detectors),
                }
                for stage in timed:
                    start = time.perf_counter()
                    try:
                        stage_rows, document[stage] = stage_fns[stage]()
                        rows += stage_rows
                    except SideFailed as exc:  # one stage's failure leaves the others' figures
                        document[stage] = {"error": str(exc)}
                        console.print(f"[red]{stage} failed[/red]: {exc}")
                    stage_seconds[stage] = round(time.perf_counter() - start, 1)
            finally:
                for side in sides:
                    side.close()
        if "lfw" in args.stages:
            start = time.perf_counter()
            lfw_rows, document["lfw"] = stage_lfw(run, with_peer=peer_skip is None)
            if peer_skip is None and "peer_skipped" in document["lfw"]:
                peer_skip = f"{document['lfw']['peer_skipped']}; {PEER_PIP}"
            rows += lfw_rows
            stage_seconds["lfw"] = round(time.perf_counter() - start, 1)

    if peer_skip is not None:
        document["peer"] = {"skipped": peer_skip}
    if yunet is None:
        document["yunet_note"] = f"no YuNet model in {models_dir()} (FACELENS_MODELS_DIR)"
    document["settings"] = {
        "stages": [s for s in STAGES if s in args.stages],
        "quick": args.quick,
        "rounds": args.rounds,
        "target_ms_per_round": args.target_ms,
        "search_sizes": args.search_sizes,
        "edge_frames": args.edge_frames,
        "edge_rounds": args.edge_rounds,
        "lfw_folds": args.lfw_folds,
        "lfw_folds_default_note": (
            f"default {LFW_DEFAULT_FOLDS} of 5 folds (1800 of 3000 pairs): a default run took "
            "4.1 minutes on 2 shared cores, 6.9 with 4 folds; all 5 take 8 or more. With 900 "
            "different-person pairs TAR at FAR 0.001 allows no false accept: use --lfw-folds "
            "4 or 5 for a steadier TAR"
        ),
        "lfw_pairs_per_fold": args.lfw_pairs_per_fold,
        "lfw_workers": args.lfw_workers,
        "cpu": args.cpu,
        "one_core": (
            "timed stages: ours and peer each in a spawned worker pinned to this CPU "
            "(sched_setaffinity), cv2.setNumThreads(1), OPENBLAS/OMP/MKL_NUM_THREADS=1; "
            "called in turn (ours, peer, ...). LFW: 2 unpinned workers per side"
        ),
        "yunet_model": str(yunet) if yunet else None,
        "testdata": str(run.root),
        "seed": args.seed,
    }
    document["rows"] = rows
    document["stage_seconds"] = stage_seconds
    document["load_average_at_end_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    document["total_run_s"] = round(time.perf_counter() - began, 1)
    write_result(args.name, document)
    console.print(table(rows))
    console.print(f"total {document['total_run_s']} s")


if __name__ == "__main__":
    main()
