"""Decoding untrusted image bytes into an RGB uint8 array.

Every image facelens sees arrives as bytes from a caller we do not trust, so
this module is the one place where bytes become pixels, and it is defensive:

* the byte count is checked before anything is parsed;
* the format is identified from the file's first bytes, and only JPEG, PNG,
  WEBP and BMP are decoded (the formats Rekognition accepts, plus the two
  lossless ones that cost nothing to support);
* the pixel count (width x height, read from the header) is checked against
  *our* limit before any pixel is decoded. The format's Pillow plugin class is
  instantiated directly instead of going through :func:`PIL.Image.open`, whose
  own decompression-bomb check (a warning above ``Image.MAX_IMAGE_PIXELS``, an
  error above twice that) would otherwise fire first and depend on a
  process-wide setting. Pillow's globals are never changed;
* truncated or corrupt files are errors, never half-grey images
  (``ImageFile.LOAD_TRUNCATED_IMAGES`` is left alone, i.e. off);
* anything Pillow raises is wrapped in a :class:`~facelens.errors.FacelensError`;
* memory is bounded by the pixel count: Pillow's decoded image (4 bytes per
  pixel for RGB, which Pillow stores padded) is copied into the result (3
  bytes per pixel) a strip of rows at a time, converting each strip's colour
  mode and EXIF orientation on the way. The peak is about 7 bytes per pixel
  (0.35 GB for 50 MP), where a whole-image ``convert``, ``exif_transpose``
  (which copies even when there is nothing to turn) and ``numpy.asarray``
  (``tobytes`` plus its join) took about 13. How many images a process
  decodes at once is :mod:`facelens.engine.pixel_budget`'s concern;
  :func:`image_pixels` reads the count it needs from the header.

Pixel conventions of the result: EXIF orientation is applied (so width and
height are those of the upright picture), the array is C-contiguous, read-only
uint8 of shape H x W x 3 in RGB order. Alpha is dropped, not composited: the colour
values under transparent pixels are kept as stored (for photos with an alpha
channel they are the photo; compositing onto a fixed background would invent
pixels a face detector might react to). 16-bit samples keep their top 8 bits
(value >> 8), so brightness is preserved; float images are stretched over their
own range.
"""

from __future__ import annotations

import ctypes
import functools
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageFile
from PIL.BmpImagePlugin import BmpImageFile
from PIL.JpegImagePlugin import JpegImageFile
from PIL.PngImagePlugin import PngImageFile
from PIL.WebPImagePlugin import WebPImageFile

from facelens.engine.types import RGBImage
from facelens.errors import (
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "DecodedImage",
    "decode_image",
    "image_pixels",
    "read_image_file",
]

_OPENERS: Final[dict[str, Callable[[io.BytesIO], ImageFile.ImageFile]]] = {
    "JPEG": JpegImageFile,
    "PNG": PngImageFile,
    "WEBP": WebPImageFile,
    "BMP": BmpImageFile,
}
"""Pillow's plugin class per accepted format, keyed by Pillow's format name."""

ACCEPTED_FORMATS: Final[tuple[str, ...]] = tuple(_OPENERS)
"""The image formats :func:`decode_image` decodes (Pillow's names)."""

_PREFIX_BYTES: Final = 16
"""How many leading bytes Pillow's format probes look at (as in ``Image.open``)."""

_SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})

_STRIP_BYTES: Final = 1024 * 1024
"""Output bytes converted per strip of rows: the decoder's transient memory beyond the
result, whatever the image's size (a strip is at least one row)."""

_TRIM_FROM_PIXELS: Final = 4_000_000
"""Decodes of at least this many pixels hand the memory Pillow just freed back to the OS.

Why: after glibc has freed one large mapping it serves blocks up to 32 MB (Pillow
allocates images in 16 MB blocks) from its per-thread arenas, which keep freed memory
resident. A server decodes in many threads, so each thread's arena kept its last
large image: eight 49 MP requests peaked at 2.0 GB and left 1.8 GB resident though
the pixel budget let only two be decoded at once (1.2 GB and 0.5-0.7 GB with this).
``malloc_trim`` costs about 15-40 ms after a 49 MP decode (1-2 % of it), less for
smaller images; below 4 MP (16 MB in Pillow) an arena keeps at most one such image,
and glibc makes at most 8 arenas per core.
"""

