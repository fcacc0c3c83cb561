"""A visit as the one JSON the CLI prints and the REST API returns: one row per visit.

``facelens recognizer recent`` and ``GET /api/v1/visits`` show each visit
(:mod:`facelens.history.visits`) once, with its current answer: a revision
changes the row (its ``Who``, ``Revision``, ``Message``) instead of adding one,
and a look that changed nothing still moves ``UpdatedAt`` and ``Looks`` on.
``Who`` is what a person reads: the profile's ``Name``, else the UserId or
FaceId for an identified visit; the ``StrangerId``, else ``unknown``, for one
nobody was named for. ``Message`` is what was published at this revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from facelens.history.ledger import Status
from facelens.history.visits import VisitAnswer

UNKNOWN = "unknown"
"""``Who`` of a visit whose answer named nobody, not even a stranger."""


def who(status: Status, message: Mapping[str, Any]) -> str:
    """Whom an answer names, for a person to read (see the module's docstring)."""
    if status is Status.IDENTIFIED:
        for field in ("Name", "UserId", "FaceId"):
            if message.get(field):
                return str(message[field])
    stranger = message.get("StrangerId")
    return str(stranger) if stranger else UNKNOWN


def visit_json(answer: VisitAnswer) -> dict[str, Any]:
    """One visit's row (see the module's docstring)."""
    m = answer.message
    return {
        "VisitId": answer.visit_id,
        "Camera": answer.camera if answer.camera is not None else m.get("Camera"),
        "Status": answer.status.value,
        "Who": who(answer.status, m),
        "UserId": m.get("UserId"),
        "FaceId": m.get("FaceId"),
        "StrangerId": m.get("StrangerId"),
        "Revision": answer.revision,
        "Looks": answer.looks,
        "RecognitionId": answer.recognition_id,
        "FirstSeen": answer.first_seen.isoformat(),
        "UpdatedAt": answer.updated_at.isoformat(),
        "Message": dict(m),
    }
