"""Decoding untrusted image bytes: formats, modes, orientation, limits, bad input."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageFile

from facelens.engine import images
from facelens.engine.images import ACCEPTED_FORMATS, DecodedImage, decode_image, read_image_file
from facelens.errors import (
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
)

MAX_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 50_000_000

no_bomb_warning = pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")


def decode(data: bytes) -> DecodedImage:
    return decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def pattern(width: int = 64, height: int = 48) -> npt.NDArray[np.uint8]:
    """A smooth RGB test pattern (survives JPEG well), H x W x 3."""
    x = np.linspace(0, 255, width, dtype=np.float64)[np.newaxis, :]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, np.newaxis]
    red = np.broadcast_to(x, (height, width))
    green = np.broadcast_to(y, (height, width))
    blue = np.full((height, width), 96.0)
    return np.stack([red, green, blue], axis=2).round().astype(np.uint8)


def noise_jpeg(size: int = 256) -> bytes:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "JPEG", quality=90)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height 8-bit gray pixels, with garbage image data.

    Decoding it would fail, so an ImageTooLargeException proves the limit is
    checked from the header alone.
    """

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"not zlib data at all")
        + chunk(b"IEND", b"")
    )


def assert_rgb_array(decoded: DecodedImage, width: int, height: int) -> None:
    pixels = decoded.pixels
    assert pixels.dtype == np.uint8
    assert pixels.shape == (height, width, 3)
    assert pixels.flags.c_contiguous
    assert (decoded.width, decoded.height) == (width, height)


# --- formats -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params", "tolerance"),
    [
        ("PNG", {}, 0),
        ("BMP", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("WEBP", {"quality": 95}, 24),
        ("JPEG", {"quality": 95}, 16),
    ],
)
def test_round_trip_of_accepted_formats(
    fmt: str, params: dict[str, object], tolerance: int
) -> None:
    original = pattern()
    decoded = decode(encode(Image.fromarray(original), fmt, **params))
    assert decoded.format == fmt
    assert_rgb_array(decoded, 64, 48)
    difference = np.abs(decoded.pixels.astype(np.int16) - original.astype(np.int16))
    assert int(difference.max()) <= tolerance


def test_accepted_formats_are_the_four_documented() -> None:
    assert set(ACCEPTED_FORMATS) == {"JPEG", "PNG", "WEBP", "BMP"}


def test_real_jpeg_photo(testdata_dir: Path) -> None:
    decoded = read_image_file(
        testdata_dir / "people" / "obama" / "obama_1.jpg",
        max_bytes=MAX_BYTES,
        max_pixels=MAX_PIXELS,
    )
    assert decoded.format == "JPEG"
    assert_rgb_array(decoded, 910, 1137)
    assert 40 < float(decoded.pixels.mean()) < 220


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("GIF", "GIF"), ("TIFF", "TIFF"), ("ICO", "ICO"), ("PPM", "PPM")],
)
def test_other_formats_are_rejected_by_name(fmt: str, name: str) -> None:
    data = encode(Image.fromarray(pattern(32, 32)), fmt)
    with pytest.raises(InvalidImageFormatException, match=name):
        decode(data)


# --- bad bytes ---------------------------------------------------------------------


def test_empty_bytes() -> None:
    with pytest.raises(InvalidImageFormatException, match="empty"):
        decode(b"")


def test_random_bytes() -> None:
    data = np.random.default_rng(0).bytes(4096)
    with pytest.raises(InvalidImageFormatException, match="not an image"):
        decode(data)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("These are not the pixels you are looking for.\n" * 20)
    with pytest.raises(InvalidImageFormatException):
        read_image_file(path, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)


