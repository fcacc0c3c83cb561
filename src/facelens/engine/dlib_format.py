"""Reads dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) into numpy.

The file is ``dlib::serialize`` of the network type in dlib's
``examples/dnn_face_recognition_ex.cpp`` (``anet_type``). dlib's format does
not describe the network: each layer writes only its own fields, the layer
*types* live in the C++ template. So this reader carries that template as
data (:func:`expected_layers`) and checks the file against it, layer by layer;
anything else (another network, another dlib layer version, a truncated or
corrupted file) is a :class:`~facelens.errors.ConfigurationError` saying
what was expected and what was found, with the byte offset.

How a network is laid out (``dlib/dnn/core.h``): the loss layer writes its
version, its details, then the network below it. Each ``add_layer`` writes
its version, then *the whole network below it*, then its own layer details
and its bookkeeping (three bools and cached tensors, empty in a saved
model). ``tag`` and ``skip`` layers write only a version and the network
below. So the file is: every layer's version integer from the top down, the
input layer, then each layer's details from the bottom up.

The result is in evaluation order (input first), weights as float32 arrays in
ONNX's layouts: convolution filters (out, in, h, w), fully connected weights
(in, out). Batch-norm layers (``bn_con``), which dlib turns into ``affine``
layers on load, are turned into the same per-channel scale and shift here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelens.engine.dlib_layers import (
    AddPrev,
    Affine,
    AvgPool,
    Conv,
    DlibNetwork,
    FullyConnected,
    Layer,
    MaxPool,
    Relu,
    Skip,
    Tag,
    infer_shapes,
)
from facelens.engine.dlib_serial import DlibReader
from facelens.errors import ConfigurationError

__all__ = ["Expected", "expected_layers", "parse_dlib_network", "read_dlib_network"]

# --- the expected network: dnn_face_recognition_ex.cpp's anet_type, as data ----------------


@dataclass(frozen=True)
class Expected:
    """One layer of the template: its kind and the constants the C++ type fixes."""

    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, tag, skip, fc
    filters: int = 0  # con: output channels; fc: outputs
    size: int = 0  # con, pools: window side (0: the whole plane)
    stride: int = 1
    tag: int = 0

    @property
    def padding(self) -> int:
        """dlib's default: none for strided windows, else half the window (``size // 2``)."""
        return 0 if self.stride != 1 else self.size // 2


def _block(filters: int, stride: int) -> list[Expected]:
    # block = BN<con<N,3,3,1,1, relu<BN<con<N,3,3,stride,stride, SUBNET>>>>> with BN = affine
    return [
        Expected("con", filters, 3, stride),
        Expected("affine"),
        Expected("relu"),
        Expected("con", filters, 3, 1),
        Expected("affine"),
    ]


def _ares(filters: int) -> list[Expected]:
    # relu<add_prev1<block<N,affine,1, tag1<SUBNET>>>>
    return [
        Expected("tag", tag=1),
        *_block(filters, 1),
        Expected("add_prev", tag=1),
        Expected("relu"),
    ]


def _ares_down(filters: int) -> list[Expected]:
    # relu<add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<N,affine,2, tag1<SUBNET>>>>>>>
    return [
        Expected("tag", tag=1),
        *_block(filters, 2),
        Expected("tag", tag=2),
        Expected("skip", tag=1),
        Expected("avg_pool", size=2, stride=2),
        Expected("add_prev", tag=2),
        Expected("relu"),
    ]


def expected_layers() -> tuple[Expected, ...]:
    """The face recognition ResNet in evaluation order (input first), 130 layers."""
    layers = [
        Expected("con", 32, 7, 2),
        Expected("affine"),
        Expected("relu"),
        Expected("max_pool", size=3, stride=2),
    ]
    for _ in range(3):  # alevel4
        layers += _ares(32)
    for filters, repeats in ((64, 3), (128, 2), (256, 2)):  # alevel3, alevel2, alevel1
        layers += _ares_down(filters)
        for _ in range(repeats):
            layers += _ares(filters)
    layers += _ares_down(256)  # alevel0
    layers += [Expected("avg_pool", size=0, stride=1), Expected("fc", filters=128)]
    return tuple(layers)


