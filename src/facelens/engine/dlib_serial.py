"""dlib's binary serialization (``dlib/serialize.h``, ``dlib/dnn/tensor.h``), decoded in Python.

Only what a trained ``dlib::dnn`` network file uses: packed integers,
``float_details`` floats, strings, ``bool`` as ASCII, and tensors. The
network's own structure is read by :mod:`facelens.engine.dlib_format`.

The formats, as dlib writes them:

* integers: a control byte, then the absolute value's bytes, little-endian.
  The control byte's low 4 bits count those bytes (0-8), its high bit is the
  sign; bits 0x70 are always 0 (dlib uses that to tell this format from its
  old ASCII floats).
* floats (``float_details``): two such integers, a 64-bit mantissa and a
  16-bit exponent: the value is ``mantissa * 2**exponent``; exponents 32000,
  32001 and 32002 stand for +inf, -inf and NaN. A float is stored with 24
  mantissa bits, so the value is exact.
* strings: the length (an integer), then the bytes.
* ``bool``: the character ``'1'`` or ``'0'``.
* tensors: a version integer, then the four dimensions and the values.
  Version 2 (dlib since 2016): n, k, nr, nc, then raw IEEE float32
  little-endian; version 1: n, nr, nc, k, then each value as a
  ``float_details``. Version-1 values are decoded with numpy, not one float
  at a time in Python (see :func:`_decode_float_run`).

Every problem is a :class:`~facelens.errors.ConfigurationError` naming the
byte offset: a model file that does not decode is a setting that cannot work.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from facelens.errors import ConfigurationError

__all__ = ["DlibReader"]

_IS_INF: Final = 32000
_IS_NINF: Final = 32001
_IS_NAN: Final = 32002
_MAX_FLOAT_BYTES: Final = 12
"""Longest encoded ``float_details``: 1 + 8 mantissa bytes, 1 + 2 exponent bytes."""
_CHUNK_FLOATS: Final = 1 << 20
"""Version-1 tensor values decoded per numpy pass (bounds memory to ~100 MB)."""


class DlibReader:
    """A cursor over the bytes of a dlib-serialized object.

    source: how to name the data in error messages (usually the file path).
    """

    def __init__(self, data: bytes, *, source: str = "<bytes>") -> None:
        self.data = data
        self.source = source
        self.pos = 0
        self._view = np.frombuffer(data, dtype=np.uint8)

    # --- errors and bytes ------------------------------------------------------------------

    def error(self, message: str, *, at: int | None = None) -> ConfigurationError:
        """A ConfigurationError naming the source and the byte offset (default: the cursor)."""
        offset = self.pos if at is None else at
        return ConfigurationError(f"dlib model {self.source}: {message} (at byte {offset})")

    def take(self, count: int, what: str) -> bytes:
        """The next ``count`` bytes; truncation is an error naming ``what`` was being read."""
        end = self.pos + count
        if count < 0 or end > len(self.data):
            raise self.error(f"file truncated while reading {what}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def at_end(self) -> bool:
        return self.pos == len(self.data)

    # --- scalars ---------------------------------------------------------------------------

    def read_int(self, what: str, *, size: int = 8, signed: bool = True) -> int:
        """One packed integer of a C++ type ``size`` bytes wide (dlib refuses wider values)."""
        start = self.pos
        control = self.take(1, what)[0]
        if control & 0x70:
            raise self.error(f"{what}: not an integer (control byte {control:#04x})", at=start)
        length = control & 0x0F
        negative = bool(control & 0x80)
        if length > size:
            raise self.error(f"{what}: {length}-byte integer for a {size}-byte field", at=start)
        if negative and not signed:
            raise self.error(f"{what}: negative value for an unsigned field", at=start)
        value = int.from_bytes(self.take(length, what), "little")
        return -value if negative else value

    def read_float(self, what: str) -> float:
        """One ``float_details`` value, as a Python float (exact for dlib's float and double)."""
        start = self.pos
        mantissa = self.read_int(what, size=8)
        exponent = self.read_int(what, size=2)
        if exponent == _IS_INF:
            return float("inf")
        if exponent == _IS_NINF:
            return float("-inf")
        if exponent == _IS_NAN:
            return float("nan")
        if not -32768 <= exponent < _IS_INF:
            raise self.error(f"{what}: exponent {exponent} out of range", at=start)
        try:
            return float(np.ldexp(np.float64(mantissa), exponent))
        except OverflowError as exc:  # pragma: no cover - numpy returns inf instead
            raise self.error(f"{what}: value out of range", at=start) from exc

    def read_string(self, what: str, *, limit: int = 256) -> str:
        """A length-prefixed string; longer than ``limit`` bytes is taken as corruption."""
        start = self.pos
        length = self.read_int(what, signed=False)
        if length > limit:
            raise self.error(f"{what}: a {length}-byte string is not plausible here", at=start)
        raw = self.take(length, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.error(f"{what}: not an ASCII string", at=start) from exc

    def read_bool(self, what: str) -> bool:
        start = self.pos
        char = self.take(1, what)
        if char not in (b"0", b"1"):
            raise self.error(f"{what}: expected a bool ('0' or '1'), found {char!r}", at=start)
        return char == b"1"

    def expect_int(self, expected: int, what: str, *, size: int = 8) -> None:
        start = self.pos
        found = self.read_int(what, size=size)
        if found != expected:
            raise self.error(f"{what}: expected {expected}, found {found}", at=start)

    # --- tensors ---------------------------------------------------------------------------

    def read_tensor(self, what: str) -> npt.NDArray[np.float32]:
        """A ``resizable_tensor`` as a float32 array of shape (n, k, nr, nc)."""
        start = self.pos
        version = self.read_int(f"{what} version", size=4)
        if version == 2:
            n, k, nr, nc = (self._dimension(what) for _ in range(4))
        elif version == 1:
            n, nr, nc, k = (self._dimension(what) for _ in range(4))
        else:
            raise self.error(f"{what}: unknown tensor version {version}", at=start)
        count = n * k * nr * nc
        if count > len(self.data):  # each value takes at least one byte
            raise self.error(f"{what}: {n}x{k}x{nr}x{nc} values cannot fit in the file", at=start)
        if version == 2:
            raw = self.take(4 * count, what)
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        else:
            values = self._read_float_run(count, what)
        return values.reshape(n, k, nr, nc)

    def read_alias_tensor(self, what: str) -> tuple[int, int, int, int]:
        """An ``alias_tensor``'s shape (n, k, nr, nc): where a layer's parameters sit."""
        self.expect_int(1, f"{what} version", size=4)
        n, k, nr, nc = (self._dimension(what) for _ in range(4))
        return (n, k, nr, nc)

    def _dimension(self, what: str) -> int:
        start = self.pos
        value = self.read_int(f"{what} dimension")
        if value < 0:
            raise self.error(f"{what}: negative dimension {value}", at=start)
        return value

    def _read_float_run(self, count: int, what: str) -> npt.NDArray[np.float32]:
        parts: list[npt.NDArray[np.float32]] = []
        done = 0
        while done < count:
            take = min(_CHUNK_FLOATS, count - done)
            values, end = _decode_float_run(self._view, self.pos, take)
            if values is None:
                raise self.error(f"{what}: corrupt or truncated float values", at=self.pos)
            parts.append(values)
            self.pos = end
            done += take
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _decode_float_run(
    buf: npt.NDArray[np.uint8], start: int, count: int
) -> tuple[npt.NDArray[np.float32] | None, int]:
    """``count`` consecutive ``float_details`` values from ``buf[start:]``, and where they end.

    Each record's length depends on its two control bytes, so record i's
    offset depends on every record before it: a sequential walk. Instead,
    for every byte offset in the window we compute where the next record
    would start if one started there (``step``), then find the offsets of all
    ``count`` records by pointer doubling: knowing the first 2**j offsets,
    the next 2**j are ``step^(2**j)`` of them, and ``step^(2**(j+1))`` is
    ``step^(2**j)`` applied twice. About log2(count) numpy passes over the
    window instead of ``count`` Python steps. Returns (None, start) when the
    bytes are not ``count`` valid records.
    """
    if count == 0:
        return np.zeros(0, dtype=np.float32), start
    window = buf[start : min(len(buf), start + _MAX_FLOAT_BYTES * count)].astype(np.int64)
    size = len(window)
    if size == 0:
        return None, start
    # step[i]: where the next record starts if one starts at i; size + 1 means "no valid record
    # starts here" (it runs past the window). Offset size (the window's end) starts nothing.
    sentinel = size + 1
    index = np.arange(size, dtype=np.int64)
    exponent_at = index + 1 + (window & 0x0F)
    safe = np.minimum(exponent_at, size - 1)
    step = np.where(exponent_at < size, exponent_at + 1 + (window[safe] & 0x0F), sentinel)
    step = np.where(step > size, sentinel, step)
    step = np.append(step, [sentinel, sentinel])

    offsets = np.zeros(1, dtype=np.int64)
    jump = step
    while len(offsets) < count:
        offsets = np.concatenate([offsets, jump[offsets]])
        if len(offsets) < count:
            jump = jump[jump]
    offsets = offsets[:count]
    if offsets[-1] >= size:
        return None, start
    end = int(step[offsets[-1]])
    if end > size:
        return None, start

    padded = np.append(window, np.zeros(_MAX_FLOAT_BYTES, dtype=np.int64))
    mantissa_control = padded[offsets]
    exponent_pos = offsets + 1 + (mantissa_control & 0x0F)
    exponent_control = padded[exponent_pos]
    if (
        np.any((mantissa_control & 0x70) != 0)
        or np.any((exponent_control & 0x70) != 0)
        or np.any((mantissa_control & 0x0F) > 8)
        or np.any((exponent_control & 0x0F) > 2)
    ):
        return None, start
    # uint64 -> float32 rounds once, as dlib's (float)mantissa does.
    mantissa = _gather_magnitude(padded, offsets, mantissa_control & 0x0F, 8).astype(np.float32)
    mantissa = np.where(mantissa_control & 0x80, -mantissa, mantissa)
    exponent = _gather_magnitude(padded, exponent_pos, exponent_control & 0x0F, 2).astype(np.int64)
    exponent = np.where(exponent_control & 0x80, -exponent, exponent)
    special = exponent >= _IS_INF
    if np.any(exponent[special] > _IS_NAN) or np.any(exponent < -32768):
        return None, start
    with np.errstate(over="ignore"):
        values = np.ldexp(mantissa, np.where(special, 0, exponent).astype(np.int32))
    values = np.where(exponent == _IS_INF, np.float32(np.inf), values)
    values = np.where(exponent == _IS_NINF, np.float32(-np.inf), values)
    values = np.where(exponent == _IS_NAN, np.float32(np.nan), values)
    return values.astype(np.float32), start + end


def _gather_magnitude(
    padded: npt.NDArray[np.int64],
    control_pos: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    width: int,
) -> npt.NDArray[np.uint64]:
    """Magnitudes (little-endian) of the packed integers whose control bytes are at control_pos."""
    total = np.zeros(len(control_pos), dtype=np.uint64)
    for byte in range(width):
        present = lengths > byte
        value = padded[control_pos + 1 + byte].astype(np.uint64)
        total |= np.where(present, value, np.uint64(0)) << np.uint64(8 * byte)
    return total
