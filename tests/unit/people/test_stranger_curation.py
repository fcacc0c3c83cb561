"""StrangerCuration records each decision about a stranger itself: a memory collection store,
synthetic unit embeddings, a real SQLite audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facelens.collection.stores.registry import open_store
from facelens.errors import ResourceNotFoundException
from facelens.history.audit import Actor, AuditAction, AuditEntry
from facelens.history.sqlite import SqliteAuditLog
from facelens.people.stranger_curation import StrangerCuration
from facelens.people.strangers import StrangerService
from facelens.profiles.registry import open_profile_store

MAIN = "faces"
ADMIN = Actor("dashboard", "admin")


def face(direction: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = direction + rng.normal(scale=0.01, size=direction.shape)
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db")
    yield log
    log.close()


@pytest.fixture
def curation(audit: SqliteAuditLog) -> Iterator[StrangerCuration]:
    store = open_store("memory://")
    store.create_collection(MAIN, face_model_version="test-model")
    profiles = open_profile_store("memory://")
    yield StrangerCuration(StrangerService(store, profiles=profiles), audit)
    profiles.close()
    store.close()


def strangers(curation: StrangerCuration, count: int) -> list[str]:
    """``count`` strangers of two faces each, far apart."""
    rng = np.random.default_rng(11)
    ids = []
    for _ in range(count):
        direction = rng.normal(size=128)
        direction /= np.linalg.norm(direction)
        ids.append(curation.strangers.observe(MAIN, face(direction, rng)).stranger_id)
        curation.strangers.observe(MAIN, face(direction, rng))
    return ids


def entries(audit: SqliteAuditLog) -> list[AuditEntry]:
    """Oldest first."""
    return list(reversed(audit.entries().entries))


def test_name_merge_and_split_are_recorded_as_the_actor(
    curation: StrangerCuration, audit: SqliteAuditLog
) -> None:
    first, second, third = strangers(curation, 3)
    via = {"Via": "dashboard"}
    merged = curation.merge(ADMIN, MAIN, first, second, context=via)
    assert merged.face_count == 4
    new_id = curation.split(ADMIN, MAIN, first, list(merged.face_ids[:1]))
    named = curation.name(ADMIN, MAIN, third, "anna", profile={"Role": "Neighbour"})
    assert named.user_id == "anna"

    merge, split, name = entries(audit)
    assert all(e.actor == "dashboard:admin" and e.collection_id == MAIN for e in entries(audit))
    assert (merge.action, merge.target, dict(merge.details)) == (
        AuditAction.MERGE_STRANGERS,
        first,
        {"Other": second, "Via": "dashboard"},
    )
    assert (split.action, split.target, dict(split.details)) == (
        AuditAction.SPLIT_STRANGER,
        first,
        {"NewStrangerId": new_id, "FaceIds": list(merged.face_ids[:1])},
    )
    assert (name.action, name.target, dict(name.details)) == (
        AuditAction.NAME_STRANGER,
        "anna",
        {"StrangerId": third, "Faces": 2},
    )


def test_a_refused_decision_is_not_recorded(
    curation: StrangerCuration, audit: SqliteAuditLog
) -> None:
    [only] = strangers(curation, 1)
    with pytest.raises(ResourceNotFoundException):
        curation.merge(ADMIN, MAIN, only, "stranger-99")
    with pytest.raises(ResourceNotFoundException):
        curation.name(ADMIN, MAIN, "stranger-99", "anna")
    assert entries(audit) == []
