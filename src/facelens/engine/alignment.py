"""Five-point alignment to dlib's 150 px chips, and the vector arithmetic every embedder shares.

Alignment is a least-squares similarity transform of the five landmarks onto
``ALIGN_TEMPLATE``: the mean positions of those landmarks in dlib's own
150 px chips (``get_face_chip`` with padding 0.25), measured on LFW. So chips
match what the network was trained on, whichever detector found the face,
with no second landmark pass.

Both embedders of dlib's ResNet (``DlibEmbedder`` and ``OnnxEmbedder``) use
these functions, so the same face gives the same chip, and the same vector
whichever runtime computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from facelens.engine.types import DetectedFace, RGBImage
from facelens.errors import EngineError

__all__ = [
    "ALIGN_TEMPLATE",
    "CHIP_SIZE",
    "align_chip",
    "average_with_mirror",
    "mirrored",
    "similarity_transform",
    "unit_rows",
]

CHIP_SIZE = 150
"""Side of an aligned chip in pixels: the input size of dlib's ResNet."""

# eyeLeft, eyeRight, nose, mouthLeft, mouthRight in chip pixels (150 x 150),
# measured on dlib chips of 368 LFW faces and made left-right symmetric.
ALIGN_TEMPLATE = np.array(
    [
        [47.72, 46.76],
        [100.28, 46.76],
        [74.00, 75.95],
        [50.01, 103.89],
        [97.99, 103.89],
    ],
    dtype=np.float64,
)


def similarity_transform(
    src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The 2x3 rotation+uniform-scale+translation mapping ``src`` onto ``dst`` (least squares).

    Umeyama's closed form restricted to 2-D; no reflection.
    """
    src_mean = src.mean(axis=0)
    dst_mean = dst.mean(axis=0)
    src_c = src - src_mean
    dst_c = dst - dst_mean
    src_var = float((src_c**2).sum())
    if src_var < 1e-9:
        raise EngineError("degenerate landmarks: all five points coincide")
    # For 2-D similarity: a = sum(x.x' + y.y'), b = sum(x.y' - y.x') over centred points.
    a = float((src_c * dst_c).sum())
    b = float((src_c[:, 0] * dst_c[:, 1] - src_c[:, 1] * dst_c[:, 0]).sum())
    scale_cos = a / src_var
    scale_sin = b / src_var
    rot = np.array([[scale_cos, -scale_sin], [scale_sin, scale_cos]])
    shift = dst_mean - rot @ src_mean
    return np.hstack([rot, shift[:, None]])


def align_chip(image: RGBImage, face: DetectedFace) -> RGBImage:
    """The ``CHIP_SIZE`` x ``CHIP_SIZE`` RGB chip of ``face``, landmarks on ``ALIGN_TEMPLATE``.

    Bilinear sampling; pixels outside the image repeat its edge (a face at
    the border keeps plausible colours instead of black corners).
    """
    lm = face.landmarks
    src = np.array(
        [(p.x, p.y) for p in (lm.eye_left, lm.eye_right, lm.nose, lm.mouth_left, lm.mouth_right)],
        dtype=np.float64,
    )
    matrix = similarity_transform(src, ALIGN_TEMPLATE)
    chip = cv2.warpAffine(
        image,
        matrix,
        (CHIP_SIZE, CHIP_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.ascontiguousarray(chip, dtype=np.uint8)


def mirrored(chip: RGBImage) -> RGBImage:
    """The chip flipped left-right, C-contiguous (what the flip average embeds too)."""
    return np.ascontiguousarray(chip[:, ::-1])


def unit_rows(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each row scaled to length 1 (a zero row stays zero), as float32."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def average_with_mirror(
    raw: npt.NDArray[np.float32], *, count: int, flip: bool
) -> npt.NDArray[np.float32]:
    """The unit embeddings of ``count`` chips from the network's raw rows.

    raw: ``count`` rows (flip off), or ``2 * count`` rows, the chips' then
    their mirrors' (flip on): each half is unit-normalised, the halves added
    and the sum normalised again, so chip and mirror weigh the same.
    """
    if not flip:
        return unit_rows(raw)
    return unit_rows(unit_rows(raw[:count]) + unit_rows(raw[count:]))


def embed_chips(
    descriptors: Callable[[list[RGBImage]], npt.NDArray[np.float32]],
    chips: Sequence[RGBImage],
    *,
    flip: bool,
    dimension: int,
) -> npt.NDArray[np.float32]:
    """Unit embeddings of ``chips`` from a network's raw ``descriptors`` of a batch.

    With ``flip`` the mirrors ride in the same batch (one network call) and
    are averaged in by :func:`average_with_mirror`; both embedders share this.
    """
    if not chips:
        return np.zeros((0, dimension), dtype=np.float32)
    batch = list(chips)
    if flip:
        batch += [mirrored(chip) for chip in chips]
    return average_with_mirror(descriptors(batch), count=len(chips), flip=flip)
