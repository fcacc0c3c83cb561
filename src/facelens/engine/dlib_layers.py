"""The layers of a dlib ``dnn`` network, as plain data, and the shapes they produce.

What :mod:`facelens.engine.dlib_format` reads and :mod:`facelens.engine.onnx_convert`
turns into ONNX. Weights are float32 arrays in ONNX's layouts: convolution
filters (out, in, h, w), fully connected weights (in, out). Shape rules are
dlib's (``dlib/dnn/layers.h``, ``cpu_dlib.cpp``), which for these layers are
also ONNX's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facelens.errors import ConfigurationError

__all__ = [
    "AddPrev",
    "Affine",
    "AvgPool",
    "Conv",
    "DlibNetwork",
    "FullyConnected",
    "Layer",
    "MaxPool",
    "Relu",
    "Shape",
    "Skip",
    "Tag",
    "infer_shapes",
]

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class Conv:
    """``con_``: cross-correlation, then ``bias``. weights: (out, in, size, size)."""

    weights: Floats
    bias: Floats
    stride: int
    padding: int


@dataclass(frozen=True, eq=False)
class Affine:
    """``affine_`` in CONV_MODE: ``x * gamma[c] + beta[c]`` per channel c."""

    gamma: Floats
    beta: Floats


@dataclass(frozen=True)
class Relu:
    """``relu_``."""


@dataclass(frozen=True)
class MaxPool:
    """``max_pool_``: size x size windows; output side 1 + (side + 2 * padding - size) // stride."""

    size: int
    stride: int
    padding: int


@dataclass(frozen=True)
class AvgPool:
    """``avg_pool_``; ``size`` 0 averages each channel's whole plane (``avg_pool_everything``)."""

    size: int
    stride: int
    padding: int


@dataclass(frozen=True)
class Tag:
    """``tagN``: remembers the current output under ``tag``."""

    tag: int


@dataclass(frozen=True)
class Skip:
    """``skipN``: continues from the output remembered under ``tag``."""

    tag: int


@dataclass(frozen=True)
class AddPrev:
    """``add_prevN``: current output + the one under ``tag``.

    With different shapes the result has the larger size in every dimension
    and each input counts as zero where it has no value (dlib's ``tt::add``):
    the smaller one is zero-padded after its last channel, row and column.
    """

    tag: int


@dataclass(frozen=True, eq=False)
class FullyConnected:
    """``fc_``: ``flatten(x) @ weights (+ bias)``. weights: (inputs, outputs)."""

    weights: Floats
    bias: Floats | None


Layer = Conv | Affine | Relu | MaxPool | AvgPool | Tag | Skip | AddPrev | FullyConnected


@dataclass(frozen=True, eq=False)
class DlibNetwork:
    """A dlib metric-learning network read from its file.

    input_size: side of the square RGB input in pixels (150).
    channel_means: (red, green, blue) subtracted from each pixel before dividing
    by 256 (``input_rgb_image``).
    layers: evaluation order, input first.
    """

    input_size: int
    channel_means: tuple[float, float, float]
    layers: tuple[Layer, ...]


Shape = tuple[int, int, int]
"""(channels, rows, columns) of one sample."""


def infer_shapes(network: DlibNetwork) -> list[Shape]:
    """Each layer's output (channels, rows, columns), in evaluation order.

    Raises ConfigurationError where a layer does not fit its input (a conv's
    input channels, an fc's inputs, a tag used before it is set).
    """
    shape = (3, network.input_size, network.input_size)
    tags: dict[int, Shape] = {}
    shapes: list[Shape] = []
    for number, layer in enumerate(network.layers, start=1):
        channels, rows, cols = shape
        if isinstance(layer, Conv):
            out, inputs, size, _ = layer.weights.shape
            if inputs != channels:
                raise ConfigurationError(
                    f"dlib model: layer {number} (con) takes {inputs} channels, gets {channels}"
                )
            shape = (out, *_window(rows, cols, size, layer.stride, layer.padding))
        elif isinstance(layer, Affine):
            if layer.gamma.size != channels:
                raise ConfigurationError(
                    f"dlib model: layer {number} (affine) has {layer.gamma.size} channels, "
                    f"gets {channels}"
                )
        elif isinstance(layer, MaxPool | AvgPool):
            size = layer.size
            if size == 0:
                shape = (channels, 1, 1)
            else:
                shape = (channels, *_window(rows, cols, size, layer.stride, layer.padding))
        elif isinstance(layer, Tag):
            tags[layer.tag] = shape
        elif isinstance(layer, Skip | AddPrev):
            if layer.tag not in tags:
                raise ConfigurationError(f"dlib model: layer {number} uses tag{layer.tag} unset")
            other = tags[layer.tag]
            shape = other if isinstance(layer, Skip) else tuple(map(max, shape, other))  # type: ignore[assignment]
        elif isinstance(layer, FullyConnected):
            if layer.weights.shape[0] != channels * rows * cols:
                raise ConfigurationError(
                    f"dlib model: layer {number} (fc) takes {layer.weights.shape[0]} inputs, "
                    f"gets {channels * rows * cols}"
                )
            shape = (layer.weights.shape[1], 1, 1)
        if min(shape) < 1:
            raise ConfigurationError(f"dlib model: layer {number} leaves an empty output {shape}")
        shapes.append(shape)
    return shapes


def _window(rows: int, cols: int, size: int, stride: int, padding: int) -> tuple[int, int]:
    """Output rows and columns of a size x size window (dlib's and ONNX's floor formula)."""
    return (
        1 + (rows + 2 * padding - size) // stride,
        1 + (cols + 2 * padding - size) // stride,
    )
