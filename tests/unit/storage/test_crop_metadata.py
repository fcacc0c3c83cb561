"""The crop metadata the edge writes and the recognizer reads: visit fields round-trip, and
a value another uploader wrote badly is dropped rather than trusted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from facelens.storage.crops import CropMetadata
from facelens.values.boxes import PixelBox


def test_visit_fields_round_trip_through_s3_style_metadata() -> None:
    written = CropMetadata(
        camera="door",
        captured_at=datetime(2026, 12, 8, 3, 0, tzinfo=UTC),
        track_id="7",
        confidence=0.91,
        frame_box=PixelBox(10, 20, 110, 140),
        visit_id="5f0c4b7e9a2d4c1f8e3b6a7d9c0e1f2a",
        look=2,
        look_quality=0.4375,
    )
    # S3 lower-cases user metadata names on the way back.
    read = CropMetadata.from_metadata({k.upper(): v for k, v in written.to_metadata().items()})
    assert read == written


@pytest.mark.parametrize(
    ("visit", "look", "quality"),
    [("", "-1", "1.5"), ("a\x00b", "x", "nan"), ("v" * 129, "1e9", "-0.1")],
)
def test_malformed_visit_fields_are_dropped(visit: str, look: str, quality: str) -> None:
    read = CropMetadata.from_metadata({"visit-id": visit, "look": look, "look-quality": quality})
    assert (read.visit_id, read.look, read.look_quality) == (None, None, None)


def test_a_crop_without_visit_fields_is_a_visit_of_one_look() -> None:
    read = CropMetadata.from_metadata({"thing": "door"})
    assert (read.camera, read.visit_id, read.look, read.look_quality) == ("door", None, None, None)
