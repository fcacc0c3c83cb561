"""Visits: one person continuously in view of one camera, and the answer given for them.

The edge runner gives each track a ``VisitId`` and uploads a few looks of it
(the first at once, better or different ones later). Each look is an object
of its own, handled once by its recognition id like any crop
(:mod:`facelens.history.ledger`); what the looks of one visit have in common
is kept here, so every worker (and, on PostgreSQL, every host) fuses the same
looks and agrees on one answer per visit:

* the looks themselves (:class:`VisitLook`): the face's embedding and how
  good a look it was, which the recognizer fuses;
* the visit's current answer (:class:`VisitAnswer`): what was last published
  for it, at which revision. A revision replaces the answer only if nobody
  revised it meanwhile (:meth:`VisitLedger.revise` compares and sets), so two
  workers given two looks of one visit at once publish one answer each
  revision, never two.

Embeddings are biometric data: a visit's looks are dropped once it has been
idle for longer than retention's ``visit_look_seconds``
(:meth:`VisitLedger.drop_idle_looks`), and forgetting a person deletes the
visits that named them with their looks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from facelens.history.ledger import Status, stamp


@dataclass(frozen=True)
class VisitLook:
    """One look of a visit, as the recognizer saw it.

    recognition_id: the look's own (its object's) recognition id, which makes
    storing it idempotent. weight: how good a look it was, 0-1 (the edge's
    look quality; 1.0 when the crop did not say). embedding: the face's unit
    vector, float32 bytes (facelens' engine); None where the finder hands
    none out (Rekognition). subject / similarity: who this look alone named
    (UserId, else FaceId) and how similar (0-100), None when it named nobody:
    what finders without embeddings fuse.
    """

    recognition_id: str
    visit_id: str
    seen_at: datetime
    weight: float = 1.0
    embedding: bytes | None = None
    subject: str | None = None
    similarity: float | None = None


@dataclass(frozen=True)
class VisitAnswer:
    """A visit's answer at one revision: ``message`` is exactly what was published for it.

    revision: 0 for the first answer, then 1, 2, ... for each change.
    recognition_id: the look whose message carried this revision. status:
    IDENTIFIED or UNKNOWN. looks: the visit's looks stored so far.
    first_seen: when its first answer was given; updated_at: when its latest
    look arrived (a look that changes nothing still moves it up the live
    feed: the person is still there) or its latest revision was made.
    """

    visit_id: str
    revision: int
    recognition_id: str
    status: Status
    message: Mapping[str, Any]
    camera: str | None
    looks: int
    first_seen: datetime
    updated_at: datetime


class VisitLedger(Protocol):
    """The visits' looks and answers; thread-safe, opened on first use, in the same database
    as the recognition ledger (shared by every host on PostgreSQL)."""

    def add_look(self, look: VisitLook, *, keep: int) -> list[VisitLook]:
        """Stores ``look`` (once: a look whose recognition id is stored already is not stored
        again) and returns the visit's looks, the ``keep`` heaviest, heaviest first (ties:
        oldest first). A visit that has an answer gets its ``looks`` count and ``updated_at``
        moved on (its revision stays). Text holding NUL is InvalidParameterException, nothing
        stored."""
        ...

    def answer(self, visit_id: str) -> VisitAnswer | None:
        """The visit's current answer; None before its first."""
        ...

    def revise(self, answer: VisitAnswer, *, expected: int | None) -> bool:
        """Makes ``answer`` the visit's current one, atomically, if the current revision is
        still ``expected`` (None: the visit has no answer yet); False, and nothing changed,
        when another worker answered or revised it first (the caller re-reads and decides
        again)."""
        ...

    def visits(
        self,
        *,
        limit: int = 50,
        status: Status | None = None,
        camera: str | None = None,
        user_id: str | None = None,
        before: tuple[str, str] | None = None,
        after: str | None = None,
    ) -> list[VisitAnswer]:
        """Current answers, most recently updated first, one page at a time: the live feed
        and ``facelens recognizer recent``, one row per visit. ``before``: the (updated_at
        ISO text, visit_id) of the previous page's last row; ``after``: only visits updated
        later than this ISO time. Filters as :meth:`RecognitionLedger.history`."""
        ...

    def naming(
        self,
        *,
        user_id: str | None,
        face_ids: Sequence[str],
        stranger_id: str | None = None,
        recognition_ids: Sequence[str] = (),
    ) -> list[VisitAnswer]:
        """The visits whose current answer names ``user_id``, one of ``face_ids`` or the
        stranger ``stranger_id``, or that hold a look or an answer of one of
        ``recognition_ids``: what forgetting a person deletes."""
        ...

    def delete(self, visit_ids: Sequence[str]) -> int:
        """Deletes these visits with their looks; how many visits there were."""
        ...

    def drop_idle_looks(self, idle_seconds: float, *, dry_run: bool = False) -> int:
        """Deletes the looks (embeddings) of visits not updated for ``idle_seconds``; how many
        looks. The answers stay (they are history, like the recognition records)."""
        ...

    def close(self) -> None: ...


def visit_cursor(answer: VisitAnswer) -> tuple[str, str]:
    """The paging cursor after ``answer`` for :meth:`VisitLedger.visits` (``before``)."""
    return stamp(answer.updated_at), answer.visit_id