INPUT_SIZE = 150


# --- reading ---------------------------------------------------------------------------------


def read_dlib_network(path: Path) -> DlibNetwork:
    """The network in the file at ``path``; ConfigurationError if it is not the expected one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the dlib model {path}: {exc}") from exc
    return parse_dlib_network(data, source=str(path))


def parse_dlib_network(data: bytes, *, source: str = "<bytes>") -> DlibNetwork:
    """The network serialized in ``data`` (the bytes of the .dat file)."""
    reader = DlibReader(data, source=source)
    template = expected_layers()
    reader.expect_int(1, "loss layer version", size=4)
    _read_loss(reader)
    # Wrapper versions, outermost first: add_layer 1-2, tag/skip 1; the bottom add_layer 2-3.
    versions: list[int] = []
    for depth, spec in enumerate(reversed(template)):
        start = reader.pos
        version = reader.read_int(f"version of layer {spec.kind}", size=4)
        if depth == len(template) - 1:
            allowed: tuple[int, ...] = (2, 3)
        elif spec.kind in ("tag", "skip"):
            allowed = (1,)
        else:
            allowed = (1, 2)
        if version not in allowed:
            raise reader.error(
                f"layer {len(template) - depth} from the input ({spec.kind}): wrapper version "
                f"{version}, expected {' or '.join(map(str, allowed))}; not dlib's face "
                "recognition ResNet",
                at=start,
            )
        versions.append(version)
    versions.reverse()  # now in evaluation order, like template
    means = _read_input(reader)
    layers: list[Layer] = []
    for number, (spec, version) in enumerate(zip(template, versions, strict=True), start=1):
        if spec.kind == "tag":
            layers.append(Tag(spec.tag))
            continue
        if spec.kind == "skip":
            layers.append(Skip(spec.tag))
            continue
        try:
            layers.append(_READERS[spec.kind](reader, spec))
            _read_layer_bookkeeping(reader, bottom=number == 1, version=version)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{exc.message}; layer {number} ({spec.kind})") from exc
    if not reader.at_end():
        raise reader.error(f"{len(data) - reader.pos} unexpected bytes after the network")
    network = DlibNetwork(INPUT_SIZE, means, tuple(layers))
    infer_shapes(network)  # every layer fits the one below it
    return network


def _read_loss(reader: DlibReader) -> None:
    version = reader.read_string("loss layer")
    if version == "loss_metric_":
        return  # margin and distance threshold were constants then
    if version != "loss_metric_2":
        raise reader.error(f"loss layer {version!r}, expected loss_metric_2 (a metric network)")
    reader.read_float("loss margin")
    reader.read_float("loss distance threshold")


def _read_input(reader: DlibReader) -> tuple[float, float, float]:
    kind = reader.read_string("input layer")
    if kind != "input_rgb_image_sized":
        raise reader.error(f"input layer {kind!r}, expected input_rgb_image_sized")
    means = (
        reader.read_float("input mean red"),
        reader.read_float("input mean green"),
        reader.read_float("input mean blue"),
    )
    if not all(0.0 <= m <= 255.0 for m in means):
        raise reader.error(f"input channel means {means} are not pixel values")
    rows = reader.read_int("input rows", signed=False)
    cols = reader.read_int("input columns", signed=False)
    if (rows, cols) != (INPUT_SIZE, INPUT_SIZE):
        raise reader.error(f"input is {rows}x{cols}, expected {INPUT_SIZE}x{INPUT_SIZE}")
    return means


def _read_layer_bookkeeping(reader: DlibReader, *, bottom: bool, version: int) -> None:
    """add_layer's own fields after the details: flags and cached tensors, all unused here.

    The bottom layer (over the input) also keeps ``grad_final`` and, from its
    version 3, the sample expansion factor; the others keep ``params_grad``
    from their version 2 on.
    """
    reader.read_bool("setup flag")
    reader.read_bool("gradient flag")
    reader.read_bool("output-disabled flag")
    reader.read_tensor("cached gradient")
    reader.read_tensor("cached output")
    if bottom:
        reader.read_tensor("final gradient")
        if version >= 3:
            reader.read_int("sample expansion factor", size=4, signed=False)
    elif version >= 2:
        reader.read_tensor("parameter gradient")


def _read_con(reader: DlibReader, spec: Expected) -> Conv:
    version = reader.read_string("con layer")
    if version != "con_4":
        raise reader.error(f"con layer version {version!r}, expected 'con_4'")
    params = reader.read_tensor("con parameters").reshape(-1)
    found = {
        "filters": reader.read_int("con filters"),
        "rows": reader.read_int("con rows"),
        "columns": reader.read_int("con columns"),
        "stride_y": reader.read_int("con stride y", size=4),
        "stride_x": reader.read_int("con stride x", size=4),
        "padding_y": reader.read_int("con padding y", size=4),
        "padding_x": reader.read_int("con padding x", size=4),
    }
    wanted = {
        "filters": spec.filters,
        "rows": spec.size,
        "columns": spec.size,
        "stride_y": spec.stride,
        "stride_x": spec.stride,
        "padding_y": spec.padding,
        "padding_x": spec.padding,
    }
    _same(reader, "con", found, wanted)
    filters = reader.read_alias_tensor("con filters alias")
    biases = reader.read_alias_tensor("con biases alias")
    for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        reader.read_float(f"con {name} multiplier")
    out, channels, rows, cols = filters
    if (out, rows, cols) != (spec.filters, spec.size, spec.size) or biases != (1, out, 1, 1):
        raise reader.error(f"con parameter shapes {filters} and {biases} do not fit the layer")
    if params.size != out * channels * rows * cols + out:
        raise reader.error(f"con has {params.size} parameters, expected {filters} + {out} biases")
    weights = params[: out * channels * rows * cols].reshape(filters)
    return Conv(weights, params[-out:].copy(), spec.stride, spec.padding)


def _read_affine(reader: DlibReader, spec: Expected) -> Affine:
    version = reader.read_string("affine layer")
    if version == "bn_con2":
        return _affine_from_batch_norm(reader)
    if version != "affine_":
        raise reader.error(f"affine layer version {version!r}, expected 'affine_' or 'bn_con2'")
    params = reader.read_tensor("affine parameters").reshape(-1)
    gamma = reader.read_alias_tensor("affine gamma alias")
    beta = reader.read_alias_tensor("affine beta alias")
    mode = reader.read_int("affine mode", size=4)
    channels = gamma[1]
    if mode != 0 or gamma != (1, channels, 1, 1) or beta != gamma:
        raise reader.error(f"affine layer is not per channel (mode {mode}, gamma {gamma})")
    if params.size != 2 * channels:
        raise reader.error(f"affine has {params.size} parameters for {channels} channels")
    return Affine(params[:channels].copy(), params[channels:].copy())


def _affine_from_batch_norm(reader: DlibReader) -> Affine:
    """A saved ``bn_con``, made per-channel affine as dlib does on load.

    g = gamma / sqrt(running variance + eps), shift = beta - g * running mean.
    """
    params = reader.read_tensor("bn parameters").reshape(-1)
    gamma_shape = reader.read_alias_tensor("bn gamma alias")
    reader.read_alias_tensor("bn beta alias")
    reader.read_tensor("bn means")
    reader.read_tensor("bn inverse deviations")
    running_means = reader.read_tensor("bn running means").reshape(-1)
    running_variances = reader.read_tensor("bn running variances").reshape(-1)
    reader.read_int("bn updates", signed=False)
    reader.read_int("bn window", signed=False)
    for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        reader.read_float(f"bn {name} multiplier")
    eps = reader.read_float("bn epsilon")
    channels = gamma_shape[1]
    if params.size != 2 * channels or running_means.size != channels != running_variances.size:
        raise reader.error(f"bn_con parameter sizes do not fit {channels} channels")
    scale = params[:channels] / np.sqrt(running_variances + np.float32(eps))
    shift = params[channels:] - scale * running_means
    return Affine(scale.astype(np.float32), shift.astype(np.float32))


def _read_plain(kind: str, layer: Layer) -> Callable[[DlibReader, Expected], Layer]:
    def read(reader: DlibReader, spec: Expected) -> Layer:
        name = reader.read_string(f"{kind} layer")
        if name != f"{kind}_":
            raise reader.error(f"layer {name!r}, expected '{kind}_'")
        return layer if not isinstance(layer, AddPrev) else AddPrev(spec.tag)

    return read


def _read_pool(reader: DlibReader, spec: Expected) -> Layer:
    kind = spec.kind
    version = reader.read_string(f"{kind} layer")
    if version != f"{kind}_2":
        raise reader.error(f"layer {version!r}, expected '{kind}_2'")
    found = {
        "rows": reader.read_int(f"{kind} rows"),
        "columns": reader.read_int(f"{kind} columns"),
        "stride_y": reader.read_int(f"{kind} stride y", size=4),
        "stride_x": reader.read_int(f"{kind} stride x", size=4),
        "padding_y": reader.read_int(f"{kind} padding y", size=4),
        "padding_x": reader.read_int(f"{kind} padding x", size=4),
    }
    wanted = dict(zip(found, (spec.size, spec.size, spec.stride, spec.stride), strict=False))
    wanted |= {"padding_y": spec.padding, "padding_x": spec.padding}
    _same(reader, kind, found, wanted)
    if kind == "max_pool":
        return MaxPool(spec.size, spec.stride, spec.padding)
    return AvgPool(spec.size, spec.stride, spec.padding)


def _read_fc(reader: DlibReader, spec: Expected) -> FullyConnected:
    version = reader.read_string("fc layer")
    if version != "fc_2":
        raise reader.error(f"fc layer version {version!r}, expected 'fc_2'")
    outputs = reader.read_int("fc outputs", signed=False)
    inputs = reader.read_int("fc inputs", signed=False)
    params = reader.read_tensor("fc parameters").reshape(-1)
    weights = reader.read_alias_tensor("fc weights alias")
    reader.read_alias_tensor("fc biases alias")
    bias_mode = reader.read_int("fc bias mode", size=4)
    for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        reader.read_float(f"fc {name} multiplier")
    if outputs != spec.filters or bias_mode != 1:
        raise reader.error(f"fc has {outputs} outputs, bias mode {bias_mode}; expected 128, 1")
    if weights != (inputs, outputs, 1, 1) or params.size != inputs * outputs:
        raise reader.error(f"fc parameters ({params.size}, {weights}) do not fit {inputs} inputs")
    return FullyConnected(params.reshape(inputs, outputs), None)


def _same(reader: DlibReader, kind: str, found: dict[str, int], wanted: dict[str, int]) -> None:
    wrong = [
        f"{key} {found[key]} (expected {wanted[key]})" for key in found if found[key] != wanted[key]
    ]
    if wrong:
        raise reader.error(f"{kind} layer has {', '.join(wrong)}")


_READERS: dict[str, Callable[[DlibReader, Expected], Layer]] = {
    "con": _read_con,
    "affine": _read_affine,
    "relu": _read_plain("relu", Relu()),
    "add_prev": _read_plain("add_prev", AddPrev(0)),
    "max_pool": _read_pool,
    "avg_pool": _read_pool,
    "fc": _read_fc,
}
