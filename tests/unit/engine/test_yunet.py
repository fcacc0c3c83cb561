"""YuNet detector: real photos, landmark orientation, model verification."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from facelens.engine.images import read_image_file
from facelens.engine.protocol import Detector
from facelens.engine.types import DetectedFace, Point, RGBImage
from facelens.engine.yunet import KNOWN_MODELS, YuNetDetector, find_model
from facelens.errors import ConfigurationError, InvalidParameterException
from facelens.values.boxes import PixelBox

MODEL_NAME = "face_detection_yunet_2023mar.onnx"
DETECT_MAX_SIDE = 1600  # Settings.detect_max_side's default: what the engine feeds a detector


@pytest.fixture(scope="module")
def model_path(models_dir: Path) -> Path:
    path = find_model(models_dir)
    if path is None:
        pytest.skip(f"no YuNet model in {models_dir}")
    return path


@pytest.fixture(scope="module")
def detector(model_path: Path) -> YuNetDetector:
    yunet = YuNetDetector(model_path)
    yunet.prepare()
    return yunet


def load(testdata_dir: Path, relative: str) -> RGBImage:
    """A test photo, downscaled (as the engine would) to at most DETECT_MAX_SIDE pixels."""
    pixels = read_image_file(
        testdata_dir / relative, max_bytes=50 * 1024 * 1024, max_pixels=50_000_000
    ).pixels
    height, width = pixels.shape[:2]
    scale = DETECT_MAX_SIDE / max(height, width)
    if scale < 1.0:
        size = (round(width * scale), round(height * scale))
        resized = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        pixels = np.ascontiguousarray(resized, dtype=np.uint8)
    return pixels


def inside(point: Point, box: PixelBox) -> bool:
    return box.left <= point.x <= box.right and box.top <= point.y <= box.bottom


def assert_upright_frontal(face: DetectedFace) -> None:
    marks = face.landmarks
    assert marks.eye_left.x < marks.eye_right.x
    assert marks.mouth_left.x < marks.mouth_right.x
    assert max(marks.eye_left.y, marks.eye_right.y) < marks.nose.y
    assert marks.nose.y < min(marks.mouth_left.y, marks.mouth_right.y)
    for point in marks.as_named().values():
        assert inside(point, face.box)


def test_satisfies_the_detector_protocol(tmp_path: Path) -> None:
    detector: Detector = YuNetDetector(tmp_path / MODEL_NAME)
    assert detector.name == "yunet"


def test_one_face_in_obama_1(detector: YuNetDetector, testdata_dir: Path) -> None:
    image = load(testdata_dir, "people/obama/obama_1.jpg")
    faces = detector.detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert_upright_frontal(face)
    assert 60.0 <= face.confidence <= 100.0
    height, width = image.shape[:2]
    assert 0.0 <= face.box.left < face.box.right <= width
    assert 0.0 <= face.box.top < face.box.bottom <= height
    assert face.box.width > 100.0  # a portrait: the face is large


def test_eye_left_is_on_the_image_left_in_a_mirrored_photo(
    detector: YuNetDetector, testdata_dir: Path
) -> None:
    mirrored = np.ascontiguousarray(load(testdata_dir, "people/obama/obama_1.jpg")[:, ::-1])
    faces = detector.detect(mirrored)
    assert len(faces) == 1
    assert_upright_frontal(faces[0])


def test_two_faces_largest_first(detector: YuNetDetector, testdata_dir: Path) -> None:
    faces = detector.detect(load(testdata_dir, "groups/obama_biden_1.jpg"))
    assert len(faces) == 2
    assert faces[0].box.area >= faces[1].box.area
    for face in faces:
        assert_upright_frontal(face)
    centres = sorted((f.box.left + f.box.right) / 2 for f in faces)
    assert centres[1] - centres[0] > 200  # two different people, side by side


def test_no_face_in_noface_photos(detector: YuNetDetector, testdata_dir: Path) -> None:
    paths = sorted((testdata_dir / "noface").glob("*.jpg"))
    assert paths
    for path in paths:
        found = detector.detect(load(testdata_dir, str(path.relative_to(testdata_dir))))
        assert found == [], path.name


@pytest.mark.parametrize("name", ["obama_partial_face_1.jpg", "obama_partial_face_2.jpg"])
def test_boxes_of_faces_cut_by_the_edge_are_clipped(
    detector: YuNetDetector, testdata_dir: Path, name: str
) -> None:
    image = load(testdata_dir, f"hard/{name}")
    height, width = image.shape[:2]
    faces = detector.detect(image)
    assert faces
    for face in faces:
        assert 0.0 <= face.box.left < face.box.right <= width
        assert 0.0 <= face.box.top < face.box.bottom <= height
    box = faces[0].box
    assert box.left == 0.0 or box.right == float(width)


def test_blank_image_has_no_face(detector: YuNetDetector) -> None:
    assert detector.detect(np.full((240, 320, 3), 128, dtype=np.uint8)) == []


def test_images_of_different_sizes_in_turn(detector: YuNetDetector, testdata_dir: Path) -> None:
    image = load(testdata_dir, "people/obama/obama_1.jpg")
    resized = cv2.resize(image, (455, 568), interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(resized, dtype=np.uint8)
    big_faces = detector.detect(image)
    small_faces = detector.detect(small)
    assert len(big_faces) == len(small_faces) == 1
    ratio = big_faces[0].box.width / small_faces[0].box.width
    assert ratio == pytest.approx(2.0, rel=0.15)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 4), dtype=np.uint8),
        np.zeros((10, 10, 3), dtype=np.float32),
    ],
)
def test_rejects_arrays_that_are_not_rgb_uint8(
    detector: YuNetDetector, image: npt.NDArray[Any]
) -> None:
    with pytest.raises(InvalidParameterException):
        detector.detect(image)


# --- model loading and verification ------------------------------------------------


def test_constructor_reads_nothing(tmp_path: Path) -> None:
    YuNetDetector(tmp_path / MODEL_NAME)  # no file there, and no error yet


def test_prepare_is_idempotent(model_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / MODEL_NAME
    shutil.copyfile(model_path, copy)
    yunet = YuNetDetector(copy)
    yunet.prepare()
    copy.unlink()
    yunet.prepare()  # loaded already: the file is not read again


def test_missing_model_file(tmp_path: Path) -> None:
    path = tmp_path / MODEL_NAME
    with pytest.raises(ConfigurationError, match=re.escape(str(path))) as error:
        YuNetDetector(path).prepare()
    assert KNOWN_MODELS[MODEL_NAME] in error.value.message


def test_tampered_model_file(model_path: Path, tmp_path: Path) -> None:
    data = bytearray(model_path.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = tmp_path / MODEL_NAME
    tampered.write_bytes(bytes(data))
    with pytest.raises(ConfigurationError, match=re.escape(str(tampered))) as error:
        YuNetDetector(tampered).prepare()
    assert KNOWN_MODELS[MODEL_NAME] in error.value.message


def test_unknown_model_file_name(model_path: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "my_detector.onnx"
    shutil.copyfile(model_path, renamed)
    with pytest.raises(ConfigurationError, match=MODEL_NAME):
        YuNetDetector(renamed).prepare()


def test_sha256sums_next_to_the_model_must_agree(model_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / MODEL_NAME
    shutil.copyfile(model_path, copy)
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{'0' * 64}  other.onnx\n{'a' * 64}  {MODEL_NAME}\n")
    with pytest.raises(ConfigurationError, match="SHA256SUMS"):
        YuNetDetector(copy).prepare()
    sums.write_text(f"{KNOWN_MODELS[MODEL_NAME]} *{MODEL_NAME}\n")
    YuNetDetector(copy).prepare()


def test_sha256sums_without_a_line_for_the_model_is_ignored(
    model_path: Path, tmp_path: Path
) -> None:
    copy = tmp_path / MODEL_NAME
    shutil.copyfile(model_path, copy)
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  other.onnx\n")
    YuNetDetector(copy).prepare()


def test_detect_prepares_on_first_use(model_path: Path) -> None:
    assert YuNetDetector(model_path).detect(np.zeros((64, 64, 3), dtype=np.uint8)) == []


def test_thresholds_are_validated(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterException):
        YuNetDetector(tmp_path / MODEL_NAME, score_threshold=1.5)
    with pytest.raises(InvalidParameterException):
        YuNetDetector(tmp_path / MODEL_NAME, nms_threshold=-0.1)
    with pytest.raises(InvalidParameterException):
        YuNetDetector(tmp_path / MODEL_NAME, top_k=0)


def test_find_model(models_dir: Path, tmp_path: Path) -> None:
    assert find_model(None) is None
    assert find_model(tmp_path) is None
    found = find_model(models_dir)
    assert found is not None
    assert found.name in KNOWN_MODELS
