"""Image bytes for uploads and ``Image.Bytes``: broken, odd, huge-by-header, and real.

Empty bytes; magic bytes (PNG, JPEG, GIF, WEBP, BMP, TIFF) followed by garbage;
small valid images in every format and colour mode Pillow writes; headers
declaring 0 x 0 up to 4 billion pixels a side; real photos truncated,
bit-flipped or (rarely) whole; and base64 gone wrong for Rekognition's JSON.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from PIL import Image

from tests.fuzz.strategies import json_values

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(
    width: int, height: int, *, rows: bytes | None = None, depth: int = 8, color: int = 2
) -> bytes:
    """A PNG whose header says ``width`` x ``height``; ``rows`` the (filtered) pixel rows,
    default a valid grey image when small, else a few bytes that cannot fill it."""
    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    if rows is None:
        channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color, 3)
        small = width <= 64 and height <= 64 and depth == 8  # by side: 0 x 2**32 is not small
        rows = (b"\x00" + b"\x80" * width * channels) * height if small else b"\x00" * 64
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


@st.composite
def pillow_images(draw: st.DrawFn) -> bytes:
    """Small valid images in every format and mode Pillow writes: the decoder's odd paths."""
    fmt, modes = draw(
        st.sampled_from(
            [
                ("PNG", ["1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"]),
                ("JPEG", ["L", "RGB", "CMYK"]),
                ("BMP", ["1", "L", "P", "RGB"]),
                ("WEBP", ["RGB", "RGBA"]),
                ("GIF", ["L", "P"]),
                ("TIFF", ["L", "RGB", "F", "I;16"]),
            ]
        )
    )
    mode = draw(st.sampled_from(modes))
    size = (draw(st.integers(1, 48)), draw(st.integers(1, 48)))
    image = Image.new(mode, size)
    out = io.BytesIO()
    try:
        image.save(out, format=fmt)
    except (OSError, ValueError, KeyError):
        image.convert("RGB").save(out, format=fmt)
    return out.getvalue()


@dataclass(frozen=True, repr=False)
class Photos:
    """Real photos (bytes) from the test data, to cut and corrupt; the first has a face."""

    faces: tuple[bytes, ...]

    def __repr__(self) -> str:
        return f"Photos({len(self.faces)})"


@st.composite
def images(draw: st.DrawFn, photos: Photos) -> bytes:
    """Image bytes: empty, magic bytes then garbage, valid small images, gigapixel headers,
    and real photos truncated, bit-flipped or (rarely) whole."""
    choice = draw(st.integers(0, 11))
    garbage = st.binary(max_size=300)
    if choice == 0:
        return b""
    if choice == 1:
        prefix = draw(
            st.sampled_from(
                [
                    PNG_SIGNATURE,
                    JPEG_SOI,
                    b"GIF89a",
                    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
                    b"BM",
                    b"II*\x00",
                ]
            )
        )
        return prefix + draw(garbage)
    if choice == 2:
        return draw(garbage)
    if choice == 3:
        return draw(pillow_images())
    if choice == 4:  # a header declaring a huge or empty image
        width = draw(st.sampled_from([0, 1, 50_000, 65_535, 2**31 - 1, 2**32 - 1]))
        height = draw(st.sampled_from([0, 1, 50_000, 65_535, 2**31 - 1, 2**32 - 1]))
        return png(width, height)
    if choice == 5:  # a valid tiny PNG, odd bit depths and colour types included
        depth, color = draw(st.sampled_from([(8, 0), (8, 2), (8, 6), (8, 4), (16, 2), (1, 0)]))
        width, height = draw(st.integers(1, 32)), draw(st.integers(1, 32))
        if depth == 8:
            return png(width, height, color=color)
        return png(width, height, depth=depth, color=color, rows=draw(st.binary(max_size=200)))
    if choice == 6:  # a JPEG header declaring a huge image, then garbage
        width = draw(st.sampled_from([1, 65_535, 0]))
        height = draw(st.sampled_from([1, 65_535, 0]))
        sof = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03\x01\x22\x00"
        return (
            JPEG_SOI
            + b"\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            + sof
            + draw(garbage)
        )
    photo = draw(st.sampled_from(photos.faces)) if photos.faces else png(8, 8)
    if choice in (7, 8):  # truncated
        return photo[: draw(st.integers(0, len(photo) - 1))]
    if choice in (9, 10):  # bytes flipped somewhere past the header
        data = bytearray(photo)
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(min(20, len(data) - 1), len(data) - 1))
            data[at] ^= draw(st.integers(1, 255))
        return bytes(data)
    return photo


@st.composite
def base64_images(draw: st.DrawFn, photos: Photos) -> Any:
    """Rekognition's ``Image.Bytes``: base64 of an image, or base64 gone wrong."""
    choice = draw(st.integers(0, 6))
    data = draw(images(photos))
    encoded = base64.b64encode(data).decode()
    if choice == 0:
        return encoded.rstrip("=") or "="
    if choice == 1:
        return encoded[:-1] + "!" if encoded else "!"
    if choice == 2:
        return base64.urlsafe_b64encode(data).decode()
    if choice == 3:
        return "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    if choice == 4:
        return draw(json_values(max_leaves=3))
    return encoded