_TRANSPOSE_ROTATES: Final = frozenset({5, 6, 7, 8})
"""EXIF orientations whose upright picture swaps width and height."""

_REVERSED_ROWS: Final = frozenset({3, 4, 6, 7})
"""EXIF orientations that put the stored image's first rows at the upright picture's end
(its bottom for 3 and 4, its right for 6 and 7)."""


@dataclass(frozen=True)
class DecodedImage:
    """An image decoded from bytes.

    pixels: H x W x 3 uint8 RGB, C-contiguous and read-only, EXIF orientation applied.
    format: the format the bytes were in, as Pillow names it ("JPEG", "PNG", ...).
    """

    pixels: RGBImage
    format: str

    @property
    def width(self) -> int:
        """Width of the upright image in pixels."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height of the upright image in pixels."""
        return int(self.pixels.shape[0])


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Decodes untrusted image bytes into upright RGB pixels.

    max_bytes: the largest accepted ``len(data)``, in bytes.
    max_pixels: the largest accepted width x height, in pixels; checked from
    the header, before any pixel is decoded.

    Raises ImageTooLargeException over either limit, InvalidImageFormatException
    for empty, unrecognised, unsupported (GIF, TIFF, ...), truncated or corrupt
    data.
    """
    fmt, opener = _checked_format(data, max_bytes)
    with io.BytesIO(data) as stream:
        image = _open_header(opener, stream, fmt)
        with image:
            _check_size(image, fmt, max_pixels)
            try:
                image.load()
                rgb = _to_rgb(image)
            except Image.DecompressionBombError as exc:
                raise ImageTooLargeException(f"The image is too large to decode: {exc}") from exc
            except MemoryError:
                raise
            except InvalidImageFormatException:
                raise
            except Exception as exc:
                raise InvalidImageFormatException(
                    f"The {fmt} image is truncated or corrupt: {exc}"
                ) from exc
    if rgb.shape[0] * rgb.shape[1] >= _TRIM_FROM_PIXELS:
        _return_freed_memory()
    return DecodedImage(pixels=rgb, format=fmt)


def image_pixels(data: bytes, *, max_bytes: int, max_pixels: int) -> int:
    """Width x height of the image in ``data``, from its header alone (no pixel is decoded).

    Makes every check :func:`decode_image` makes before decoding, with the same
    errors, so a caller can reserve memory for the pixels (and refuse bad
    input) before paying for them.
    """
    fmt, opener = _checked_format(data, max_bytes)
    with io.BytesIO(data) as stream:
        image = _open_header(opener, stream, fmt)
        with image:
            return _check_size(image, fmt, max_pixels)


def _checked_format(
    data: bytes, max_bytes: int
) -> tuple[str, Callable[[io.BytesIO], ImageFile.ImageFile]]:
    """The format of ``data`` and its Pillow opener, after the byte-count checks."""
    size = len(data)
    if size > max_bytes:
        raise ImageTooLargeException(f"The image is {size} bytes; the limit is {max_bytes} bytes.")
    if size == 0:
        raise InvalidImageFormatException("The image is empty (0 bytes).")

    fmt = _identify(data[:_PREFIX_BYTES])
    if fmt is None:
        raise InvalidImageFormatException(
            "The bytes are not an image in a recognised format; "
            f"supported formats are {', '.join(ACCEPTED_FORMATS)}."
        )
    opener = _OPENERS.get(fmt)
    if opener is None:
        raise InvalidImageFormatException(
            f"{fmt} images are not supported; use one of {', '.join(ACCEPTED_FORMATS)}."
        )
    return fmt, opener


def _open_header(
    opener: Callable[[io.BytesIO], ImageFile.ImageFile], stream: io.BytesIO, fmt: str
) -> ImageFile.ImageFile:
    """The image with its header parsed and no pixel decoded."""
    try:
        return opener(stream)
    except Image.DecompressionBombError as exc:  # not raised today; a newer Pillow might
        raise ImageTooLargeException(f"The image is too large to decode: {exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:
        raise InvalidImageFormatException(
            f"The {fmt} image header is corrupt or unsupported: {exc}"
        ) from exc


def _check_size(image: ImageFile.ImageFile, fmt: str, max_pixels: int) -> int:
    """Width x height from the header, refused over ``max_pixels`` or when empty."""
    width, height = image.size
    pixels = width * height
    if pixels > max_pixels:
        raise ImageTooLargeException(
            f"The image is {width} x {height} = {pixels} pixels; the limit is {max_pixels} pixels."
        )
    if width <= 0 or height <= 0:
        raise InvalidImageFormatException(f"The {fmt} image has no pixels ({width} x {height}).")
    return int(pixels)


def read_image_file(path: Path, *, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Reads and decodes an image file, never reading more than ``max_bytes + 1`` bytes.

    The size is checked with ``stat`` first, and the read itself is bounded too
    (the file may grow, or be a pipe or device whose size ``stat`` does not
    know). Limits as in :func:`decode_image`. A missing or unreadable file is an
    InvalidParameterException naming the path.
    """
    try:
        declared = path.stat().st_size
        if declared > max_bytes:
            raise ImageTooLargeException(
                f"The image file {path} is {declared} bytes; the limit is {max_bytes} bytes."
            )
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise InvalidParameterException(f"The image file {path} does not exist.") from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InvalidParameterException(f"Cannot read the image file {path}: {reason}.") from exc
    if len(data) > max_bytes:
        raise ImageTooLargeException(
            f"The image file {path} is more than {max_bytes} bytes; the limit is {max_bytes} bytes."
        )
    return decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels)


