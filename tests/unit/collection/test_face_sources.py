"""Face sources: the crop kept with each stored face, and the face found in it again.

Geometry is checked on synthetic images whose landmarks are painted dots (so
where a point lands in the crop can be measured to a fraction of a pixel);
then on real photos through IndexFaces, where the stored landmarks must be
where the detector finds them again in the crop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.models import QualityFilter
from facelens.collection.service import CollectionService
from facelens.collection.sources import (
    SOURCE_MAX_SIDE,
    FaceSource,
    cut_source,
    source_face,
)
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from facelens.config import Settings
from facelens.engine.images import decode_image
from facelens.engine.protocol import FaceEngine
from facelens.engine.registry import build_engine
from facelens.engine.types import DetectedFace, Landmarks, Point, RGBImage
from facelens.errors import StorageError
from facelens.values.boxes import PixelBox

LIMIT = 100_000_000


def painted(width: int, height: int, points: list[Point]) -> RGBImage:
    """Dark noise with a bright 5x5 dot centred on each point (pixel centres at integers)."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 40, (height, width, 3), dtype=np.uint8)
    for p in points:
        x, y = round(p.x), round(p.y)
        image[y - 2 : y + 3, x - 2 : x + 3] = 255
    return image


def face_at(left: float, top: float, size: float) -> DetectedFace:
    """A square face box with five landmarks at whole pixels inside it."""
    s = size
    points = [
        Point(round(left + 0.3 * s), round(top + 0.35 * s)),
        Point(round(left + 0.7 * s), round(top + 0.35 * s)),
        Point(round(left + 0.5 * s), round(top + 0.55 * s)),
        Point(round(left + 0.35 * s), round(top + 0.75 * s)),
        Point(round(left + 0.65 * s), round(top + 0.75 * s)),
    ]
    return DetectedFace(PixelBox(left, top, left + s, top + s), Landmarks(*points), 99.0)


def points(landmarks: Landmarks) -> list[Point]:
    return list(landmarks.as_named().values())


def dot_centre(image: RGBImage, near: Point, radius: int = 6) -> Point:
    """The brightness-weighted centre of the dot near ``near``."""
    x0, y0 = max(0, round(near.x) - radius), max(0, round(near.y) - radius)
    window = image[y0 : round(near.y) + radius + 1, x0 : round(near.x) + radius + 1]
    weight = np.clip(window.mean(axis=2) - 60.0, 0, None)
    ys, xs = np.mgrid[0 : window.shape[0], 0 : window.shape[1]]
    total = weight.sum()
    return Point(x0 + float((xs * weight).sum() / total), y0 + float((ys * weight).sum() / total))


def decoded(source: FaceSource) -> RGBImage:
    return decode_image(source.jpeg, max_bytes=LIMIT, max_pixels=LIMIT).pixels


@pytest.mark.parametrize(
    ("face", "size"),
    [
        (face_at(400, 300, 200), (256, 256)),  # 440 px with its margin: downscaled
        (face_at(300, 200, 60), (132, 132)),  # small: kept at its own scale
        (face_at(10, 20, 200), (248, 256)),  # clipped: 330 x 340 px, then downscaled
        (face_at(401.3, 299.7, 187), (256, 256)),  # a box off the pixel grid
    ],
)
def test_the_crop_has_the_margin_and_the_landmarks_land_on_the_face(
    face: DetectedFace, size: tuple[int, int]
) -> None:
    image = painted(1000, 800, points(face.landmarks))
    source = cut_source(image, face)
    pixels = decoded(source)
    assert (source.width, source.height) == size
    assert pixels.shape == (source.height, source.width, 3)
    assert max(source.width, source.height) <= SOURCE_MAX_SIDE
    for stored in points(source.landmarks):
        found = dot_centre(pixels, stored)
        # within 0.2 px: mapping pixel corners instead of centres would be 0.2 off here
        assert abs(found.x - stored.x) < 0.2, (found, stored)
        assert abs(found.y - stored.y) < 0.2, (found, stored)
    # the box keeps its proportion to the crop: 1 / (1 + 2 x 0.6) of it, unless clipped
    box = source.box
    assert box.width == pytest.approx(box.height, rel=0.02)
    if face.box.left > 0.6 * face.box.width and face.box.top > 0.6 * face.box.height:
        assert box.width / source.width == pytest.approx(1 / 2.2, rel=0.02)


