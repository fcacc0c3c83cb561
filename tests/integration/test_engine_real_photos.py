"""The default dlib engine on real photos: geometry, quality and the largest-only shortcut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens.engine.images import read_image_file
from facelens.engine.protocol import FaceEngine
from facelens.engine.types import RGBImage


def load(testdata: Path, relative: str) -> RGBImage:
    return read_image_file(testdata / relative, max_bytes=15 << 20, max_pixels=50_000_000).pixels


@pytest.mark.parametrize(
    "relative", ["people/obama/obama_1.jpg", "people/obama/obama_small.jpg", "hard/rgba_32bit.png"]
)
def test_one_upright_face_with_sane_geometry(
    engine: FaceEngine, testdata: Path, relative: str
) -> None:
    image = load(testdata, relative)
    (face,) = engine.detect(image)
    box, lm = face.face.box, face.face.landmarks
    assert lm.eye_left.x < lm.eye_right.x
    assert lm.mouth_left.x < lm.mouth_right.x
    assert max(lm.eye_left.y, lm.eye_right.y) < lm.nose.y < min(lm.mouth_left.y, lm.mouth_right.y)
    for point in lm.as_named().values():
        assert box.left <= point.x <= box.right
        assert box.top <= point.y <= box.bottom
    assert face.confidence > 88
    assert abs(face.pose.roll) < 20
    assert abs(face.pose.yaw) < 40  # obama_2 (the RGBA copy) is turned about 30 degrees
    assert face.quality.sharpness > 30
    assert 10 < face.quality.brightness < 90
    embedding = engine.embed(image, [face])
    assert embedding.shape == (1, 128)
    assert np.linalg.norm(embedding[0]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("relative", ["people/obama/obama_480p.jpg", "groups/obama_biden_1.jpg"])
def test_largest_only_finds_the_same_largest_face(
    engine: FaceEngine, testdata: Path, relative: str
) -> None:
    image = load(testdata, relative)
    full = engine.detect(image)[0].face.box
    quick = engine.detect(image, largest_only=True)[0].face.box
    overlap_w = min(full.right, quick.right) - max(full.left, quick.left)
    overlap_h = min(full.bottom, quick.bottom) - max(full.top, quick.top)
    intersection = max(0.0, overlap_w) * max(0.0, overlap_h)
    assert intersection / (full.area + quick.area - intersection) > 0.6


def test_the_same_face_embeds_the_same_across_resolutions(
    engine: FaceEngine, testdata: Path
) -> None:
    vectors = []
    for name in ("obama_480p.jpg", "obama_720p.jpg", "obama_1080p.jpg"):
        image = load(testdata, f"people/obama/{name}")
        vectors.append(engine.embed(image, engine.detect(image)[:1])[0])
    for other in vectors[1:]:
        assert np.linalg.norm(vectors[0] - other) < 0.25
