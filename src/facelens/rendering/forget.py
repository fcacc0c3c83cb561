"""What forgetting a person deleted, as the one JSON every front end prints.

``facelens forget``, ``facelens users delete --delete-faces``,
``DELETE /api/v1/people/{person}`` and ``DELETE .../users/{id}?forget=true``
all forget through :class:`facelens.people.forget.Forgetter` and answer with
:func:`forget_json`, so a script reads one shape whichever it called.
"""

from __future__ import annotations

from typing import Any

from facelens.people.forget import ForgetReport


def forget_json(report: ForgetReport) -> dict[str, Any]:
    """Every id that went, by kind; ``Purged``: no file verifiably holds them any more."""
    return {
        "Person": report.person,
        "Kind": report.kind,
        "CollectionId": report.collection_id,
        "DeletedUser": report.deleted_user,
        "DeletedFaces": list(report.deleted_faces),
        "DeletedStrangerFaces": list(report.deleted_stranger_faces),
        "DeletedNegatives": list(report.deleted_negatives),
        "DeletedProfiles": list(report.deleted_profiles),
        "DeletedCrops": list(report.deleted_crops),
        "DeletedRecords": report.deleted_records,
        "DeletedVisits": report.deleted_visits,
        "FormerStrangerIds": list(report.former_stranger_ids),
        "Purged": report.purged,
    }
