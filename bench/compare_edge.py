"""The ``edge`` stage of ``bench.compare``: a webcam-style loop over clip frames, both libraries.

face_recognition's documented fast recipe (facerec_from_webcam_faster.py:
quarter-size frame, ``face_locations``, ``face_encodings``, ``compare_faces``
against known people) against facelens doing the same job (detect on the
frame, embed every face, search a collection of the same people); also the
recipe on full-size frames, because its quarter frames can be too small for
its HOG to find anyone. The loops themselves are ``Ours.edge`` and
``Peer.edge``; this module feeds them the same frames and builds the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.compare_report import make_row, rates, spread
from bench.compare_stages import Run, Sides, both

CLIP = "video/short_hamilton_clip.mp4"
EDGE_PEOPLE = ("alex_lacamoire", "lin_manuel_miranda")
PEER_RECIPE_SCALE = 0.25
"""facerec_from_webcam_faster.py shrinks each frame to a quarter before detecting."""
EdgePass = tuple[float, int, int, dict[str, int]]
"""One pass of the edge loop: seconds, frames, faces found, identifications per name."""


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
    default = run.default_detector
    if default is None or default not in detectors:
        default = detectors[0]
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
