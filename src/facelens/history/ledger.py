"""The recognizer's ledger: every outcome once, by recognition id.

It makes the worker idempotent (an object already handled is not published
again, by this host or by another on the same database), keeps the dead
letters (events that can never succeed, with their reason) and is the
history of identifications the HTTP API pages through. The port is
:class:`RecognitionLedger`, written once over SQL in
:mod:`facelens.history.sql_ledger`; :mod:`facelens.history.sqlite` keeps it in
one SQLite file per host, :mod:`facelens.history.postgres` in the PostgreSQL
database several hosts share. Both give the same answers: times
are UTC with microseconds, pages run newest first with ties broken by
recognition id in byte order, and a message comes back with its keys in the
order it was recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from facelens.errors import InvalidParameterException
from facelens.history import nul

CROP_DELETED = "CropDeleted"
"""Set (true) in a record's message once retention deleted its crop (bucket and key go NULL)."""


@dataclass(frozen=True)
class StrangerSeen:
    """How often and when an anonymous person (``StrangerId``) was sighted."""

    count: int
    first_seen: datetime
    last_seen: datetime


class Status(StrEnum):
    IDENTIFIED = "identified"
    UNKNOWN = "unknown"
    ERROR = "error"


@dataclass(frozen=True)
class Recognition:
    """One outcome. ``message`` is exactly what was published on ``topic``.

    ``reason`` is the error code for dead letters (``status`` ERROR).
    """

    recognition_id: str
    status: Status
    topic: str
    message: Mapping[str, Any]
    recognized_at: datetime
    bucket: str | None = None
    key: str | None = None
    etag: str | None = None
    reason: str | None = None


