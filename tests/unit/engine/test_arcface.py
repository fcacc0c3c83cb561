"""The ArcFace-style ONNX embedder, on tiny ONNX models built here (SFace cannot be fetched).

Each model is a real ONNX graph run by ONNX Runtime: "means" outputs each
input channel's mean (so a test sees exactly what the network was fed),
"project" pools and multiplies by fixed random weights (a stand-in
embedding), "identity" hands back its 4-D input (a wrong output shape).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.service import CollectionService
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from facelens.config import Settings
from facelens.engine.arcface import (
    ARCFACE_TEMPLATE,
    ArcFaceEmbedder,
    Normalisation,
    arcface_template,
)
from facelens.engine.model_files import SFACE, YUNET, models_directory, pull
from facelens.engine.pipeline import PipelineEngine
from facelens.engine.registry import build_detector, build_embedder, build_engine, detector_name
from facelens.engine.types import DetectedFace, Landmarks, Point, RGBImage
from facelens.engine.yunet import YuNetDetector
from facelens.errors import ConfigurationError, EngineError, InvalidParameterException
from facelens.values.boxes import PixelBox

Dim = int | str


def _save(
    path: Path,
    nodes: list[onnx.NodeProto],
    input_shape: Sequence[Dim],
    output_shape: Sequence[Dim],
    initializers: Sequence[onnx.TensorProto] = (),
    input_type: int = TensorProto.FLOAT,
    output_type: int = TensorProto.FLOAT,
) -> Path:
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("data", input_type, list(input_shape))],
        [helper.make_tensor_value_info("embedding", output_type, list(output_shape))],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def means_model(path: Path, size: int = 112, batch: Dim = "N") -> Path:
    """Outputs each channel's mean: (batch, 3), what the network was fed, averaged."""
    nodes = [
        helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["embedding"], axis=1),
    ]
    return _save(path, nodes, [batch, 3, size, size], [batch, 3])


