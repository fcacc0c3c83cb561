"""The visit ledger's contract, on each adapter (``visits`` and ``open_visits_on``:
tests/integration/history/conftest.py): looks stored once and the heaviest handed back,
compare-and-set revisions that hold across instances (processes, hosts), pages of current
answers, what forgetting and retention find and delete, and the same answers from both."""

from __future__ import annotations

import sqlite3
import struct
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from facelens.errors import InvalidParameterException
from facelens.history.ledger import Status, stamp
from facelens.history.registry import open_ledger, open_visits
from facelens.history.visits import VisitAnswer, VisitLedger, VisitLook, visit_cursor
from tests.integration.history.conftest import OpenVisits
from tests.integration.history.test_ledger_contract import NUL, at_once, outcome

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def look(
    rid: str, visit: str = "v1", at: datetime = T0, weight: float = 0.5, **rest: Any
) -> VisitLook:
    return VisitLook(rid, visit, at, weight, **rest)


def answer(
    visit: str = "v1",
    revision: int = 0,
    rid: str = "r1",
    *,
    at: datetime = T0,
    status: Status = Status.IDENTIFIED,
    looks: int = 1,
    **message: Any,
) -> VisitAnswer:
    body = {"RecognitionId": rid, "VisitId": visit, "Revision": revision, **message}
    return VisitAnswer(
        visit_id=visit,
        revision=revision,
        recognition_id=rid,
        status=status,
        message=body,
        camera=message.get("Camera"),
        looks=looks,
        first_seen=at,
        updated_at=at,
    )


def vids(answers: list[VisitAnswer]) -> list[str]:
    return [a.visit_id for a in answers]


def test_a_look_is_stored_once_and_the_heaviest_come_back_first(visits: VisitLedger) -> None:
    vector = struct.pack("<4f", 0.5, -0.5, 0.5, -0.5)
    first = look("r1", weight=0.4, embedding=vector, subject="anna", similarity=97.5)
    assert visits.add_look(first, keep=5) == [first]
    assert (
        visits.add_look(look("r2", at=T0 + timedelta(seconds=1), weight=0.9), keep=5)[
            0
        ].recognition_id
        == "r2"
    )
    # The same recognition id again (a redelivered event): not stored twice, whatever it says.
    again = visits.add_look(look("r1", weight=1.0), keep=5)
    assert [x.recognition_id for x in again] == ["r2", "r1"]
    assert again[1] == first  # as stored: bytes, subject, similarity, time in UTC
    assert again[1].seen_at.utcoffset() == timedelta(0)
    # Ties in weight: oldest first; keep bounds what comes back, not what is stored.
    visits.add_look(look("r3", at=T0 + timedelta(seconds=3), weight=0.4), keep=5)
    visits.add_look(look("r0", at=T0 - timedelta(seconds=1), weight=0.4), keep=5)
    kept = visits.add_look(look("r4", at=T0 + timedelta(seconds=4), weight=0.1), keep=3)
    assert [x.recognition_id for x in kept] == ["r2", "r0", "r1"]
    assert [x.recognition_id for x in visits.add_look(look("r4"), keep=10)] == [
        "r2", "r0", "r1", "r3", "r4"
    ]  # fmt: skip
    # Another visit's looks are its own.
    assert visits.add_look(look("x1", visit="v2"), keep=5) == [look("x1", visit="v2")]
    assert visits.add_look(look("x1", visit="v2"), keep=0) == []


def test_bad_looks_are_refused_and_nothing_is_stored(visits: VisitLedger) -> None:
    for bad in (
        look(NUL),
        look("r1", visit=NUL),
        look("r1", subject=NUL),
        look("r1", weight=1.5),
        look("r1", weight=float("nan")),
        look("r1", similarity=float("inf")),
    ):
        with pytest.raises(InvalidParameterException):
            visits.add_look(bad, keep=5)
    with pytest.raises(InvalidParameterException):
        visits.add_look(look("r1"), keep=-1)
    assert visits.add_look(look("r9"), keep=5) == [look("r9")]


def test_the_first_answer_is_made_once_and_a_revision_compares_and_sets(
    visits: VisitLedger,
) -> None:
    assert visits.answer("v1") is None
    first = answer(Name="Zoë", Status="identified", UserId="anna", Camera="door")
    assert visits.revise(first, expected=None)
    got = visits.answer("v1")
    assert got == first
    assert got is not None
    assert list(got.message) == ["RecognitionId", "VisitId", "Revision", "Name", "Status",
                                 "UserId", "Camera"]  # fmt: skip
    # A second first answer (another worker decided at the same time): refused.
    assert not visits.revise(answer(rid="r2", UserId="bob"), expected=None)
    # A revision from a stale revision: refused; from the current one: made.
    later = T0 + timedelta(seconds=2)
    second = answer(revision=1, rid="r2", at=later, UserId="bob", Camera="door")
    assert not visits.revise(second, expected=1)
    assert visits.revise(second, expected=0)
    got = visits.answer("v1")
    assert got is not None
    assert (got.revision, got.recognition_id, got.message["UserId"]) == (1, "r2", "bob")
    assert got.first_seen == T0  # the visit began with its first answer
    assert got.updated_at == later
    assert not visits.revise(answer(revision=2, rid="r3"), expected=0)
    assert visits.answer(NUL) is None
    with pytest.raises(InvalidParameterException):
        visits.revise(answer(visit="v2", Name=NUL), expected=None)
    assert visits.answer("v2") is None


