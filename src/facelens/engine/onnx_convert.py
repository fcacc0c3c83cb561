"""dlib's face recognition ResNet as an ONNX model: built from the .dat file, cached on disk.

The graph is the network :mod:`facelens.engine.dlib_format` reads, op for
op, with two deliberate differences, both exact up to float32 rounding:

* each ``affine`` layer that follows a convolution is folded into it
  (``w * gamma``, ``b * gamma + beta``, computed in float64), which halves the
  passes over memory and lets ONNX Runtime fuse conv + bias + relu;
* the input is the chips as they are (N x 150 x 150 x 3 uint8, RGB), and the
  graph itself does dlib's ``input_rgb_image`` normalisation
  ((pixel - channel mean) / 256) and the move to channels-first.

``add_prev`` of two differently shaped tensors (a 3x3 block output and a 4x4
pooled shortcut, 256 and 128 channels) is reproduced with ONNX ``Pad``: dlib
treats missing values as zeros and the sum takes the larger size in every
dimension, so each input is zero-padded after its last channel, row and
column up to that size, then added.

Converting takes well under a second, but the cache saves it (and the
``onnx`` import) on every start: the model is written once per source file
to ``<cache_dir>/dlib_resnet_v1-<sha256 of the .dat>-c<converter>.onnx``,
atomically (temporary file, fsync, rename), with a ``.sha256`` file next to
it holding the digest of the model bytes. A cached model whose bytes do not
match that digest (truncated, corrupted, half-written by a crash) is rebuilt,
never used. A cache directory that cannot be written is not an error: the
model is then converted in memory on each start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from facelens.engine.dlib_format import read_dlib_network
from facelens.engine.dlib_layers import (
    AddPrev,
    Affine,
    AvgPool,
    Conv,
    DlibNetwork,
    FullyConnected,
    MaxPool,
    Relu,
    Shape,
    Skip,
    Tag,
    infer_shapes,
)
from facelens.errors import ConfigurationError

__all__ = ["CONVERTER_VERSION", "INPUT_NAME", "OUTPUT_NAME", "build_onnx_model", "load_or_convert"]

log = logging.getLogger(__name__)

CONVERTER_VERSION: Final = 1
"""Part of the cache file name: bump it when the graph built from the same .dat changes."""
OPSET: Final = 17
INPUT_NAME: Final = "chips"
OUTPUT_NAME: Final = "descriptors"


class _Graph:
    """Accumulates ONNX nodes and initializers with unique names."""

    def __init__(self) -> None:
        from onnx import NodeProto, TensorProto

        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0

    def _name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def constant(self, prefix: str, values: npt.NDArray[Any]) -> str:
        from onnx import numpy_helper

        name = self._name(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(values), name))
        return name

    def node(self, op: str, inputs: list[str], **attributes: Any) -> str:
        from onnx import helper

        output = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def pad_to(self, tensor: str, shape: Shape, target: Shape) -> str:
        """``tensor`` zero-padded after its last channel, row and column up to ``target``."""
        if shape == target:
            return tensor
        extra = [t - s for s, t in zip(shape, target, strict=True)]
        pads = np.asarray([0, 0, 0, 0, 0, *extra], dtype=np.int64)
        return self.node("Pad", [tensor, self.constant("pads", pads)], mode="constant")


def build_onnx_model(network: DlibNetwork, *, source_sha256: str = "") -> bytes:
    """The serialized ONNX model computing dlib's raw 128-d descriptors from uint8 chips."""
    import onnx
    from onnx import TensorProto, helper

    shapes = infer_shapes(network)
    graph = _Graph()
    size = network.input_size
    means = np.asarray(network.channel_means, dtype=np.float32)
    pixels = graph.node("Cast", [INPUT_NAME], to=TensorProto.FLOAT)
    centred = graph.node("Sub", [pixels, graph.constant("channel_means", means)])
    scale = graph.constant("scale", np.asarray(1.0 / 256.0, dtype=np.float32))
    current = graph.node("Transpose", [graph.node("Mul", [centred, scale])], perm=[0, 3, 1, 2])
    shape: Shape = (3, size, size)

    tags: dict[int, tuple[str, Shape]] = {}
    layers = network.layers
    index = 0
    while index < len(layers):
        layer = layers[index]
        if isinstance(layer, Conv):
            following = layers[index + 1] if index + 1 < len(layers) else None
            if isinstance(following, Affine):
                index += 1  # folded into this conv
            current = _conv(
                graph, current, layer, following if isinstance(following, Affine) else None
            )
        elif isinstance(layer, Affine):
            channels = layer.gamma.size
            gamma = graph.constant("gamma", layer.gamma.reshape(channels, 1, 1))
            beta = graph.constant("beta", layer.beta.reshape(channels, 1, 1))
            current = graph.node("Add", [graph.node("Mul", [current, gamma]), beta])
        elif isinstance(layer, Relu):
            current = graph.node("Relu", [current])
        elif isinstance(layer, MaxPool | AvgPool):
            current = _pool(graph, current, layer)
        elif isinstance(layer, Tag):
            tags[layer.tag] = (current, shape)
        elif isinstance(layer, Skip):
            current = tags[layer.tag][0]
        elif isinstance(layer, AddPrev):
            # shape: the current tensor's (updated after each layer, below)
            other, other_shape = tags[layer.tag]
            target = shapes[index]
            left = graph.pad_to(current, shape, target)
            current = graph.node("Add", [left, graph.pad_to(other, other_shape, target)])
        elif isinstance(layer, FullyConnected):
            flat = graph.node("Flatten", [current], axis=1)
            current = graph.node("MatMul", [flat, graph.constant("fc", layer.weights)])
            if layer.bias is not None:
                current = graph.node("Add", [current, graph.constant("fc_bias", layer.bias)])
        shape = shapes[index]
        index += 1

    graph.nodes.append(helper.make_node("Identity", [current], [OUTPUT_NAME], name="output"))
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "dlib_face_recognition_resnet_model_v1",
            [
                helper.make_tensor_value_info(
                    INPUT_NAME, TensorProto.UINT8, ["batch", size, size, 3]
                )
            ],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", shape[0]])],
            initializer=graph.initializers,
        ),
        producer_name="facelens",
        producer_version=str(CONVERTER_VERSION),
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string=(
            "dlib_face_recognition_resnet_model_v1 (dlib's face recognition ResNet, "
            "face_recognition_models), converted by facelens.engine.onnx_convert; input: RGB "
            "uint8 chips aligned as dlib's, output: dlib's raw 128-d descriptors"
        ),
    )
    model.ir_version = 8  # read by ONNX Runtime 1.14 and later; opset 17 needs at least 8
    helper.set_model_props(model, {"source_sha256": source_sha256})
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:  # pragma: no cover - a bug in this module
        raise ConfigurationError(f"the converted dlib model is not valid ONNX: {exc}") from exc
    data: bytes = model.SerializeToString()
    return data


