"""The engine ports: a detector, an embedder, and the face engine built from them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from facelens.engine.types import DetectedFace, FaceDetail, RGBImage


class Detector(Protocol):
    """Finds faces: pixel box, five landmarks and a 0-100 confidence each."""

    name: str

    def prepare(self) -> None:
        """Loads the model (idempotent). Raises ConfigurationError if it cannot."""
        ...

    def detect(self, image: RGBImage, *, largest_only: bool = False) -> list[DetectedFace]:
        """Faces in ``image`` (RGB uint8, any size the caller chose), in its pixels.

        largest_only: the caller needs only the largest face (a search), so a
        detector may skip work that can only find smaller ones; it may still
        return several faces.
        """
        ...


class Embedder(Protocol):
    """Turns faces (or aligned chips) into L2-normalised float32 vectors."""

    model_version: str
    dimension: int
    chip_size: int

    def prepare(self) -> None: ...

    def align(self, image: RGBImage, face: DetectedFace) -> RGBImage:
        """The primary aligned chip (chip_size x chip_size RGB): thumbnails, diagnostics.

        An embedder may embed more views of a face than this chip (``embed_faces``).
        """
        ...

    def embed(self, chips: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        """One unit row per primary chip, shape (len(chips), dimension); batched for speed.

        For benches and tests that feed chips; collections use ``embed_faces``.
        """
        ...

    def embed_faces(
        self, image: RGBImage, faces: Sequence[DetectedFace]
    ) -> npt.NDArray[np.float32]:
        """One unit row per face found in ``image``, shape (len(faces), dimension).

        Every chip of every view (and mirror) goes through the network in one batch.
        """
        ...


class FaceEngine(Protocol):
    """Pixels to faces: detection with quality and pose, alignment, embedding."""

    model_version: str
    """Identifies the embedding space; collections refuse embeddings from another."""
    dimension: int
    """Length of its embeddings."""

    def prepare(self) -> None: ...

    def detect(self, image: RGBImage, *, largest_only: bool = False) -> list[FaceDetail]:
        """Faces with box (pixels and ratios), landmarks, pose, quality; largest first.

        largest_only: as for Detector.detect (the first face is what matters).
        """
        ...

    def align(self, image: RGBImage, face: FaceDetail) -> RGBImage: ...

    def embed(self, image: RGBImage, faces: Sequence[FaceDetail]) -> npt.NDArray[np.float32]:
        """Embeddings of ``faces`` (found in ``image``), one unit row each, in one batch."""
        ...