def test_looks_move_an_answered_visit_on_and_are_counted(visits: VisitLedger) -> None:
    visits.add_look(look("r1"), keep=5)
    visits.add_look(look("r2", at=T0 + timedelta(seconds=1)), keep=5)  # before the answer
    assert visits.revise(answer(looks=1), expected=None)
    got = visits.answer("v1")
    assert got is not None
    assert got.looks == 2  # both stored looks, though the answer fused one
    later = T0 + timedelta(seconds=5)
    visits.add_look(look("r3", at=later), keep=5)
    visits.add_look(look("r3", at=later), keep=5)  # once
    visits.add_look(look("r0", at=T0 - timedelta(seconds=5)), keep=5)  # late: time stays
    got = visits.answer("v1")
    assert got is not None
    assert (got.revision, got.looks, got.updated_at) == (0, 4, later)


def test_of_two_instances_racing_to_revise_exactly_one_wins(open_visits_on: OpenVisits) -> None:
    """Threads on separate instances: processes sharing a SQLite file, or hosts (separate
    PostgreSQL connections) sharing a database."""
    ledgers = [open_visits_on() for _ in range(3)]
    for n in range(8):
        visit = f"race-{n}"
        firsts = [answer(visit, rid=f"{visit}-{i}") for i in range(len(ledgers))]
        won = at_once(
            [partial(v.revise, a, expected=None) for v, a in zip(ledgers, firsts, strict=True)]
        )
        assert sorted(won) == [False, False, True]
        current = ledgers[0].answer(visit)
        assert current is not None
        assert current.recognition_id == firsts[won.index(True)].recognition_id
        nexts = [answer(visit, 1, rid=f"{visit}-next-{i}") for i in range(len(ledgers))]
        won = at_once(
            [partial(v.revise, a, expected=0) for v, a in zip(ledgers, nexts, strict=True)]
        )
        assert sorted(won) == [False, False, True]
        current = ledgers[1].answer(visit)
        assert current is not None
        assert current.revision == 1
        assert current.recognition_id == nexts[won.index(True)].recognition_id


def test_two_threads_on_one_instance_racing_to_revise_one_wins(visits: VisitLedger) -> None:
    assert visits.revise(answer(), expected=None)
    for n in range(5):
        contenders = [answer(revision=n + 1, rid=f"r{n}-{i}") for i in range(2)]
        won = at_once([partial(visits.revise, a, expected=n) for a in contenders])
        assert sorted(won) == [False, True]


def test_visits_page_newest_updated_first_and_filter(visits: VisitLedger) -> None:
    for n in range(5):
        at = T0 + timedelta(seconds=n)
        camera = "door" if n % 2 == 0 else "yard"
        status = Status.IDENTIFIED if n < 3 else Status.UNKNOWN
        user: dict[str, Any] = {"UserId": "anna"} if n == 1 else {}
        first = answer(f"v{n}", rid=f"r{n}", at=at, status=status, Camera=camera, **user)
        visits.revise(first, expected=None)
    visits.revise(
        answer("v9", rid="r9", at=T0 + timedelta(seconds=2), Camera="door"), expected=None
    )
    # A look moves v0 up: the person is still there.
    visits.add_look(look("r0-b", visit="v0", at=T0 + timedelta(seconds=10)), keep=5)
    assert vids(visits.visits()) == ["v0", "v4", "v3", "v2", "v9", "v1"]
    page = visits.visits(limit=3)
    assert vids(page) == ["v0", "v4", "v3"]
    rest = visits.visits(limit=3, before=visit_cursor(page[-1]))
    assert vids(rest) == ["v2", "v9", "v1"]  # a tie in time: by visit id
    assert vids(visits.visits(before=visit_cursor(rest[0]))) == ["v9", "v1"]
    assert vids(visits.visits(status=Status.UNKNOWN)) == ["v4", "v3"]
    assert vids(visits.visits(camera="yard")) == ["v3", "v1"]
    assert vids(visits.visits(user_id="anna")) == ["v1"]
    assert vids(visits.visits(after=stamp(T0 + timedelta(seconds=3)))) == ["v0", "v4"]
    assert visits.visits(camera=NUL) == [] == visits.visits(user_id=NUL)
    assert vids(visits.visits(before=(stamp(T0 + timedelta(seconds=2)), "v2" + NUL))) == [
        "v9", "v1"
    ]  # fmt: skip
    with pytest.raises(InvalidParameterException):
        visits.visits(after="yesterday")
    with pytest.raises(InvalidParameterException):
        visits.visits(camera=NUL, before=("not a time", "v1"))


