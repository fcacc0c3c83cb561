"""The audit log: who enrolled, deleted, corrected or read whose data, and when.

One entry per action: time, actor, action, target (the person, face or
collection acted on), the collection, and a small JSON ``details``. Who
acts is an :class:`Actor`, which the entry points make and the application
services (:mod:`facelens.people`, :mod:`facelens.enrolment`) record, each
for its own operation; the log keeps its label: ``api-key:<name>``,
``access-key:<name>`` (SigV4), ``dashboard:<user>``, ``local`` (open access
on loopback), ``cli:<os user>``, ``recognizer``. The port is :class:`AuditLog`;
:mod:`facelens.history.sql_audit` writes it once over SQL;
:mod:`facelens.history.sqlite` keeps it in ``<home>/audit.db`` (one
host), :mod:`facelens.history.postgres` in the PostgreSQL database
that holds the collections (every host that shares them). The rules both
follow are here, so the two cannot drift apart.

Append-only from the API's point of view: nothing here updates or deletes
a row except :meth:`AuditLog.redact`, which forgetting a person calls to
replace that person's id by ``forgotten:<first 12 hex of sha256(id)>``:
accountability stays (who did what, when), the identity goes. The same
person always gets the same pseudonym, so their rows still group.

A failed write fails the caller's request. This log is the accountability
trail for biometric data: a change or a read that nobody can account for
is worse than a visible error. So reads are recorded *before* the data
leaves (no profile is shown unlogged), changes right *after* they succeed
(the log never claims what did not happen); if that write fails the
caller gets the ``StorageError`` rather than a success for an unaudited
change, and the entry is logged at ERROR level for the operator to
reconstruct. The failures possible here (full disk, read-only home, a
database that cannot be reached) break the collection store beside it
too, so this adds no new way to fail in practice.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from facelens.errors import InvalidParameterException
from facelens.history import nul

_log = logging.getLogger(__name__)

MAX_PAGE = 1000
"""The most entries one call of :meth:`AuditLog.entries` returns."""
MAX_ENTRY_ID = 2**63 - 1
"""The largest entry id: SQLite's INTEGER and PostgreSQL's BIGINT are 64-bit signed (a larger
``before`` is refused rather than reaching the query, where it raises OverflowError)."""
FORGOTTEN_PREFIX = "forgotten:"


@dataclass(frozen=True)
class Actor:
    """Who acts on a person's data: how they reached facelens (``kind``: ``api-key``,
    ``access-key``, ``dashboard``, ``cli``; ``local`` and ``recognizer`` stand alone) and
    which key, session user or OS user (``name``). Every operation the audit log records
    takes one, so no change or read is recorded without saying whose it was."""

    kind: str
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.kind or ":" in self.kind or self.name == "":
            raise InvalidParameterException(f"Not an actor: {self.kind!r}, {self.name!r}")

    @property
    def label(self) -> str:
        """What the log stores and filters on: ``<kind>:<name>``, or ``kind`` alone."""
        return self.kind if self.name is None else f"{self.kind}:{self.name}"

    def __str__(self) -> str:
        return self.label


RECOGNIZER = Actor("recognizer")
"""What the recognizer or a background job (retention) does on its own."""
LOCAL = Actor("local")
"""A server call with open access (no keys; loopback only)."""


class AuditAction(StrEnum):
    ENROL = "enrol"
    CREATE_USER = "create-user"
    DISASSOCIATE = "disassociate"
    DELETE_FACE = "delete-face"
    DELETE_USER = "delete-user"
    DELETE_COLLECTION = "delete-collection"
    FORGET = "forget"
    CORRECT = "correct"
    UNDO_CORRECTION = "undo-correction"
    THRESHOLD = "threshold"
    NAME_STRANGER = "name-stranger"
    MERGE_STRANGERS = "merge-strangers"
    SPLIT_STRANGER = "split-stranger"
    PROFILE_READ = "profile-read"
    PROFILE_WRITE = "profile-write"
    PROFILE_DELETE = "profile-delete"
    RETENTION = "retention"


@dataclass(frozen=True)
class AuditEntry:
    """One recorded action. ``entry_id`` grows with time (the paging cursor); ``at`` is UTC."""

    entry_id: int
    at: datetime
    actor: str
    action: AuditAction
    target: str
    collection_id: str | None
    details: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The entry with the field names the API and the CLI print."""
        out: dict[str, Any] = {
            "EntryId": self.entry_id,
            "At": self.at.isoformat(),
            "Actor": self.actor,
            "Action": self.action.value,
            "Target": self.target,
        }
        if self.collection_id is not None:
            out["CollectionId"] = self.collection_id
        out["Details"] = dict(self.details)
        return out


