"""The second detector, chosen by name: YuNet finds, dlib embeds, the collection works the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.service import CollectionService
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from facelens.config import Settings
from facelens.engine.registry import build_engine


@pytest.fixture
def yunet_service(models_dir: Path, tmp_path: Path) -> CollectionService:
    engine = build_engine(Settings(home=tmp_path, detector="yunet", models_dir=models_dir))
    engine.prepare()
    return CollectionService(FaceAnalyzer(engine), SQLiteCollectionStore(str(tmp_path / "y.db")))


def test_yunet_enrols_and_finds_obama_not_biden(
    yunet_service: CollectionService, testdata: Path
) -> None:
    service = yunet_service
    service.create_collection("y")
    obama = service.index_faces("y", (testdata / "people/obama/obama_1.jpg").read_bytes())
    biden = service.index_faces("y", (testdata / "people/biden/biden_1.jpg").read_bytes())
    obama_id = obama.face_records[0].face.face_id
    biden_id = biden.face_records[0].face.face_id
    for name in ("obama_2.jpg", "obama_480p.jpg", "obama_1080p.jpg"):
        matches = service.search_faces_by_image(
            "y", (testdata / "people/obama" / name).read_bytes()
        ).face_matches
        assert [m.face.face_id for m in matches] == [obama_id], name
        assert matches[0].similarity >= 80
    matches = service.search_faces_by_image(
        "y", (testdata / "people/biden/biden_2.jpg").read_bytes()
    ).face_matches
    assert [m.face.face_id for m in matches] == [biden_id]


def test_yunet_finds_faces_hog_misses(yunet_service: CollectionService, testdata: Path) -> None:
    """compreface_eight-faces shows nine people (one half hidden behind a laptop).

    HOG, upsampled, finds 7; YuNet finds all nine (looked at, boxes drawn).
    """
    faces = yunet_service.analyzer.detect(
        yunet_service.analyzer.decode((testdata / "groups/compreface_eight-faces.jpg").read_bytes())
    )
    assert len(faces) == 9
