"""Forgetting a user: kept at this import path for its callers; the work is
:mod:`facelens.people.forget`'s (faces, negatives, crops, records, profiles, and the files)."""

from __future__ import annotations

from facelens.collection.users import UserService
from facelens.history.ledger import RecognitionLedger
from facelens.people.forget import ForgetReport, Forgetter
from facelens.profiles.store import ProfileStore
from facelens.storage.protocol import ObjectStore

__all__ = ["ForgetReport", "forget_user"]


def forget_user(
    collection_id: str,
    user_id: str,
    *,
    users: UserService,
    profiles: ProfileStore,
    ledger: RecognitionLedger,
    objects: ObjectStore,
) -> ForgetReport:
    """Forgets the user ``user_id`` of the collection (ResourceNotFoundException if there is
    none, as DeleteUser); the caller audits it."""
    forgetter = Forgetter(
        users=users, profiles=profiles, ledger=ledger, objects=objects, collection_id=collection_id
    )
    return forgetter.forget(user_id, users_only=True)
