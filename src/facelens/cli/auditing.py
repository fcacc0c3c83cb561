"""What a command did, in the audit log, as ``cli:<os user>``.

Commands call these after a change succeeded, and before printing what was
read. (The application services will audit themselves; until then the CLI
records its own actions here.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from facelens.history.audit import AuditAction, AuditLog, cli_actor


def audit_action(
    audit: AuditLog,
    action: AuditAction,
    target: str,
    *,
    collection_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Records ``action`` on ``target`` by this command's user."""
    audit.record(cli_actor().label, action, target, collection_id=collection_id, details=details)


def audit_forget(
    audit: AuditLog, collection_id: str, person_id: str, face_ids: Sequence[str], **details: Any
) -> None:
    """Records that ``person_id`` was forgotten, under its pseudonym (never in clear), then
    redacts the person and their faces in every earlier entry."""
    audit.record_forget(
        cli_actor().label,
        person_id,
        also=face_ids,
        collection_id=collection_id,
        details={"Faces": len(face_ids), **details},
    )