class RecognitionLedger(Protocol):
    """The history of outcomes; thread-safe, opened on first use, shared by every process
    (and, on PostgreSQL, every host) that names the same database."""

    def get(self, recognition_id: str) -> Recognition | None: ...

    def claim(self, recognition_id: str, owner: str, *, lease_seconds: float) -> bool:
        """Takes the right to handle ``recognition_id`` for ``lease_seconds``, atomically:
        True when no outcome is recorded for it and it was free, its last claim's lease
        has run out, or that claim is ``owner``'s own (a restarted worker takes back what
        it held). Recording the outcome ends the claim. Of several workers given the same
        event, only the one holding the claim publishes it. An id or owner holding NUL is
        InvalidParameterException (:mod:`facelens.history.nul`)."""
        ...

    def drop_abandoned_claims(self, ended_seconds: float, *, dry_run: bool = False) -> int:
        """Deletes the claims whose lease ended more than ``ended_seconds`` ago (by the clock
        leases are timed by); how many (in a dry run: how many are due, nothing deleted).

        Why: a claim is ended by recording its outcome, so one taken but never
        recorded (its worker crashed, or gave the event up) would stay forever.
        Dropping it changes nobody's right to the event (a claim whose lease has
        run out is free to take already); it only ends the trace of who took it,
        and until when. A held claim (its lease not ended) is never dropped.
        ``ended_seconds`` below 0 (or NaN) is InvalidParameterException."""
        ...

    def record(self, recognition: Recognition) -> bool:
        """Stores the outcome, atomically; False when that recognition id was already there
        (whichever process or host recorded it first). InvalidParameterException, and nothing
        stored, when it holds NUL anywhere (:func:`stored_message`)."""
        ...

    def recent(self, *, limit: int = 50, status: Status | None = None) -> list[Recognition]:
        """The latest outcomes, newest first."""
        ...

    def history(
        self,
        *,
        limit: int = 50,
        status: Status | None = None,
        camera: str | None = None,
        user_id: str | None = None,
        before: tuple[str, str] | None = None,
        after: str | None = None,
    ) -> list[Recognition]:
        """Outcomes newest first, filtered, one page at a time.

        before: the (recognized_at ISO text, recognition_id) of the last record
        of the previous page (a cursor; :func:`cursor_of`); after: only records
        newer than this ISO time (a live feed's tail). camera / user_id match the
        message's ``Camera`` / ``UserId``. A time that is not ISO 8601 is an
        InvalidParameterException. An id or text holding NUL, here or in any other method's
        filters, matches nothing: no record holds it (:mod:`facelens.history.nul`).
        """
        ...

    def count(self, *, status: Status | None = None) -> int: ...

    def dead_letters(self, *, limit: int = 50) -> list[Recognition]:
        """The latest dead letters, newest first."""
        ...

    def naming(
        self,
        *,
        user_id: str | None,
        face_ids: list[str],
        stranger_id: str | None = None,
        stranger_face_ids: list[str] | None = None,
    ) -> list[Recognition]:
        """The records whose message names ``user_id``, one of ``face_ids``, the stranger
        ``stranger_id`` (an unknown face's ``StrangerId``) or one of ``stranger_face_ids``
        (the stranger face a sighting added, ``StrangerFaceId``): one person's history,
        oldest first."""
        ...

    def delete(self, recognition_ids: list[str]) -> int:
        """Deletes these records; how many there were."""
        ...

    def crops_older_than(
        self,
        cutoff: datetime,
        statuses: list[Status],
        *,
        limit: int = 1000,
        after: tuple[str, str] | None = None,
    ) -> list[Recognition]:
        """Records of ``statuses`` recognized before ``cutoff`` that still name a crop,
        oldest first: the crops retention deletes. ``after``: the :func:`cursor_of` the
        previous page's last record (the next page starts after it)."""
        ...

    def mark_crop_deleted(self, recognition_id: str) -> None:
        """The record's crop is gone: bucket and key NULL, ``CropDeleted`` in the message
        (which keeps the key it was published with, as history)."""
        ...

    def known_crops(self, bucket: str, keys: list[str]) -> set[str]:
        """Which of ``keys`` in ``bucket`` a record names (the others were never recognized)."""
        ...

    def purge_deleted(self) -> bool:
        """Makes deleted records unreadable from the database's files; True when verifiably
        so, False when part may remain until later (see the adapters)."""
        ...

    def sightings(
        self, stranger_ids: Sequence[str], *, limit: int = 50, largest_first: bool = False
    ) -> list[Recognition]:
        """Sightings of these strangers, newest first; ``largest_first``: the largest face box
        first, among those whose crop is still stored (the best crops to show)."""
        ...

    def strangers_seen(self, stranger_ids: Sequence[str] | None = None) -> dict[str, StrangerSeen]:
        """Count, first and last sighting per StrangerId (of these ids, or of every one). A
        sighting is a visit: the records of one ``VisitId`` count once (a crop without one
        counts alone); first and last are over every record."""
        ...

    def close(self) -> None: ...


def stamp(moment: datetime) -> str:
    """A time as the ledger's cursors carry it: UTC, always with microseconds, so that text
    order is time order (``isoformat()`` alone drops a zero microsecond part)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time given to the ledger (a cursor, a feed's tail), in UTC; a naive one is
    read as local time, as ``astimezone`` does. InvalidParameterException if it is none."""
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # Overflow: year 1 or 9999 moved to UTC
        raise InvalidParameterException(f"Not an ISO 8601 time: {text!r}") from exc


def cursor_of(recognition: Recognition) -> tuple[str, str]:
    """The paging cursor after ``recognition`` for :meth:`RecognitionLedger.history`."""
    return stamp(recognition.recognized_at), recognition.recognition_id


def encode_message(message: Mapping[str, Any]) -> str:
    """A message as both adapters store it: JSON text, keys in the order given (the order a
    reader gets them back in), anything not JSON (a datetime) as its ``str``."""
    return json.dumps(message, ensure_ascii=False, default=str)


def stored_message(recognition: Recognition) -> str:
    """The message of ``recognition`` as both adapters store it (:func:`encode_message`),
    once the whole outcome is known storable: InvalidParameterException when a field or
    the message holds NUL (:mod:`facelens.history.nul`)."""
    r = recognition
    nul.refuse(
        recognition_id=r.recognition_id,
        topic=r.topic,
        bucket=r.bucket,
        key=r.key,
        etag=r.etag,
        reason=r.reason,
    )
    text = encode_message(r.message)
    nul.refuse_in_json("message", text)
    return text
