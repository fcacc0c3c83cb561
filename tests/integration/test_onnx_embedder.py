"""dlib's ResNet through ONNX Runtime: dlib's own numbers on real faces, cached conversion, engine.

The reference is dlib itself (``dlib.face_recognition_model_v1``, as
``DlibEmbedder`` runs it) on chips aligned from the shared test photos.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import dlib
import numpy as np
import pytest

from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.service import CollectionService
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from facelens.config import Settings
from facelens.engine.alignment import align_chip, mirrored
from facelens.engine.dlib_embedder import DlibEmbedder
from facelens.engine.hog import HogDetector
from facelens.engine.images import read_image_file
from facelens.engine.onnx_embedder import OnnxEmbedder, dlib_model_path
from facelens.engine.pipeline import PipelineEngine
from facelens.engine.registry import build_engine
from facelens.engine.types import RGBImage
from facelens.errors import EngineError

TOLERANCE = 1e-4
"""Largest allowed difference from dlib, per descriptor value (they are about 0.1 in size)."""

PHOTOS = (
    "groups/compreface_eight-faces.jpg",
    "groups/obama_biden_1.jpg",
    "people/obama/obama_1.jpg",
    "people/angelina_jolie/",
    "people/kit_harington/",
)


def _photos(testdata: Path) -> list[Path]:
    found: list[Path] = []
    for entry in PHOTOS:
        path = testdata / entry
        found += sorted(path.glob("*.jpg"))[:2] if entry.endswith("/") else [path]
    return found


@pytest.fixture(scope="module")
def chips(testdata: Path) -> list[RGBImage]:
    """Every face HOG finds in a few test photos, aligned as the engine aligns them."""
    detector = HogDetector()
    aligned: list[RGBImage] = []
    for path in _photos(testdata):
        image = read_image_file(path, max_bytes=15 << 20, max_pixels=50_000_000).pixels
        aligned += [align_chip(image, face) for face in detector.detect(image)]
    assert len(aligned) >= 12
    return aligned


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def onnx_embedder(cache_dir: Path) -> OnnxEmbedder:
    embedder = OnnxEmbedder(flip=False, cache_dir=cache_dir)
    embedder.prepare()
    return embedder


@pytest.fixture(scope="module")
def dlib_reference(chips: list[RGBImage]) -> np.ndarray:
    """dlib's compute_face_descriptor of every chip, then of every mirrored chip."""
    net = dlib.face_recognition_model_v1(str(dlib_model_path()))
    batch = chips + [mirrored(chip) for chip in chips]
    return np.array([np.asarray(v) for v in net.compute_face_descriptor(batch)])


def _max_difference(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def test_raw_descriptors_equal_dlibs_for_chips_and_mirrors(
    onnx_embedder: OnnxEmbedder, chips: list[RGBImage], dlib_reference: np.ndarray
) -> None:
    ours = onnx_embedder.descriptors(chips + [mirrored(chip) for chip in chips])
    assert ours.shape == dlib_reference.shape == (2 * len(chips), 128)
    assert _max_difference(ours, dlib_reference) <= TOLERANCE
    assert float(np.abs(dlib_reference).max()) > 0.1  # a real signal, not two zero vectors


@pytest.mark.parametrize("flip", [False, True])
def test_embeddings_equal_the_dlib_embedders(
    cache_dir: Path, chips: list[RGBImage], dlib_reference: np.ndarray, flip: bool
) -> None:
    ours = OnnxEmbedder(flip=flip, cache_dir=cache_dir).embed(chips)
    # DlibEmbedder's own arithmetic on the reference descriptors (no second dlib pass)
    count = len(chips)
    raw = dlib_reference.astype(np.float32)
    units = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    expected = units[:count] + units[count:] if flip else units[:count]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert _max_difference(ours, expected) <= TOLERANCE
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert ours.dtype == np.float32


def test_the_dlib_embedder_itself_agrees(cache_dir: Path, chips: list[RGBImage]) -> None:
    sample = chips[:3]
    ours = OnnxEmbedder(flip=True, cache_dir=cache_dir).embed(sample)
    assert _max_difference(ours, DlibEmbedder(flip=True).embed(sample)) <= TOLERANCE


def test_batched_equals_single(onnx_embedder: OnnxEmbedder, chips: list[RGBImage]) -> None:
    batched = onnx_embedder.descriptors(chips)
    single = np.concatenate([onnx_embedder.descriptors([chip]) for chip in chips])
    assert _max_difference(batched, single) <= 1e-6
    assert onnx_embedder.embed([]).shape == (0, 128)


def test_concurrent_calls_on_one_session(
    onnx_embedder: OnnxEmbedder, chips: list[RGBImage]
) -> None:
    expected = onnx_embedder.embed(chips)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(index: int, batch: Sequence[RGBImage]) -> None:
        try:
            for _ in range(3):
                results[index] = onnx_embedder.embed(batch)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, chips)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for result in results.values():
        assert _max_difference(result, expected) <= 1e-6


