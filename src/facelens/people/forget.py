"""Forgetting a person: every face, embedding, crop, profile and record of theirs, in one step.

Why: faces are biometric data, and a person who asks to be forgotten must
afterwards be found by no search and held by no file. A person is a UserId
of the collection, a FaceId (a person enrolled as one face; a face of a user
stands for that user), or a stranger (``stranger-<n>``, a user of the
companion collection ``<collection>.strangers``). What goes:

* their faces (embeddings) in the collection, and the user;
* their negative examples: faces of ``<collection>.rejected`` whose
  ExternalImageId is the person or one of their FaceIds;
* a stranger's faces and user in ``<collection>.strangers``; for a user who
  was named from a stranger (faces whose ExternalImageId is ``stranger-<n>``),
  that stranger's earlier sightings too;
* every crop a ledger record names (identified as them, or a sighting of the
  stranger: the unknown message's ``StrangerId``), then those records;
* the visits (:mod:`facelens.history.visits`) whose answer named them (or, in a
  revision's ``Revises``, had named them), or that hold a look or an answer of
  one of those records, with all their looks (embeddings): a visit is one
  person, so a look of theirs makes the whole visit theirs;
* the profiles of the UserId and of each FaceId;
* in the audit log, their ids (replaced by a pseudonym), after the forgetting
  itself is recorded under that pseudonym with the actor who asked.

Every front end forgets through :meth:`Forgetter.forget` (``facelens forget``,
``users delete --delete-faces``, ``DELETE /api/v1/people/{person}``,
``?forget=true``, the dashboard, retention's expiry of strangers), and prints
its :class:`ForgetReport` one way (:func:`facelens.rendering.forget.forget_json`).

Order matters for a retry: crops go first, while the records that name them
still exist; a back end that fails midway leaves the rest for a second call,
which finds the person (or what remains of them) again. The ledger is swept
again at the end for sightings recorded meanwhile.

No file holds them afterwards: the SQLite stores zero deleted rows
(``secure_delete``) and are checkpointed here (the write-ahead log still holds
pages as they were), the deletion log's FaceIds go, and saved search indexes
(which keep removed vectors as tombstones) are deleted, to be rebuilt without
them on the next search. PostgreSQL gets a plain VACUUM: its pages and WAL
may keep deleted bytes until reused, which only ``VACUUM FULL`` (an
exclusive lock, the operator's call) and the end of WAL/backup retention
end; ``ForgetReport.purged`` is False then. Not reached from here: messages
already published (MQTT retained messages, notifications, other hosts'
spools and ledgers) and backups.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from facelens.collection.models import StoredFace
from facelens.collection.users import UserService
from facelens.errors import ResourceNotFoundException
from facelens.history.audit import Actor, AuditLog, Context, with_context
from facelens.history.ledger import Recognition, RecognitionLedger
from facelens.history.visits import VisitLedger
from facelens.people.matching import NEGATIVES_SUFFIX
from facelens.people.stranger_model import STRANGERS_SUFFIX
from facelens.profiles.store import ProfileStore
from facelens.storage.protocol import ObjectStore

_log = logging.getLogger(__name__)

STRANGER_ID = re.compile(r"stranger-\d+")
_PAGE = 1000


@runtime_checkable
class _CollectionPurge(Protocol):
    def purge_deleted(self, collection_ids: list[str]) -> bool: ...


@runtime_checkable
class _Purge(Protocol):
    def purge_deleted(self) -> bool: ...


@dataclass(frozen=True)
class ForgetReport:
    """What forgetting ``person`` deleted. ``kind``: 'user', 'face', 'stranger', or
    'remains' (no face left, only profiles, records or negatives). ``purged``: every
    file was verifiably cleaned (False: see the module's docstring)."""

    person: str
    kind: str
    collection_id: str
    deleted_faces: tuple[str, ...]
    deleted_profiles: tuple[str, ...]
    deleted_crops: tuple[str, ...]
    deleted_records: int
    deleted_user: str | None = None
    deleted_stranger_faces: tuple[str, ...] = ()
    deleted_negatives: tuple[str, ...] = ()
    former_stranger_ids: tuple[str, ...] = ()
    """The stranger ids a named user was seen as; their sightings went too."""
    purged: bool = True
    deleted_visits: int = 0
    """Visits (answers with their looks) that named them or held a look of theirs."""

    def ids(self) -> list[str]:
        """Every id that named them: for the audit log's redaction."""
        user = [self.deleted_user] if self.deleted_user else []
        faces = [*self.deleted_faces, *self.deleted_stranger_faces, *self.deleted_negatives]
        ids = [self.person, *user, *faces, *self.deleted_profiles, *self.former_stranger_ids]
        return list(dict.fromkeys(ids))


@dataclass
class _Person:
    """Whom a PERSON argument names, and what of theirs is found."""

    kind: str
    user_id: str | None = None
    stranger_id: str | None = None
    faces: list[str] = field(default_factory=list)
    stranger_faces: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    """Every id they go by: the argument, UserId, FaceIds (profiles, negatives, audit)."""
    former_strangers: list[str] = field(default_factory=list)
    """The stranger ids a named user was seen as (their faces' ExternalImageId): the
    unknown sightings of before the naming are theirs too."""


class Forgetter:
    """Forgets people of ``collection_id`` (the default; each call may name another), and
    records each forgetting in ``audit`` (redacting the person from earlier entries).
    ``visits``: the visits' looks and answers (None: no visits to forget).
    """

    def __init__(
        self,
        *,
        users: UserService,
        profiles: ProfileStore,
        ledger: RecognitionLedger,
        objects: ObjectStore,
        collection_id: str,
        audit: AuditLog,
        visits: VisitLedger | None = None,
    ) -> None:
        self.users = users
        self.store = users.store
        self.profiles = profiles
        self.ledger = ledger
        self.objects = objects
        self.collection_id = collection_id
        self.audit = audit
        self.visits = visits

    def forget(
        self,
        person: str,
        *,
        actor: Actor,
        collection_id: str | None = None,
        users_only: bool = False,
        context: Context | None = None,
    ) -> ForgetReport:
        """Deletes everything of ``person`` (see the module's docstring), records that
        ``actor`` had them forgotten, and reports what went.

        Raises ResourceNotFoundException when nothing anywhere names them
        (``users_only``: unless they are a user of the collection, as
        DeleteUser would). ``context``: what the entry point adds to the entry's details.
        """
        cid = collection_id or self.collection_id
        found = self._resolve(cid, person, users_only=users_only)
        crops: list[str] = []
        visits = [0]
        records = self._sweep(found, crops, visits)
        negatives = self._delete_negatives(cid, found.ids)
        faces = self._delete_faces(cid, found)
        stranger_faces = self._delete_stranger(cid, found)
        records += self._sweep(found, crops, visits)  # sightings recorded meanwhile
        profiles = tuple(pid for pid in dict.fromkeys(found.ids) if self._delete_profile(pid))
        purged = self._purge(cid)
        report = ForgetReport(
            person=person,
            kind=found.kind,
            collection_id=cid,
            deleted_faces=tuple(faces),
            deleted_profiles=profiles,
            deleted_crops=tuple(crops),
            deleted_records=records,
            deleted_user=found.user_id,
            deleted_stranger_faces=tuple(stranger_faces),
            deleted_negatives=tuple(negatives),
            former_stranger_ids=tuple(found.former_strangers),
            purged=purged,
            deleted_visits=visits[0],
        )
        self._record(actor, report, found, context)
        _log.info(
            "forgot a %s: %d faces, %d crops, %d records, %d profiles",
            found.kind,
            len(faces) + len(stranger_faces),
            len(crops),
            records,
            len(profiles),
        )
        return report

    # -- finding them --
    def _resolve(self, cid: str, person: str, *, users_only: bool) -> _Person:
        if "\x00" in person:
            # No id facelens keeps holds NUL (U+0000): user, face and stranger ids have
            # patterns, and the profile and history stores refuse it. So nobody is this
            # person, on every back end alike: PostgreSQL cannot even bind the text to look.
            raise ResourceNotFoundException(f"Nobody in collection {cid} is {person!r}")
        if not users_only and STRANGER_ID.fullmatch(person):
            stored = self._user_stored_faces(cid + STRANGERS_SUFFIX, person)
            if stored is not None:
                # Faces split off (or merged in from) another stranger keep that stranger's
                # id as their origin, and the sightings that made them are recorded under it.
                return _Person(
                    "stranger",
                    stranger_id=person,
                    stranger_faces=[f.face_id for f in stored],
                    ids=[person],
                    former_strangers=_origins(stored, person),
                )
        user = self._user(cid, person)
        if user is not None:
            return user
        if users_only:
            self.store.get_user(cid, person)  # raises DeleteUser's own error
        face = self._face(cid, person)
        if face is not None and face.user_id is not None:
            user = self._user(cid, face.user_id)
            if user is not None:
                return user
        if face is not None:
            return _Person("face", faces=[person], ids=[person])
        stranger = person if STRANGER_ID.fullmatch(person) else None
        remains = _Person("remains", user_id=person, stranger_id=stranger, ids=[person])
        if (
            self.profiles.get(person) is None
            and not self._records(remains)
            and not self._visits(remains, [])
            and not self._negatives(cid, [person])
        ):
            raise ResourceNotFoundException(
                f"Nobody in collection {cid} is {person!r}: no user, face, stranger, "
                "profile or record"
            )
        return remains

    def _user_stored_faces(self, cid: str, user_id: str) -> list[StoredFace] | None:
        try:
            self.store.get_user(cid, user_id)
        except ResourceNotFoundException:
            return None
        return self._all_faces(cid, user_id=user_id)

    def _user(self, cid: str, user_id: str) -> _Person | None:
        faces = self._user_stored_faces(cid, user_id)
        if faces is None:
            return None
        face_ids = [f.face_id for f in faces]
        return _Person(
            "user",
            user_id=user_id,
            faces=face_ids,
            ids=[user_id, *face_ids],
            former_strangers=_origins(faces, user_id),
        )

    def _face(self, cid: str, face_id: str) -> StoredFace | None:
        try:
            return self.store.get_faces(cid, [face_id]).get(face_id)
        except ResourceNotFoundException:
            return None

    def _all_faces(self, cid: str, *, user_id: str | None = None) -> list[StoredFace]:
        out: list[StoredFace] = []
        token: str | None = None
        while True:
            page = self.store.list_faces(cid, max_results=_PAGE, next_token=token, user_id=user_id)
            out += page.faces
            token = page.next_token
            if token is None:
                return out

    def _records(self, found: _Person) -> list[Recognition]:
        records = self.ledger.naming(
            user_id=found.user_id,
            face_ids=found.faces,
            stranger_id=found.stranger_id,
            stranger_face_ids=found.stranger_faces,
        )
        for former in found.former_strangers:
            records += self.ledger.naming(user_id=None, face_ids=[], stranger_id=former)
        return list({r.recognition_id: r for r in records}.values())

    def _negatives(self, cid: str, ids: list[str]) -> list[str]:
        try:
            faces = self._all_faces(cid + NEGATIVES_SUFFIX)
        except ResourceNotFoundException:
            return []
        wanted = set(ids)
        return [f.face_id for f in faces if f.external_image_id in wanted]

    # -- deleting --
    def _visits(self, found: _Person, recognition_ids: list[str]) -> list[str]:
        """The ids of the visits that named them, or hold a look or an answer of theirs."""
        if self.visits is None:
            return []
        visits = self.visits.naming(
            user_id=found.user_id,
            face_ids=found.faces,
            stranger_id=found.stranger_id,
            recognition_ids=recognition_ids,
        )
        for former in found.former_strangers:
            visits += self.visits.naming(user_id=None, face_ids=[], stranger_id=former)
        return list(dict.fromkeys(v.visit_id for v in visits))

    def _sweep(self, found: _Person, crops: list[str], visits: list[int]) -> int:
        """Deletes the crops of their records, their visits (while the records that lead to
        them still exist), then the records; how many records (``visits[0]`` counts the
        visits)."""
        records = self._records(found)
        for record in records:
            if record.bucket is not None and record.key is not None:
                self.objects.delete_object(record.bucket, record.key)
                crops.append(record.key)
        ids = self._visits(found, [r.recognition_id for r in records])
        if ids and self.visits is not None:
            visits[0] += self.visits.delete(ids)
        return self.ledger.delete([r.recognition_id for r in records]) if records else 0

    def _delete_negatives(self, cid: str, ids: list[str]) -> list[str]:
        negatives = self._negatives(cid, ids)
        return self.store.delete_faces(cid + NEGATIVES_SUFFIX, negatives) if negatives else []

    def _delete_faces(self, cid: str, found: _Person) -> list[str]:
        if found.kind == "user" and found.user_id is not None:
            deleted = self.users.delete_user(cid, found.user_id, delete_faces=True)
            return sorted(set(deleted) | set(found.faces))
        if found.kind == "face":
            return self.store.delete_faces(cid, found.faces)
        return []

    def _delete_stranger(self, cid: str, found: _Person) -> list[str]:
        if found.kind != "stranger" or found.stranger_id is None:
            return []
        strangers = cid + STRANGERS_SUFFIX
        self.store.delete_user(strangers, found.stranger_id)
        if not found.stranger_faces:
            return []
        return self.store.delete_faces(strangers, found.stranger_faces)

    def _delete_profile(self, profile_id: str) -> bool:
        try:
            return self.profiles.delete(profile_id)
        except ResourceNotFoundException:
            return False

    def _purge(self, cid: str) -> bool:
        """Makes what was deleted unreadable from the files; True when verifiably so."""
        purged = True
        if isinstance(self.store, _CollectionPurge):
            companions = [cid, cid + NEGATIVES_SUFFIX, cid + STRANGERS_SUFFIX]
            purged = self.store.purge_deleted(companions)
        else:
            purged = False
        for part in (self.ledger, self.visits, self.profiles):
            if part is None:
                continue
            if isinstance(part, _Purge):
                purged = part.purge_deleted() and purged
            elif part is self.profiles:
                purged = False  # e.g. DynamoDB: deleted items are the service's to erase
        if not purged:
            _log.warning("forget: some files may still hold deleted rows (see facelens.people)")
        return purged

    def _record(
        self, actor: Actor, report: ForgetReport, found: _Person, context: Context | None
    ) -> None:
        """The forgetting, under the person's pseudonym; then their ids (UserId, FaceIds,
        stranger ids) are redacted in every earlier entry, and purged from the log's files."""
        details = {
            "Kind": report.kind,
            "Faces": len(report.deleted_faces) + len(report.deleted_stranger_faces),
            "Negatives": len(report.deleted_negatives),
            "Crops": len(report.deleted_crops),
            "Records": report.deleted_records,
            "Visits": report.deleted_visits,
            "Profiles": len(report.deleted_profiles),
        }
        person = found.user_id or found.stranger_id or report.person
        also = [i for i in dict.fromkeys(report.ids()) if i != person]
        self.audit.record_forget(
            actor.label,
            person,
            also=also,
            collection_id=report.collection_id,
            details=with_context(details, context),
        )
        self.audit.purge_deleted()


def _origins(faces: list[StoredFace], person: str) -> list[str]:
    """The stranger ids ``faces`` came from (their ExternalImageId), other than ``person``."""
    return sorted(
        {
            f.external_image_id
            for f in faces
            if f.external_image_id
            and f.external_image_id != person
            and STRANGER_ID.fullmatch(f.external_image_id)
        }
    )
