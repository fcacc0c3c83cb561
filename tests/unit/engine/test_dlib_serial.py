"""dlib's integer, float, string and tensor encodings, decoded from hand-made bytes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facelens.engine import dlib_serial
from facelens.engine.dlib_serial import DlibReader
from facelens.errors import ConfigurationError
from tests.unit.engine.dlib_bytes import (
    pack_alias,
    pack_float,
    pack_int,
    pack_string,
    pack_tensor_v1,
    pack_tensor_v2,
)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"\x00", 0),  # no magnitude bytes at all
        (b"\x01\x00", 0),  # what dlib writes for 0
        (b"\x01\x05", 5),
        (b"\x81\x05", -5),
        (b"\x02\x00\x01", 256),
        (b"\x82\x34\x12", -0x1234),
        (b"\x08" + (2**63 - 1).to_bytes(8, "little"), 2**63 - 1),
    ],
)
def test_integers_decode_sign_and_little_endian_magnitude(raw: bytes, value: int) -> None:
    reader = DlibReader(raw)
    assert reader.read_int("n") == value
    assert reader.at_end()


def test_integer_errors_name_the_offset() -> None:
    with pytest.raises(ConfigurationError, match=r"truncated while reading n \(at byte 1\)"):
        DlibReader(b"\x03\x01\x02").read_int("n")  # three bytes announced, two present
    with pytest.raises(ConfigurationError, match="3-byte integer for a 2-byte field"):
        DlibReader(b"\x03\x01\x02\x03").read_int("n", size=2)
    with pytest.raises(ConfigurationError, match="not an integer"):
        DlibReader(b"\x31\x01").read_int("n")  # bits 0x70 are never set by dlib
    with pytest.raises(ConfigurationError, match="negative value for an unsigned"):
        DlibReader(b"\x81\x01").read_int("n", signed=False)
    with pytest.raises(ConfigurationError, match="truncated"):
        DlibReader(b"").read_int("n")


def test_floats_are_mantissa_times_two_to_the_exponent() -> None:
    # 0.04 as the model file stores its loss margin: mantissa 0xa3d70a, exponent -28.
    assert DlibReader(b"\x03\x0a\xd7\xa3\x81\x1c").read_float("m") == np.float32(0.04)
    for value in (0.6, -1.5, 122.782, 1e-30, -3.4e38, 0.0):
        single = float(np.float32(value))
        assert DlibReader(pack_float(single)).read_float("x") == single
    assert DlibReader(pack_float(math.inf)).read_float("x") == math.inf
    assert DlibReader(pack_float(-math.inf)).read_float("x") == -math.inf
    assert math.isnan(DlibReader(pack_float(math.nan)).read_float("x"))
    with pytest.raises(ConfigurationError, match="exponent 32005 out of range"):
        DlibReader(pack_int(1) + pack_int(32005)).read_float("x")


def test_strings_and_bools() -> None:
    reader = DlibReader(pack_string("con_4") + b"10")
    assert reader.read_string("kind") == "con_4"
    assert reader.read_bool("a") is True
    assert reader.read_bool("b") is False
    with pytest.raises(ConfigurationError, match="expected a bool"):
        DlibReader(b"x").read_bool("flag")
    with pytest.raises(ConfigurationError, match="not plausible"):
        DlibReader(pack_int(100_000) + b"a").read_string("kind")


def _sample_values(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal(count) * 10.0 ** rng.integers(-8, 8, count)).astype(np.float32)
    values[::7] = 0.0
    values[3::11] = np.round(values[3::11])  # small integers: short mantissas
    return values


def test_version_2_tensors_are_raw_little_endian_float32() -> None:
    values = _sample_values(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    tensor = DlibReader(pack_tensor_v2(values)).read_tensor("t")
    assert tensor.shape == (2, 3, 4, 5)
    assert tensor.dtype == np.float32
    assert np.array_equal(tensor, values)


def test_version_1_tensors_decode_float_details_exactly() -> None:
    values = _sample_values(3 * 2 * 5 * 7, seed=1)
    values[5] = np.inf
    values[6] = -np.inf
    values[8] = np.nan
    values[9] = np.float32(1e-42)  # subnormal
    shaped = values.reshape(3, 2, 5, 7)
    data = pack_tensor_v1(shaped) + b"\x01\x07"  # and a following integer
    reader = DlibReader(data)
    tensor = reader.read_tensor("t")
    assert tensor.shape == (3, 2, 5, 7)
    assert np.array_equal(tensor, shaped, equal_nan=True)
    assert reader.read_int("next") == 7
    assert reader.at_end()


def test_version_1_tensors_decode_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dlib_serial, "_CHUNK_FLOATS", 16)  # many chunks, one of them partial
    values = _sample_values(101, seed=2).reshape(1, 101, 1, 1)
    assert np.array_equal(DlibReader(pack_tensor_v1(values)).read_tensor("t"), values)


@pytest.mark.parametrize("cut", [1, 5, 40, -3, -1])
def test_truncated_version_1_tensors_are_errors(cut: int) -> None:
    data = pack_tensor_v1(_sample_values(24, seed=3).reshape(2, 3, 2, 2))
    with pytest.raises(ConfigurationError, match=r"truncated|corrupt"):
        DlibReader(data[:cut]).read_tensor("t")


def test_corrupt_tensors_are_errors() -> None:
    values = np.ones((1, 1, 1, 4), dtype=np.float32)
    with pytest.raises(ConfigurationError, match="unknown tensor version 3"):
        DlibReader(pack_int(3) + pack_tensor_v2(values)[1:]).read_tensor("t")
    with pytest.raises(ConfigurationError, match="truncated"):
        DlibReader(pack_tensor_v2(values)[:-1]).read_tensor("t")
    huge = pack_int(2) + b"".join(pack_int(d) for d in (1000, 1000, 1000, 1000))
    with pytest.raises(ConfigurationError, match="cannot fit"):
        DlibReader(huge).read_tensor("t")
    bad_control = bytearray(pack_tensor_v1(values))
    bad_control[-4] |= 0x40  # a float's control byte with a reserved bit set
    with pytest.raises(ConfigurationError, match="corrupt"):
        DlibReader(bytes(bad_control)).read_tensor("t")


def test_alias_tensors_are_shapes() -> None:
    assert DlibReader(pack_alias((32, 3, 7, 7))).read_alias_tensor("a") == (32, 3, 7, 7)
    with pytest.raises(ConfigurationError, match="expected 1, found 2"):
        DlibReader(pack_int(2) + pack_alias((1, 1, 1, 1))[1:]).read_alias_tensor("a")
