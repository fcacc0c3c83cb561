"""Looks of a visit: the first identifiable one in the frame it is seen, then a few better
or different ones, bounded per visit and per second; every crop names its visit and look."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import count

import cv2
import numpy as np
import pytest

from facelens.edge.crops import DEFAULT_KEY_TEMPLATE, check_key_template, encode_crop
from facelens.edge.picking import ChosenCrop, CropPicker, LookPolicy, crop_region, cut
from facelens.edge.quality_gate import QualityGate, Refusal
from facelens.edge.types import Frame
from facelens.engine.types import DetectedFace, Landmarks, Point
from facelens.errors import ConfigurationError, InvalidParameterException
from facelens.storage.crops import CropMetadata
from facelens.values.boxes import PixelBox

WIDTH, HEIGHT = 640, 360


def frontal_face(
    left: float, top: float, size: float, confidence: float = 95.0, turn: float = 0.0
) -> DetectedFace:
    """A face box with landmarks where an upright face has them; ``turn`` moves the nose
    sideways by that fraction of the box (0: frontal; 0.08: about 25° of yaw)."""

    def at(fx: float, fy: float) -> Point:
        return Point(left + fx * size, top + fy * size)

    return DetectedFace(
        PixelBox(left, top, left + size, top + size),
        Landmarks(
            at(0.3, 0.38), at(0.7, 0.38), at(0.5 + turn, 0.58), at(0.35, 0.78), at(0.65, 0.78)
        ),
        confidence,
    )


def textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)


SHARP = textured()
BLURRED = np.asarray(cv2.GaussianBlur(SHARP, (0, 0), 1.5), dtype=np.uint8)


def frame(index: int, t: float, image: np.ndarray | None = None) -> Frame:
    return Frame(
        image=SHARP if image is None else image,
        index=index,
        media_time=t,
        captured_at=datetime(2026, 3, 7, 9, 5, 3, tzinfo=UTC),
        monotonic=float(index),
    )


def picker(**policy: float) -> CropPicker:
    ids = count()
    return CropPicker(policy=LookPolicy(**policy), new_visit_id=lambda: f"visit-{next(ids)}")  # type: ignore[arg-type]


def test_crop_region_adds_the_margin_and_clips() -> None:
    box = PixelBox(100, 50, 200, 150)
    assert crop_region(box, margin=0.25, width=WIDTH, height=HEIGHT) == PixelBox(75, 25, 225, 175)
    edge = crop_region(PixelBox(0, 300, 50, 360), margin=0.5, width=WIDTH, height=HEIGHT)
    assert edge == PixelBox(0, 270, 75, 360)
    assert cut(textured(), edge).shape == (90, 75, 3)


def test_the_first_look_goes_in_the_frame_it_passes() -> None:
    p = picker()
    face = frontal_face(200, 100, 120)
    assert p.observe(frame(0, 0.0), 1, face) == []  # seen once: maybe a false positive
    [crop] = p.observe(frame(1, 1 / 30), 1, face)
    assert (crop.frame_index, crop.look, crop.visit_id, crop.track_id) == (1, 0, "visit-0", 1)
    assert 0 < crop.score <= 1
    assert p.visit_of(1) == "visit-0"


def test_an_unidentifiable_look_waits_for_an_identifiable_one() -> None:
    p = picker()
    profile = frontal_face(200, 100, 120, turn=0.3)
    sent = [c for i in range(4) for c in p.observe(frame(i, i / 30), 1, profile)]
    assert sent == []
    [crop] = p.observe(frame(4, 4 / 30), 1, frontal_face(200, 100, 120))
    assert crop.look == 0
    assert p.gate.refused[Refusal.TURNED] == 3


def test_later_looks_are_bounded_per_visit_and_per_second_and_only_better_or_new() -> None:
    p = picker(max_looks=3, min_look_seconds=0.5, better_by=0.25, new_pose_degrees=20)
    sent: list[ChosenCrop] = []
    # Three seconds at 30 fps: a blurred face at first, the same face sharp from frame 10,
    # then turned about 25° from frame 40 on.
    for i in range(90):
        image = BLURRED if i < 10 else SHARP
        face = frontal_face(200, 100, 120, turn=0.08 if i >= 40 else 0.0)
        sent += p.observe(frame(i, i / 30, image), 1, face)
    # Look 0 at once (blurred, frame 1); the sharp face is better, but only 0.5 s later
    # (frame 16); the turned one is a new pose (frame 40); then the budget is spent.
    assert [c.frame_index for c in sent] == [1, 16, 40]
    assert [c.look for c in sent] == [0, 1, 2]
    assert {c.visit_id for c in sent} == {"visit-0"}
    assert sent[1].score > sent[0].score * 1.25


def test_a_look_no_better_and_no_different_is_not_sent() -> None:
    p = picker(max_looks=4, min_look_seconds=0.1)
    face = frontal_face(200, 100, 120)
    sent = [c for i in range(60) for c in p.observe(frame(i, i / 30), 1, face)]
    assert [c.look for c in sent] == [0]


def test_a_long_visit_sends_again_every_reupload_seconds() -> None:
    p = picker(max_looks=1, reupload_seconds=2.0)
    face = frontal_face(200, 100, 120)
    sent = [c for i in range(20) for c in p.observe(frame(i, i * 0.25), 1, face)]  # 4 fps
    assert [c.frame_index for c in sent] == [1, 9, 17]


def test_each_track_is_its_own_visit_and_an_ended_one_is_forgotten() -> None:
    p = picker()
    a, b = frontal_face(50, 50, 100), frontal_face(350, 50, 100)
    sent = [
        c
        for i in range(2)
        for track, f in ((1, a), (2, b))
        for c in p.observe(frame(i, i / 30), track, f)
    ]
    assert [(c.track_id, c.visit_id) for c in sent] == [(1, "visit-0"), (2, "visit-1")]
    assert p.end([1, 99]) == ["visit-0"]
    assert p.visit_of(1) is None
    assert p.visits_started == 2


def test_a_look_the_crop_check_refuses_is_not_sent_and_rechecked_later() -> None:
    answers = iter([False, True])
    checked: list[int] = []

    def confirm(image: np.ndarray, face: DetectedFace, region: PixelBox) -> bool:
        checked.append(1)
        return next(answers)

    p = CropPicker(gate=QualityGate(confirm=confirm))
    face = frontal_face(200, 100, 120)
    sent = [c for i in range(6) for c in p.observe(frame(i, i / 30), 1, face)]
    # refused at frame 1; not checked again for 0.1 s (frames 2-3); sent at frame 4
    assert [c.frame_index for c in sent] == [4]
    assert len(checked) == 2
    assert p.gate.refused[Refusal.NO_FACE] == 1


def test_bad_policies_are_refused() -> None:
    with pytest.raises(InvalidParameterException):
        LookPolicy(max_looks=0)
    with pytest.raises(InvalidParameterException):
        LookPolicy(reupload_seconds=0)


def test_encoded_crop_key_layout_and_metadata() -> None:
    p = picker()
    face = frontal_face(200, 100, 120, confidence=97.0)
    [crop] = [c for i in range(2) for c in p.observe(frame(i, i / 30), 3, face)]
    pending = encode_crop(crop, thing="door", index=12, template=DEFAULT_KEY_TEMPLATE)
    assert re.fullmatch(r"faces/3_7/9_5/\d{13}_12\.jpg", pending.key)
    assert pending.key.split("/")[-1].startswith(str(int(crop.captured_at.timestamp() * 1000)))
    image = cv2.imdecode(np.frombuffer(pending.body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the crop does not decode"
    assert image.shape == crop.image.shape
    meta = CropMetadata.from_metadata(pending.metadata)
    assert meta.camera == "door"
    assert meta.track_id == "3"
    assert meta.confidence == pytest.approx(0.97)
    assert meta.captured_at == crop.captured_at
    assert meta.frame_box == face.box
    assert meta.visit_id == "visit-0"
    assert meta.look == 0
    assert meta.look_quality == pytest.approx(crop.score, abs=1e-4)
    keyed = encode_crop(crop, thing="door", index=1, template="faces/{visit}/{look}.jpg")
    assert keyed.key == "faces/visit-0/0.jpg"


def test_key_templates_are_checked() -> None:
    assert check_key_template("faces/{thing}/{timestamp}_{index}.jpg")
    assert check_key_template("faces/{visit}/{look}.jpg")
    with pytest.raises(ConfigurationError):
        check_key_template("faces/{nope}.jpg")
    with pytest.raises(ConfigurationError):
        check_key_template("faces/{unclosed.jpg")
