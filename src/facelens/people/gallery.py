"""The gallery: enrolled faces and users, changed on someone's behalf, each change audited.

A face in a collection is biometric data, so whoever adds one, ties it to a
person, or deletes it must be on record. Every front end that does (the REST
API, the Rekognition endpoint, the CLI) calls these methods with its
:class:`~facelens.history.audit.Actor`, and the method records the entry
itself, right after the change succeeded (:mod:`facelens.history.audit`):
one operation reads alike in the log whichever way it came, and no front end
can change the gallery unrecorded. Creating a user and taking faces off one
are recorded too: they hold no face, but they change whom faces are said to
belong to, which is what an identification answers. What changes nobody's
data (creating a collection, searching, listing) is not recorded, and front
ends call the collection services for it directly.

Enrolling a person in one step (user, faces and profile) is
:mod:`facelens.enrolment`; forgetting one is :mod:`facelens.people.forget`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facelens.collection import enroll
from facelens.collection.analysis import FaceAnalyzer, ImageInput
from facelens.collection.models import (
    AssociateFacesResult,
    DeleteFacesResult,
    DisassociateFacesResult,
    IndexFacesResult,
    QualityFilter,
)
from facelens.collection.reindex import ReindexPlan, ReindexResult, reindex
from facelens.collection.service import CollectionService
from facelens.collection.users import DEFAULT_USER_MATCH_THRESHOLD, UserService
from facelens.history.audit import Actor, AuditAction, AuditLog, Context, faces_target, record_as

UNSOURCED = "reindex: no source"
"""Why ``collections reindex --drop-unsourced`` deleted faces, in their entry's details."""


