"""The matching rule: per-person thresholds, vetoes by negative examples, the search floor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facelens.collection.models import (
    FaceMatch,
    StoredFace,
    UserInfo,
    UserMatch,
    UserStatus,
)
from facelens.errors import ResourceNotFoundException
from facelens.people.matching import (
    MIN_OVERRIDE,
    THRESHOLD_ATTRIBUTE,
    VETO_SIMILARITY,
    Candidate,
    MatchPolicy,
    choose,
    negatives_collection,
    parse_threshold,
)
from facelens.profiles.sqlite_store import SQLiteProfileStore
from facelens.values.boxes import BoundingBox
from facelens.values.identity import Identity

PROBE = np.zeros(128, dtype=np.float32)
BOX = BoundingBox(width=0.5, height=0.5, left=0.25, top=0.25)


def face(user_id: str | None = None, external: str | None = None) -> StoredFace:
    return StoredFace(
        face_id=str(uuid.uuid4()),
        image_id=str(uuid.uuid4()),
        external_image_id=external,
        bounding_box=BOX,
        confidence=99.0,
        user_id=user_id,
        indexed_at=datetime.now(UTC),
    )


# -- choose(): the rule on its own --
def pick(
    candidates: list[Candidate],
    thresholds: dict[str, float] | None = None,
    negatives: dict[str, float] | None = None,
    default: float = 80.0,
) -> str | None:
    calls: list[int] = []

    def negatives_of() -> dict[str, float]:
        calls.append(1)
        return negatives or {}

    chosen = choose(
        candidates,
        threshold_of=lambda c: (thresholds or {}).get(c.person_id, default),
        negatives_of=negatives_of,
    )
    assert len(calls) <= 1
    return None if chosen is None else chosen.person_id


def test_the_first_candidate_at_its_threshold_wins() -> None:
    assert pick([Candidate("anna", 90), Candidate("bob", 95)]) == "anna"
    assert pick([Candidate("anna", 70), Candidate("bob", 85)]) == "bob"
    assert pick([Candidate("anna", 70), Candidate("bob", 75)]) is None


def test_an_override_raises_or_lowers_one_persons_bar() -> None:
    assert pick([Candidate("anna", 90)], thresholds={"anna": 95}) is None
    assert pick([Candidate("anna", 70)], thresholds={"anna": 65}) == "anna"
    assert pick([Candidate("anna", 90), Candidate("bob", 85)], thresholds={"anna": 95}) == "bob"


def test_a_negative_at_least_as_similar_as_the_person_vetoes_them() -> None:
    assert pick([Candidate("anna", 90)], negatives={"anna": 90.5}) is None
    assert pick([Candidate("anna", 90)], negatives={"anna": 90.0}) is None
    assert pick([Candidate("anna", 99)], negatives={"anna": 85}) == "anna"
    # Vetoed, the next candidate gets its chance: "someone else" rather than the wrong one.
    assert pick([Candidate("anna", 92), Candidate("bob", 85)], negatives={"anna": 95}) == "bob"
    # Another person's negative says nothing about this one.
    assert pick([Candidate("anna", 92)], negatives={"bob": 99}) == "anna"


def test_a_near_copy_of_a_negative_vetoes_whatever_the_person_scores() -> None:
    assert pick([Candidate("anna", 99.5)], negatives={"anna": VETO_SIMILARITY}) is None
    assert pick([Candidate("anna", 99.5)], negatives={"anna": VETO_SIMILARITY - 0.1}) == "anna"


def test_a_veto_covers_all_of_a_persons_candidates_at_their_best_similarity() -> None:
    # The user's template scores 85, one of its faces 93: the negative (88) is below the
    # person's best, so the person stands; at 94 every candidate of the person falls.
    candidates = [Candidate("anna", 85, "anna"), Candidate("anna", 93, "anna", face("anna"))]
    assert pick(candidates, negatives={"anna": 88}) == "anna"
    assert pick([*candidates, Candidate("bob", 81)], negatives={"anna": 94}) == "bob"


def test_negatives_are_not_read_when_nobody_passes_a_threshold() -> None:
    def fail() -> dict[str, float]:
        raise AssertionError("negatives read for an unknown face")

    assert choose([Candidate("anna", 60)], threshold_of=lambda c: 80, negatives_of=fail) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (90, 90.0),
        ("75.5", 75.5),
        (10, MIN_OVERRIDE),
        (120, 100.0),
        (None, None),
        (True, None),
        ("strict", None),
        (float("nan"), None),
        ([90], None),
    ],
)
def test_profile_values_are_read_leniently(raw: Any, expected: float | None) -> None:
    assert parse_threshold(raw) == expected


# -- MatchPolicy on fake collections and a real profile store --
@dataclass
class FakeIndex:
    """Fixed similarities per collection: faces, users, and the negatives collection."""

    faces: dict[str, list[FaceMatch]] = field(default_factory=dict)
    users: list[UserMatch] = field(default_factory=list)
    searches: list[tuple[str, float, int]] = field(default_factory=list)

    def match_embedding(
        self, collection_id: str, embedding: Any, *, limit: int, threshold: float
    ) -> list[FaceMatch]:
        self.searches.append((collection_id, threshold, limit))
        if collection_id not in self.faces:
            raise ResourceNotFoundException(f"no collection {collection_id}")
        found = [m for m in self.faces[collection_id] if m.similarity >= threshold]
        return sorted(found, key=lambda m: -m.similarity)[:limit]


@dataclass
class FakeUsers:
    index: FakeIndex

    def match_embedding(
        self, collection_id: str, embedding: Any, *, limit: int, threshold: float
    ) -> list[UserMatch]:
        found = [m for m in self.index.users if m.similarity >= threshold]
        return sorted(found, key=lambda m: -m.similarity)[:limit]


@pytest.fixture
def profiles(tmp_path: Path) -> Iterator[SQLiteProfileStore]:
    store = SQLiteProfileStore(str(tmp_path / "profiles.db"))
    yield store
    store.close()


def policy(index: FakeIndex, profiles: SQLiteProfileStore) -> MatchPolicy:
    return MatchPolicy(index, FakeUsers(index), profiles)  # type: ignore[arg-type]


def user(user_id: str, sim: float) -> UserMatch:
    return UserMatch(sim, UserInfo(user_id, UserStatus.ACTIVE, 1))


def test_without_negatives_or_overrides_it_answers_as_the_plain_search(
    profiles: SQLiteProfileStore,
) -> None:
    anna_face = face("anna", "anna.jpg")
    lone = face(None, "bob.jpg")
    index = FakeIndex(
        faces={"faces": [FaceMatch(93, anna_face), FaceMatch(95, lone)]},
        users=[user("anna", 91)],
    )
    found = policy(index, profiles).identify("faces", PROBE, threshold=80, max_faces=5)
    # Users first (their template), named by their best face at the threshold.
    assert found == Identity(91, anna_face.face_id, "anna", "anna.jpg")
    # The search ran at the floor so that lowered overrides can match; negatives were
    # looked for once (the collection does not exist: no veto).
    assert index.searches[0] == ("faces", MIN_OVERRIDE, 5)
    assert index.searches[-1] == (negatives_collection("faces"), MIN_OVERRIDE, 20)
    index.users = [user("anna", 75)]
    found = policy(index, profiles).identify("faces", PROBE, threshold=80, max_faces=5)
    assert found == Identity(95, lone.face_id, None, "bob.jpg")


def test_a_global_threshold_below_the_floor_is_the_floor(profiles: SQLiteProfileStore) -> None:
    index = FakeIndex(faces={"faces": [FaceMatch(30, face(None))]})
    assert policy(index, profiles).identify("faces", PROBE, threshold=25, max_faces=5)
    assert index.searches[0][1] == 25


def test_profile_overrides_apply_to_users_and_to_lone_faces(profiles: SQLiteProfileStore) -> None:
    lone = face(None)
    index = FakeIndex(faces={"faces": [FaceMatch(70, lone)]}, users=[user("anna", 90)])
    p = policy(index, profiles)
    profiles.put("anna", {"Name": "Anna", THRESHOLD_ATTRIBUTE: 95})
    assert p.identify("faces", PROBE, threshold=80, max_faces=5) is None
    profiles.put(lone.face_id, {THRESHOLD_ATTRIBUTE: 65})
    found = p.identify("faces", PROBE, threshold=80, max_faces=5)
    assert found is not None
    assert found.face_id == lone.face_id
    profiles.update("anna", {THRESHOLD_ATTRIBUTE: 88})
    found = p.identify("faces", PROBE, threshold=80, max_faces=5)
    assert found is not None
    assert found.user_id == "anna"


def test_a_negative_example_vetoes_its_person_only(profiles: SQLiteProfileStore) -> None:
    anna_face, bob_face = face("anna"), face(None)
    negatives = negatives_collection("faces")
    index = FakeIndex(
        faces={
            "faces": [FaceMatch(92, anna_face), FaceMatch(84, bob_face)],
            negatives: [FaceMatch(99, face(None, "anna")), FaceMatch(97, face(None, "carl"))],
        },
        users=[user("anna", 92)],
    )
    found = policy(index, profiles).identify("faces", PROBE, threshold=80, max_faces=5)
    assert found is not None
    assert found.face_id == bob_face.face_id
    index.faces[negatives] = [FaceMatch(60, face(None, "anna"))]  # resembles Anna less
    found = policy(index, profiles).identify("faces", PROBE, threshold=80, max_faces=5)
    assert found is not None
    assert found.user_id == "anna"
