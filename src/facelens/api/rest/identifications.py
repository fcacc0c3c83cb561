"""The recognizer's history under ``/api/v1/identifications``, newest first.

Each identification is the message the recognizer published (``Message``)
with its outcome: identified, unknown (its crop is in the message's ``Key``)
or error. Pages are keyset pages over the ledger: a ``NextToken`` holds the
last record's time and id, so records added meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query

from facelens import json_limits
from facelens.api.context import Ledger
from facelens.api.rest import models
from facelens.api.rest.params import MaxResults, Reader, Token
from facelens.errors import InvalidParameterException
from facelens.history.ledger import Recognition, RecognitionLedger, Status, cursor_of

router = APIRouter(tags=["facelens"])


@router.get(
    "/identifications",
    response_model=models.RecognitionList,
    response_model_exclude_unset=True,
)
def identifications(
    _: Reader,
    ledger: Ledger,
    status: Annotated[Status | None, Query()] = None,
    camera: Annotated[str | None, Query()] = None,
    user_id: Annotated[str | None, Query()] = None,
    max_results: MaxResults = 50,
    next_token: Token = None,
) -> dict[str, Any]:
    """History, newest first: identified, unknown and error outcomes with their messages."""
    return _page(
        ledger,
        status=status,
        camera=camera,
        user_id=user_id,
        max_results=max_results,
        next_token=next_token,
    )


@router.get(
    "/identifications/unknown",
    response_model=models.RecognitionList,
    response_model_exclude_unset=True,
)
def unknown_faces(
    _: Reader, ledger: Ledger, max_results: MaxResults = 50, next_token: Token = None
) -> dict[str, Any]:
    """Faces the recognizer could not name, newest first (their crops are in ``Key``)."""
    return _page(ledger, status=Status.UNKNOWN, max_results=max_results, next_token=next_token)


def _page(
    ledger: RecognitionLedger,
    *,
    status: Status | None = None,
    camera: str | None = None,
    user_id: str | None = None,
    max_results: int,
    next_token: str | None,
) -> dict[str, Any]:
    records = ledger.history(
        limit=max_results + 1,
        status=status,
        camera=camera,
        user_id=user_id,
        before=_decode_token(next_token),
    )
    page, more = records[:max_results], len(records) > max_results
    out: dict[str, Any] = {"Identifications": [_record(r) for r in page]}
    if more:
        out["NextToken"] = _encode_token(cursor_of(page[-1]))
    return out


def _record(r: Recognition) -> dict[str, Any]:
    return {
        "RecognitionId": r.recognition_id,
        "Status": r.status.value,
        "RecognizedAt": r.recognized_at.isoformat(),
        "Message": dict(r.message),
    }


def _encode_token(cursor: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode()


def _decode_token(token: str | None) -> tuple[str, str] | None:
    """The ledger cursor a ``NextToken`` of ours holds: ``[recognized_at, recognition_id]``
    (one level of JSON; the time is checked by the ledger)."""
    if token is None:
        return None
    try:
        at, rid = json_limits.loads(base64.urlsafe_b64decode(token.encode()), max_depth=1)
    except (ValueError, TypeError, binascii.Error) as exc:  # TooDeepError is a ValueError
        raise InvalidParameterException("Invalid next_token") from exc
    return str(at), str(rid)
