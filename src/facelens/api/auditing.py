"""(Transitional, until enrolment and identification audit themselves.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request

from facelens.api.actors import request_actor
from facelens.enrolment import EnrolReport
from facelens.history.audit import AuditAction, AuditLog


def audit(
    log: AuditLog,
    request: Request,
    action: AuditAction,
    target: str,
    *,
    collection_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    log.record(
        request_actor(request).label,
        action,
        target,
        collection_id=collection_id,
        details=details,
    )


def audit_enrolment(
    log: AuditLog, request: Request, collection_id: str, report: EnrolReport, **details: Any
) -> None:
    details = {"FaceIds": list(report.face_ids), "Created": report.created, **details}
    audit(
        log,
        request,
        AuditAction.ENROL,
        report.user_id,
        collection_id=collection_id,
        details=details,
    )
