"""The stages of ``bench.compare``: inputs, the rounds that alternate the two sides, rows.

Each ``stage_*`` function prepares its inputs here in the parent (decoded
once, then handed to both workers with ``put``, so both sides get the same
pixels and bytes), runs its rounds through :class:`Run` (ours, then the
peer, within every round), and returns its flat rows
(:func:`bench.compare_report.make_row`) and its detailed section. The
measured calls themselves are in :mod:`bench.compare_sides`; LFW is in
:mod:`bench.compare_lfw`. Durations reach the rows in milliseconds.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from bench._common import REPO_ROOT, summarize_ms, testdata_dir
from bench.compare_report import make_row, ms, single, spread

FRAME_PHOTO = "groups/obama_biden_1.jpg"
"""Source of the 640x360 and 1280x720 frames (two faces), as bench.engine_speed."""
DECODE_PHOTOS = ("people/obama/obama_1.jpg", "people/paul_rudd/paul_rudd_1.jpg")
"""Real photos decoded as they are (1137x910, 280 kB and 2048x1638, 940 kB)."""
EMBED_PHOTO = "groups/compreface_eight-faces.jpg"
EMBED_FACES = 8
SIZES = ((640, 360), (1280, 720))
PEER_SEARCH_MEMORY_LIMIT = 4 * 1024**3
"""Skip the peer's scan above this estimated memory, in bytes (see :func:`peer_search_bytes`)."""
SEARCH_DIM = 128
SEARCH_LIMIT = 10
"""MaxFaces of SearchFacesByImage by default."""
SEARCH_QUERIES = 64
QUERY_DISTANCE = 0.3
"""Euclidean distance of each query from the stored face it was made from (a "second photo",
inside FaceMatchThreshold 80's 0.39, so every search has a match to return)."""

Sides = tuple[Any, Any | None]
"""(ours, peer) SideProcess; peer None when it is skipped."""


class Advance(Protocol):
    """Moves a stage's progress on: by one round, or (LFW) to ``done`` of ``total``."""

    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> None: ...


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

    def __init__(self, args: argparse.Namespace, advance: Advance) -> None:
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
    rows: list[dict[str, Any]] = []
    detail: dict[str, Any] = {}
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
    rows: list[dict[str, Any]] = []
    detail: dict[str, Any] = {}
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

    The registry's default embedder, flip and views settings are what users
    get; the other flip setting, the other views setting (facelens.engine.views),
    and dlib's own runtime when the default is another
    runtime of the same network, show where the difference comes from.
    """
    from facelens.config import Settings

    defaults = Settings()
    fields = Settings.model_fields
    variants: list[dict[str, Any]] = [{}]
    if "embed_flip" in fields:
        variants.append({"embed_flip": not defaults.embed_flip})
    if "embed_views" in fields:
        variants.append({"embed_views": "five" if defaults.embed_views != "five" else "five+68"})
    if "embedder" in fields and getattr(defaults, "embedder", "dlib") != "dlib":
        variants.append({"embedder": "dlib"})
    return variants


def variant_label(about: dict[str, Any]) -> str:
    """E.g. "OnnxEmbedder flip=True (default)", from Ours.describe."""
    label = f"{about['embedder_class']} flip={about['embedder_flip']}"
    if about.get("embedder_views"):
        label += f" views={about['embedder_views']}"
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
