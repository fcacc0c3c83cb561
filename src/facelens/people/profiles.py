"""A person's profile, read and written on someone's behalf: every read and write audited.

A profile says who someone is (a name, a role, whatever was stored), so
each read of one and each change is on record, whoever asks and however:
the REST API, the DynamoDB endpoint, the dashboard, the CLI, an
identification of an uploaded photo. They all go through
:class:`ProfileService` with their :class:`~facelens.history.audit.Actor`;
it records the entry itself, reads *before* the profile is handed back and
changes right *after* they succeeded (:mod:`facelens.history.audit`).

A profile changed as part of another operation (enrolling a person, naming
a stranger, a person's threshold) is recorded as that operation, by its
own service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from facelens.history.audit import Actor, AuditAction, AuditLog, Context, record_as
from facelens.profiles.store import ProfileStore
from facelens.profiles.types import Profile, ProfilePage

EVERYONE = "*"
"""The target of a read of several profiles (their ids are in the details)."""


@dataclass(frozen=True)
class ProfileService:
    """The profiles of ``store``, with each read and write recorded in ``audit``.

    ``context`` (every method): what the entry point adds to the entry's details, e.g.
    ``{"Via": "dashboard page"}``, or the DynamoDB table and operation.
    """

    store: ProfileStore
    audit: AuditLog

    def get(
        self,
        actor: Actor,
        profile_id: str,
        *,
        collection_id: str | None = None,
        context: Context | None = None,
        record_miss: bool = False,
    ) -> Profile | None:
        """The profile (None: there is none); a profile found is recorded as read.

        ``record_miss``: for an entry point where a missing profile is an answer, not an
        error (DynamoDB's GetItem): the lookup is recorded either way, ``Found`` saying
        which. ``collection_id``: the collection the read was made for (an identification).
        """
        profile = self.store.get(profile_id)
        if profile is not None or record_miss:
            details = {"Found": profile is not None} if record_miss else {}
            self._read(actor, profile_id, collection_id, details, context)
        return profile

    def get_many(
        self, actor: Actor, profile_ids: Sequence[str], *, context: Context | None = None
    ) -> dict[str, Profile]:
        """The profiles of ``profile_ids`` that exist, by id, recorded as
        :meth:`read_together`: a page that shows everyone's name (the dashboard's people
        list) is one read, and one entry, however many people it names."""
        found: dict[str, Profile] = {}
        for profile_id in dict.fromkeys(profile_ids):
            profile = self.store.get(profile_id)
            if profile is not None:
                found[profile_id] = profile
        self.read_together(actor, list(found.values()), context=context)
        return found

    def list(
        self,
        actor: Actor,
        *,
        max_results: int = 100,
        next_token: str | None = None,
        context: Context | None = None,
    ) -> ProfilePage:
        """A page of profiles in id order, recorded as :meth:`read_together`."""
        page = self.store.list(max_results=max_results, next_token=next_token)
        self.read_together(actor, page.profiles, context=context)
        return page

    def read_together(
        self, actor: Actor, profiles: Sequence[Profile], *, context: Context | None = None
    ) -> None:
        """Records that ``profiles``, read in one go (a listing, a DynamoDB Scan), are handed
        to ``actor``: one entry naming them all (none for no profile)."""
        if profiles:
            details = {"ProfileIds": [p.profile_id for p in profiles]}
            record_as(
                self.audit,
                actor,
                AuditAction.PROFILE_READ,
                EVERYONE,
                details=details,
                context=context,
            )

    def put(
        self,
        actor: Actor,
        profile_id: str,
        attributes: Mapping[str, Any],
        *,
        merge: bool = False,
        context: Context | None = None,
    ) -> Profile:
        """Stores ``attributes`` as the profile (``merge``: into it, creating it if needed);
        recorded with the attributes' names (never their values)."""
        if merge:
            profile = self.store.update(profile_id, attributes)
        else:
            profile = self.store.put(profile_id, attributes)
        details = {"Attributes": sorted(attributes), "Merge": merge}
        record_as(
            self.audit,
            actor,
            AuditAction.PROFILE_WRITE,
            profile_id,
            details=details,
            context=context,
        )
        return profile

    def put_returning_old(
        self,
        actor: Actor,
        profile_id: str,
        attributes: Mapping[str, Any],
        *,
        context: Context | None = None,
    ) -> Profile | None:
        """Stores ``attributes`` as the profile (:meth:`put`) and hands back the one it
        replaced (None: there was none), as DynamoDB's PutItem with ``ReturnValues`` ALL_OLD
        does; the old profile is recorded as read once the write succeeded, before it
        leaves (a failed write hands nothing out)."""
        old = self.store.get(profile_id)
        self.put(actor, profile_id, attributes, context=context)
        if old is not None:
            self._read(actor, profile_id, None, {}, context)
        return old

    def delete(
        self,
        actor: Actor,
        profile_id: str,
        *,
        context: Context | None = None,
        record_miss: bool = False,
    ) -> bool:
        """Deletes the profile; whether there was one. A deletion is recorded; so is a
        miss with ``record_miss`` (DynamoDB's DeleteItem: no item is not an error), with
        ``Found`` saying which."""
        deleted = self.store.delete(profile_id)
        if deleted or record_miss:
            details = {"Found": deleted} if record_miss else {}
            record_as(
                self.audit,
                actor,
                AuditAction.PROFILE_DELETE,
                profile_id,
                details=details,
                context=context,
            )
        return deleted

    def delete_returning_old(
        self,
        actor: Actor,
        profile_id: str,
        *,
        context: Context | None = None,
        record_miss: bool = False,
    ) -> Profile | None:
        """Deletes the profile (:meth:`delete`) and hands it back (None: there was none), as
        DynamoDB's DeleteItem with ``ReturnValues`` ALL_OLD does; the profile deleted is
        recorded as read too, after the deletion and before it leaves."""
        old = self.store.get(profile_id)
        self.delete(actor, profile_id, context=context, record_miss=record_miss)
        if old is not None:
            self._read(actor, profile_id, None, {}, context)
        return old

    def _read(
        self,
        actor: Actor,
        profile_id: str,
        collection_id: str | None,
        details: Mapping[str, Any],
        context: Context | None,
    ) -> None:
        record_as(
            self.audit,
            actor,
            AuditAction.PROFILE_READ,
            profile_id,
            collection_id=collection_id,
            details=details,
            context=context,
        )
