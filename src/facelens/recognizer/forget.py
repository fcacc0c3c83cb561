"""Forgetting a person: their faces, profile, crops and identification records, in one step.

Faces are biometric data; a person deleted from a collection must not live
on in a profile, a crop in the object store or the recognizer's ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from facelens.collection.users import UserService
from facelens.profiles.store import ProfileStore
from facelens.recognizer.ledger import RecognitionLedger
from facelens.storage.protocol import ObjectStore


@dataclass(frozen=True)
class ForgetReport:
    deleted_faces: tuple[str, ...]
    deleted_profiles: tuple[str, ...]
    deleted_crops: tuple[str, ...]
    deleted_records: int


def forget_user(
    collection_id: str,
    user_id: str,
    *,
    users: UserService,
    profiles: ProfileStore,
    ledger: RecognitionLedger,
    objects: ObjectStore,
) -> ForgetReport:
    """Deletes the user with their faces, the profiles of both, and every crop that named them."""
    faces = users.delete_user(collection_id, user_id, delete_faces=True)
    records = ledger.forget(user_id=user_id, face_ids=faces)
    crops = sorted({(r.bucket, r.key) for r in records if r.bucket and r.key})
    for bucket, key in crops:
        objects.delete_object(bucket, key)
    deleted_profiles = tuple(pid for pid in (user_id, *faces) if profiles.delete(pid))
    return ForgetReport(tuple(faces), deleted_profiles, tuple(k for _, k in crops), len(records))
