"""``GET /api/v1/audit``: the audit log, newest first, for admins only.

Who enrolled, deleted, corrected or read whose data (see
:mod:`facelens.history.audit`). Only the admin role may read it: the log
itself says whose profiles were looked at, and by whom.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from facelens.api.context import Audit
from facelens.api.rest import models
from facelens.api.rest.params import Admin
from facelens.errors import InvalidParameterException
from facelens.history.audit import MAX_ENTRY_ID, AuditAction

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=models.AuditList, response_model_exclude_unset=True)
def audit_log(
    _: Admin,
    log: Audit,
    actor: Annotated[str | None, Query(description="e.g. api-key:alice, cli:bob")] = None,
    action: Annotated[AuditAction | None, Query()] = None,
    target: Annotated[str | None, Query(description="A person, face or collection id.")] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; naive means UTC.")] = None,
    max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
    next_token: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Audit entries newest first; all given filters must match; page with ``next_token``."""
    page = log.entries(
        limit=max_results,
        before=_decode(next_token),
        actor=actor,
        action=action,
        target=target,
        since=since,
    )
    out: dict[str, Any] = {"Entries": [e.as_json() for e in page.entries]}
    if page.next_before is not None:
        out["NextToken"] = base64.urlsafe_b64encode(str(page.next_before).encode()).decode()
    return out


_ENTRY_ID = re.compile(r"[1-9][0-9]{0,18}")
"""What a token holds: an entry id, in ASCII digits (``int()`` would also take ``" 7"``,
``"1_0"`` and other scripts' digits), short enough for SQLite's 64-bit INTEGER."""


def _decode(token: str | None) -> int | None:
    """The entry id a ``NextToken`` of ours holds; InvalidParameterException for anything else
    (an id past SQLite's INTEGER range used to reach the query: OverflowError, a 500)."""
    if token is None:
        return None
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode("ascii")
    except (ValueError, binascii.Error) as exc:  # UnicodeError is a ValueError
        raise InvalidParameterException("Invalid next_token") from exc
    if not _ENTRY_ID.fullmatch(text) or int(text) > MAX_ENTRY_ID:
        raise InvalidParameterException("Invalid next_token")
    return int(text)
