"""The pure parts of ``bench.visits``: the plan, aligning crops with the video's visits, reading
messages, and the verdicts, on numbers that are easy to read off (no video, no broker)."""

from __future__ import annotations

import json

import pytest
from bench.visits import (
    Answer,
    CropFacts,
    Plan,
    PlannedVisit,
    assign,
    crop_facts,
    estimate_start,
    first_and_final,
    own_and_bystanders,
    parse_answer,
    plan_visits,
    summarise,
    verdict,
    window_of,
)

from facelens.storage.crops import CropMetadata

PHOTOS = {
    f"P{i}": [f"P{i}/{j}.jpg" for j in range(n)]
    for i, n in enumerate([6, 6, 5, 5, 5, 1, 2, 3, 1, 1, 1, 1])
}


def test_the_plan_enrols_members_and_fillers_never_strangers_nor_a_look() -> None:
    plan = plan_visits(PHOTOS, enrolled=2, strangers=2, gallery=6, looks=4, seed=0)
    members = [v for v in plan.visits if v.enrolled]
    strangers = [v for v in plan.visits if not v.enrolled]
    assert len(members) == 2
    assert len(strangers) == 2
    assert len(plan.enrol) == 6
    for v in members:
        assert plan.enrol[v.name] == sorted(PHOTOS[v.identity])[0]
        assert plan.enrol[v.name] not in v.looks
    for v in strangers:
        assert v.name not in plan.enrol
    for v in plan.visits:
        assert len(set(v.looks)) == 4
        assert v.end_s - v.start_s == pytest.approx(4 * plan.look_s)
    for a, b in zip(plan.visits, plan.visits[1:], strict=False):
        assert b.start_s - a.end_s == pytest.approx(plan.gap_s)
    assert plan == plan_visits(PHOTOS, enrolled=2, strangers=2, gallery=6, looks=4, seed=0)
    with pytest.raises(ValueError, match="are needed"):
        plan_visits(PHOTOS, enrolled=4, strangers=2, gallery=6, looks=4, seed=0)


WINDOWS = [(1.0, 2.6), (4.6, 6.2), (8.2, 9.8)]


def test_the_start_is_where_the_crops_fall_inside_the_visits() -> None:
    start = 1000.0
    captured = [start + t for t in (1.1, 1.9, 2.5, 4.7, 6.0, 8.3, 9.0)]
    found = estimate_start(captured, WINDOWS)
    assert all(window_of(c, found, WINDOWS, 0.9) is not None for c in captured)
    assert [window_of(c, found, WINDOWS, 0.9) for c in captured] == [0, 0, 0, 1, 1, 2, 2]
    assert found == pytest.approx(start, abs=0.35)


def test_a_late_crop_goes_to_the_nearest_visit_within_reach() -> None:
    assert window_of(10.0 + 2.9, 10.0, WINDOWS, 0.9) == 0  # 0.3 s after the first visit
    assert window_of(10.0 + 3.6, 10.0, WINDOWS, 0.9) is None  # in the middle of the gap
    assert window_of(10.0 + 4.2, 10.0, WINDOWS, 0.9) == 1  # just before the second


def message(**fields: object) -> bytes:
    return json.dumps({"CapturedAt": "2026-01-01T00:00:01+00:00", **fields}).encode()


def test_messages_are_read_with_their_visit_fields_and_dead_letters_are_not() -> None:
    named = parse_answer(
        message(Status="identified", Name="Ann", UserId="ann", VisitId="v", Revision=1, Looks=3),
        5.0,
    )
    assert named is not None
    assert (named.name, named.visit_id, named.revision, named.looks) == ("Ann", "v", 1, 3)
    no_profile_name = parse_answer(message(Status="identified", UserId="ann"), 5.0)
    assert no_profile_name is not None
    assert no_profile_name.name == "ann"
    old = parse_answer(message(Status="unknown"), 5.0)
    assert old is not None
    assert (old.name, old.visit_id, old.revision) == (None, None, None)
    assert parse_answer(message(Status="error"), 5.0) is None
    assert parse_answer(b"not json", 5.0) is None


def answer(name: str | None, received: float, revision: int | None = None, **kw: object) -> Answer:
    fields: dict[str, object] = {
        "captured_at": 0.0,
        "received_at": received,
        "status": "identified" if name else "unknown",
        "name": name,
        "visit_id": None,
        "revision": revision,
        "looks": None,
    }
    fields.update(kw)
    return Answer(**fields)  # type: ignore[arg-type]


def test_first_is_revision_zero_and_final_the_highest_revision() -> None:
    # Revisions win over arrival order (two workers' messages can arrive out of order).
    answers = [answer("Ann", 3.0, 1), answer(None, 1.0, 0), answer("Bob", 2.0, 2)]
    pair = first_and_final(answers)
    assert pair is not None
    assert (pair[0].name, pair[1].name) == (None, "Bob")
    # Before visits: by arrival.
    pair = first_and_final([answer("Ann", 2.0), answer(None, 1.0)])
    assert pair is not None
    assert (pair[0].name, pair[1].name) == (None, "Ann")
    assert first_and_final([]) is None
    # One person's visit split by the edge into two VisitIds: the first answer is the first
    # VisitId's, the final one the last VisitId's, whatever their revisions.
    split = [
        answer(None, 1.0, 0, visit_id="a"),
        answer("Ann", 2.0, 1, visit_id="a"),
        answer(None, 3.0, 0, visit_id="b"),
    ]
    pair = first_and_final(split)
    assert pair is not None
    assert (pair[0].name, pair[1].name, pair[1].visit_id) == (None, None, "b")