def test_chips_of_another_size_are_refused(onnx_embedder: OnnxEmbedder) -> None:
    with pytest.raises(EngineError, match="150x150 RGB uint8"):
        onnx_embedder.embed([np.zeros((100, 100, 3), dtype=np.uint8)])


def _cached(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.onnx"))


def test_the_cache_is_reused_and_a_corrupt_one_rebuilt(
    tmp_path: Path, chips: list[RGBImage]
) -> None:
    first = OnnxEmbedder(flip=False, cache_dir=tmp_path)
    expected = first.descriptors(chips[:2])
    (model,) = _cached(tmp_path)
    digest = model.with_name(model.name + ".sha256")
    assert digest.is_file()
    written = os.stat(model)

    OnnxEmbedder(flip=False, cache_dir=tmp_path).prepare()
    again = os.stat(model)
    assert (again.st_ino, again.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)

    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights: still parses, wrong numbers
    model.write_bytes(bytes(data))
    rebuilt = OnnxEmbedder(flip=False, cache_dir=tmp_path)
    assert _max_difference(rebuilt.descriptors(chips[:2]), expected) == 0.0
    assert os.stat(model).st_ino != written.st_ino  # replaced, not patched

    model.write_bytes(b"not a model")
    digest.unlink()
    assert (
        _max_difference(
            OnnxEmbedder(flip=False, cache_dir=tmp_path).descriptors(chips[:2]), expected
        )
        == 0.0
    )
    assert digest.is_file()


def test_a_changed_source_converts_again(tmp_path: Path, chips: list[RGBImage]) -> None:
    source = dlib_model_path().read_bytes()
    changed = bytearray(source)
    changed[-2000] ^= 0x01  # the last bit of one fc weight: a valid, different model
    path = tmp_path / "changed.dat"
    path.write_bytes(bytes(changed))
    cache = tmp_path / "cache"
    OnnxEmbedder(flip=False, cache_dir=cache).prepare()
    OnnxEmbedder(flip=False, cache_dir=cache, model_path=path).prepare()
    assert len(_cached(cache)) == 2


def test_an_unwritable_cache_only_costs_a_conversion(tmp_path: Path, chips: list[RGBImage]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    embedder = OnnxEmbedder(flip=False, cache_dir=blocker / "models")
    assert embedder.descriptors(chips[:1]).shape == (1, 128)


def _service(settings: Settings, path: Path) -> CollectionService:
    engine = build_engine(settings)
    engine.prepare()
    return CollectionService(FaceAnalyzer(engine), SQLiteCollectionStore(str(path)))


def test_the_default_engine_identifies_people_as_dlib_does(tmp_path: Path, testdata: Path) -> None:
    default = Settings(home=tmp_path / "home", models_dir=None)
    assert default.embedder == "onnx"
    engine = build_engine(default)
    assert isinstance(engine, PipelineEngine)
    assert isinstance(engine.embedder, OnnxEmbedder)
    assert engine.model_version == "dlib-resnet-v1-chip68"

    similarities: dict[str, list[float]] = {}
    for name in ("onnx", "dlib"):
        settings = default.model_copy(update={"embedder": name})
        service = _service(settings, tmp_path / f"{name}.db")
        service.create_collection("c")
        obama = service.index_faces("c", (testdata / "people/obama/obama_1.jpg").read_bytes())
        biden = service.index_faces("c", (testdata / "people/biden/biden_1.jpg").read_bytes())
        ids = {
            "obama": obama.face_records[0].face.face_id,
            "biden": biden.face_records[0].face.face_id,
        }
        found = []
        for person, photo in (
            ("obama", "people/obama/obama_2.jpg"),
            ("obama", "people/obama/obama_480p.jpg"),
            ("biden", "people/biden/biden_2.jpg"),
        ):
            matches = service.search_faces_by_image(
                "c", (testdata / photo).read_bytes()
            ).face_matches
            assert [m.face.face_id for m in matches] == [ids[person]], (name, photo)
            found.append(matches[0].similarity)
        similarities[name] = found
    assert np.allclose(similarities["onnx"], similarities["dlib"], atol=0.01)
