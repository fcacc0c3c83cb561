"""From image bytes to the faces a collection operation works on.

Every image is decoded and analysed inside :meth:`FaceAnalyzer.decoded`, which
holds its pixels against the process's :class:`~facelens.engine.pixel_budget.PixelBudget`
from before the decode until the last embedding: memory grows with pixels
(about 7 bytes each while decoding, 3 while analysing), so concurrent requests
for large images queue instead of multiplying it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from facelens.collection.models import QualityFilter, UnindexedFace, UnindexedReason
from facelens.collection.quality_filter import quality_reasons
from facelens.collection.sources import FaceSource, cut_source
from facelens.engine.images import DecodedImage, decode_image, image_pixels
from facelens.engine.pixel_budget import PixelBudget, shared_pixel_budget
from facelens.engine.protocol import FaceEngine
from facelens.engine.types import FaceDetail
from facelens.errors import InvalidParameterException

ImageInput = bytes | DecodedImage
"""Raw bytes (checked and decoded here) or an image the caller already decoded."""


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """What one process accepts and how much it analyses at once (see ``Settings``).

    max_bytes: bytes of the encoded image.
    max_pixels: width x height of one image.
    pixel_budget: width x height summed over the images this process decodes and
    analyses at once (shared by every analyzer with the same budget).
    budget_wait_seconds: how long an image waits for room in the budget, in
    seconds, before the request fails with ThrottlingException.
    """

    max_bytes: int = 15 * 1024 * 1024
    max_pixels: int = 50_000_000
    pixel_budget: int = 100_000_000
    budget_wait_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class ProbeFace:
    """The face a search uses: the largest that passes the quality filter.

    ``others`` are the other faces found; detection ran with ``largest_only``,
    so faces too small to matter may be missing from it. ``source``: the face's crop
    for storing it (see :mod:`facelens.collection.sources`), when asked for and kept.
    """

    detail: FaceDetail
    embedding: npt.NDArray[np.float32]
    others: list[FaceDetail]
    source: FaceSource | None = None


@dataclass(frozen=True, slots=True)
class IndexPlan:
    """What IndexFaces will store for one image, computed without touching a store.

    Separating it lets bulk enrolment compute plans on several processes and
    store them from one. ``sources``: one per kept face (the crop it can be embedded
    again from), or empty when the analyzer keeps none.
    """

    keep: list[FaceDetail]
    embeddings: npt.NDArray[np.float32]
    unindexed: list[UnindexedFace]
    sources: list[FaceSource] = field(default_factory=list)


class FaceAnalyzer:
    """Decodes an image, detects faces (largest first) and embeds the ones asked for.

    ``keep_sources``: cut each face to be stored a source crop (about 12 KB; 0.1-4 ms a
    face, by its size), so its collection can be re-embedded later
    (``Settings.keep_face_sources``).
    """

    def __init__(
        self,
        engine: FaceEngine,
        *,
        limits: ImageLimits | None = None,
        keep_sources: bool = True,
    ) -> None:
        self.engine = engine
        self.limits = limits or ImageLimits()
        self.keep_sources = keep_sources

    @property
    def budget(self) -> PixelBudget:
        """The process-wide pixel budget for ``limits.pixel_budget`` (made on first use)."""
        return shared_pixel_budget(self.limits.pixel_budget)

    @contextmanager
    def decoded(self, image: ImageInput) -> Iterator[DecodedImage]:
        """``image`` decoded, its pixels held against the budget until the block ends.

        Bytes are checked (size, format, pixel limit) from the header before
        waiting for room, so bad input fails at once; then decoded. Detection and
        embedding belong inside the block: the decoded pixels live until its end.
        """
        if isinstance(image, DecodedImage):
            with self.budget.hold(
                image.width * image.height, wait_seconds=self.limits.budget_wait_seconds
            ):
                yield image
            return
        limits = self.limits
        pixels = image_pixels(image, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
        with self.budget.hold(pixels, wait_seconds=limits.budget_wait_seconds):
            yield decode_image(image, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)

    def decode(self, image: ImageInput) -> DecodedImage:
        """``image`` decoded, holding the budget while decoding only; prefer :meth:`decoded`,
        which also covers the analysis the decoded pixels are for."""
        with self.decoded(image) as decoded:
            return decoded

    def detect(self, image: DecodedImage, *, largest_only: bool = False) -> list[FaceDetail]:
        return self.engine.detect(image.pixels, largest_only=largest_only)

    def embed(self, image: DecodedImage, faces: list[FaceDetail]) -> npt.NDArray[np.float32]:
        return self.engine.embed(image.pixels, faces)

    def plan_index(
        self, image: ImageInput, *, max_faces: int | None, quality_filter: QualityFilter
    ) -> IndexPlan:
        """Faces passing ``quality_filter``, largest ``max_faces`` kept, embedded in one batch."""
        with self.decoded(image) as decoded:
            keep: list[FaceDetail] = []
            unindexed: list[UnindexedFace] = []
            for detail in self.detect(decoded):
                reasons = quality_reasons(detail, quality_filter)
                if reasons:
                    unindexed.append(UnindexedFace(reasons, detail))
                elif max_faces is not None and len(keep) >= max_faces:
                    unindexed.append(UnindexedFace((UnindexedReason.EXCEEDS_MAX_FACES,), detail))
                else:
                    keep.append(detail)
            sources = self._sources(decoded, keep)
            return IndexPlan(keep, self.embed(decoded, keep), unindexed, sources)

    def probe(
        self, image: ImageInput, quality: QualityFilter, *, with_source: bool = False
    ) -> ProbeFace:
        """The largest face passing ``quality``; InvalidParameterException when there is none.

        ``with_source``: the caller will store the face, so cut its source too (if the
        analyzer keeps sources); a search alone never pays for it.
        """
        with self.decoded(image) as decoded:
            faces = self.detect(decoded, largest_only=True)
            if not faces:
                raise InvalidParameterException(
                    "There are no faces in the image. Should be at least 1."
                )
            passing = [f for f in faces if not quality_reasons(f, quality)]
            if not passing:
                raise InvalidParameterException(
                    f"No face in the image passes the quality filter {quality.value}"
                )
            chosen = passing[0]
            embedding = self.embed(decoded, [chosen])[0]
            sources = self._sources(decoded, [chosen]) if with_source else []
        others = [f for f in faces if f is not chosen]
        return ProbeFace(chosen, embedding, others, sources[0] if sources else None)

    def _sources(self, image: DecodedImage, faces: list[FaceDetail]) -> list[FaceSource]:
        if not self.keep_sources:
            return []
        return [cut_source(image.pixels, f.face) for f in faces]
