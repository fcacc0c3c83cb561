"""A small writer of dlib's serialization format, for making test inputs by hand.

Written from dlib's documented format (``dlib/serialize.h``, ``float_details.h``,
``dnn/tensor.h``), independently of the reader under test, so the two check
each other.
"""

from __future__ import annotations

import math

import numpy as np


def pack_int(value: int) -> bytes:
    """dlib's integer: a control byte (sign in bit 7, byte count in bits 0-3), then |value| LE."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    if magnitude == 0:
        body = b"\x00"  # dlib writes one zero byte for 0
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def pack_float(value: float, *, digits: int = 24) -> bytes:
    """float_details: mantissa then exponent, both as packed integers (digits: 24 for float)."""
    if math.isnan(value):
        return pack_int(0) + pack_int(32002)
    if math.isinf(value):
        return pack_int(0) + pack_int(32000 if value > 0 else 32001)
    fraction, exponent = math.frexp(value)
    mantissa = int(fraction * (1 << digits))
    exponent -= digits
    for _ in range(8):  # shift off zero low bytes, as dlib does (8 times for 0)
        if mantissa & 0xFF:
            break
        mantissa >>= 8
        exponent += 8
    return pack_int(mantissa) + pack_int(exponent)


def pack_string(text: str) -> bytes:
    raw = text.encode("ascii")
    return pack_int(len(raw)) + raw


def pack_tensor_v2(values: np.ndarray) -> bytes:
    """Version 2: n, k, nr, nc, then raw little-endian float32."""
    n, k, nr, nc = values.shape
    head = pack_int(2) + b"".join(pack_int(d) for d in (n, k, nr, nc))
    return head + values.astype("<f4").tobytes()


def pack_tensor_v1(values: np.ndarray) -> bytes:
    """Version 1: n, nr, nc, k, then each value as float_details."""
    n, k, nr, nc = values.shape
    head = pack_int(1) + b"".join(pack_int(d) for d in (n, nr, nc, k))
    return head + b"".join(pack_float(float(v)) for v in values.reshape(-1))


def pack_alias(shape: tuple[int, int, int, int]) -> bytes:
    return pack_int(1) + b"".join(pack_int(d) for d in shape)