def test_truncated_generated_jpeg_is_rejected() -> None:
    data = noise_jpeg()
    with pytest.raises(InvalidImageFormatException, match="truncated or corrupt"):
        decode(data[: len(data) // 2])


def test_truncated_real_jpeg_is_rejected(testdata_dir: Path) -> None:
    data = (testdata_dir / "people" / "obama" / "obama_1.jpg").read_bytes()
    with pytest.raises(InvalidImageFormatException):
        decode(data[: len(data) // 2])


def test_truncated_png_is_rejected() -> None:
    rng = np.random.default_rng(3)
    data = encode(Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(InvalidImageFormatException):
        decode(data[: len(data) // 2])


def test_corrupt_png_header_is_rejected() -> None:
    data = bytearray(encode(Image.fromarray(pattern()), "PNG"))
    data[20] ^= 0xFF  # inside IHDR: its CRC no longer matches
    with pytest.raises(InvalidImageFormatException):
        decode(bytes(data))


def test_pillow_globals_are_left_alone() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's default, untouched


# --- orientation -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_is_applied(fmt: str) -> None:
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 tall
    stored[:8, :8] = (255, 0, 0)  # red block at the stored top-left
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    decoded = decode(encode(image, fmt, exif=exif.tobytes()))
    assert_rgb_array(decoded, 20, 40)
    # Rotated clockwise, the stored top-left corner ends at the top-right.
    assert decoded.pixels[2, 17, 0] > 200
    assert decoded.pixels[2, 2, 0] < 50


# --- colour modes ------------------------------------------------------------------


def test_grayscale_becomes_three_equal_channels() -> None:
    gray = pattern()[:, :, 0]
    decoded = decode(encode(Image.fromarray(gray, mode="L"), "PNG"))
    assert_rgb_array(decoded, 64, 48)
    for channel in range(3):
        np.testing.assert_array_equal(decoded.pixels[:, :, channel], gray)


def test_rgba_testdata_drops_alpha(testdata_dir: Path) -> None:
    decoded = read_image_file(
        testdata_dir / "hard" / "rgba_32bit.png", max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS
    )
    assert decoded.format == "PNG"
    assert_rgb_array(decoded, 626, 1200)


def test_alpha_is_dropped_not_composited() -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[..., 3] = 0  # fully transparent: the colour underneath is kept
    decoded = decode(encode(Image.fromarray(rgba, mode="RGBA"), "PNG"))
    assert_rgb_array(decoded, 8, 8)
    assert decoded.pixels[0, 0].tolist() == [10, 20, 30]


@pytest.mark.parametrize("mode", ["1", "LA", "P"])
def test_other_png_modes_become_rgb(mode: str) -> None:
    image = Image.fromarray(pattern()).convert(mode)
    decoded = decode(encode(image, "PNG"))
    assert_rgb_array(decoded, 64, 48)


def test_palette_with_transparency_becomes_rgb() -> None:
    image = Image.fromarray(pattern()).convert("P")
    decoded = decode(encode(image, "PNG", transparency=0))
    assert_rgb_array(decoded, 64, 48)


def test_cmyk_jpeg_becomes_rgb() -> None:
    image = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    decoded = decode(encode(image, "JPEG", quality=95))
    assert_rgb_array(decoded, 16, 16)
    red, green, blue = (int(v) for v in decoded.pixels[8, 8])
    assert red > 200
    assert green < 60
    assert blue < 60


def test_sixteen_bit_grayscale_png_is_scaled_not_saturated() -> None:
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16)
    gray16 = np.tile(ramp, (16, 1))
    image = Image.fromarray(gray16)
    assert image.mode.startswith("I")
    decoded = decode(encode(image, "PNG"))
    assert_rgb_array(decoded, 256, 16)
    out = decoded.pixels[:, :, 0]
    np.testing.assert_array_equal(out, (gray16 >> 8).astype(np.uint8))
    np.testing.assert_array_equal(decoded.pixels[:, :, 1], out)
    assert int(out.min()) == 0
    assert int(out.max()) == 255
    assert len(np.unique(out)) > 200
    assert 100 < float(out.mean()) < 155


def test_sixteen_bit_rgb_png_is_scaled_not_saturated() -> None:
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16)
    red = np.tile(ramp, (16, 1))
    green = np.full_like(red, 32768)
    blue = np.tile(ramp[::-1], (16, 1))
    ok, encoded = cv2.imencode(".png", np.dstack([blue, green, red]))  # OpenCV writes BGR
    assert ok
    decoded = decode(encoded.tobytes())
    assert decoded.format == "PNG"
    assert_rgb_array(decoded, 256, 16)
    pixels = decoded.pixels.astype(np.int16)
    assert abs(int(pixels[0, 0, 0]) - 0) <= 1
    assert abs(int(pixels[0, -1, 0]) - 255) <= 1
    assert abs(int(pixels[0, 0, 1]) - 128) <= 1
    assert abs(int(pixels[0, 0, 2]) - 255) <= 1
    assert len(np.unique(pixels[:, :, 0])) > 200


def test_float_mode_is_stretched_over_its_range() -> None:
    values = np.linspace(-1.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    rgb = images._to_rgb(Image.fromarray(values, mode="F"))
    assert rgb.shape == (8, 8, 3)
    assert rgb.dtype == np.uint8
    assert int(rgb.min()) == 0
    assert int(rgb.max()) == 255


def test_thirty_two_bit_integer_mode_holding_sixteen_bit_values() -> None:
    values = np.linspace(0, 65535, 64).round().astype(np.int32).reshape(8, 8)
    rgb = images._to_rgb(Image.fromarray(values, mode="I"))
    np.testing.assert_array_equal(rgb[:, :, 0], (values >> 8).astype(np.uint8))


# --- limits ------------------------------------------------------------------------


def test_too_many_bytes_is_rejected_before_decoding() -> None:
    data = encode(Image.fromarray(pattern()), "PNG")
    with pytest.raises(ImageTooLargeException, match="bytes"):
        decode_image(data, max_bytes=len(data) - 1, max_pixels=MAX_PIXELS)
    assert decode_image(data, max_bytes=len(data), max_pixels=MAX_PIXELS).width == 64


def test_huge_file_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.jpg"
    with path.open("wb") as handle:
        handle.truncate(1 << 30)  # 1 GiB, sparse: costs no disk

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened for reading")

    monkeypatch.setattr(Path, "open", refuse)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ImageTooLargeException, match=re.escape(str(path))):
        read_image_file(path, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)


def test_reading_is_bounded_even_when_stat_does_not_know_the_size() -> None:
    endless = Path("/dev/zero")
    if not endless.exists():
        pytest.skip("no /dev/zero here")
    with pytest.raises(ImageTooLargeException):
        read_image_file(endless, max_bytes=1000, max_pixels=MAX_PIXELS)


@no_bomb_warning
@pytest.mark.parametrize(
    ("width", "height"),
    [(1001, 1000), (10_000, 10_000), (20_000, 20_000), (100_000, 100_000)],
)
def test_too_many_pixels_is_rejected_from_the_header(width: int, height: int) -> None:
    # 10000 x 10000 is past Pillow's own warning threshold and 20000 x 20000 past
    # its error threshold; neither may escape, our limit answers first.
    with pytest.raises(ImageTooLargeException, match="pixels"):
        decode_image(png_header_only(width, height), max_bytes=MAX_BYTES, max_pixels=1_000_000)


def test_header_only_png_within_the_limit_is_corrupt() -> None:
    with pytest.raises(InvalidImageFormatException):
        decode_image(png_header_only(100, 100), max_bytes=MAX_BYTES, max_pixels=1_000_000)


@no_bomb_warning
def test_real_ten_thousand_square_png(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("L", (10_000, 10_000), 128).save(path, compress_level=1)
    assert path.stat().st_size < MAX_BYTES
    for limit in (1_000_000, MAX_PIXELS):  # 100 MP exceeds both
        with pytest.raises(ImageTooLargeException):
            read_image_file(path, max_bytes=MAX_BYTES, max_pixels=limit)


def test_large_single_colour_png_within_the_limit_decodes() -> None:
    data = encode(Image.new("L", (5_000, 5_000), 77), "PNG", compress_level=1)
    with pytest.raises(ImageTooLargeException):
        decode_image(data, max_bytes=MAX_BYTES, max_pixels=1_000_000)
    decoded = decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    assert_rgb_array(decoded, 5_000, 5_000)
    assert int(decoded.pixels[2500, 2500, 1]) == 77


# --- files -------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.jpg"
    with pytest.raises(InvalidParameterException, match=re.escape(str(path))):
        read_image_file(path, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterException, match=re.escape(str(tmp_path))):
        read_image_file(tmp_path, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)


def test_errors_carry_rekognition_codes() -> None:
    with pytest.raises(InvalidImageFormatException) as bad:
        decode(b"\x00")
    assert bad.value.code == "InvalidImageFormatException"
    with pytest.raises(ImageTooLargeException) as big:
        decode_image(b"\x00" * 10, max_bytes=5, max_pixels=MAX_PIXELS)
    assert big.value.code == "ImageTooLargeException"