def _conv(graph: _Graph, current: str, layer: Conv, affine: Affine | None) -> str:
    """A Conv node; with ``affine``, (w * x + b) * gamma + beta folded into w and b (in float64)."""
    weights = layer.weights.astype(np.float64)
    bias = layer.bias.astype(np.float64)
    if affine is not None:
        gamma = affine.gamma.astype(np.float64)
        weights = weights * gamma[:, None, None, None]
        bias = bias * gamma + affine.beta.astype(np.float64)
    side = layer.weights.shape[2]
    return graph.node(
        "Conv",
        [
            current,
            graph.constant("w", weights.astype(np.float32)),
            graph.constant("b", bias.astype(np.float32)),
        ],
        kernel_shape=[side, side],
        strides=[layer.stride, layer.stride],
        pads=[layer.padding] * 4,
    )


def _pool(graph: _Graph, current: str, layer: MaxPool | AvgPool) -> str:
    """MaxPool / AveragePool; size 0 (dlib's ``*_pool_everything``) is the global form."""
    average = isinstance(layer, AvgPool)
    if layer.size == 0:
        return graph.node("GlobalAveragePool" if average else "GlobalMaxPool", [current])
    return graph.node(
        "AveragePool" if average else "MaxPool",
        [current],
        kernel_shape=[layer.size, layer.size],
        strides=[layer.stride, layer.stride],
        pads=[layer.padding] * 4,
    )


# --- the cache -------------------------------------------------------------------------------


def load_or_convert(source: Path, cache_dir: Path | None) -> bytes:
    """The ONNX model of the dlib network in ``source``, from the cache when it is intact.

    cache_dir: where converted models are kept (created if missing); None
    converts in memory every time.
    """
    digest = _file_sha256(source)
    path = None
    if cache_dir is not None:
        path = cache_dir / f"dlib_resnet_v1-{digest}-c{CONVERTER_VERSION}.onnx"
        cached = _read_verified(path)
        if cached is not None:
            return cached
    model = build_onnx_model(read_dlib_network(source), source_sha256=digest)
    if path is not None:
        _write_atomically(path, model)
    return model


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the dlib model {path}: {exc}") from exc
    return hasher.hexdigest()


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_verified(path: Path) -> bytes | None:
    """The cached model's bytes if they match their recorded digest; None (rebuild) otherwise."""
    try:
        expected = _digest_path(path).read_text(encoding="ascii").strip()
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read the cached model %s (%s); converting again", path, exc)
        return None
    if hashlib.sha256(data).hexdigest() != expected:
        log.warning("cached model %s does not match its digest; converting again", path)
        return None
    return data


def _write_atomically(path: Path, model: bytes) -> None:
    """Model, then its digest, each via a temporary file renamed into place.

    A reader sees the old pair, the new pair, or a mismatch it rebuilds from;
    never a half-written model it trusts. Failing to write only costs the
    next start a conversion, so it is logged, not raised.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, model)
        _replace(_digest_path(path), (hashlib.sha256(model).hexdigest() + "\n").encode("ascii"))
    except OSError as exc:
        log.warning("cannot cache the converted model in %s (%s)", path.parent, exc)


def _replace(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
