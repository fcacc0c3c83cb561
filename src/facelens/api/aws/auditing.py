"""Who did it through the AWS endpoints: which operations the audit log records, and how.

The JSON-protocol route passes each successful operation to
:func:`audit_rekognition` or :func:`audit_dynamodb`, whose tables say which
operations are recorded and how; the operations themselves stay unaware of
auditing. The actor is the access key that signed (``access-key:<name>``),
or ``local`` on a keyless loopback server (:func:`facelens.api.auditing.actor_of`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from facelens.access.keys import Principal
from facelens.api.auditing import ACCESS_KEY, actor_of
from facelens.api.aws.dynamodb_items import ProfileTables, item_id, key_id
from facelens.history.audit import AuditAction, AuditLog, faces_target

Json = dict[str, Any]

# -- (params, result) -> (action, target, collection, details), or None --

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
    log: AuditLog, principal: Principal, name: str, params: Json, result: Json
) -> None:
    """Records Rekognition operation ``name`` if it is one :data:`REKOGNITION` names."""
    describe = REKOGNITION.get(name)
    entry = describe(params, result) if describe is not None else None
    if entry is not None:
        _record(log, principal, entry)


def audit_dynamodb(
    log: AuditLog,
    tables: ProfileTables,
    principal: Principal,
    name: str,
    params: Json,
    result: Json,
) -> None:
    """Records item reads (GetItem, Scan) and writes (PutItem, DeleteItem) of the profile
    tables; the profile id is the table's key. A Scan is one entry listing the ids it read."""
    if name not in ("GetItem", "Scan", "PutItem", "DeleteItem"):
        return
    table = tables.catalogue.require(params.get("TableName"))
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
    _record(log, principal, entry)


def _record(log: AuditLog, principal: Principal, entry: Entry) -> None:
    action, target, collection_id, details = entry
    log.record(
        actor_of(principal, via=ACCESS_KEY),
        action,
        target,
        collection_id=collection_id,
        details=details,
    )
