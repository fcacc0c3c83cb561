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
* anything Pillow raises is wrapped in a :class:`~facelens.errors.FacelensError`.

Pixel conventions of the result: EXIF orientation is applied (so width and
height are those of the upright picture), the array is C-contiguous uint8 of
shape H x W x 3 in RGB order. Alpha is dropped, not composited: the colour
values under transparent pixels are kept as stored (for photos with an alpha
channel they are the photo; compositing onto a fixed background would invent
pixels a face detector might react to). 16-bit samples keep their top 8 bits
(value >> 8), so brightness is preserved; float images are stretched over their
own range.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, ImageOps
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


@dataclass(frozen=True)
class DecodedImage:
    """An image decoded from bytes.

    pixels: H x W x 3 uint8 RGB, C-contiguous, EXIF orientation applied.
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

    with io.BytesIO(data) as stream:
        try:
            image = opener(stream)
        except Image.DecompressionBombError as exc:  # not raised today; a newer Pillow might
            raise ImageTooLargeException(f"The image is too large to decode: {exc}") from exc
        except MemoryError:
            raise
        except Exception as exc:
            raise InvalidImageFormatException(
                f"The {fmt} image header is corrupt or unsupported: {exc}"
            ) from exc
        with image:
            width, height = image.size
            pixels = width * height
            if pixels > max_pixels:
                raise ImageTooLargeException(
                    f"The image is {width} x {height} = {pixels} pixels; "
                    f"the limit is {max_pixels} pixels."
                )
            if width <= 0 or height <= 0:
                raise InvalidImageFormatException(
                    f"The {fmt} image has no pixels ({width} x {height})."
                )
            try:
                image.load()
                upright = ImageOps.exif_transpose(image)
                rgb = _to_rgb(upright)
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
    return DecodedImage(pixels=rgb, format=fmt)


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
    """The pixels of ``image`` as a C-contiguous H x W x 3 uint8 RGB array."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        return _gray_to_rgb(_sixteen_to_eight(np.asarray(image)))
    if mode == "I":
        # 32-bit integers: what older Pillow versions make of 16-bit PNGs.
        values = np.asarray(image)
        if values.size and values.min() >= 0 and values.max() <= 0xFFFF:
            return _gray_to_rgb(_sixteen_to_eight(values))
        return _gray_to_rgb(_stretch(values.astype(np.float64)))
    if mode == "F":
        return _gray_to_rgb(_stretch(np.asarray(image).astype(np.float64)))
    if mode != "RGB":
        # 1, L, P, CMYK, YCbCr, ... are converted; LA, PA, RGBA lose their alpha.
        try:
            image = image.convert("RGB")
        except ValueError as exc:
            raise InvalidImageFormatException(
                f"Images in colour mode {mode} are not supported."
            ) from exc
    return np.ascontiguousarray(np.asarray(image), dtype=np.uint8)


def _sixteen_to_eight(values: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
    """16-bit samples (0-65535) to 8-bit ones (0-255), keeping the top 8 bits."""
    return (values.astype(np.uint32) >> 8).astype(np.uint8)


def _stretch(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Samples of unknown range mapped linearly so their min is 0 and their max 255.

    Non-finite samples count as 0. A constant image keeps its value, clipped to 0-255.
    """
    finite = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    if finite.size == 0:
        return finite.astype(np.uint8)
    low = float(finite.min())
    high = float(finite.max())
    if high <= low:
        return np.clip(finite, 0.0, 255.0).astype(np.uint8)
    scaled = (finite - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0.0, 255.0).astype(np.uint8)


def _gray_to_rgb(gray: npt.NDArray[np.uint8]) -> RGBImage:
    """An H x W gray array repeated into an H x W x 3 RGB one."""
    return np.ascontiguousarray(np.repeat(gray[:, :, np.newaxis], 3, axis=2), dtype=np.uint8)
