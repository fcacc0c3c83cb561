"""The visits under ``/api/v1/visits``: one row per visit, the most recently updated first.

A visit (:mod:`facelens.history.visits`) is one person in view of one camera;
its row is its current answer (:func:`facelens.rendering.visits.visit_json`),
so a revision changes a row instead of adding one, and a look that changed
nothing moves the visit up (the person is still there). Pages are keyset
pages over ``(UpdatedAt, VisitId)``: a ``NextToken`` holds the last row's; a
visit updated meanwhile moves to the top, so it may show on two pages (it
is newer than the token) but no other visit is skipped. The objects behind
each look stay under ``/identifications``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query

from facelens import json_limits
from facelens.api.context import Visits
from facelens.api.rest import models
from facelens.api.rest.params import MaxResults, Reader, Token
from facelens.errors import InvalidParameterException
from facelens.history.ledger import Status
from facelens.history.visits import visit_cursor
from facelens.pagination import decode_token, encode_token
from facelens.rendering.visits import visit_json

router = APIRouter(tags=["facelens"])

_SCOPE, _KEY = "visits", "updated_at,visit_id"
"""What a visits token is made for (:mod:`facelens.pagination` refuses another listing's)."""


@router.get("/visits", response_model=models.VisitList, response_model_exclude_unset=True)
def visits(
    _: Reader,
    visits: Visits,
    status: Annotated[Status | None, Query()] = None,
    camera: Annotated[str | None, Query()] = None,
    user_id: Annotated[str | None, Query()] = None,
    max_results: MaxResults = 50,
    next_token: Token = None,
) -> dict[str, Any]:
    """Visits, most recently updated first, each with its current answer (``Who``,
    ``Revision``, ``Looks``, the ``Message`` published at that revision)."""
    answers = visits.visits(
        limit=max_results + 1,
        status=status,
        camera=camera,
        user_id=user_id,
        before=None if next_token is None else _cursor(next_token),
    )
    page, more = answers[:max_results], len(answers) > max_results
    out: dict[str, Any] = {"Visits": [visit_json(a) for a in page]}
    if more:
        out["NextToken"] = encode_token(_SCOPE, _KEY, json.dumps(visit_cursor(page[-1])))
    return out


def _cursor(token: str) -> tuple[str, str]:
    """The ledger's cursor in a ``NextToken`` of ours (the time is checked by the ledger)."""
    after = decode_token(token, scope=_SCOPE, key=_KEY)
    try:
        at, visit_id = json_limits.loads(after, max_depth=1)
    except (ValueError, TypeError) as exc:  # TooDeepError is a ValueError
        raise InvalidParameterException("Invalid next_token") from exc
    if not isinstance(at, str) or not isinstance(visit_id, str):
        raise InvalidParameterException("Invalid next_token")
    return at, visit_id
