"""Looks of a visit: the first identifiable one at once, a few better or different ones after.

A visit is one person continuously in view (one track, :mod:`facelens.edge.tracking`);
it gets a ``VisitId`` when its track starts, and every crop uploaded for it is a
*look* of it (its metadata carries the visit id, the look's number and its
quality, :class:`facelens.storage.crops.CropMetadata`), which the recognizer fuses.

- **First look at once**: the first look that passes the quality gate
  (:mod:`facelens.edge.quality_gate`) is chosen in the frame it is seen, with no
  waiting window: the recognizer can answer while the person is still
  walking up, and later looks make the answer surer. A track must have been seen
  ``min_hits`` times first (two: a single detection is more often a false
  positive than a person; at 25-30 fps this costs one frame, 33-40 ms).
- **Later looks**: at most ``max_looks`` in all, at least ``min_look_seconds``
  apart, and only a look whose score beats the best sent so far by
  ``better_by`` (relative), or whose yaw differs from every look sent by
  ``new_pose_degrees`` (a turned head shows the recognizer what the first look
  could not). On a long visit, one more every ``reupload_seconds``, as before.

The old half-second best-of window is gone: it made every first answer wait, and
later looks give the recognizer the better picture anyway. So are "unknown
retries" (uploading a runner-up when the recognizer answered unknown): later
looks, better or from another angle, do that job for every visit, named or not,
and the recognizer's fusion decides.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from facelens.edge.quality_gate import QualityGate
from facelens.edge.types import BGRImage, Frame
from facelens.engine.types import DetectedFace
from facelens.errors import InvalidParameterException
from facelens.values.boxes import PixelBox

MIN_HITS = 2
"""Detections a track needs before its first look is sent."""
_RECHECK_S = 0.1
"""After the crop check refused a track's look (no face found: a back of a head, mostly),
seconds of video before its next look is put to the check: the check is one detection
(milliseconds), and a back of a head stays one for a while."""


@dataclass(frozen=True, eq=False)
class ChosenCrop:
    """A look chosen for upload.

    image: the face with its margin, full-resolution BGR pixels; region: where
    it was cut from the frame; face: the detection in frame pixels; score:
    0-1, the look's quality (:func:`facelens.edge.quality_gate.look_score`);
    visit_id: its visit; look: 0 for a visit's first look, then 1, 2...
    """

    track_id: int
    visit_id: str
    look: int
    image: BGRImage
    region: PixelBox
    face: DetectedFace
    score: float
    frame_index: int
    captured_at: datetime
    captured_monotonic: float


@dataclass(frozen=True)
class LookPolicy:
    """When a visit sends another look (see the module's docstring); seconds of video."""

    max_looks: int = 4
    min_look_seconds: float = 0.5
    better_by: float = 0.25
    new_pose_degrees: float = 20.0
    reupload_seconds: float = 30.0
    min_hits: int = MIN_HITS

    def __post_init__(self) -> None:
        if self.max_looks < 1 or self.min_hits < 1:
            raise InvalidParameterException("max_looks and min_hits must be at least 1")
        if self.min_look_seconds < 0 or self.better_by < 0 or self.new_pose_degrees <= 0:
            raise InvalidParameterException(
                "min_look_seconds and better_by must not be negative, new_pose_degrees positive"
            )
        if self.reupload_seconds <= 0:
            raise InvalidParameterException("reupload_seconds must be positive")


@dataclass
class _Visit:
    visit_id: str
    hits: int = 0
    looks: int = 0
    best: float = 0.0
    yaws: list[float] = field(default_factory=list)
    last_look: float = -math.inf
    recheck_at: float = -math.inf


def crop_region(box: PixelBox, *, margin: float, width: int, height: int) -> PixelBox:
    """The box grown by ``margin`` (a fraction of its width on the left and right, of its
    height on top and bottom), in whole pixels, clipped to the ``width`` x ``height`` frame."""
    dx = box.width * margin
    dy = box.height * margin
    return PixelBox(
        left=float(max(0, math.floor(box.left - dx))),
        top=float(max(0, math.floor(box.top - dy))),
        right=float(min(width, math.ceil(box.right + dx))),
        bottom=float(min(height, math.ceil(box.bottom + dy))),
    )


def cut(image: BGRImage, region: PixelBox) -> BGRImage:
    """The pixels of ``region`` (whole-pixel bounds, as from :func:`crop_region`), copied."""
    top, bottom = int(region.top), int(region.bottom)
    left, right = int(region.left), int(region.right)
    return np.ascontiguousarray(image[top:bottom, left:right])


class CropPicker:
    """Decides, frame by frame, which looks of which visits to upload.

    gate: the quality gate every look must pass; policy: when a visit sends
    another look; margin: crop margin as a fraction of the face box on each side;
    new_visit_id: makes a visit id (a random UUID's hex; tests pass their own).
    """

    def __init__(
        self,
        *,
        gate: QualityGate | None = None,
        policy: LookPolicy | None = None,
        margin: float = 0.3,
        new_visit_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        if margin < 0:
            raise InvalidParameterException("margin must not be negative")
        self.gate = gate or QualityGate()
        self.policy = policy or LookPolicy()
        self.margin = margin
        self._new_visit_id = new_visit_id
        self._visits: dict[int, _Visit] = {}
        self.visits_started = 0
        self.looks_sent = 0

    def visit_of(self, track_id: int) -> str | None:
        """The visit id of a live track (None once it ended, or for an unknown track)."""
        visit = self._visits.get(track_id)
        return visit.visit_id if visit else None

    def observe(self, frame: Frame, track_id: int, face: DetectedFace) -> list[ChosenCrop]:
        """A detection of ``track_id`` in ``frame``: the look to send now, if this is one."""
        visit = self._visits.get(track_id)
        if visit is None:
            visit = self._visits[track_id] = _Visit(self._new_visit_id())
            self.visits_started += 1
        visit.hits += 1
        policy, now = self.policy, frame.media_time
        if visit.hits < policy.min_hits or now < visit.recheck_at:
            return []
        if visit.looks and not self._may_look(visit, now):
            return []
        region = crop_region(face.box, margin=self.margin, width=frame.width, height=frame.height)
        if region.width < 2 or region.height < 2:
            return []
        image = cut(frame.image, region)
        measured = self.gate.assess(image, face, region, frame_size=(frame.width, frame.height))
        if not measured.passed:
            return []
        if visit.looks and not self._worth_it(visit, now, measured.score, measured.yaw):
            return []
        if not self.gate.confirm(image, face, region):
            visit.recheck_at = now + _RECHECK_S
            return []
        crop = ChosenCrop(
            track_id=track_id,
            visit_id=visit.visit_id,
            look=visit.looks,
            image=image,
            region=region,
            face=face,
            score=measured.score,
            frame_index=frame.index,
            captured_at=frame.captured_at,
            captured_monotonic=frame.monotonic,
        )
        visit.looks += 1
        visit.best = max(visit.best, measured.score)
        visit.yaws.append(measured.yaw)
        visit.last_look = now
        self.looks_sent += 1
        return [crop]

    def end(self, track_ids: list[int]) -> list[str]:
        """Tracks that ended: their visits end too; the visit ids (of tracks it knew)."""
        ended = []
        for track_id in track_ids:
            visit = self._visits.pop(track_id, None)
            if visit is not None:
                ended.append(visit.visit_id)
        return ended

    def _may_look(self, visit: _Visit, now: float) -> bool:
        """Whether the visit may send a later look at all now (before measuring one)."""
        since = now - visit.last_look
        if since >= self.policy.reupload_seconds:
            return True
        return visit.looks < self.policy.max_looks and since >= self.policy.min_look_seconds

    def _worth_it(self, visit: _Visit, now: float, score: float, yaw: float) -> bool:
        """Whether a measured, identifiable later look adds something: better by the margin,
        or a new angle; any look, once ``reupload_seconds`` have passed."""
        policy = self.policy
        if now - visit.last_look >= policy.reupload_seconds:
            return True
        if score >= visit.best * (1.0 + policy.better_by):
            return True
        return all(abs(yaw - sent) >= policy.new_pose_degrees for sent in visit.yaws)
