"""Pose, quality, 5-point alignment and the downscale-and-map-back of the pipeline."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from facelens.engine.dlib_embedder import (
    ALIGN_TEMPLATE,
    CHIP_SIZE,
    DlibEmbedder,
    similarity_transform,
)
from facelens.engine.pipeline import PipelineEngine
from facelens.engine.quality import estimate_pose, estimate_quality
from facelens.engine.types import DetectedFace, Landmarks, Point, RGBImage
from facelens.errors import EngineError
from facelens.values.boxes import PixelBox


def landmarks(points: np.ndarray) -> Landmarks:
    return Landmarks(*(Point(float(x), float(y)) for x, y in points))


def test_frontal_template_has_no_pose() -> None:
    pose = estimate_pose(landmarks(ALIGN_TEMPLATE))
    assert abs(pose.roll) < 0.5
    assert abs(pose.yaw) < 0.5
    assert abs(pose.pitch) < 1.0


@pytest.mark.parametrize("degrees", [-30.0, -10.0, 15.0, 40.0])
def test_roll_follows_the_eye_line(degrees: float) -> None:
    angle = math.radians(degrees)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    pose = estimate_pose(landmarks(ALIGN_TEMPLATE @ rot.T * 2.5 + 300))
    assert pose.roll == pytest.approx(degrees, abs=0.01)
    assert abs(pose.yaw) < 1
    assert abs(pose.pitch) < 2


def test_nose_off_centre_is_yaw_and_nose_up_is_pitch() -> None:
    turned = ALIGN_TEMPLATE.copy()
    turned[2, 0] += 15
    assert estimate_pose(landmarks(turned)).yaw > 20
    turned[2, 0] -= 30
    assert estimate_pose(landmarks(turned)).yaw < -20
    up = ALIGN_TEMPLATE.copy()
    up[2, 1] -= 12
    assert estimate_pose(landmarks(up)).pitch > 20


def _face(box: PixelBox) -> DetectedFace:
    return DetectedFace(box, landmarks(ALIGN_TEMPLATE), 99.0)


def test_quality_brightness_and_sharpness() -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (200, 200), dtype=np.uint8)
    sharp = np.repeat(texture[:, :, None], 3, axis=2)
    blurred = np.asarray(cv2.GaussianBlur(sharp, (0, 0), 4), dtype=np.uint8)  # uint8 in, uint8 out
    box = PixelBox(20, 20, 180, 180)
    q_sharp, q_blur = estimate_quality(sharp, _face(box)), estimate_quality(blurred, _face(box))
    assert q_sharp.sharpness > 90 > 20 > q_blur.sharpness
    dark = np.full((200, 200, 3), 10, np.uint8)
    white = np.full((200, 200, 3), 250, np.uint8)
    assert estimate_quality(dark, _face(box)).brightness < 5
    assert estimate_quality(white, _face(box)).brightness > 95
    # a box entirely outside the image scores zero rather than failing
    assert estimate_quality(white, _face(PixelBox(500, 500, 600, 600))).sharpness == 0


def test_similarity_transform_recovers_rotation_scale_and_shift() -> None:
    angle = math.radians(25)
    matrix = np.array(
        [
            [2 * math.cos(angle), -2 * math.sin(angle), 40],
            [2 * math.sin(angle), 2 * math.cos(angle), -7],
        ]
    )
    src = ALIGN_TEMPLATE
    dst = src @ matrix[:, :2].T + matrix[:, 2]
    assert np.allclose(similarity_transform(src, dst), matrix, atol=1e-9)
    with pytest.raises(EngineError):
        similarity_transform(np.zeros((5, 2)), dst)


def test_align_puts_the_landmarks_on_the_template() -> None:
    """Draw five dots, rotate and scale the picture, align: the dots land on the template."""
    image = np.zeros((400, 400, 3), np.uint8)
    angle = math.radians(-20)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = ALIGN_TEMPLATE @ rot.T * 1.7 + 120
    for x, y in points:
        cv2.circle(image, (round(x), round(y)), 3, (255, 255, 255), -1)
    chip = DlibEmbedder().align(
        image, DetectedFace(PixelBox(0, 0, 400, 400), landmarks(points), 99)
    )
    assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3)
    for x, y in ALIGN_TEMPLATE:
        assert chip[round(y), round(x)].max() > 100


class _FixedDetector:
    """Reports one face at fixed coordinates of whatever image it is given."""

    name = "fixed"

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def prepare(self) -> None:
        pass

    def detect(self, image: RGBImage, *, largest_only: bool = False) -> list[DetectedFace]:
        h, w = image.shape[:2]
        self.seen.append((w, h))
        box = PixelBox(w * 0.25, h * 0.5, w * 0.5, h * 0.75)
        return [
            DetectedFace(
                box, landmarks(ALIGN_TEMPLATE / 150 * (w * 0.25) + [w * 0.25, h * 0.5]), 90
            )
        ]


def test_large_images_are_detected_downscaled_and_mapped_back_exactly() -> None:
    detector = _FixedDetector()
    engine = PipelineEngine(detector, DlibEmbedder(), detect_max_side=500)
    image = np.zeros((1001, 3001, 3), np.uint8)
    (face,) = engine.detect(image)
    assert max(detector.seen[0]) == 500
    box = face.face.box
    assert (box.left, box.top, box.right, box.bottom) == pytest.approx(
        (750.25, 500.5, 1500.5, 750.75)
    )
    assert face.bounding_box.left == pytest.approx(0.25)
    assert face.bounding_box.height == pytest.approx(0.25)
    assert (face.image_width, face.image_height) == (3001, 1001)
    # small images are passed through untouched
    engine.detect(np.zeros((300, 400, 3), np.uint8))
    assert detector.seen[1] == (400, 300)


def test_flip_averaging_makes_the_embedding_mirror_invariant() -> None:
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    chip = np.asarray(cv2.GaussianBlur(noise, (0, 0), 2), dtype=np.uint8)  # uint8 in, uint8 out
    mirrored = np.ascontiguousarray(chip[:, ::-1])
    flipping = DlibEmbedder(flip=True)
    a, b = flipping.embed([chip, mirrored])
    assert np.allclose(a, b, atol=1e-5)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    plain = DlibEmbedder(flip=False).embed([chip, mirrored])
    assert plain.shape == (2, 128)
    assert plain.dtype == np.float32
    assert not np.allclose(plain[0], plain[1], atol=1e-3)
    assert flipping.embed([]).shape == (0, 128)