def test_naming_finds_the_visits_of_a_person_and_delete_takes_their_looks(
    visits: VisitLedger,
) -> None:
    visits.revise(answer("v1", rid="r1", UserId="anna", FaceId="f1"), expected=None)
    revises = {"RecognitionId": "r2", "Status": "identified", "UserId": "anna", "FaceId": "f1"}
    visits.revise(answer("v2", 1, rid="r3", UserId="bob", Revises=revises), expected=None)
    visits.revise(answer("v3", rid="r4", FaceId="f7"), expected=None)
    visits.revise(answer("v4", rid="r5", status=Status.UNKNOWN, StrangerId="stranger-1"),
                  expected=None)  # fmt: skip
    visits.add_look(look("r6", visit="v5", embedding=b"\x00\x01"), keep=5)
    visits.revise(answer("v5", rid="r7"), expected=None)
    visits.add_look(look("r1", visit="v1", embedding=b"\x00\x02"), keep=5)

    def named(**who: Any) -> list[str]:
        args: dict[str, Any] = {"user_id": None, "face_ids": [], **who}
        return sorted(vids(visits.naming(**args)))

    assert named(user_id="anna") == ["v1", "v2"]  # v2's answer corrected a name of hers
    assert named(face_ids=["f7", NUL]) == ["v3"]
    assert named(face_ids=["f1"]) == ["v1", "v2"]
    assert named(stranger_id="stranger-1") == ["v4"]
    assert named(recognition_ids=["r6"]) == ["v5"]  # a look of it
    assert named(recognition_ids=["r4", NUL]) == ["v3"]  # its answer
    assert named(user_id=NUL, stranger_id=NUL) == []
    assert named() == []
    assert visits.delete(["v1", "v5", "nope", NUL]) == 2
    assert visits.answer("v1") is None
    assert named(recognition_ids=["r6", "r1"]) == []
    # Their looks went: stored again, they are new looks of a new visit.
    assert visits.add_look(look("r6", visit="v5"), keep=5) == [look("r6", visit="v5")]


def test_idle_visits_lose_their_looks_but_keep_their_answers(visits: VisitLedger) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(minutes=30)
    visits.add_look(look("a1", visit="old", at=old, embedding=b"\x01"), keep=5)
    visits.add_look(look("a2", visit="old", at=old + timedelta(seconds=1)), keep=5)
    visits.revise(answer("old", rid="a1", at=old), expected=None)
    visits.add_look(look("b1", visit="live", at=old), keep=5)
    visits.revise(answer("live", rid="b1", at=old), expected=None)
    visits.add_look(look("b2", visit="live", at=now), keep=5)  # still there
    visits.add_look(look("c1", visit="unanswered", at=old), keep=5)
    revised_now = answer("revised", rid="d1", at=old)
    visits.add_look(look("d1", visit="revised", at=old), keep=5)
    visits.revise(revised_now, expected=None)
    visits.revise(answer("revised", 1, rid="d2", at=now), expected=0)  # updated now
    with pytest.raises(InvalidParameterException):
        visits.drop_idle_looks(-1)
    with pytest.raises(InvalidParameterException):
        visits.drop_idle_looks(float("nan"))
    assert visits.drop_idle_looks(600, dry_run=True) == 3
    assert visits.drop_idle_looks(600) == 3
    assert visits.drop_idle_looks(600) == 0
    assert visits.add_look(look("zz", visit="old", at=now), keep=5) == [
        look("zz", visit="old", at=now)
    ]
    assert len(visits.add_look(look("b3", visit="live", at=now), keep=5)) == 3
    got = visits.answer("old")
    assert got is not None
    assert got.looks == 3  # the count stays: two dropped, one new


def test_an_existing_recognizer_db_opens_unchanged_and_gets_the_visit_tables(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'facelens.db'}"
    ledger = open_ledger(url, home)
    ledger.record(outcome("r1"))
    ledger.close()
    with sqlite3.connect(home / "recognizer.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "visits" not in tables
    visits = open_visits(url, home)
    try:
        assert visits.revise(answer(), expected=None)
    finally:
        visits.close()
    ledger = open_ledger(url, home)
    try:
        assert ledger.get("r1") == outcome("r1")
    finally:
        ledger.close()
