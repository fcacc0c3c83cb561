"""The views of a face that dlib's ResNet embeds: the five-point chip and dlib's 68-point chip.

Two ways to cut a 150 px chip for the network from one detected face:

* the five-point chip (:func:`facelens.engine.alignment.align_chip`): a
  similarity warp of the detector's five landmarks onto ``ALIGN_TEMPLATE``;
  cheap, and what every detector gives.
* the 68-point chip (:func:`chip_68`): dlib's 68-point shape predictor run on
  a box derived from the five landmarks (:func:`box_from_five`), then
  ``dlib.get_face_chip(image, shape, size=150, padding=0.25)``: exactly the
  chips the network was trained on.

Setting ``embed_views`` (:data:`VIEW_SETTINGS`) picks "68" (the second only,
the default: see :data:`VIEWS_68`), "five" (the first only) or "five+68" (both,
combined by :func:`combine_views`). Measured on the LFW
development pairs (3000 pairs, 5-fold; ``facelens bench lfw``) with YuNet
detection and the ONNX embedder, flip on: "five" 98.93% accuracy and TAR at
FAR 0.001 97.2%, "five+68" 99.23% and 98.0% (see W_FIVE); with the open-set
rule, FNIR at FPIR 1% with 746 people enrolled from one photo falls from about
30% to 24% (``python -m bench.identify``). "five+68" costs a shape-predictor pass (about
1 ms a face) and twice the network work per face. The two settings
give different vectors, so each is its own ``model_version``
(:func:`dlib_model_version`) and collections never mix them.

Every chip of every view (and, with ``flip``, every mirror) goes through the
network in one call (:func:`embed_views`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from facelens.engine.alignment import (
    CHIP_SIZE,
    align_chip,
    average_with_mirror,
    mirrored,
    unit_rows,
)
from facelens.engine.types import DetectedFace, Landmarks, RGBImage
from facelens.errors import ConfigurationError

__all__ = [
    "DLIB_MODEL_VERSION",
    "VIEWS_FIVE",
    "VIEWS_FIVE_68",
    "VIEW_SETTINGS",
    "W_68",
    "W_FIVE",
    "Predictor68",
    "box_from_five",
    "check_views",
    "chip_68",
    "combine_views",
    "dlib_model_version",
    "embed_views",
    "shared_predictor",
]

VIEWS_FIVE: Final = "five"
"""One view: the five-point chip (and its mirror). The vectors of ``dlib-resnet-v1``."""
VIEWS_FIVE_68: Final = "five+68"
"""Two views: the five-point chip and dlib's 68-point chip (each with its mirror)."""
VIEWS_68: Final = "68"
"""One view: dlib's 68-point chip (and its mirror), the chips the network was trained on.
The default: on the LFW development images it does as well as "five+68" (pairs 99.27%
against 99.23%; FNIR at FPIR 1% with 10/100/746 people 20.6/19.2/23.7% against
29.4/19.2/24.6%) for half the network work (36.7 against about 19 ms a face on one core
here), so the five-point view adds nothing but cost."""
VIEW_SETTINGS: Final = (VIEWS_68, VIEWS_FIVE, VIEWS_FIVE_68)
USES_68: Final = frozenset({VIEWS_68, VIEWS_FIVE_68})
"""The view settings that need dlib's 68-point shape predictor."""

DLIB_MODEL_VERSION: Final = "dlib-resnet-v1"
"""dlib's ResNet on five-point chips: the model version collections made before views existed."""

# How the two views' unit vectors are weighed: final = unit(W_FIVE * v_five + W_68 * v_68).
# Equal: nothing measured says otherwise. On the LFW development pairs (3000 pairs, 5-fold,
# YuNet, flip on) equal weights measure 99.23% (TAR at FAR 0.001 98.0%), and any weight on
# the five-point view from 0.3 to 1.2 lands between 99.17% and 99.30%: 1 to 4 pairs in 3000,
# under the folds' spread (0.3%). A weight tuned on those pairs would only fit their noise.
W_FIVE: Final = 1.0
W_68: Final = 1.0