def test_the_geometry_round_trips_and_a_foreign_row_is_a_storage_error() -> None:
    face = face_at(400, 300, 200)
    source = cut_source(painted(1000, 800, points(face.landmarks)), face)
    again = FaceSource.from_stored(source.jpeg, source.width, source.height, source.geometry())
    assert again == source
    with pytest.raises(StorageError, match="geometry"):
        FaceSource.from_stored(source.jpeg, 10, 10, '{"box": [1, 2]}')
    with pytest.raises(StorageError, match="does not decode"):
        source_face(FaceSource(b"not a jpeg", 10, 10, source.box, source.landmarks))
    with pytest.raises(StorageError, match="not the 10x10 recorded"):
        source_face(FaceSource(source.jpeg, 10, 10, source.box, source.landmarks))


def test_source_face_gives_the_engine_the_stored_face() -> None:
    face = face_at(300, 200, 120)
    source = cut_source(painted(1000, 800, points(face.landmarks)), face)
    pixels, detail = source_face(source, confidence=87.5)
    assert pixels.shape == (source.height, source.width, 3)
    assert detail.face == DetectedFace(source.box, source.landmarks, 87.5)
    assert (detail.image_width, detail.image_height) == (source.width, source.height)
    assert detail.bounding_box.left == pytest.approx(source.box.left / source.width)


# -- real photos, through IndexFaces --


@pytest.fixture(scope="module")
def hog_engine(tmp_path_factory: pytest.TempPathFactory) -> FaceEngine:
    """HOG, whose landmarks move least between scales, and dlib itself (no model cache)."""
    home = tmp_path_factory.mktemp("home")
    engine = build_engine(Settings(home=home, models_dir=None, detector="hog", embedder="dlib"))
    engine.prepare()
    return engine


@pytest.fixture
def store() -> Iterator[SQLiteCollectionStore]:
    s = SQLiteCollectionStore(":memory:")
    yield s
    s.close()


def test_index_faces_keeps_a_source_where_the_face_is_found_again(
    hog_engine: FaceEngine, store: SQLiteCollectionStore, testdata: Path
) -> None:
    service = CollectionService(FaceAnalyzer(hog_engine), store)
    service.create_collection("c")
    photos = [
        testdata / "people/biden/biden_1.jpg",  # a 360 px face: its crop is downscaled
        testdata / "groups/compreface_five-faces.jpg",  # 76-91 px faces (HOG finds 4): as is
    ]
    records = [
        r
        for photo in photos
        for r in service.index_faces(
            "c", photo.read_bytes(), quality_filter=QualityFilter.NONE
        ).face_records
    ]
    assert len(records) == 5
    sources = store.get_sources("c", [r.face.face_id for r in records])
    assert len(sources) == 5
    for record in records:
        source = sources[record.face.face_id]
        assert max(source.width, source.height) <= SOURCE_MAX_SIDE
        assert len(source.jpeg) < 30_000
        pixels = decoded(source)
        again = min(
            hog_engine.detect(pixels),
            key=lambda f: abs(f.face.box.left - source.box.left),
        )
        gaps = [
            np.hypot(a.x - b.x, a.y - b.y)
            for a, b in zip(points(again.face.landmarks), points(source.landmarks), strict=True)
        ]
        # HOG's own landmarks move about a pixel between scales (its boxes snap to a grid)
        assert float(np.mean(gaps)) <= 1.0, gaps
        assert max(gaps) <= 2.0, gaps


def test_no_source_is_kept_when_it_is_turned_off(
    hog_engine: FaceEngine, store: SQLiteCollectionStore, testdata: Path
) -> None:
    service = CollectionService(FaceAnalyzer(hog_engine, keep_sources=False), store)
    service.create_collection("c")
    photo = (testdata / "people/obama/obama_1.jpg").read_bytes()
    [record] = service.index_faces("c", photo).face_records
    assert store.get_sources("c", [record.face.face_id]) == {}
    probe = FaceAnalyzer(hog_engine).probe(photo, QualityFilter.NONE)
    assert probe.source is None  # a search never cuts one
    assert FaceAnalyzer(hog_engine).probe(photo, QualityFilter.NONE, with_source=True).source
