"""``DELETE /api/v1/people/{person}``: forget a person, for admins only.

PERSON is a UserId, a FaceId or a stranger id (``stranger-<n>``); what goes
is :mod:`facelens.people.forget`'s. The forgetting is audited with the
caller as actor, under the person's pseudonym, and their ids are redacted
from earlier entries.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from facelens.api.actors import request_actor
from facelens.api.context import Context, Forget
from facelens.api.rest import models
from facelens.api.rest.params import Admin
from facelens.rendering.forget import forget_json

router = APIRouter(tags=["people"])


@router.delete("/people/{person}", response_model=models.ForgetReport)
def forget_person(
    request: Request,
    _: Admin,
    ctx: Context,
    forgetter: Forget,
    person: str,
    collection_id: Annotated[
        str | None, Query(description="The collection (default: the recognizer's).")
    ] = None,
) -> dict[str, Any]:
    """Forgets PERSON (a UserId, a FaceId or a stranger id, ``stranger-<n>``): faces,
    embeddings, negative examples, crops, profiles and records (facelens.people.forget)."""
    cid = collection_id or ctx.collection_id
    report = forgetter.forget(person, actor=request_actor(request), collection_id=cid)
    return forget_json(report)
