"""``DELETE /api/v1/people/{person}``: forget a person, for admins only.

PERSON is a UserId, a FaceId or a stranger id (``stranger-<n>``); what goes
is :mod:`facelens.people.forget`'s. The forgetting is audited with the
caller as actor, under the person's pseudonym, and their ids are redacted
from earlier entries.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from facelens.api.auditing import audit_forget
from facelens.api.context import Audit, Context, Forget
from facelens.api.rest import models
from facelens.api.rest.params import Admin

router = APIRouter(tags=["people"])


@router.delete("/people/{person}", response_model=models.ForgetReport)
def forget_person(
    request: Request,
    _: Admin,
    ctx: Context,
    forgetter: Forget,
    log: Audit,
    person: str,
    collection_id: Annotated[
        str | None, Query(description="The collection (default: the recognizer's).")
    ] = None,
) -> dict[str, Any]:
    """Forgets PERSON (a UserId, a FaceId or a stranger id, ``stranger-<n>``): faces,
    embeddings, negative examples, crops, profiles and records (facelens.people.forget)."""
    cid = collection_id or ctx.collection_id
    report = forgetter.forget(person, collection_id=cid)
    who = report.deleted_user or report.person
    also = [i for i in report.ids() if i != who]
    audit_forget(
        log,
        request,
        cid,
        who,
        also,
        Kind=report.kind,
        Faces=len(report.deleted_faces) + len(report.deleted_stranger_faces),
        Negatives=len(report.deleted_negatives),
        Crops=len(report.deleted_crops),
        Records=report.deleted_records,
    )
    return report.as_json()