def visit(index: int, enrolled: bool, name: str = "Ann") -> PlannedVisit:
    lo, hi = WINDOWS[index]
    return PlannedVisit(index, name, name, enrolled, ("a.jpg",), lo, hi)


def test_verdicts_and_the_summary() -> None:
    ann, stranger, bob = visit(0, True), visit(1, False, "Zed"), visit(2, True, "Bob")
    assert verdict(ann, answer("Ann", 1.0)) == "right"
    assert verdict(ann, answer("Bob", 1.0)) == "wrong"
    assert verdict(stranger, answer("Ann", 1.0)) == "wrong"
    assert verdict(stranger, answer(None, 1.0)) == "unknown"
    assert verdict(ann, None) == "no_answer"
    plan = Plan((ann, stranger, bob), {"Ann": "a0.jpg", "Bob": "b0.jpg"}, 15.0, 0.4, 2.0, 12.0)
    by_visit = {
        0: [answer(None, 1.0, 0), answer("Ann", 2.0, 1)],  # unknown, then revised to Ann
        1: [answer("Bob", 3.0, 0)],  # a stranger named: a wrong name
    }
    report = summarise(plan, by_visit, {0: 3, 1: 1}, dead_letters=1)
    assert report["first"]["enrolled"] == {"right": 0, "wrong": 0, "unknown": 1, "no_answer": 1}
    assert report["final"]["enrolled"] == {"right": 1, "wrong": 0, "unknown": 0, "no_answer": 1}
    assert report["final"]["strangers"]["named"] == 1
    assert report["final"]["wrong_names"] == 1
    assert report["changed"] == 1
    assert report["uploads_per_visit"]["total"] == 4
    assert report["uploads_per_visit"]["visits_without_upload"] == 1
    assert report["looks_with_a_face"] == 0.75


def test_a_visit_id_group_follows_its_earliest_look() -> None:
    start = 100.0
    early = answer("Ann", 1.0, 0, captured_at=start + 2.0, visit_id="v")
    # Captured in the gap after the visit (beyond reach), but one visit with the first.
    late = answer("Ann", 2.0, 1, captured_at=start + 3.6, visit_id="v")
    alone = answer(None, 3.0, captured_at=start + 3.6)
    by_visit, unmatched = assign([early, late, alone], start, WINDOWS, 0.9)
    assert by_visit == {0: [early, late]}
    assert unmatched == 1


def test_a_face_at_a_photo_s_edge_is_a_bystander_not_a_split_of_the_visitor() -> None:
    facts = {
        "own-0.jpg": crop_facts(
            CropMetadata.from_metadata({"track-id": "1", "frame-box": "250,180,340,270"})
        ),
        "own-1.jpg": CropFacts("1", (255.0, 180.0, 350.0, 275.0)),
        # A neighbour in the photo, nearly as wide, but beside the visitor.
        "edge.jpg": crop_facts(
            CropMetadata.from_metadata({"track-id": "2", "frame-box": "347,186,418,257"})
        ),
        "old.jpg": CropFacts("3", None),  # no frame-box: counted as the visitor's
    }
    first = answer(None, 1.0, key="own-0.jpg")
    named = answer("Ann", 2.0, key="own-1.jpg")
    bystander = answer("Bob", 3.0, key="edge.jpg")
    own, bystanders = own_and_bystanders([first, named, bystander], facts)
    assert own == [first, named]
    assert bystanders == [[bystander]]
    # Code with visits: grouped by VisitId, placed by their crops all the same; a second
    # VisitId where the visitor is (the edge lost and restarted the track) is theirs: a split.
    v_own = answer(None, 1.0, visit_id="a", key="own-0.jpg")
    v_edge = answer(None, 2.0, visit_id="b", key="edge.jpg")
    v_split = answer("Ann", 3.0, visit_id="c", key="own-1.jpg")
    assert own_and_bystanders([v_own, v_edge, v_split], facts) == ([v_own, v_split], [[v_edge]])
    # Without crop facts (a document written before them) everything is the visitor's.
    assert own_and_bystanders([first, bystander], {}) == ([first, bystander], [])
    plan = Plan((visit(0, True),), {"Ann": "a0.jpg"}, 15.0, 0.4, 2.0, 4.0)
    report = summarise(plan, {0: [first, named, bystander]}, {0: 3}, 0, facts)
    assert report["final"]["wrong_names"] == 0
    assert report["final"]["enrolled"]["right"] == 1
    assert report["bystanders"] == {"tracks": 1, "named": 1}