# The box the 68-point predictor is run on, from the five points (see box_from_five):
# medians, over the 3811 LFW development images, of dlib's HOG boxes relative to
# YuNet's five points, in units of the eye-to-mouth distance s. The predictor was
# trained on HOG boxes, and a YuNet box is another shape (taller, placed lower);
# a box made this way gave the same LFW accuracy as the real HOG box (measured).
_BOX_RIGHT: Final = -0.0896
"""Box centre offset along the face's left-to-right axis (image right when upright), in s."""
_BOX_DOWN: Final = -0.0506
"""Box centre offset along the eyes-to-mouth axis, in s (negative: towards the eyes)."""
_BOX_SIDE: Final = 2.389
"""Box side, in s."""

_CHIP_PADDING: Final = 0.25
"""dlib's get_face_chip padding (fraction of the face's size added around it), as in training."""


def check_views(views: str) -> str:
    """``views`` if it is one of :data:`VIEW_SETTINGS`; ConfigurationError otherwise."""
    if views not in VIEW_SETTINGS:
        raise ConfigurationError(
            f"embed_views must be one of {', '.join(VIEW_SETTINGS)}, not {views!r}"
        )
    return views


def dlib_model_version(views: str) -> str:
    """The model version of dlib's ResNet with ``views``: "dlib-resnet-v1" ("five"),
    "dlib-resnet-v1+68" ("five+68") or "dlib-resnet-v1-chip68" ("68").

    "five" keeps the historical name, so collections made before views
    existed keep working with ``embed_views=five``.
    """
    names = {
        VIEWS_FIVE: DLIB_MODEL_VERSION,
        VIEWS_FIVE_68: f"{DLIB_MODEL_VERSION}+68",
        VIEWS_68: f"{DLIB_MODEL_VERSION}-chip68",
    }
    return names[check_views(views)]


def box_from_five(landmarks: Landmarks) -> tuple[int, int, int, int] | None:
    """The square box (left, top, right, bottom; pixels, dlib's inclusive edges) to run the
    68-point predictor on, derived from the five landmarks.

    With e and m the means of the eyes and of the mouth corners, c the mean of
    all five, s = |m - e|, ``down`` the unit vector from e to m and ``right``
    perpendicular to it: centre = c + s * (-0.0896 right - 0.0506 down),
    side = 2.389 s (the HOG-box medians above). None when the eyes and mouth
    coincide (s under 1e-6 px): no orientation to derive a box from.
    """
    points = np.array(
        [
            (p.x, p.y)
            for p in (
                landmarks.eye_left,
                landmarks.eye_right,
                landmarks.nose,
                landmarks.mouth_left,
                landmarks.mouth_right,
            )
        ],
        dtype=np.float64,
    )
    eye = points[0:2].mean(axis=0)
    mouth = points[3:5].mean(axis=0)
    centre = points.mean(axis=0)
    span = mouth - eye
    s = float(np.hypot(span[0], span[1]))
    if not s > 1e-6:  # also catches NaN
        return None
    down = span / s
    right = np.array([down[1], -down[0]])
    middle = centre + s * (_BOX_RIGHT * right + _BOX_DOWN * down)
    half = _BOX_SIDE * s / 2.0
    return (
        round(middle[0] - half),
        round(middle[1] - half),
        round(middle[0] + half),
        round(middle[1] + half),
    )


