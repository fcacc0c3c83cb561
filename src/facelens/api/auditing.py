"""Who did it: the audit log's entries for what callers do through the REST API and dashboard.

Routers call :func:`audit` once per operation; the AWS endpoints have their
own tables of what is recorded (:mod:`facelens.api.aws.auditing`). The
actor names the key and how it was presented: ``api-key:<name>`` (a bearer
token), ``dashboard:<name>`` (a dashboard session opened with that key),
``access-key:<name>`` (SigV4), or ``local`` (no keys: open access on
loopback). Reads are recorded before the answer leaves and changes after
they succeed; a failed write fails the request (see
:mod:`facelens.history.audit` for why).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request

from facelens.access.keys import LOCAL, Principal
from facelens.enrolment import EnrolReport
from facelens.history.audit import AuditAction, AuditLog

API_KEY = "api-key"
ACCESS_KEY = "access-key"
DASHBOARD = "dashboard"


def actor_of(principal: Principal, *, via: str) -> str:
    """``<via>:<key name>``, or ``local`` for open access."""
    if principal == LOCAL:
        return "local"
    return f"{via}:{principal.name}"


def request_actor(request: Request) -> str:
    """The actor of a REST or dashboard request, after its ``require``/``viewer`` dependency
    authenticated it (which set ``request.state.principal``)."""
    principal: Principal = request.state.principal
    carried_key = request.headers.get("authorization") or request.headers.get("x-api-key")
    return actor_of(principal, via=API_KEY if carried_key else DASHBOARD)


def audit(
    log: AuditLog,
    request: Request,
    action: AuditAction,
    target: str,
    *,
    collection_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Records one action of this request's caller in ``log`` (blocking: a SQLite write;
    from an ``async def`` route, call it through ``run_in_threadpool``)."""
    log.record(request_actor(request), action, target, collection_id=collection_id, details=details)


def audit_enrolment(
    log: AuditLog, request: Request, collection_id: str, report: EnrolReport, **details: Any
) -> None:
    """Records an enrolment (:func:`facelens.enrolment.enrol_person`) of this request's caller."""
    details = {"FaceIds": list(report.face_ids), "Created": report.created, **details}
    audit(
        log,
        request,
        AuditAction.ENROL,
        report.user_id,
        collection_id=collection_id,
        details=details,
    )


def audit_forget(
    log: AuditLog,
    request: Request,
    collection_id: str,
    user_id: str,
    face_ids: Sequence[str],
    **details: Any,
) -> None:
    """Records that ``user_id`` was forgotten, under its pseudonym (never in clear), then
    redacts the person and their faces in every earlier entry."""
    log.record_forget(
        request_actor(request),
        user_id,
        also=face_ids,
        collection_id=collection_id,
        details={"Faces": len(face_ids), **details},
    )