def _identify(prefix: bytes) -> str | None:
    """Pillow's name for the format whose magic bytes ``prefix`` starts with, if any.

    Uses each Pillow plugin's own probe (what ``Image.open`` does) without
    opening anything, so that an unsupported format can be named in the error.
    The accepted formats are probed first.
    """
    Image.init()  # registers every plugin once; cheap after the first call
    ordered = [*ACCEPTED_FORMATS, *(f for f in Image.ID if f not in _OPENERS)]
    for fmt in ordered:
        entry = Image.OPEN.get(fmt)
        if entry is None:
            continue
        accept = entry[1]
        if accept is None:  # formats without magic bytes cannot be identified cheaply
            continue
        try:
            verdict = accept(prefix)
        except Exception:  # a probe that chokes on odd bytes just does not match
            continue
        if verdict:  # True, or a message: "looks like this format, but no decoder"
            return fmt
    return None


def _to_rgb(image: Image.Image) -> RGBImage:
    """The pixels of loaded ``image``, EXIF orientation applied, as read-only H x W x 3 RGB.

    The result is allocated once and filled a strip of rows at a time (see
    ``_STRIP_BYTES``): each strip is converted to RGB and turned upright on its
    own, so no whole-image intermediate exists besides Pillow's decoded image.
    Every conversion is per pixel, so strips give exactly the whole-image result;
    the two modes whose mapping depends on the whole image's range (32-bit
    integers, floats) get that range in a first pass.
    """
    width, height = image.size
    orientation = _orientation(image)
    turned = orientation in _TRANSPOSE_ROTATES
    out = np.empty((width, height, 3) if turned else (height, width, 3), dtype=np.uint8)
    convert = _strip_converter(image)
    rows = max(1, _STRIP_BYTES // (3 * width))
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        strip = _upright(convert(image.crop((0, top, width, bottom))), orientation)
        start, stop = (
            (height - bottom, height - top) if orientation in _REVERSED_ROWS else (top, bottom)
        )
        if turned:
            out[:, start:stop] = strip
        else:
            out[start:stop] = strip
    out.flags.writeable = False
    return out


def _return_freed_memory() -> None:
    """Returns free heap memory of every malloc arena to the OS, where the C library can."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where there is none (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return function


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8; 1 is upright) of loaded ``image``, as ``exif_transpose`` reads it.

    Read after ``load()``: a PNG may keep its EXIF chunk after the pixels.
    """
    value = image.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(strip: npt.NDArray[np.uint8], orientation: int) -> npt.NDArray[np.uint8]:
    """A strip turned as Pillow's transpose for that EXIF orientation turns it (a view)."""
    if orientation == 2:  # FLIP_LEFT_RIGHT
        return strip[:, ::-1]
    if orientation == 3:  # ROTATE_180
        return strip[::-1, ::-1]
    if orientation == 4:  # FLIP_TOP_BOTTOM
        return strip[::-1]
    if orientation == 5:  # TRANSPOSE
        return strip.transpose(1, 0, 2)
    if orientation == 6:  # ROTATE_270: a quarter turn clockwise
        return np.rot90(strip, -1)
    if orientation == 7:  # TRANSVERSE
        return np.rot90(strip, 1)[:, ::-1]
    if orientation == 8:  # ROTATE_90: a quarter turn counter-clockwise
        return np.rot90(strip, 1)
    return strip


def _strip_converter(image: Image.Image) -> Callable[[Image.Image], npt.NDArray[np.uint8]]:
    """What turns one strip of ``image`` (same mode) into h x w x 3 uint8 RGB."""
    mode = image.mode
    if mode == "RGB":
        return _rgb_array
    if mode == "L":
        return lambda strip: _gray_to_rgb(np.asarray(strip))
    if mode in _SIXTEEN_BIT_MODES:
        return lambda strip: _gray_to_rgb(_sixteen_to_eight(np.asarray(strip)))
    if mode == "I":
        # 32-bit integers: what older Pillow versions make of 16-bit PNGs.
        low, high = _range(image, lambda strip: np.asarray(strip))
        if low >= 0 and high <= 0xFFFF:
            return lambda strip: _gray_to_rgb(_sixteen_to_eight(np.asarray(strip)))
        return lambda strip: _gray_to_rgb(_stretch(np.asarray(strip), low, high))
    if mode == "F":
        low, high = _range(image, lambda strip: _finite(np.asarray(strip)))
        return lambda strip: _gray_to_rgb(_stretch(_finite(np.asarray(strip)), low, high))
    # 1, P, CMYK, YCbCr, ... are converted; LA, PA, RGBA lose their alpha.
    try:
        image.crop((0, 0, 1, 1)).convert("RGB")
    except ValueError as exc:
        raise InvalidImageFormatException(
            f"Images in colour mode {mode} are not supported."
        ) from exc
    return lambda strip: _rgb_array(strip.convert("RGB"))


def _rgb_array(strip: Image.Image) -> npt.NDArray[np.uint8]:
    """An RGB-mode strip as an h x w x 3 uint8 array."""
    return np.asarray(strip, dtype=np.uint8)


def _range(
    image: Image.Image, values: Callable[[Image.Image], npt.NDArray[np.generic]]
) -> tuple[float, float]:
    """The smallest and largest of ``values`` over the whole image, a strip at a time."""
    width, height = image.size
    rows = max(1, _STRIP_BYTES // (8 * width))  # these strips are float64 or int32 arrays
    low, high = float("inf"), float("-inf")
    for top in range(0, height, rows):
        strip = values(image.crop((0, top, width, min(height, top + rows))))
        if strip.size:
            low = min(low, float(strip.min()))
            high = max(high, float(strip.max()))
    return low, high


def _sixteen_to_eight(values: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
    """16-bit samples (0-65535) to 8-bit ones (0-255), keeping the top 8 bits."""
    return (values.astype(np.uint32) >> 8).astype(np.uint8)


def _finite(values: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    """Samples as float64, non-finite ones (NaN, infinities) counting as 0."""
    return np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _stretch(values: npt.NDArray[np.generic], low: float, high: float) -> npt.NDArray[np.uint8]:
    """Samples mapped linearly so that ``low`` (the image's minimum) is 0 and ``high`` 255.

    An image whose every sample is equal keeps its value, clipped to 0-255.
    """
    samples = values.astype(np.float64)
    if high <= low:
        return np.clip(samples, 0.0, 255.0).astype(np.uint8)
    scaled = (samples - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0.0, 255.0).astype(np.uint8)


def _gray_to_rgb(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """An h x w gray strip as an h x w x 3 view, the gray value in every channel."""
    return np.broadcast_to(gray[:, :, np.newaxis], (*gray.shape, 3))
