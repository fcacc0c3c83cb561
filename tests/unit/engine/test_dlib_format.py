"""Reading dlib's face recognition ResNet file: the real one, and damaged copies of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens.engine.dlib_format import (
    Expected,
    _read_affine,
    expected_layers,
    parse_dlib_network,
    read_dlib_network,
)
from facelens.engine.dlib_layers import (
    AddPrev,
    Affine,
    AvgPool,
    Conv,
    DlibNetwork,
    FullyConnected,
    MaxPool,
    Skip,
    Tag,
    infer_shapes,
)
from facelens.engine.dlib_serial import DlibReader
from facelens.engine.onnx_embedder import dlib_model_path
from facelens.errors import ConfigurationError
from tests.unit.engine.dlib_bytes import (
    pack_alias,
    pack_float,
    pack_int,
    pack_string,
    pack_tensor_v2,
)


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return dlib_model_path().read_bytes()


@pytest.fixture(scope="module")
def network(model_bytes: bytes) -> DlibNetwork:
    return parse_dlib_network(model_bytes)


def test_the_shipped_model_is_the_expected_resnet(network: DlibNetwork) -> None:
    assert network.input_size == 150
    assert network.channel_means == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert len(network.layers) == len(expected_layers()) == 130
    convs = [layer for layer in network.layers if isinstance(layer, Conv)]
    assert len(convs) == 29
    assert convs[0].weights.shape == (32, 3, 7, 7)
    assert (convs[0].stride, convs[0].padding) == (2, 0)
    assert [c.weights.shape[0] for c in convs[-2:]] == [256, 256]
    assert all(c.weights.dtype == np.float32 and np.isfinite(c.weights).all() for c in convs)
    affines = [layer for layer in network.layers if isinstance(layer, Affine)]
    assert len(affines) == 29
    (fc,) = [layer for layer in network.layers if isinstance(layer, FullyConnected)]
    assert fc.weights.shape == (256, 128)
    assert fc.bias is None
    pools = [layer for layer in network.layers if isinstance(layer, MaxPool | AvgPool)]
    assert pools[0] == MaxPool(3, 2, 0)
    assert pools[-1] == AvgPool(0, 1, 0)  # avg_pool_everything
    parameters = sum(c.weights.size + c.bias.size for c in convs) + fc.weights.size
    parameters += sum(a.gamma.size + a.beta.size for a in affines)
    assert parameters == 5_614_592
    # raw float32 weights are the whole file but for under 8 kB of structure
    assert 0 < dlib_model_path().stat().st_size - 4 * parameters < 8_000


def test_shapes_follow_dlib_window_arithmetic_and_add_prev_takes_the_larger(
    network: DlibNetwork,
) -> None:
    shapes = infer_shapes(network)
    assert shapes[0] == (32, 72, 72)  # 7x7 stride 2, no padding: 1 + (150 - 7) // 2
    assert shapes[3] == (32, 35, 35)  # 3x3 max pool stride 2
    adds = [
        shape
        for layer, shape in zip(network.layers, shapes, strict=True)
        if isinstance(layer, AddPrev)
    ]
    # alevel1's first block: a 3x3 block output (256 channels) + a 4x4 pooled shortcut (128)
    assert (256, 4, 4) in adds
    assert shapes[-2] == (256, 1, 1)
    assert shapes[-1] == (128, 1, 1)


def test_reads_the_file_from_a_path(tmp_path: Path, model_bytes: bytes) -> None:
    path = tmp_path / "model.dat"
    path.write_bytes(model_bytes)
    assert len(read_dlib_network(path).layers) == 130
    with pytest.raises(ConfigurationError, match="cannot read the dlib model"):
        read_dlib_network(tmp_path / "missing.dat")


@pytest.mark.parametrize("keep", [0, 3, 200, 340, 50_000, 11_000_000, -100, -1])
def test_a_truncated_file_is_a_configuration_error(model_bytes: bytes, keep: int) -> None:
    with pytest.raises(ConfigurationError, match="truncated"):
        parse_dlib_network(model_bytes[:keep], source="cut.dat")


def test_trailing_bytes_are_an_error(model_bytes: bytes) -> None:
    with pytest.raises(ConfigurationError, match="3 unexpected bytes after the network"):
        parse_dlib_network(model_bytes + b"abc")


def _replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1
    return data.replace(old, new, 1)


def test_another_loss_or_input_is_refused(model_bytes: bytes) -> None:
    other_loss = _replace_once(model_bytes, b"\x0dloss_metric_2", b"\x0dloss_metric_9")
    with pytest.raises(ConfigurationError, match="loss layer 'loss_metric_9'"):
        parse_dlib_network(other_loss)
    other_input = _replace_once(model_bytes, b"input_rgb_image_sized", b"input_rgb_image_sizzz")
    with pytest.raises(ConfigurationError, match="expected input_rgb_image_sized"):
        parse_dlib_network(other_input)


def test_a_changed_layer_version_names_the_layer(model_bytes: bytes) -> None:
    # the innermost layer's version (3) sits right before the input layer's name
    marker = b"\x15input_rgb_image_sized"
    at = model_bytes.index(marker)
    assert model_bytes[at - 3 : at] == b"\x01\x03\x01"  # version 3, then the string length 21
    damaged = model_bytes[: at - 2] + b"\x07" + model_bytes[at - 1 :]
    with pytest.raises(ConfigurationError, match=r"layer 1 from the input \(con\).*version 7"):
        parse_dlib_network(damaged)


def test_a_con_layer_with_other_settings_is_refused(model_bytes: bytes) -> None:
    # the first con_4: 32 filters, 7x7, stride 2, 2, padding 0, 0 right after its parameters
    start = model_bytes.index(b"con_4")
    tail = pack_int(32) + pack_int(7) + pack_int(7) + pack_int(2) + pack_int(2)
    at = model_bytes.index(tail + pack_int(0) + pack_int(0), start)
    damaged = model_bytes[:at] + pack_int(32) + pack_int(7) + pack_int(7) + pack_int(1)
    damaged += model_bytes[at + len(pack_int(32) + pack_int(7) + pack_int(7) + pack_int(2)) :]
    with pytest.raises(ConfigurationError, match=r"stride_y 1 \(expected 2\).*layer 1 \(con\)"):
        parse_dlib_network(damaged)


def test_batch_norm_layers_become_dlibs_affine_scale_and_shift() -> None:
    gamma = np.array([1.0, 2.0, 0.5], dtype=np.float32)
    beta = np.array([0.0, -1.0, 3.0], dtype=np.float32)
    means = np.array([0.5, 1.0, -2.0], dtype=np.float32)
    variances = np.array([4.0, 0.25, 1.0], dtype=np.float32)
    eps = 1e-4
    params = np.concatenate([gamma, beta]).reshape(6, 1, 1, 1)
    data = pack_string("bn_con2") + pack_tensor_v2(params)
    data += pack_alias((1, 3, 1, 1)) + pack_alias((1, 3, 1, 1))
    empty = np.zeros((0, 0, 0, 0), dtype=np.float32)
    data += pack_tensor_v2(empty) + pack_tensor_v2(empty)
    data += pack_tensor_v2(means.reshape(1, 3, 1, 1))
    data += pack_tensor_v2(variances.reshape(1, 3, 1, 1))
    data += pack_int(100) + pack_int(100)
    data += b"".join(pack_float(v) for v in (1.0, 0.0, 1.0, 1.0)) + pack_float(eps, digits=53)
    reader = DlibReader(data)
    affine = _read_affine(reader, Expected("affine"))
    assert reader.at_end()
    scale = gamma / np.sqrt(variances + eps)
    assert np.allclose(affine.gamma, scale, rtol=1e-6)
    assert np.allclose(affine.beta, beta - scale * means, rtol=1e-6)


def test_shape_inference_rejects_layers_that_do_not_fit() -> None:
    weights = np.zeros((4, 5, 3, 3), dtype=np.float32)
    conv = Conv(weights, np.zeros(4, np.float32), 1, 1)
    wrong_inputs = DlibNetwork(150, (0.0, 0.0, 0.0), (conv,))
    with pytest.raises(ConfigurationError, match="takes 5 channels, gets 3"):
        infer_shapes(wrong_inputs)
    untagged = DlibNetwork(150, (0.0, 0.0, 0.0), (Skip(1),))
    with pytest.raises(ConfigurationError, match="tag1 unset"):
        infer_shapes(untagged)
    tagged = DlibNetwork(150, (0.0, 0.0, 0.0), (Tag(1), AvgPool(2, 2, 0), AddPrev(1)))
    assert infer_shapes(tagged)[-1] == (3, 150, 150)
