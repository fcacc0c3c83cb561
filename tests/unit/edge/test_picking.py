"""Crop picking: the best crop of a track's first window, again every N seconds, never per frame."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from facelens.edge.crops import DEFAULT_KEY_TEMPLATE, check_key_template, encode_crop
from facelens.edge.picking import CropPicker, crop_region, crop_score, cut
from facelens.edge.types import Frame
from facelens.engine.types import DetectedFace, Landmarks, Point
from facelens.errors import ConfigurationError
from facelens.storage.crops import CropMetadata
from facelens.values.boxes import PixelBox

WIDTH, HEIGHT = 640, 360


def frontal_face(left: float, top: float, size: float, confidence: float = 95.0) -> DetectedFace:
    """A face box with landmarks where a frontal, upright face has them."""

    def at(fx: float, fy: float) -> Point:
        return Point(left + fx * size, top + fy * size)

    return DetectedFace(
        PixelBox(left, top, left + size, top + size),
        Landmarks(at(0.3, 0.38), at(0.7, 0.38), at(0.5, 0.58), at(0.35, 0.78), at(0.65, 0.78)),
        confidence,
    )


def textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)


def frame(index: int, t: float, image: np.ndarray | None = None) -> Frame:
    return Frame(
        image=textured() if image is None else image,
        index=index,
        media_time=t,
        captured_at=datetime(2026, 3, 7, 9, 5, 3, tzinfo=UTC),
        monotonic=float(index),
    )


def test_crop_region_adds_the_margin_and_clips() -> None:
    box = PixelBox(100, 50, 200, 150)
    assert crop_region(box, margin=0.25, width=WIDTH, height=HEIGHT) == PixelBox(75, 25, 225, 175)
    edge = crop_region(PixelBox(0, 300, 50, 360), margin=0.5, width=WIDTH, height=HEIGHT)
    assert edge == PixelBox(0, 270, 75, 360)
    assert cut(textured(), edge).shape == (90, 75, 3)


def test_sharp_large_frontal_crops_score_higher() -> None:
    image = textured()
    face = frontal_face(200, 100, 120)
    region = crop_region(face.box, margin=0.3, width=WIDTH, height=HEIGHT)
    sharp = crop_score(cut(image, region), face, region)
    blurred_image = np.asarray(cv2.GaussianBlur(image, (0, 0), 4), dtype=np.uint8)  # uint8 stays
    blurred = crop_score(cut(blurred_image, region), face, region)
    small_face = frontal_face(200, 100, 40)
    small_region = crop_region(small_face.box, margin=0.3, width=WIDTH, height=HEIGHT)
    small = crop_score(cut(image, small_region), small_face, small_region)
    turned = DetectedFace(
        face.box,
        Landmarks(
            Point(230, 145), Point(270, 145), Point(300, 170), Point(240, 194), Point(276, 194)
        ),
        face.confidence,
    )
    turned_score = crop_score(cut(image, region), turned, region)
    assert 0 < blurred < sharp <= 1
    assert small < sharp
    assert turned_score < sharp


def test_one_upload_per_window_and_the_best_of_it() -> None:
    picker = CropPicker(best_of=0.5, reupload=2.0, margin=0.3)
    sharp, blurred = textured(), cv2.GaussianBlur(textured(), (0, 0), 4)
    chosen = []
    for i in range(90):  # 3 s at 30 fps; the sharp frame is number 7
        t = i / 30
        picker.observe(frame(i, t, sharp if i == 7 else blurred), 1, frontal_face(200, 100, 120))
        chosen += picker.due(t)
    # windows open at 0 s and 2 s: two uploads in three seconds, not ninety
    assert [c.frame_index for c in chosen][:1] == [7]
    assert [c.upload for c in chosen] == [0, 1]
    assert 60 <= chosen[1].frame_index < 60 + 15


def test_a_track_seen_once_uploads_nothing() -> None:
    picker = CropPicker(best_of=0.0)
    picker.observe(frame(0, 0.0), 1, frontal_face(200, 100, 120))
    assert picker.due(0.0) == []
    assert picker.end([1]) == []


def test_a_track_that_ends_early_uploads_its_best() -> None:
    picker = CropPicker(best_of=5.0)
    for i in range(3):
        picker.observe(frame(i, i / 30), 4, frontal_face(200, 100, 120))
    assert picker.due(0.1) == []
    [crop] = picker.end([4])
    assert crop.track_id == 4
    assert picker.end([4]) == []


def test_encoded_crop_key_layout_and_metadata() -> None:
    picker = CropPicker(best_of=0.0)
    face = frontal_face(200, 100, 120, confidence=97.0)
    for i in range(2):
        picker.observe(frame(i, i / 30), 3, face)
    [crop] = picker.due(1 / 30)
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


def test_key_templates_are_checked() -> None:
    assert check_key_template("faces/{thing}/{timestamp}_{index}.jpg")
    with pytest.raises(ConfigurationError):
        check_key_template("faces/{nope}.jpg")
    with pytest.raises(ConfigurationError):
        check_key_template("faces/{unclosed.jpg")


def test_an_unknown_answer_gets_the_next_candidate_a_limited_number_of_times() -> None:
    picker = CropPicker(best_of=5.0, unknown_retries=1)
    for i, blur in enumerate((0, 4, 8)):  # three candidates, best (sharpest) first
        image = textured() if blur == 0 else cv2.GaussianBlur(textured(), (0, 0), blur)
        picker.observe(frame(i, i / 30, image), 7, frontal_face(200, 100, 120))
    [first] = picker.end([7])  # the track ended before its window closed
    assert first.frame_index == 0
    [second] = picker.retry(7)
    assert second.frame_index == 1
    assert picker.retry(7) == []  # one retry allowed
    assert picker.retry(99) == []  # no such track
