"""What people decide about strangers (name, merge, split), each decision recorded as theirs.

The recognizer forms strangers on its own (:meth:`StrangerService.observe`);
a person then says who a stranger is (naming enrols their faces under a
user), that two strangers are one, or that some faces are someone else.
Each decision changes whose biometric data is whose, so it is on record:
the REST API, the dashboard and the CLI hand :class:`StrangerCuration`
their :class:`~facelens.history.audit.Actor`, and it records the entry
itself once the change succeeded (:mod:`facelens.history.audit`).
Forgetting a stranger is :mod:`facelens.people.forget`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from facelens.history.audit import Actor, AuditAction, AuditLog, Context, record_as
from facelens.people.stranger_model import NamedStranger, Stranger
from facelens.people.strangers import StrangerService


@dataclass(frozen=True)
class StrangerCuration:
    """``strangers``' name, merge and split, recorded in ``audit``. ``context`` (every
    method): what the entry point adds to the entry's details (``{"Via": "dashboard"}``)."""

    strangers: StrangerService
    audit: AuditLog

    def name(
        self,
        actor: Actor,
        collection_id: str,
        stranger_id: str,
        user_id: str,
        *,
        profile: Mapping[str, Any] | None = None,
        extend: bool = False,
        context: Context | None = None,
    ) -> NamedStranger:
        """:meth:`StrangerService.name`; recorded against the user, with the stranger and
        how many faces were enrolled."""
        named = self.strangers.name(
            collection_id, stranger_id, user_id, profile=profile, extend=extend
        )
        details = {"StrangerId": stranger_id, "Faces": len(named.face_ids)}
        record_as(
            self.audit,
            actor,
            AuditAction.NAME_STRANGER,
            user_id,
            collection_id=collection_id,
            details=details,
            context=context,
        )
        return named

    def merge(
        self,
        actor: Actor,
        collection_id: str,
        into: str,
        other: str,
        *,
        context: Context | None = None,
    ) -> Stranger:
        """:meth:`StrangerService.merge`; recorded against ``into``, naming ``other``."""
        merged = self.strangers.merge(collection_id, into, other)
        details = {"Other": other}
        record_as(
            self.audit,
            actor,
            AuditAction.MERGE_STRANGERS,
            into,
            collection_id=collection_id,
            details=details,
            context=context,
        )
        return merged

    def split(
        self,
        actor: Actor,
        collection_id: str,
        stranger_id: str,
        face_ids: Sequence[str],
        *,
        context: Context | None = None,
    ) -> str:
        """:meth:`StrangerService.split`; recorded against the stranger split, with the new
        stranger's id and the faces it took. Returns the new id."""
        new_id = self.strangers.split(collection_id, stranger_id, face_ids)
        details = {"NewStrangerId": new_id, "FaceIds": list(face_ids)}
        action = AuditAction.SPLIT_STRANGER
        record_as(
            self.audit,
            actor,
            action,
            stranger_id,
            collection_id=collection_id,
            details=details,
            context=context,
        )
        return new_id