@dataclass(frozen=True)
class AuditPage:
    """Entries newest first; ``next_before``: pass as ``before`` for the next page (None: done)."""

    entries: list[AuditEntry]
    next_before: int | None


def faces_target(collection_id: str, face_ids: Sequence[str]) -> str:
    """The target of an operation on faces: the face when there is one, else the collection
    (the FaceIds go in the details, where a search by target finds them too)."""
    return face_ids[0] if len(face_ids) == 1 else collection_id


def pseudonym(person_id: str) -> str:
    """What a forgotten id becomes: stable (rows still group) and not reversible in practice
    for random ids (UUIDs); a guessable user id (a name) could be confirmed by hashing it."""
    return FORGOTTEN_PREFIX + hashlib.sha256(person_id.encode()).hexdigest()[:12]


class AuditLog(Protocol):
    """The log; thread-safe, and safe for several writers (processes, or hosts on one
    PostgreSQL database) at once."""

    def record(
        self,
        actor: str,
        action: AuditAction | str,
        target: str,
        *,
        collection_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Appends one entry; raises StorageError if it cannot (see the module's docstring).

        ``details`` must be JSON-serialisable (ids, counts; never images or secrets).
        """
        ...

    def entries(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        actor: str | None = None,
        action: AuditAction | str | None = None,
        target: str | None = None,
        since: datetime | None = None,
    ) -> AuditPage:
        """Entries newest first, filtered (all filters must match), one page at a time.

        ``before``: the previous page's ``next_before``; ``since``: only entries at or after
        it; ``target``: entries concerning that id, as their target or anywhere in their
        details (an enrolment's FaceIds, a merge's second stranger).
        """
        ...

    def redact(self, person_id: str) -> int:
        """Replaces ``person_id`` in earlier entries, as their target and wherever it is a
        string value, key or list member in their details, by :func:`pseudonym`; how many
        entries changed. Call it when the person is forgotten, after recording the forget
        itself (whose target is then redacted too)."""
        ...

    def record_forget(
        self,
        actor: str,
        person_id: str,
        *,
        also: Sequence[str] = (),
        collection_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Records that ``person_id`` was forgotten, under its pseudonym (the id is never
        written in clear), then :meth:`redact` s it and the ids in ``also`` (their FaceIds)
        in every earlier entry."""
        ...

    def purge_deleted(self) -> bool:
        """Makes the ids :meth:`redact` replaced unreadable from the database's files; True
        when verifiably so, False when part may remain until later (see the adapters)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class NewEntry:
    """An entry checked and encoded by :func:`new_entry`, for an adapter to append.
    ``encoded``: ``details`` as the JSON text both adapters store (keys sorted)."""

    at: datetime
    actor: str
    action: AuditAction
    target: str
    collection_id: str | None
    details: Mapping[str, Any]
    encoded: str

    @property
    def timestamp(self) -> float:
        """``at`` as stored: Unix seconds (both adapters keep a double, so an entry reads
        back alike from either)."""
        return self.at.timestamp()

    def stored(self, entry_id: int) -> AuditEntry:
        return AuditEntry(
            entry_id,
            self.at,
            self.actor,
            self.action,
            self.target,
            self.collection_id,
            self.details,
        )

    def report_lost(self) -> None:
        """Logs the entry a failed write did not keep, for the operator to reconstruct."""
        _log.error(
            "Audit entry NOT recorded: actor=%s action=%s target=%s collection=%s details=%s",
            self.actor,
            self.action.value,
            self.target,
            self.collection_id,
            self.encoded,
        )


def new_entry(
    actor: str,
    action: AuditAction | str,
    target: str,
    *,
    collection_id: str | None,
    details: Mapping[str, Any] | None,
    at: datetime | None,
) -> NewEntry:
    """The checks of :meth:`AuditLog.record`: InvalidParameterException for an unknown
    action, a missing actor or target, an actor, target or collection holding NUL
    (:mod:`facelens.history.nul`; details may: their JSON escapes it), or details that are
    not JSON."""
    kind = _action(action)
    if not actor or not target:
        raise InvalidParameterException("An audit entry needs an actor and a target")
    nul.refuse(actor=actor, target=target, collection_id=collection_id)
    when = (at or datetime.now(UTC)).astimezone(UTC)
    document = dict(details or {})
    try:
        encoded = json.dumps(document, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterException(f"Audit details are not JSON: {exc}") from exc
    return NewEntry(when, actor, kind, target, collection_id, document, encoded)


@dataclass(frozen=True)
class EntryFilter:
    """The filters of :meth:`AuditLog.entries`, checked, in the form both adapters query.
    ``needle``: ``target`` as JSON text, found inside an entry's encoded details."""

    limit: int
    before: int | None
    actor: str | None
    action: AuditAction | None
    target: str | None
    needle: str | None
    since: float | None

    def page(self, rows: Sequence[tuple[Any, ...]]) -> AuditPage:
        """The page for up to ``limit + 1`` rows, newest first (one more: there is a next)."""
        found = [entry_from_row(row) for row in rows[: self.limit]]
        more = len(rows) > self.limit
        return AuditPage(found, found[-1].entry_id if more and found else None)


def entry_filter(
    *,
    limit: int,
    before: int | None,
    actor: str | None,
    action: AuditAction | str | None,
    target: str | None,
    since: datetime | None,
) -> EntryFilter:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidParameterException(f"limit must be 1-{MAX_PAGE}")
    if before is not None and not 1 <= before <= MAX_ENTRY_ID:
        raise InvalidParameterException(f"before must be an entry id, 1-{MAX_ENTRY_ID}")
    return EntryFilter(
        limit=limit,
        before=before,
        actor=actor,
        action=None if action is None else _action(action),
        target=target,
        needle=None if target is None else json.dumps(target, ensure_ascii=False),
        since=None if since is None else _aware(since).timestamp(),
    )


def redaction_needle(person_id: str) -> str:
    """What an entry's encoded details contain where they name ``person_id``."""
    if not person_id:
        raise InvalidParameterException("redact needs an id")
    return json.dumps(person_id, ensure_ascii=False)


def redacted(target: str, details: str, person_id: str) -> tuple[str, str]:
    """An entry's target and encoded details with ``person_id`` replaced by its pseudonym."""
    alias = pseudonym(person_id)
    cleaned = _replace(json.loads(details), person_id, alias)
    return (
        alias if target == person_id else target,
        json.dumps(cleaned, ensure_ascii=False, sort_keys=True),
    )


Context = Mapping[str, Any]
"""What an entry point adds to the details of the entries an operation records: where the
call came from (``Via``: the dashboard, the AWS operation), the DynamoDB table. The
operation's own details win over it."""


def with_context(details: Mapping[str, Any], context: Context | None) -> dict[str, Any]:
    """An operation's ``details`` with the entry point's ``context`` beside them."""
    return {**(context or {}), **details}


def record_as(
    log: AuditLog,
    actor: Actor,
    action: AuditAction,
    target: str,
    *,
    collection_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    context: Context | None = None,
) -> AuditEntry:
    """Records that ``actor`` did ``action`` on ``target``: how an application service
    writes its own entry, with the entry point's ``context`` beside its ``details``."""
    return log.record(
        actor.label,
        action,
        target,
        collection_id=collection_id,
        details=with_context(details or {}, context),
    )


def entry_from_row(row: tuple[Any, ...]) -> AuditEntry:
    """An entry from its stored columns: id, at, actor, action, target, collection_id,
    details."""
    entry_id, at, actor, action, target, collection_id, details = row
    return AuditEntry(
        entry_id=int(entry_id),
        at=datetime.fromtimestamp(float(at), UTC),
        actor=actor,
        action=AuditAction(action),
        target=target,
        collection_id=collection_id,
        details=json.loads(details),
    )


def _action(value: AuditAction | str) -> AuditAction:
    try:
        return AuditAction(value)
    except ValueError:
        names = ", ".join(a.value for a in AuditAction)
        raise InvalidParameterException(f"Unknown audit action {value!r}: one of {names}") from None


def _aware(moment: datetime) -> datetime:
    """A naive time is taken as UTC (what ``--since 2024-05-01T10:00`` means here)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _replace(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return new if value == old else value
    if isinstance(value, list):
        return [_replace(v, old, new) for v in value]
    if isinstance(value, dict):
        return {(new if k == old else k): _replace(v, old, new) for k, v in value.items()}
    return value


def cli_actor() -> Actor:
    """``cli:<os user>``: who ran a command on this host (``cli:uid-<n>`` when the user has
    no name, e.g. a container's arbitrary uid)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return Actor("cli", user or f"uid-{os.getuid()}")
