"""Who did it: the audit log's entries for what callers do through the HTTP server.

Routers call :func:`audit` once per operation (REST and dashboard), and the
AWS endpoints pass each successful operation to :func:`audit_rekognition`
or :func:`audit_dynamodb`, whose tables say which operations are recorded
and how; the operations themselves stay unaware of auditing.

The actor names the key and how it was presented: ``api-key:<name>`` (a
bearer token), ``dashboard:<name>`` (a dashboard session opened with that
key), ``access-key:<name>`` (SigV4), or ``local`` (no keys: open access on
loopback). Reads are recorded before the answer leaves and changes after
they succeed; a failed write fails the request (see
:mod:`facelens.people.audit` for why).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import Request

from facelens.access.keys import LOCAL, Principal
from facelens.api.app import ServerContext
from facelens.enrolment import EnrolReport
from facelens.people.audit import AuditAction, faces_target

Json = dict[str, Any]

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
    request: Request,
    action: AuditAction,
    target: str,
    *,
    collection_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Records one action of this request's caller in the audit log (blocking: a SQLite
    write; from an ``async def`` route, call it through ``run_in_threadpool``)."""
    ctx: ServerContext = request.app.state.ctx
    ctx.components.audit.record(
        request_actor(request), action, target, collection_id=collection_id, details=details
    )


def audit_enrolment(
    request: Request, collection_id: str, report: EnrolReport, **details: Any
) -> None:
    """Records an enrolment (:func:`facelens.enrolment.enrol_person`) of this request's caller."""
    details = {"FaceIds": list(report.face_ids), "Created": report.created, **details}
    audit(request, AuditAction.ENROL, report.user_id, collection_id=collection_id, details=details)


def audit_forget(
    request: Request, collection_id: str, user_id: str, face_ids: Sequence[str], **details: Any
) -> None:
    """Records that ``user_id`` was forgotten, under its pseudonym (never in clear), then
    redacts the person and their faces in every earlier entry."""
    ctx: ServerContext = request.app.state.ctx
    ctx.components.audit.record_forget(
        request_actor(request),
        user_id,
        also=face_ids,
        collection_id=collection_id,
        details={"Faces": len(face_ids), **details},
    )


# -- the AWS endpoints: (params, result) -> (action, target, collection, details), or None --

Entry = tuple[AuditAction, str, str | None, Json]
Describe = Callable[[Json, Json], Entry | None]


def _index_faces(p: Json, r: Json) -> Entry:
    cid = str(p["CollectionId"])
    ids = [str(f["Face"]["FaceId"]) for f in r.get("FaceRecords", [])]
    details: Json = {"FaceIds": ids, "Via": "IndexFaces"}
    if p.get("ExternalImageId") is not None:
        details["ExternalImageId"] = p["ExternalImageId"]
    return AuditAction.ENROL, faces_target(cid, ids), cid, details


def _delete_faces(p: Json, r: Json) -> Entry | None:
    cid, ids = str(p["CollectionId"]), [str(f) for f in r.get("DeletedFaces", [])]
    if not ids:
        return None
    return AuditAction.DELETE_FACE, faces_target(cid, ids), cid, {"FaceIds": ids}


def _associate_faces(p: Json, r: Json) -> Entry:
    ids = [str(f["FaceId"]) for f in r.get("AssociatedFaces", [])]
    details: Json = {"FaceIds": ids, "Via": "AssociateFaces"}
    return AuditAction.ENROL, str(p["UserId"]), str(p["CollectionId"]), details


REKOGNITION: dict[str, Describe] = {
    "IndexFaces": _index_faces,
    "DeleteFaces": _delete_faces,
    "AssociateFaces": _associate_faces,
    "DeleteUser": lambda p, _r: (
        AuditAction.DELETE_USER,
        str(p["UserId"]),
        str(p["CollectionId"]),
        {},
    ),
    "DeleteCollection": lambda p, _r: (
        AuditAction.DELETE_COLLECTION,
        str(p["CollectionId"]),
        str(p["CollectionId"]),
        {},
    ),
}
"""Rekognition operations recorded; the rest (searches, listings, CreateUser) are not."""


def audit_rekognition(
    ctx: ServerContext, principal: Principal, name: str, params: Json, result: Json
) -> None:
    """Records Rekognition operation ``name`` if it is one :data:`REKOGNITION` names."""
    describe = REKOGNITION.get(name)
    entry = describe(params, result) if describe is not None else None
    if entry is not None:
        _record(ctx, principal, entry)


def audit_dynamodb(
    ctx: ServerContext, principal: Principal, name: str, params: Json, result: Json
) -> None:
    """Records item reads (GetItem, Scan) and writes (PutItem, DeleteItem) of the profile
    tables; the profile id is the table's key. A Scan is one entry listing the ids it read."""
    from facelens.api.aws.dynamodb_items import item_id, key_id

    if name not in ("GetItem", "Scan", "PutItem", "DeleteItem"):
        return
    table = ctx.tables.catalogue.require(params.get("TableName"))
    details: Json = {"Table": table.name, "Via": name}
    entry: Entry
    if name == "GetItem":
        details["Found"] = "Item" in result
        target = key_id(table, params.get("Key"))
        entry = (AuditAction.PROFILE_READ, target, None, details)
    elif name == "Scan":
        items = result.get("Items")
        if not items:  # Select COUNT or an empty page: no profile was read
            return
        details["ProfileIds"] = [str(i[table.key]["S"]) for i in items]
        entry = (AuditAction.PROFILE_READ, "*", None, details)
    elif name == "PutItem":
        entry = (AuditAction.PROFILE_WRITE, item_id(table, params.get("Item"))[0], None, details)
    else:
        target = key_id(table, params.get("Key"))
        entry = (AuditAction.PROFILE_DELETE, target, None, details)
    _record(ctx, principal, entry)


def _record(ctx: ServerContext, principal: Principal, entry: Entry) -> None:
    action, target, collection_id, details = entry
    ctx.components.audit.record(
        actor_of(principal, via=ACCESS_KEY),
        action,
        target,
        collection_id=collection_id,
        details=details,
    )