def project_model(
    path: Path,
    *,
    size: int = 112,
    dim: int = 16,
    batch: Dim = "N",
    seed: int = 0,
    output_dim: Dim | None = None,
) -> Path:
    """8x8 average pooling, then fixed random weights: a (batch, dim) stand-in embedding."""
    cells = 3 * (size // 8) ** 2
    weights = np.random.default_rng(seed).standard_normal((cells, dim)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["data"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weights"], ["embedding"]),
    ]
    return _save(
        path,
        nodes,
        [batch, 3, size, size],
        [batch, dim if output_dim is None else output_dim],
        [numpy_helper.from_array(weights, name="weights")],
    )


def identity_model(
    path: Path, input_shape: Sequence[Dim], input_type: int = TensorProto.FLOAT
) -> Path:
    """Hands its input back: a model of the wrong shape for an embedder."""
    return _save(
        path,
        [helper.make_node("Identity", ["data"], ["embedding"])],
        input_shape,
        input_shape,
        input_type=input_type,
        output_type=input_type,
    )


def constant_chip(rgb: tuple[int, int, int], size: int = 112) -> RGBImage:
    chip = np.empty((size, size, 3), dtype=np.uint8)
    chip[:] = rgb
    return chip


def random_chips(count: int, size: int = 112, seed: int = 1) -> list[RGBImage]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def face_at(points: npt.NDArray[np.float64]) -> DetectedFace:
    """A face whose five landmarks are ``points`` (eyeLeft ... mouthRight, image left first)."""
    p = [Point(float(x), float(y)) for x, y in points]
    left, top = points.min(axis=0) - 20
    right, bottom = points.max(axis=0) + 20
    return DetectedFace(
        box=PixelBox(float(left), float(top), float(right), float(bottom)),
        landmarks=Landmarks(p[0], p[1], p[2], p[3], p[4]),
        confidence=99.0,
    )


def unit(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    normalised: npt.NDArray[np.float32] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normalised


# -- alignment --


@pytest.mark.parametrize(
    ("size", "shift"),
    [(112, 0.0), (128, 8.0), (224, 0.0)],
)
def test_alignment_puts_the_five_landmarks_on_the_template(
    tmp_path: Path, size: int, shift: float
) -> None:
    """Dots drawn where a rotated, scaled template lands in a photo come back onto the template."""
    expected = ARCFACE_TEMPLATE * (size / (128 if shift else 112)) + np.array([shift, 0.0])
    assert np.allclose(arcface_template(size), expected)
    embedder = ArcFaceEmbedder(means_model(tmp_path / "m.onnx", size=size), flip=False)

    angle, scale, offset = np.radians(17.0), 2.3, np.array([150.0, 120.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    in_image = ARCFACE_TEMPLATE @ rotation.T + offset
    ys, xs = np.mgrid[0:480, 0:480].astype(np.float64)
    sigma = 1.5 * scale  # 1.5 px in a 112 px chip
    image_f = sum(
        250.0 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in in_image
    )
    image = np.ascontiguousarray(
        np.repeat(np.asarray(image_f)[..., None], 3, axis=2).astype(np.uint8)
    )

    chip = embedder.align(image, face_at(in_image))
    assert chip.shape == (size, size, 3)
    assert chip.dtype == np.uint8
    assert embedder.chip_size == size

    gray = chip[..., 0].astype(np.float64)
    count, labels = cv2.connectedComponents((gray > 40).astype(np.uint8))
    centroids = []
    for label in range(1, count):
        weights = np.where(labels == label, gray, 0.0)
        cy, cx = np.unravel_index(np.arange(gray.size), gray.shape)
        flat = weights.ravel()
        centroids.append(
            (float((cx * flat).sum() / flat.sum()), float((cy * flat).sum() / flat.sum()))
        )
    assert len(centroids) == 5
    for point in arcface_template(size):
        nearest = min(np.hypot(cx - point[0], cy - point[1]) for cx, cy in centroids)
        assert nearest < 0.25 * size / 112, (point, centroids)


def test_outside_the_photo_is_black_as_in_opencv_and_insightface(tmp_path: Path) -> None:
    embedder = ArcFaceEmbedder(means_model(tmp_path / "m.onnx"), flip=False)
    image = constant_chip((200, 200, 200))
    # The face 40 px up and left of where the chip wants it: the chip's top-left
    # 40 px lie outside the photo.
    chip = embedder.align(image, face_at(ARCFACE_TEMPLATE - 40.0))
    assert (chip[:38, :38] == 0).all()
    assert (chip[:, :38] == 0).all()
    assert (chip[42:, 42:] == 200).all()


# -- normalisation --


@pytest.mark.parametrize(
    ("normalisation", "seen"),
    [
        (Normalisation(), [10.0, 20.0, 30.0]),  # SFace: RGB, 0-255
        (Normalisation.of("rgb", 127.5, 127.5), [(v - 127.5) / 127.5 for v in (10, 20, 30)]),
        (Normalisation.of("bgr"), [30.0, 20.0, 10.0]),
        (
            Normalisation.of("bgr", (1.0, 2.0, 3.0), (2.0, 4.0, 6.0)),
            [(30 - 1) / 2, (20 - 2) / 4, (10 - 3) / 6],
        ),
    ],
)
def test_the_network_sees_the_configured_pixels(
    tmp_path: Path, normalisation: Normalisation, seen: list[float]
) -> None:
    embedder = ArcFaceEmbedder(means_model(tmp_path / "m.onnx"), normalisation=normalisation)
    raw = embedder.descriptors([constant_chip((10, 20, 30))])
    assert raw.shape == (1, 3)
    assert raw.dtype == np.float32
    assert np.allclose(raw[0], seen, atol=1e-4)  # float32 sums of 12,544 pixels


def test_a_half_precision_model_is_fed_float16(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Cast", ["data"], ["wide"], to=TensorProto.FLOAT),
        helper.make_node("GlobalAveragePool", ["wide"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["embedding"], axis=1),
    ]
    path = _save(
        tmp_path / "half.onnx", nodes, ["N", 3, 112, 112], ["N", 3], input_type=TensorProto.FLOAT16
    )
    embedder = ArcFaceEmbedder(path, normalisation=Normalisation.of("rgb", 127.5, 127.5))
    raw = embedder.descriptors([constant_chip((0, 128, 255))])
    assert np.allclose(raw[0], [-1.0, 0.5 / 127.5, 1.0], atol=1e-3)


def test_bad_normalisations_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="arcface_channel_order"):
        Normalisation.of("rgba")
    with pytest.raises(ConfigurationError, match="arcface_std must be positive"):
        Normalisation.of("rgb", 0.0, (1.0, 0.0, 1.0))
    with pytest.raises(ConfigurationError, match="arcface_mean takes one number or three"):
        Normalisation.of("rgb", (1.0, 2.0))
    with pytest.raises(ConfigurationError, match="arcface_std must be finite"):
        Normalisation.of("rgb", 0.0, float("inf"))
    with pytest.raises(ValueError, match="arcface_std"):
        Settings(arcface_std=0.0)


# -- embedding --


def test_rows_are_unit_length_and_flip_averages_the_mirror(tmp_path: Path) -> None:
    path = project_model(tmp_path / "p.onnx")
    chips = random_chips(3)
    plain = ArcFaceEmbedder(path, flip=False)
    flipped = ArcFaceEmbedder(path, flip=True)
    assert plain.dimension == 0  # known once the model is loaded
    vectors = plain.embed(chips)
    assert plain.dimension == 16
    assert vectors.shape == (3, 16)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert np.allclose(vectors, unit(plain.descriptors(chips)), atol=1e-6)

    mirrors = [np.ascontiguousarray(c[:, ::-1]) for c in chips]
    expected = unit(unit(plain.descriptors(chips)) + unit(plain.descriptors(mirrors)))
    averaged = flipped.embed(chips)
    assert np.allclose(averaged, expected, atol=1e-5)
    assert not np.allclose(averaged, vectors, atol=1e-3)
    assert flipped.embed([]).shape == (0, 16)


@pytest.mark.parametrize("batch", [1, 2])
def test_models_with_a_fixed_batch_size_run_slice_by_slice(tmp_path: Path, batch: int) -> None:
    chips = random_chips(5)
    dynamic = ArcFaceEmbedder(project_model(tmp_path / "n.onnx"), flip=True)
    fixed = ArcFaceEmbedder(project_model(tmp_path / "one.onnx", batch=batch), flip=True)
    assert np.allclose(fixed.descriptors(chips), dynamic.descriptors(chips), atol=1e-4)
    assert np.allclose(fixed.embed(chips), dynamic.embed(chips), atol=1e-6)
    assert np.allclose(fixed.embed(chips[:1]), dynamic.embed(chips[:1]), atol=1e-6)


def test_a_symbolic_output_width_is_measured(tmp_path: Path) -> None:
    embedder = ArcFaceEmbedder(project_model(tmp_path / "p.onnx", dim=8, output_dim="D"))
    embedder.prepare()
    assert embedder.dimension == 8


def test_chips_of_another_size_are_refused(tmp_path: Path) -> None:
    embedder = ArcFaceEmbedder(project_model(tmp_path / "p.onnx"))
    with pytest.raises(EngineError, match="112x112 RGB uint8"):
        embedder.embed(random_chips(1, size=150))


# -- model_version --


def test_model_version_names_the_file_its_hash_and_normalisation(tmp_path: Path) -> None:
    path = project_model(tmp_path / "w600k_r50.onnx", seed=0)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    sface_like = ArcFaceEmbedder(path)
    assert sface_like.model_version == f"arcface:w600k_r50.onnx:{digest}:rgb:0:1"
    insightface = ArcFaceEmbedder(path, normalisation=Normalisation.of("rgb", 127.5, 127.5))
    assert insightface.model_version == f"arcface:w600k_r50.onnx:{digest}:rgb:127.5:127.5"
    per_channel = ArcFaceEmbedder(path, normalisation=Normalisation.of("bgr", (1, 2.5, 3), 2))
    assert per_channel.model_version.endswith(f"{digest}:bgr:1,2.5,3:2")
    assert ArcFaceEmbedder(path, flip=False).model_version == sface_like.model_version

    project_model(path, seed=1)  # other weights, same name
    changed = ArcFaceEmbedder(path)
    assert changed.model_version != sface_like.model_version
    assert hashlib.sha256(path.read_bytes()).hexdigest()[:12] in changed.model_version


def test_a_file_changed_after_the_engine_was_built_is_refused(tmp_path: Path) -> None:
    path = project_model(tmp_path / "p.onnx", seed=0)
    embedder = ArcFaceEmbedder(path)
    project_model(path, seed=1)
    with pytest.raises(ConfigurationError, match="changed after this engine was built"):
        embedder.prepare()


def test_a_damaged_sface_file_is_refused_by_its_catalogue_hash(tmp_path: Path) -> None:
    path = project_model(tmp_path / SFACE.file_name)
    with pytest.raises(ConfigurationError, match="facelens models pull sface") as caught:
        ArcFaceEmbedder(path)
    assert caught.value.code == "InvalidParameterException"


# -- bad files --


def test_a_missing_file_names_the_setting_and_the_pull_command(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", models_dir=None, embedder="arcface")
    with pytest.raises(ConfigurationError) as caught:
        build_embedder(settings)
    message = str(caught.value)
    assert "FACELENS_ARCFACE_MODEL" in message
    assert "facelens models pull sface" in message
    assert str(tmp_path / "home" / "models" / SFACE.file_name) in message
    assert caught.value.code == "InvalidParameterException"
    with pytest.raises(ConfigurationError, match="does not exist"):
        ArcFaceEmbedder(tmp_path / "nowhere.onnx")


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_bytes(b"these are not the weights you are looking for\n")
    embedder = ArcFaceEmbedder(path)
    with pytest.raises(ConfigurationError, match="is not an ONNX model"):
        embedder.embed(random_chips(1))


@pytest.mark.parametrize(
    ("shape", "input_type", "why"),
    [
        (["N", 112, 112, 3], TensorProto.FLOAT, r"not N x 3 x H x W"),
        (["N", 3, 112, 96], TensorProto.FLOAT, r"112 x 96 pixels, not square"),
        (["N", 3, 112, 112], TensorProto.FLOAT, r"not N x dimension"),
        (["N", 3, 112, 112], TensorProto.UINT8, r"tensor\(uint8\), not one of"),
    ],
    ids=["nhwc", "not-square", "4d-output", "uint8-input"],
)
def test_models_of_the_wrong_shape_are_refused(
    tmp_path: Path, shape: list[Dim], input_type: int, why: str
) -> None:
    embedder = ArcFaceEmbedder(identity_model(tmp_path / "wrong.onnx", shape, input_type))
    with pytest.raises(ConfigurationError, match=why):
        embedder.prepare()


def test_threads_below_one_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="at least 1 thread"):
        ArcFaceEmbedder(project_model(tmp_path / "p.onnx"), threads=0)


# -- settings, registry and collections --


def _arcface_settings(home: Path, **changes: object) -> Settings:
    values: dict[str, object] = {
        "home": home,
        "models_dir": None,
        "embedder": "arcface",
        "arcface_model": "tiny.onnx",
        "detector": "hog",
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


def test_settings_choose_the_arcface_embedder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    path = project_model(home / "models" / "tiny.onnx")
    monkeypatch.setenv("FACELENS_ARCFACE_CHANNEL_ORDER", "bgr")
    monkeypatch.setenv("FACELENS_ARCFACE_MEAN", "127.5")
    monkeypatch.setenv("FACELENS_ARCFACE_STD", "[127.5, 128, 127.5]")
    monkeypatch.setenv("FACELENS_EMBED_THREADS", "2")
    engine = build_engine(_arcface_settings(home))
    assert isinstance(engine, PipelineEngine)
    embedder = engine.embedder
    assert isinstance(embedder, ArcFaceEmbedder)
    assert embedder.model_path == path
    assert embedder.threads == 2
    assert embedder.normalisation == Normalisation("bgr", (127.5,) * 3, (127.5, 128.0, 127.5))
    assert engine.model_version == embedder.model_version
    assert engine.model_version.endswith(":bgr:127.5:127.5,128,127.5")

    # models_dir first, the home's models directory after it; an absolute path as it is.
    other = tmp_path / "other"
    other.mkdir()
    first = project_model(other / "tiny.onnx", seed=3)
    assert build_embedder(_arcface_settings(home, models_dir=other)).model_path == first  # type: ignore[attr-defined]
    (other / "tiny.onnx").unlink()
    assert build_embedder(_arcface_settings(home, models_dir=other)).model_path == path  # type: ignore[attr-defined]
    absolute = _arcface_settings(tmp_path / "elsewhere", arcface_model=str(path))
    assert build_embedder(absolute).model_path == path  # type: ignore[attr-defined]


def test_a_dlib_collection_refuses_arcface_searches(tmp_path: Path, testdata_dir: Path) -> None:
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    project_model(home / "models" / "tiny.onnx")
    store = SQLiteCollectionStore(str(tmp_path / "c.db"))
    dlib_engine = build_engine(
        Settings(home=home, models_dir=None, detector="hog", embedder="dlib")
    )
    dlib_engine.prepare()
    dlib = CollectionService(FaceAnalyzer(dlib_engine), store)
    dlib.create_collection("dlib")
    photo = (testdata_dir / "people/obama/obama_1.jpg").read_bytes()
    assert len(dlib.index_faces("dlib", photo).face_records) == 1

    arcface_engine = build_engine(_arcface_settings(home))
    arcface_engine.prepare()
    arcface = CollectionService(FaceAnalyzer(arcface_engine), store)
    with pytest.raises(InvalidParameterException, match="do not compare"):
        arcface.search_faces_by_image("dlib", photo)
    with pytest.raises(InvalidParameterException, match="do not compare"):
        arcface.index_faces("dlib", photo)


def test_a_photo_indexed_with_arcface_is_found_again(tmp_path: Path, testdata_dir: Path) -> None:
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    project_model(home / "models" / "tiny.onnx", dim=32)
    engine = build_engine(_arcface_settings(home))
    engine.prepare()
    service = CollectionService(FaceAnalyzer(engine), SQLiteCollectionStore(str(tmp_path / "a.db")))
    info = service.create_collection("arc")
    assert info.face_model_version == engine.model_version
    obama = (testdata_dir / "people/obama/obama_1.jpg").read_bytes()
    biden = (testdata_dir / "people/biden/biden_1.jpg").read_bytes()
    obama_id = service.index_faces("arc", obama).face_records[0].face.face_id
    service.index_faces("arc", biden)
    matches = service.search_faces_by_image("arc", obama, face_match_threshold=0).face_matches
    assert matches[0].face.face_id == obama_id
    assert matches[0].similarity > 99.9
    assert len(matches) == 2


# -- YuNet found where `facelens models pull` puts it --


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No access log on the test's stderr."""


@pytest.fixture
def model_server(models_dir: Path) -> Iterator[str]:
    """The shared models directory served over HTTP on loopback (a mirror for `pull`)."""
    handler = functools.partial(_QuietHandler, directory=str(models_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_yunet_pulled_into_the_homes_models_dir_is_used(tmp_path: Path, model_server: str) -> None:
    settings = Settings(home=tmp_path / "home", models_dir=None, detector="auto")
    assert detector_name(settings) == "hog"
    pulled = pull(YUNET, models_directory(settings), url=model_server)
    assert pulled.path == tmp_path / "home" / "models" / YUNET.file_name
    assert detector_name(settings) == "yunet"
    detector = build_detector(settings)
    assert isinstance(detector, YuNetDetector)
    detector.prepare()
    # Also when models_dir names another directory that lacks it.
    empty = tmp_path / "empty"
    empty.mkdir()
    elsewhere = settings.model_copy(update={"models_dir": empty})
    assert detector_name(elsewhere) == "yunet"
    assert isinstance(
        build_detector(settings.model_copy(update={"detector": "yunet"})), YuNetDetector
    )


def test_yunet_missing_everywhere_says_where_it_looked(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", models_dir=tmp_path / "m", detector="yunet")
    with pytest.raises(ConfigurationError, match="facelens models pull yunet") as caught:
        build_detector(settings)
    assert str(tmp_path / "home" / "models") in str(caught.value)
