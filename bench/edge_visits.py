"""Visits at the edge: one per person, identifiable looks only, before and after.

Why: issue 19 asks that a person walking through a camera's view be one visit,
that only identifiable looks leave the camera (no backs of heads, no profiles),
and that a visit's first look go at once. This runs the edge runner's own
detection, tracking and look picking over the two test clips, with no
recognizer, and counts what would be uploaded.

How: every frame of each clip goes through ``FrameDetector`` (YuNet, the
default ``detect_side`` 640 and ``min_confidence`` 50), the ``Tracker`` (with the
frame, for its appearance cue) and the ``CropPicker`` with its quality gate
and crop check (the recognizer's own detector on the JPEG'd crop), at the
clip's own media times, exactly as ``EdgeRunner.process`` does, with the
default ``EdgeSettings``. Each look it sends is JPEG-encoded as the runner
encodes it and handed to the recognizer's engine (``build_engine``: YuNet
and the default embedder's detector), which must find a face in it.

"before" runs the same loop with the tracker and picker of an earlier commit
(``--before-rev``, default 310875b, the commit before this change: a 0.5 s
best-of window per track, re-uploads every 30 s, IoU and centre-distance
tracking), their source read with ``git show`` and loaded as modules, so the
figures can be reproduced without checking anything out.

Each clip is also run keeping every third frame only, as a live source drops
frames when detection is slower than the camera (8-10 processed fps): faces move
three times as far between processed frames, which is where a tracker splits
people.

Per clip: tracks started (= visits), the hand count of real people, visits per
real person, visits with an upload, looks uploaded (all, per uploading visit,
most in one visit), looks the gate refused by reason (each considered look
once, by its first failing check; looks not considered because the visit was
waiting between looks are not counted), the share of uploaded looks the
recognizer's detector finds a face in, tracks seen only once whose look would
have passed the gate (evidence for or against needing two sightings before a
first look), and processed frames from a visit's first sighting to its first look.

Hand count (frames written out as PNG every 10 frames and viewed, with the
detections and their crops tiled beside them):

- short_hamilton_clip.mp4 (640x360, 275 frames, 29.97 fps) is four shots, and a
  cut is a new visit by nature: shot 1 (frames 0-16), the singer on stage and a
  pianist at the left (2); shot 2 (17-85), a performer in close-up profile and
  three out-of-focus audience faces behind him (4); shot 3 (86-211), the singer
  in close-up (1); shot 4 (212-274), seven audience members, the nearest ones in
  profile (7). 14 person-appearances; identifiable by eye: the singer in shots
  1 and 3 only (the rest are profiles, out of focus or, the pianist, 9 px
  between the eyes).
- facenet_pytorch_clip.mp4 (1920x1080, 105 frames, 25 fps), one shot of people
  walking towards the camera through an arcade: a woman in a scarf crossing in
  profile, a red-haired man (head down), a white-haired woman, a boy in a blue
  hoodie, a woman in red, an older man, a man with glasses, a man at the top
  right walking off, a woman in beige at the left and a woman on the phone at the
  right: 10 people whose faces the detector finds at some point (others walk
  away, backs only, and are never detected as faces).

Run from the repository root::

    python -m bench.edge_visits [--before-rev 310875b]

Writes bench/results/edge_visits.json. Needs YuNet in ``$FACELENS_MODELS_DIR``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import types
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import REPO_ROOT, machine_facts, testdata_dir, write_result

CLIPS = {
    "short_hamilton_clip.mp4": 14,
    "facenet_pytorch_clip.mp4": 10,
}
"""Clip: the hand count of real people (person-appearances per shot; see the docstring)."""
BEFORE_REV = "310875b"


@dataclass
class ClipRun:
    tracks: int = 0
    looks: list[tuple[str, bytes]] = field(default_factory=list)  # (visit/track, JPEG)
    refused: Counter[str] = field(default_factory=Counter)
    single_hit_passing: int = 0
    first_look_frames: list[int] = field(default_factory=list)


def _frames(clip: Path, stride: int = 1) -> Iterator[tuple[Any, float]]:
    import cv2

    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    index = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            if index % stride == 0:
                yield image, index / fps
            index += 1
    finally:
        capture.release()


def _frame(image: Any, index: int, media_time: float) -> Any:
    from facelens.edge.types import Frame

    return Frame(image, index, media_time, datetime.now(UTC), float(index))


def _old_module(rev: str, path: str, name: str) -> types.ModuleType:
    """A module of the repository at ``rev``, loaded from ``git show`` under ``name``."""
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=REPO_ROOT, check=True, capture_output=True
    ).stdout.decode()
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module


def run_after(clip: Path, detector: Any, check: Any, stride: int = 1) -> ClipRun:
    """The loop of ``EdgeRunner.process`` with today's tracker, gate and picker."""
    from facelens.config import EdgeSettings
    from facelens.edge.crops import encode_crop
    from facelens.edge.picking import CropPicker, LookPolicy
    from facelens.edge.quality_gate import GateLimits, QualityGate
    from facelens.edge.tracking import Tracker

    e = EdgeSettings()
    tracker = Tracker(iou_threshold=e.iou_threshold, timeout=e.track_timeout_seconds)
    gate = QualityGate(GateLimits.from_settings(e), confirm=check)
    picker = CropPicker(
        gate=gate,
        policy=LookPolicy(
            max_looks=e.max_looks,
            min_look_seconds=e.min_look_seconds,
            better_by=e.better_look_margin,
            new_pose_degrees=e.new_pose_degrees,
            reupload_seconds=e.reupload_seconds,
        ),
        margin=e.margin,
    )
    # A shadow gate with the crop check, for tracks seen once (the picker never asks).
    shadow = QualityGate(GateLimits.from_settings(e), confirm=check)
    run = ClipRun()
    first_seen: dict[int, int] = {}
    hits: Counter[int] = Counter()
    first_face: dict[int, Any] = {}
    looked: set[str] = set()
    for index, (image, t) in enumerate(_frames(clip, stride)):
        frame = _frame(image, index, t)
        update = tracker.update(detector.detect(image).faces, t, image)
        for track_id in update.ended:
            _single_hit(run, shadow, hits, first_face, track_id)
        picker.end(update.ended)
        for a in update.assignments:
            first_seen.setdefault(a.track_id, index)
            hits[a.track_id] += 1
            first_face.setdefault(a.track_id, (frame, a.face))
            for crop in picker.observe(frame, a.track_id, a.face):
                pending = encode_crop(crop, thing="bench", index=0, template="{index}")
                run.looks.append((crop.visit_id, pending.body))
                if crop.visit_id not in looked:
                    looked.add(crop.visit_id)
                    run.first_look_frames.append(index - first_seen[a.track_id])
    for track_id in tracker.end_all():
        _single_hit(run, shadow, hits, first_face, track_id)
    run.tracks = tracker.started
    run.refused = Counter({str(k): v for k, v in gate.refused.items()})
    return run


