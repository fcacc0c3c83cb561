"""The quality gate: a frontal face passes; a profile, a bent head, a blur, a tiny face and a
look the recognizer's detector finds no face in (a back of a head) are refused, each with
its reason."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelens.edge.picking import crop_region, cut
from facelens.edge.quality_gate import GateLimits, QualityGate, Refusal, look_score
from facelens.engine.types import DetectedFace, Landmarks, Point
from facelens.values.boxes import PixelBox

IMAGE = np.random.default_rng(0).integers(0, 255, size=(360, 640, 3), dtype=np.uint8)


def face(
    size: float = 120.0, *, nose_x: float = 0.5, nose_y: float = 0.58, left: float = 200.0
) -> DetectedFace:
    def at(fx: float, fy: float) -> Point:
        return Point(left + fx * size, 100 + fy * size)

    return DetectedFace(
        PixelBox(left, 100, left + size, 100 + size),
        Landmarks(at(0.3, 0.38), at(0.7, 0.38), at(nose_x, nose_y), at(0.35, 0.78), at(0.65, 0.78)),
        95.0,
    )


def assess(gate: QualityGate, f: DetectedFace, image: np.ndarray = IMAGE) -> Refusal | None:
    region = crop_region(f.box, margin=0.3, width=640, height=360)
    return gate.assess(cut(image, region), f, region).refusal


def test_a_frontal_face_passes() -> None:
    gate = QualityGate()
    f = face()
    region = crop_region(f.box, margin=0.3, width=640, height=360)
    measured = gate.assess(cut(IMAGE, region), f, region)
    assert measured.passed
    assert measured.eye_distance == pytest.approx(48)
    assert abs(measured.yaw) < 5
    assert abs(measured.pitch) < 10
    assert 0 < measured.score <= 1
    assert gate.confirm(cut(IMAGE, region), f, region)
    assert gate.passed == 1


@pytest.mark.parametrize(
    ("look", "reason"),
    [
        (face(nose_x=0.78), Refusal.TURNED),  # nose past the eye: a profile
        (face(nose_x=0.22), Refusal.TURNED),
        (face(nose_y=0.72), Refusal.TILTED),  # nose near the mouth: head bent down
        (face(size=18), Refusal.SMALL),  # 7.2 px between the eyes
    ],
)
def test_unidentifiable_looks_are_refused_with_their_reason(
    look: DetectedFace, reason: Refusal
) -> None:
    gate = QualityGate()
    assert assess(gate, look) == reason
    assert gate.refused == {reason: 1}


def test_a_face_cut_by_the_frames_edge_is_refused() -> None:
    gate = QualityGate()
    f = face(left=520)  # its box reaches x = 640
    region = crop_region(f.box, margin=0.3, width=640, height=360)
    measured = gate.assess(cut(IMAGE, region), f, region, frame_size=(640, 360))
    assert measured.refusal == Refusal.CUT
    inside = face(left=500)
    region = crop_region(inside.box, margin=0.3, width=640, height=360)
    assert gate.assess(cut(IMAGE, region), inside, region, frame_size=(640, 360)).passed


def test_a_blurred_face_is_refused() -> None:
    blurred = np.asarray(cv2.GaussianBlur(IMAGE, (0, 0), 6), dtype=np.uint8)
    assert assess(QualityGate(), face(), blurred) == Refusal.BLURRED
    assert assess(QualityGate(GateLimits(min_sharpness=0)), face(), blurred) is None


def test_a_look_the_recognizers_detector_finds_no_face_in_is_refused() -> None:
    gate = QualityGate(confirm=lambda image, f, region: False)  # a back of a head
    f = face()
    region = crop_region(f.box, margin=0.3, width=640, height=360)
    assert gate.assess(cut(IMAGE, region), f, region).passed  # its landmarks look frontal
    assert not gate.confirm(cut(IMAGE, region), f, region)
    assert gate.refused == {Refusal.NO_FACE: 1}


def test_look_score_prefers_large_sharp_frontal_confident_faces() -> None:
    best = look_score(side=150, sharpness=90, yaw=0, pitch=0, confidence=95)
    assert 0 < best <= 1
    assert look_score(side=40, sharpness=90, yaw=0, pitch=0, confidence=95) < best
    assert look_score(side=150, sharpness=10, yaw=0, pitch=0, confidence=95) < best
    assert look_score(side=150, sharpness=90, yaw=40, pitch=0, confidence=95) < best
    assert look_score(side=150, sharpness=90, yaw=0, pitch=0, confidence=60) < best