@dataclass(frozen=True)
class Gallery:
    """The changes to ``collections``' faces and users that are recorded in ``audit``.

    ``context`` (every method): what the entry point adds to the entry's details, e.g.
    ``{"Via": "IndexFaces"}`` from the Rekognition endpoint.
    """

    collections: CollectionService
    users: UserService
    audit: AuditLog

    # -- faces --
    def index_faces(
        self,
        actor: Actor,
        collection_id: str,
        image: ImageInput,
        *,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: QualityFilter = QualityFilter.AUTO,
        context: Context | None = None,
    ) -> IndexFacesResult:
        """IndexFaces; recorded as an enrolment of the faces (of the collection when the
        image had none), with their FaceIds and the ExternalImageId given."""
        result = self.collections.index_faces(
            collection_id,
            image,
            external_image_id=external_image_id,
            max_faces=max_faces,
            quality_filter=quality_filter,
        )
        ids = [r.face.face_id for r in result.face_records]
        details: dict[str, Any] = {"FaceIds": ids}
        if external_image_id is not None:
            details["ExternalImageId"] = external_image_id
        target = faces_target(collection_id, ids)
        record_as(
            self.audit,
            actor,
            AuditAction.ENROL,
            target,
            collection_id=collection_id,
            details=details,
            context=context,
        )
        return result

    def index_folder(
        self,
        actor: Actor,
        collection_id: str,
        folder: Path,
        items: list[enroll.EnrolItem],
        *,
        quality_filter: QualityFilter = QualityFilter.AUTO,
        workers: int = 1,
        make_analyzer: Callable[[], FaceAnalyzer] | None = None,
        advance: Callable[[], None] | None = None,
    ) -> list[enroll.EnrolOutcome]:
        """Enrols ``items`` (:func:`facelens.collection.enroll.plan` of ``folder``), each
        photo failing on its own; recorded as one enrolment into the collection, with every
        FaceId indexed and the users they were associated to."""
        outcomes = enroll.enrol(
            self.collections,
            self.users,
            collection_id,
            items,
            quality_filter=quality_filter,
            workers=workers,
            make_analyzer=make_analyzer,
            advance=advance,
        )
        details = {
            "Folder": str(folder),
            "FaceIds": [
                r.face.face_id
                for o in outcomes
                if o.result is not None
                for r in o.result.face_records
            ],
            "UserIds": sorted({o.item.user_id for o in outcomes if o.item.user_id}),
        }
        record_as(
            self.audit,
            actor,
            AuditAction.ENROL,
            collection_id,
            collection_id=collection_id,
            details=details,
        )
        return outcomes

    def delete_faces(
        self,
        actor: Actor,
        collection_id: str,
        face_ids: Sequence[str],
        *,
        context: Context | None = None,
    ) -> DeleteFacesResult:
        """DeleteFaces; recorded, with the FaceIds deleted, when any was."""
        result = self.collections.delete_faces(collection_id, face_ids)
        ids = list(result.deleted_faces)
        if ids:
            target = faces_target(collection_id, ids)
            details = {"FaceIds": ids}
            record_as(
                self.audit,
                actor,
                AuditAction.DELETE_FACE,
                target,
                collection_id=collection_id,
                details=details,
                context=context,
            )
        return result

    def reindex(
        self,
        actor: Actor,
        plan: ReindexPlan,
        *,
        drop_unsourced: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> ReindexResult:
        """Re-embeds the plan's collections (:func:`facelens.collection.reindex.reindex`);
        the faces ``drop_unsourced`` deleted are recorded, one entry per collection."""
        result = reindex(self.collections, plan, drop_unsourced=drop_unsourced, progress=progress)
        for done in result.reindexed:
            if done.dropped:
                cid = done.collection_id
                details = {"FaceIds": list(done.dropped), "Reason": UNSOURCED}
                record_as(
                    self.audit,
                    actor,
                    AuditAction.DELETE_FACE,
                    cid,
                    collection_id=cid,
                    details=details,
                )
        return result

    def delete_collection(self, actor: Actor, collection_id: str) -> None:
        """DeleteCollection, with every face and user in it; recorded."""
        self.collections.delete_collection(collection_id)
        record_as(
            self.audit,
            actor,
            AuditAction.DELETE_COLLECTION,
            collection_id,
            collection_id=collection_id,
        )

    # -- users --
    def create_user(
        self, actor: Actor, collection_id: str, user_id: str, *, context: Context | None = None
    ) -> None:
        """CreateUser; recorded: the user is whom faces associated later will belong to."""
        self.users.create_user(collection_id, user_id)
        record_as(
            self.audit,
            actor,
            AuditAction.CREATE_USER,
            user_id,
            collection_id=collection_id,
            context=context,
        )

    def associate_faces(
        self,
        actor: Actor,
        collection_id: str,
        user_id: str,
        face_ids: Sequence[str],
        *,
        user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD,
        context: Context | None = None,
    ) -> AssociateFacesResult:
        """AssociateFaces; recorded as an enrolment of the user, with the FaceIds that
        were associated."""
        result = self.users.associate_faces(
            collection_id, user_id, face_ids, user_match_threshold=user_match_threshold
        )
        details = {"FaceIds": list(result.associated_face_ids)}
        record_as(
            self.audit,
            actor,
            AuditAction.ENROL,
            user_id,
            collection_id=collection_id,
            details=details,
            context=context,
        )
        return result

    def disassociate_faces(
        self,
        actor: Actor,
        collection_id: str,
        user_id: str,
        face_ids: Sequence[str],
        *,
        context: Context | None = None,
    ) -> DisassociateFacesResult:
        """DisassociateFaces (the faces stay in the collection, nobody's); recorded, with the
        FaceIds taken off the user, when any was."""
        result = self.users.disassociate_faces(collection_id, user_id, face_ids)
        ids = list(result.disassociated_face_ids)
        if ids:
            record_as(
                self.audit,
                actor,
                AuditAction.DISASSOCIATE,
                user_id,
                collection_id=collection_id,
                details={"FaceIds": ids},
                context=context,
            )
        return result

    def delete_user(self, actor: Actor, collection_id: str, user_id: str) -> None:
        """DeleteUser (its faces stay, unassigned); recorded. Erasing the person is
        :meth:`facelens.people.forget.Forgetter.forget`."""
        self.users.delete_user(collection_id, user_id)
        record_as(self.audit, actor, AuditAction.DELETE_USER, user_id, collection_id=collection_id)