class Predictor68:
    """dlib's 68-point shape predictor (face_recognition_models), loaded on first use.

    One dlib object is not used from two threads at once (as in ``HogDetector``:
    dlib releases the GIL inside its calls), so every call holds a lock; a call
    takes about a millisecond a face. Loading takes about 0.9 s and 70 MB, which
    is why one instance is shared by a process's embedders (:func:`shared_predictor`).
    """

    def __init__(self) -> None:
        self._predictor: Any = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Loads the model (idempotent, thread-safe). ConfigurationError without dlib."""
        with self._lock:
            if self._predictor is not None:
                return
            try:
                import dlib
                import face_recognition_models
            except ImportError as exc:  # pragma: no cover - both are dependencies
                raise ConfigurationError(f"the 68-point view needs dlib-bin: {exc}") from exc
            self._predictor = dlib.shape_predictor(
                face_recognition_models.pose_predictor_model_location()
            )

    def shape(self, image: RGBImage, face: DetectedFace) -> Any:
        """The 68-point ``dlib.full_object_detection`` of ``face`` in ``image`` (RGB uint8).

        Run on :func:`box_from_five`'s box; on the detector's own box when the
        five points give none (degenerate landmarks), so a bad face still
        embeds instead of failing the request.
        """
        import dlib

        self.prepare()
        box = box_from_five(face.landmarks)
        if box is None:
            b = face.box
            box = (round(b.left), round(b.top), round(b.right) - 1, round(b.bottom) - 1)
        rect = dlib.rectangle(*box)
        with self._lock:
            return self._predictor(image, rect)


_shared: Predictor68 | None = None
_shared_lock = threading.Lock()


def shared_predictor() -> Predictor68:
    """The process's one :class:`Predictor68` (created on first call, loaded on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Predictor68()
        return _shared


def chip_68(image: RGBImage, shape: Any) -> RGBImage:
    """dlib's own ``CHIP_SIZE`` px face chip (padding 0.25) for a 68-point ``shape``.

    Outside the image it is black, as in dlib's training chips.
    """
    import dlib

    chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=_CHIP_PADDING)
    return np.ascontiguousarray(chip, dtype=np.uint8)


def combine_views(
    raw: npt.NDArray[np.float32], *, count: int, flip: bool, views: str
) -> npt.NDArray[np.float32]:
    """The unit embeddings of ``count`` faces from the network's raw rows.

    raw, in blocks of ``count`` rows: the five-point chips, [their mirrors]
    (not for "68"), then for "five+68" and "68" the 68-point chips, [their
    mirrors]. Per view, chip and mirror are combined by ``average_with_mirror``;
    with both views final = unit(W_FIVE * v_five + W_68 * v_68).
    """
    per_view = 2 * count if flip else count
    five = average_with_mirror(raw[:per_view], count=count, flip=flip)
    if views in (VIEWS_FIVE, VIEWS_68):  # one view: the first block is all there is
        return five
    sixty_eight = average_with_mirror(raw[per_view : 2 * per_view], count=count, flip=flip)
    return unit_rows(W_FIVE * five + W_68 * sixty_eight)


def embed_views(
    descriptors: Callable[[list[RGBImage]], npt.NDArray[np.float32]],
    image: RGBImage,
    faces: Sequence[DetectedFace],
    *,
    views: str,
    flip: bool,
    dimension: int,
    predictor: Predictor68 | None,
) -> npt.NDArray[np.float32]:
    """One unit row per face of ``image``: all views' chips and mirrors in one ``descriptors`` call.

    predictor: required for "five+68" and "68" (the embedder's, prepared or not).
    """
    if not faces:
        return np.zeros((0, dimension), dtype=np.float32)
    views_chips = [] if views == VIEWS_68 else [[align_chip(image, face) for face in faces]]
    if views in USES_68:
        if predictor is None:
            raise ConfigurationError(f"embed_views {views} needs the 68-point predictor")
        pixels = np.ascontiguousarray(image, dtype=np.uint8)
        views_chips.append([chip_68(pixels, predictor.shape(pixels, face)) for face in faces])
    batch: list[RGBImage] = []
    for chips in views_chips:
        batch += chips
        if flip:
            batch += [mirrored(chip) for chip in chips]
    return combine_views(descriptors(batch), count=len(faces), flip=flip, views=views)
