"""Who a face is: what the matching rule decides and the recognizer's messages publish.

The people layer's matching rule (:mod:`facelens.people.matching`) returns it; the
recognizer's finders hand it on and its messages write it out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """Who the face is: a user (several faces) and/or one stored face, and how sure (0-100)."""

    similarity: float
    face_id: str | None = None
    user_id: str | None = None
    external_image_id: str | None = None
    expected_fpir: float | None = None
    """How sure, in terms a user can act on: the share of strangers (people not enrolled, 0-1)
    expected to score this high against this collection (None: the similarity rule decided,
    or the engine has no open-set calibration)."""
    gallery_size: int | None = None
    """People in the collection when it was decided (what expected_fpir is for)."""