def _single_hit(
    run: ClipRun, shadow: Any, hits: Counter[int], first_face: dict[int, Any], track_id: int
) -> None:
    from facelens.edge.picking import crop_region, cut

    if hits[track_id] != 1:
        return
    frame, face = first_face[track_id]
    region = crop_region(face.box, margin=0.3, width=frame.width, height=frame.height)
    image = cut(frame.image, region)
    if shadow.assess(image, face, region).passed and shadow.confirm(image, face, region):
        run.single_hit_passing += 1


def run_before(clip: Path, detector: Any, check: Any, rev: str, stride: int = 1) -> ClipRun:
    """The same loop with the tracker and picker of ``rev`` (best-of window, no gate)."""
    import cv2

    picking = _old_module(rev, "src/facelens/edge/picking.py", "_before_picking")
    tracking = _old_module(rev, "src/facelens/edge/tracking.py", "_before_tracking")
    tracker = tracking.Tracker(iou_threshold=0.2, timeout=1.0)  # that commit's defaults
    picker = picking.CropPicker(
        best_of=0.5,
        reupload=30.0,
        margin=0.3,
        verify=lambda crop: check(crop.image, crop.face, crop.region),
    )
    run = ClipRun()
    first_seen: dict[int, int] = {}
    looked: set[int] = set()

    def take(crops: list[Any], index: int) -> None:
        for crop in crops:
            ok, body = cv2.imencode(".jpg", crop.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            run.looks.append((str(crop.track_id), body.tobytes()))
            if crop.track_id not in looked:
                looked.add(crop.track_id)
                run.first_look_frames.append(index - first_seen[crop.track_id])

    index = 0
    for index, (image, t) in enumerate(_frames(clip, stride)):
        frame = _frame(image, index, t)
        update = tracker.update(detector.detect(image).faces, t)
        for a in update.assignments:
            first_seen.setdefault(a.track_id, index)
            picker.observe(frame, a.track_id, a.face)
        take(picker.end(update.ended), index)
        take(picker.due(t), index)
    take(picker.end(tracker.end_all()), index)
    run.tracks = tracker.started
    return run


def summarize(run: ClipRun, people: int, finds_face: Callable[[bytes], bool]) -> dict[str, Any]:
    per_visit = Counter(visit for visit, _ in run.looks)
    found = sum(finds_face(body) for _, body in run.looks)
    return {
        "tracks_started": run.tracks,
        "real_people_hand_count": people,
        "visits_per_real_person": round(run.tracks / people, 2),
        "visits_with_a_look": len(per_visit),
        "looks_uploaded": len(run.looks),
        "looks_per_uploading_visit": (
            round(statistics.fmean(per_visit.values()), 2) if per_visit else 0.0
        ),
        "most_looks_in_a_visit": max(per_visit.values(), default=0),
        "looks_refused_by_reason": dict(sorted(run.refused.items())),
        "uploaded_looks_with_a_face_for_the_recognizer": found,
        "share_with_a_face": round(found / len(run.looks), 3) if run.looks else None,
        "single_sighting_tracks_that_would_pass_the_gate": run.single_hit_passing,
        "processed_frames_to_first_look_median": (
            statistics.median(run.first_look_frames) if run.first_look_frames else None
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before-rev", default=BEFORE_REV, help="commit of the 'before' code")
    args = parser.parse_args()

    import cv2
    import numpy as np

    from facelens.config import Settings
    from facelens.edge.detection import CropCheck, FrameDetector, build_edge_detector
    from facelens.engine.registry import build_detector, build_engine

    settings = Settings(detector="yunet")
    e = settings.edge
    detector = FrameDetector(
        build_edge_detector(settings), detect_side=e.detect_side, min_confidence=e.min_confidence
    )
    detector.prepare()
    check = CropCheck(build_detector(settings), jpeg_quality=e.jpeg_quality)
    check.prepare()
    engine = build_engine(settings)
    engine.prepare()

    def finds_face(body: bytes) -> bool:
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return False
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        return bool(engine.detect(rgb))

    clips: dict[str, Any] = {}
    for name, people in CLIPS.items():
        clip = testdata_dir() / "video" / name
        for stride in (1, 3):
            label = name if stride == 1 else f"{name}, every {stride}rd frame"
            before = run_before(clip, detector, check, args.before_rev, stride)
            after = run_after(clip, detector, check, stride)
            clips[label] = {
                "before": summarize(before, people, finds_face),
                "after": summarize(after, people, finds_face),
            }
            print(label, clips[label], flush=True)
    write_result(
        "edge_visits",
        {
            "machine": machine_facts(),
            "models_dir": os.environ.get("FACELENS_MODELS_DIR"),
            "detector": "yunet",
            "before_rev": args.before_rev,
            "settings": e.model_dump(
                include={
                    "min_eye_distance",
                    "max_yaw",
                    "max_pitch",
                    "min_sharpness",
                    "max_looks",
                    "min_look_seconds",
                    "better_look_margin",
                    "new_pose_degrees",
                    "track_timeout_seconds",
                    "iou_threshold",
                }
            ),
            "clips": clips,
        },
    )


if __name__ == "__main__":
    main()
