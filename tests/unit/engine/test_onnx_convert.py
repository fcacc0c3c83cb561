"""The ONNX graph of a small hand-made dlib network against a numpy reference of dlib's rules."""

from __future__ import annotations

import numpy as np
import onnxruntime

from facelens.engine.dlib_layers import (
    AddPrev,
    Affine,
    AvgPool,
    Conv,
    DlibNetwork,
    FullyConnected,
    MaxPool,
    Relu,
    Skip,
    Tag,
)
from facelens.engine.onnx_convert import INPUT_NAME, OUTPUT_NAME, build_onnx_model

MEANS = (122.782, 117.001, 104.298)


def _conv(x: np.ndarray, layer: Conv) -> np.ndarray:
    """dlib's con_: cross-correlation over a zero-padded input, plus bias (one sample, CHW)."""
    out_c, _, size, _ = layer.weights.shape
    padded = np.pad(x, ((0, 0), (layer.padding,) * 2, (layer.padding,) * 2))
    rows = 1 + (padded.shape[1] - size) // layer.stride
    cols = 1 + (padded.shape[2] - size) // layer.stride
    out = np.zeros((out_c, rows, cols))
    for r in range(rows):
        for c in range(cols):
            window = padded[
                :,
                r * layer.stride : r * layer.stride + size,
                c * layer.stride : c * layer.stride + size,
            ]
            out[:, r, c] = np.tensordot(layer.weights, window, axes=3) + layer.bias
    return out


def _pool(x: np.ndarray, size: int, stride: int, reduce: str) -> np.ndarray:
    rows = 1 + (x.shape[1] - size) // stride
    cols = 1 + (x.shape[2] - size) // stride
    out = np.zeros((x.shape[0], rows, cols))
    for r in range(rows):
        for c in range(cols):
            window = x[:, r * stride : r * stride + size, c * stride : c * stride + size]
            out[:, r, c] = getattr(window, reduce)(axis=(1, 2))
    return out


def _add_prev(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dlib's tt::add of two shapes: the larger size everywhere, missing values are zero."""
    shape = tuple(max(p, q) for p, q in zip(a.shape, b.shape, strict=True))
    out = np.zeros(shape)
    out[: a.shape[0], : a.shape[1], : a.shape[2]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2]] += b
    return out


def _reference(network: DlibNetwork, chip: np.ndarray) -> np.ndarray:
    scaled = (chip.astype(np.float64) - np.array(network.channel_means)) / 256.0
    x: np.ndarray = scaled.transpose(2, 0, 1)
    tags: dict[int, np.ndarray] = {}
    for layer in network.layers:
        if isinstance(layer, Conv):
            x = _conv(x, layer)
        elif isinstance(layer, Affine):
            x = x * layer.gamma[:, None, None] + layer.beta[:, None, None]
        elif isinstance(layer, Relu):
            x = np.maximum(x, 0)
        elif isinstance(layer, MaxPool):
            x = _pool(x, layer.size, layer.stride, "max")
        elif isinstance(layer, AvgPool):
            x = (
                x.mean(axis=(1, 2), keepdims=True)
                if layer.size == 0
                else _pool(x, layer.size, layer.stride, "mean")
            )
        elif isinstance(layer, Tag):
            tags[layer.tag] = x
        elif isinstance(layer, Skip):
            x = tags[layer.tag]
        elif isinstance(layer, AddPrev):
            x = _add_prev(x, tags[layer.tag])
        elif isinstance(layer, FullyConnected):
            x = x.reshape(-1) @ layer.weights
    return x


def _small_network(rng: np.random.Generator) -> DlibNetwork:
    def floats(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    return DlibNetwork(
        8,
        MEANS,
        (
            Conv(floats(3, 3, 3, 3), floats(3), 1, 1),  # stride 1: padding 1, same size
            Affine(floats(3), floats(3)),
            Relu(),
            Tag(1),
            Conv(floats(5, 3, 3, 3), floats(5), 2, 0),  # 8x8 -> 3x3, 5 channels
            Affine(floats(5), floats(5)),
            Tag(2),
            Skip(1),
            AvgPool(2, 2, 0),  # 8x8 -> 4x4, 3 channels
            AddPrev(2),  # 5 channels, 4x4: each side zero-padded where it is smaller
            Relu(),
            Affine(floats(5), floats(5)),  # not after a conv: Mul and Add
            MaxPool(2, 1, 0),  # 4x4 -> 3x3
            AvgPool(0, 1, 0),
            FullyConnected(floats(5, 4), None),
        ),
    )


def test_graph_matches_dlibs_arithmetic_including_add_prev_padding() -> None:
    rng = np.random.default_rng(7)
    network = _small_network(rng)
    model = build_onnx_model(network)
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    chips = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: chips})
    assert out.shape == (3, 4)
    expected = np.stack([_reference(network, chip) for chip in chips])
    assert np.max(np.abs(out - expected)) < 1e-5 * max(1.0, float(np.abs(expected).max()))
