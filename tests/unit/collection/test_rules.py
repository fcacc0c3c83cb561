"""Similarity calibration, quality filter and parameter validation: pure functions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facelens.collection import similarity, validation
from facelens.collection.models import QualityFilter, UnindexedReason
from facelens.collection.quality_filter import BARS, quality_reasons
from facelens.engine.types import DetectedFace, FaceDetail, Landmarks, Point, Pose, Quality
from facelens.errors import InvalidParameterException
from facelens.values.boxes import BoundingBox, PixelBox


def test_similarity_is_monotone_and_bounded() -> None:
    distances = np.linspace(0, 2, 201)
    values = [similarity.similarity(float(d)) for d in distances]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[0] > 99.9
    assert values[-1] >= 0


@pytest.mark.parametrize("threshold", [1.0, 50.0, 75.0, 80.0, 99.0])
def test_distance_for_similarity_inverts_similarity(threshold: float) -> None:
    distance = similarity.distance_for_similarity(threshold)
    assert similarity.similarity(distance) == pytest.approx(threshold, abs=1e-6)
    assert similarity.similarity(distance + 1e-3) < threshold


def test_threshold_80_sits_at_the_calibrated_distance() -> None:
    assert similarity.distance_for_similarity(80) == pytest.approx(similarity.DISTANCE_AT_80)
    assert similarity.distance_for_similarity(50) == pytest.approx(similarity.MIDPOINT)
    assert similarity.distance_for_similarity(0) == 2.0
    assert similarity.distance_for_similarity(100) == 0.0


def _detail(
    *,
    confidence: float = 99,
    size: float = 200,
    sharp: float = 90,
    bright: float = 50,
    yaw: float = 0,
) -> FaceDetail:
    p = Point(0, 0)
    face = DetectedFace(PixelBox(0, 0, size, size), Landmarks(p, p, p, p, p), confidence)
    return FaceDetail(
        face, BoundingBox(0.5, 0.5, 0, 0), Pose(0, yaw, 0), Quality(bright, sharp), 400, 400
    )


def test_quality_filter_levels_get_stricter() -> None:
    order = [QualityFilter.LOW, QualityFilter.AUTO, QualityFilter.MEDIUM, QualityFilter.HIGH]
    for looser, stricter in itertools.pairwise(order):
        a, b = BARS[looser], BARS[stricter]
        assert a is not None
        assert b is not None
        assert a.min_confidence <= b.min_confidence
        assert a.min_face_pixels <= b.min_face_pixels
        assert a.max_pose_degrees >= b.max_pose_degrees


def test_quality_reasons() -> None:
    assert quality_reasons(_detail(), QualityFilter.HIGH) == ()
    bad = _detail(confidence=10, size=10, sharp=1, bright=1, yaw=80)
    assert set(quality_reasons(bad, QualityFilter.AUTO)) == {
        UnindexedReason.LOW_CONFIDENCE,
        UnindexedReason.SMALL_BOUNDING_BOX,
        UnindexedReason.LOW_SHARPNESS,
        UnindexedReason.LOW_BRIGHTNESS,
        UnindexedReason.EXTREME_POSE,
    }
    assert quality_reasons(bad, QualityFilter.NONE) == ()
    assert quality_reasons(_detail(yaw=40), QualityFilter.AUTO) == ()
    assert quality_reasons(_detail(yaw=40), QualityFilter.HIGH) == (UnindexedReason.EXTREME_POSE,)


@pytest.mark.parametrize("good", ["a", "My.Collection_1-x", "x" * 255])
def test_collection_ids_that_pass(good: str) -> None:
    assert validation.collection_id(good) == good


@pytest.mark.parametrize("bad", ["", "has space", "x" * 256, "slash/", "ü"])
def test_collection_ids_that_fail(bad: str) -> None:
    with pytest.raises(InvalidParameterException, match="CollectionId"):
        validation.collection_id(bad)


def test_external_image_id_allows_colons_and_none() -> None:
    assert validation.external_image_id("cam:1") == "cam:1"
    assert validation.external_image_id(None) is None
    with pytest.raises(InvalidParameterException):
        validation.external_image_id("no spaces")


def test_face_ids_are_uuids_deduplicated_and_bounded() -> None:
    uid = "0b8c5bd1-8d0b-4f5e-9c52-3d7b5d0c9a11"
    assert validation.face_ids([uid, uid], limit=5) == [uid]
    for bad in ([], ["nope"], [uid] * 6):
        with pytest.raises(InvalidParameterException):
            validation.face_ids(bad, limit=5)


def test_quality_filter_parsing() -> None:
    assert validation.quality_filter("auto") is QualityFilter.AUTO
    with pytest.raises(InvalidParameterException):
        validation.quality_filter("BEST")
