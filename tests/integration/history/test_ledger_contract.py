"""The ledger's contract, on each adapter (``ledger`` and ``open_ledger_on``:
tests/integration/history/conftest.py): idempotency and claims across instances, pages,
filters, retention's queries, strangers' sightings, and the same answers from both."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any

import pytest

from facelens.errors import InvalidParameterException
from facelens.history.ledger import (
    CROP_DELETED,
    Recognition,
    RecognitionLedger,
    Status,
    StrangerSeen,
    cursor_of,
    stamp,
)
from tests.integration.history.conftest import OpenLedger

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
LONG_LEASE_S = 60.0
NUL = "a\x00b"
"""Text holding U+0000: PostgreSQL cannot bind it, so no adapter stores it
(:mod:`facelens.history.nul`)."""


def outcome(
    rid: str,
    at: datetime = T0,
    *,
    status: Status = Status.IDENTIFIED,
    key: str | None = None,
    **message: Any,
) -> Recognition:
    topic = {Status.IDENTIFIED: "rekognition", Status.UNKNOWN: "rekognition/unknown"}
    return Recognition(
        rid,
        status,
        topic.get(status, "rekognition/errors"),
        {"RecognitionId": rid, **message},
        at,
        bucket=None if key is None else "crops",
        key=key,
        etag=None if key is None else "etag-1",
        reason="InvalidImageFormatException" if status is Status.ERROR else None,
    )


def ids(records: list[Recognition]) -> list[str]:
    return [r.recognition_id for r in records]


def at_once(calls: list[Callable[[], bool]]) -> list[bool]:
    """Runs ``calls`` on threads of their own, released together; their answers in order."""
    answers: list[bool] = [False] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        answers[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_record_is_once_per_id_and_get_returns_it_as_recorded(ledger: RecognitionLedger) -> None:
    message = {"Status": "identified", "Zeta": 1, "Alpha": "Zoë", "Similarity": 0.1 + 0.2}
    at = datetime(2024, 5, 1, 10, 0, 0, 7, tzinfo=timezone(timedelta(hours=2)))
    first = Recognition(
        "r1", Status.IDENTIFIED, "rekognition", message, at, "crops", "faces/1.jpg", "e1"
    )
    assert ledger.record(first)
    assert not ledger.record(outcome("r1", T0, Other=True))
    got = ledger.get("r1")
    assert got == first  # the first outcome stays
    assert got is not None
    assert list(got.message) == ["Status", "Zeta", "Alpha", "Similarity"]  # order as recorded
    assert got.recognized_at.utcoffset() == timedelta(0)
    assert got.recognized_at.isoformat() == "2024-05-01T08:00:00.000007+00:00"
    assert ledger.get("r2") is None
    # Whatever is not JSON is kept as its text.
    ledger.record(outcome("r2", T0, When=T0))
    recorded = ledger.get("r2")
    assert recorded is not None
    assert recorded.message["When"] == str(T0)


def test_two_instances_racing_on_one_id_record_it_once(open_ledger_on: OpenLedger) -> None:
    """Two processes (SQLite) or hosts (PostgreSQL): exactly one record() says True."""
    ledgers = [open_ledger_on() for _ in range(4)]
    for n in range(10):
        record = outcome(f"race-{n}")
        results = at_once([partial(led.record, record) for led in ledgers])
        assert sorted(results) == [False, False, False, True]
    assert ledgers[0].count() == 10


def test_a_claim_is_one_owner_s_until_recorded_or_its_lease_runs_out(
    open_ledger_on: OpenLedger,
) -> None:
    a, b = open_ledger_on(), open_ledger_on()
    assert a.claim("r1", "host-a", lease_seconds=LONG_LEASE_S)
    assert not b.claim("r1", "host-b", lease_seconds=LONG_LEASE_S)
    assert a.claim("r1", "host-a", lease_seconds=LONG_LEASE_S)  # a restarted worker: its own
    assert a.record(outcome("r1"))
    # Recorded: nobody holds it any more, and nobody may handle it again.
    assert not b.claim("r1", "host-b", lease_seconds=LONG_LEASE_S)
    assert not a.claim("r1", "host-a", lease_seconds=LONG_LEASE_S)
    # A claim whose holder died is taken over once its lease has run out.
    assert a.claim("r2", "host-a", lease_seconds=0.2)
    assert not b.claim("r2", "host-b", lease_seconds=LONG_LEASE_S)
    time.sleep(0.4)
    assert b.claim("r2", "host-b", lease_seconds=LONG_LEASE_S)
    assert not a.claim("r2", "host-a", lease_seconds=LONG_LEASE_S)
    # Forgetting a record makes its id new again.
    assert a.delete(["r1"]) == 1
    assert b.claim("r1", "host-b", lease_seconds=LONG_LEASE_S)


def test_claims_whose_lease_ended_long_ago_are_dropped_and_no_other(
    open_ledger_on: OpenLedger,
) -> None:
    """Retention's sweep of claims never ended by an outcome; a negative lease is one that
    ended that long ago (by the clock leases are timed by, the database's on PostgreSQL)."""
    a, b = open_ledger_on(), open_ledger_on()
    assert a.claim("abandoned", "host-a", lease_seconds=-120)
    assert a.claim("lapsed", "host-a", lease_seconds=-1)  # ended, but not long ago
    assert a.claim("held", "host-a", lease_seconds=LONG_LEASE_S)
    assert a.claim("done", "host-a", lease_seconds=LONG_LEASE_S)
    assert a.record(outcome("done"))  # its claim ended with it

    assert b.drop_abandoned_claims(60, dry_run=True) == 1
    assert b.drop_abandoned_claims(0, dry_run=True) == 2
    assert b.drop_abandoned_claims(60) == 1
    assert b.drop_abandoned_claims(60) == 0
    assert b.drop_abandoned_claims(0) == 1  # "lapsed"; never "held"
    assert b.drop_abandoned_claims(0, dry_run=True) == 0
    # Nothing changed hands: a lapsed claim was free already, a held one still is not.
    assert not b.claim("held", "host-b", lease_seconds=LONG_LEASE_S)
    assert b.claim("abandoned", "host-b", lease_seconds=LONG_LEASE_S)
    assert not a.claim("abandoned", "host-a", lease_seconds=LONG_LEASE_S)
    assert not b.claim("done", "host-b", lease_seconds=LONG_LEASE_S)
    for age in (-1.0, float("nan")):
        with pytest.raises(InvalidParameterException):
            b.drop_abandoned_claims(age)


def test_owners_racing_for_one_claim_get_it_once(open_ledger_on: OpenLedger) -> None:
    ledgers = [open_ledger_on() for _ in range(4)]
    for n in range(10):
        rid = f"c-{n}"
        won = at_once(
            [
                partial(ledgers[i].claim, rid, f"host-{i}", lease_seconds=LONG_LEASE_S)
                for i in range(len(ledgers))
            ]
        )
        assert sum(won) == 1


def test_recent_and_history_run_newest_first_ties_by_id_in_byte_order(
    ledger: RecognitionLedger,
) -> None:
    t1 = T0 + timedelta(seconds=1)
    for rid, at in [("b", T0), ("B", t1), ("a", t1), ("_", t1), ("c", T0 + timedelta(seconds=2))]:
        ledger.record(outcome(rid, at))
    assert ids(ledger.recent()) == ["c", "B", "_", "a", "b"]
    assert ids(ledger.recent(limit=2)) == ["c", "B"]
    pages: list[list[str]] = []
    before = None
    while page := ledger.history(limit=2, before=before):
        pages.append(ids(page))
        before = cursor_of(page[-1])
    assert pages == [["c", "B"], ["_", "a"], ["b"]]
    assert ids(ledger.history(after=t1.isoformat())) == ["c"]
    assert ids(ledger.history(after="2024-05-01T10:00:00.5+02:00")) == ["c", "B", "_", "a"]


def test_history_filters_and_counts(ledger: RecognitionLedger) -> None:
    ledger.record(outcome("i1", T0, Camera="door", UserId="anna"))
    ledger.record(outcome("i2", T0 + timedelta(1), Camera="garage", UserId="ben"))
    ledger.record(outcome("u1", T0 + timedelta(2), status=Status.UNKNOWN, Camera="door"))
    ledger.record(outcome("e1", T0 + timedelta(3), status=Status.ERROR))
    assert ids(ledger.history(camera="door")) == ["u1", "i1"]
    assert ids(ledger.history(user_id="ben")) == ["i2"]
    assert ids(ledger.history(status=Status.IDENTIFIED, camera="door")) == ["i1"]
    assert ids(ledger.recent(status=Status.UNKNOWN)) == ["u1"]
    assert ids(ledger.dead_letters()) == ["e1"]
    assert ledger.dead_letters()[0].reason == "InvalidImageFormatException"
    assert ledger.count() == 4
    assert ledger.count(status=Status.IDENTIFIED) == 2
    assert ledger.count(status=Status.ERROR) == 1


@pytest.mark.parametrize("bad", ["yesterday", "2024-13-01", "0001-01-01T00:00:00+01:00"])
def test_a_time_that_is_not_iso_is_refused(ledger: RecognitionLedger, bad: str) -> None:
    with pytest.raises(InvalidParameterException):
        ledger.history(after=bad)
    with pytest.raises(InvalidParameterException):
        ledger.history(before=(bad, "r1"))


def test_naming_finds_one_person_s_records_and_delete_removes_them(
    ledger: RecognitionLedger,
) -> None:
    ledger.record(outcome("r1", T0, UserId="anna", FaceId="f1"))
    ledger.record(outcome("r2", T0 + timedelta(1), FaceId="f2"))
    ledger.record(outcome("r3", T0 + timedelta(2), status=Status.UNKNOWN, StrangerId="s-1"))
    ledger.record(outcome("r4", T0 + timedelta(3), status=Status.UNKNOWN, StrangerFaceId="sf"))
    ledger.record(outcome("r5", T0 + timedelta(4), UserId="ben", FaceId="f9"))
    assert ids(ledger.naming(user_id="anna", face_ids=["f2"])) == ["r1", "r2"]
    assert ids(ledger.naming(user_id=None, face_ids=[], stranger_id="s-1")) == ["r3"]
    assert ids(ledger.naming(user_id=None, face_ids=[], stranger_face_ids=["sf", "x"])) == ["r4"]
    assert ledger.naming(user_id=None, face_ids=[]) == []
    assert ledger.delete(["r1", "r2", "missing"]) == 2
    assert ids(ledger.recent()) == ["r5", "r4", "r3"]
    ledger.purge_deleted()  # True only where verifiable (SQLite); it must not fail on either


def test_naming_finds_a_revision_that_corrected_a_name_of_theirs(
    ledger: RecognitionLedger,
) -> None:
    """A visit's revision names whom its answer replaced (``Revises``): forgetting that
    person takes it too."""
    before = {"RecognitionId": "r1", "Status": "identified", "UserId": "anna", "FaceId": "f1"}
    ledger.record(outcome("r1", T0, UserId="anna", FaceId="f1"))
    ledger.record(outcome("r2", T0 + timedelta(1), UserId="ben", Revises=before))
    stranger = {"RecognitionId": "r3", "Status": "unknown", "StrangerId": "s-1"}
    ledger.record(outcome("r4", T0 + timedelta(2), UserId="ben", Revises=stranger))
    ledger.record(outcome("r5", T0 + timedelta(3), UserId="ben", Revises=None))
    assert ids(ledger.naming(user_id="anna", face_ids=[])) == ["r1", "r2"]
    assert ids(ledger.naming(user_id=None, face_ids=["f1"])) == ["r1", "r2"]
    assert ids(ledger.naming(user_id=None, face_ids=[], stranger_id="s-1")) == ["r4"]
    assert ids(ledger.naming(user_id="ben", face_ids=[])) == ["r2", "r4", "r5"]


def test_retention_pages_through_old_crops_and_marks_them_deleted(
    ledger: RecognitionLedger,
) -> None:
    for n in range(5):
        ledger.record(outcome(f"i{n}", T0 + timedelta(hours=n), key=f"faces/i{n}.jpg", N=n))
    ledger.record(outcome("u0", T0, status=Status.UNKNOWN, key="faces/u0.jpg"))
    ledger.record(outcome("e0", T0, status=Status.ERROR))  # no crop
    cutoff = T0 + timedelta(hours=3, minutes=30)
    first = ledger.crops_older_than(cutoff, [Status.IDENTIFIED], limit=2)
    assert ids(first) == ["i0", "i1"]
    rest = ledger.crops_older_than(cutoff, [Status.IDENTIFIED], after=cursor_of(first[-1]))
    assert ids(rest) == ["i2", "i3"]
    both = ledger.crops_older_than(cutoff, [Status.IDENTIFIED, Status.UNKNOWN])
    assert ids(both) == ["i0", "u0", "i1", "i2", "i3"]
    assert ledger.known_crops("crops", ["faces/i0.jpg", "faces/u0.jpg", "faces/x.jpg"]) == {
        "faces/i0.jpg",
        "faces/u0.jpg",
    }
    assert ledger.known_crops("other", ["faces/i0.jpg"]) == set()

    ledger.mark_crop_deleted("i0")
    ledger.mark_crop_deleted("missing")
    marked = ledger.get("i0")
    assert marked is not None
    assert (marked.bucket, marked.key) == (None, None)
    assert list(marked.message) == ["RecognitionId", "N", CROP_DELETED]
    assert marked.message[CROP_DELETED] is True
    assert ids(ledger.crops_older_than(cutoff, [Status.IDENTIFIED])) == ["i1", "i2", "i3"]
    assert ledger.known_crops("crops", ["faces/i0.jpg"]) == set()


def test_sightings_and_strangers_seen(ledger: RecognitionLedger) -> None:
    def sighting(rid: str, at: datetime, sid: str, box: float | None, *, key: bool = True) -> None:
        extra: dict[str, Any] = {"StrangerId": sid}
        if box is not None:
            extra["BoundingBox"] = {"Width": box, "Height": box, "Left": 0.1, "Top": 0.1}
        ledger.record(
            outcome(
                rid, at, status=Status.UNKNOWN, key=f"faces/{rid}.jpg" if key else None, **extra
            )
        )

    sighting("s1", T0, "stranger-1", 0.2)
    sighting("s2", T0 + timedelta(minutes=1), "stranger-1", 0.5)
    sighting("s3", T0 + timedelta(minutes=2), "stranger-1", None)
    sighting("s4", T0 + timedelta(minutes=3), "stranger-1", 0.9, key=False)
    sighting("s5", T0 + timedelta(minutes=4), "stranger-2", 0.3)
    ledger.record(outcome("i1", T0, UserId="anna"))
    assert ids(ledger.sightings(["stranger-1"])) == ["s4", "s3", "s2", "s1"]
    assert ids(ledger.sightings(["stranger-1", "stranger-2"], limit=2)) == ["s5", "s4"]
    # The largest box first among crops still stored; one without a box last.
    assert ids(ledger.sightings(["stranger-1"], largest_first=True)) == ["s2", "s1", "s3"]
    assert ledger.sightings(["nobody"]) == []

    seen = ledger.strangers_seen()
    assert seen == {
        "stranger-1": StrangerSeen(4, T0, T0 + timedelta(minutes=3)),
        "stranger-2": StrangerSeen(1, T0 + timedelta(minutes=4), T0 + timedelta(minutes=4)),
    }
    assert list(seen) == ["stranger-1", "stranger-2"]
    assert seen["stranger-1"].first_seen.utcoffset() == timedelta(0)
    assert ledger.strangers_seen(["stranger-2", "nobody"]) == {"stranger-2": seen["stranger-2"]}


def test_a_stranger_s_visit_is_one_sighting_however_many_looks(ledger: RecognitionLedger) -> None:
    for n in range(3):  # three looks of one visit, all carrying the visit's stranger
        ledger.record(
            outcome(
                f"v{n}",
                T0 + timedelta(seconds=n),
                status=Status.UNKNOWN,
                StrangerId="stranger-1",
                VisitId="visit-a",
            )
        )
    ledger.record(
        outcome("lone", T0 + timedelta(minutes=5), status=Status.UNKNOWN, StrangerId="stranger-1")
    )
    seen = ledger.strangers_seen(["stranger-1"])["stranger-1"]
    assert seen == StrangerSeen(2, T0, T0 + timedelta(minutes=5))


def test_two_instances_share_one_history(open_ledger_on: OpenLedger) -> None:
    first, second = open_ledger_on(), open_ledger_on()
    first.record(outcome("r1", T0, status=Status.UNKNOWN, StrangerId="s-1"))
    second.record(outcome("r2", T0 + timedelta(1), status=Status.UNKNOWN, StrangerId="s-1"))
    assert ids(first.recent()) == ids(second.recent()) == ["r2", "r1"]
    assert first.strangers_seen()["s-1"].count == 2


def test_a_filter_holding_nul_matches_nothing(ledger: RecognitionLedger) -> None:
    """Whatever a query string carries (``?camera=%00``) answers as no match, never a
    StorageError (was a 500 on PostgreSQL); the other names given beside it still match."""
    ledger.record(outcome("r1", T0, key="faces/r1.jpg", Camera="door", UserId="anna", FaceId="f1"))
    ledger.record(outcome("s1", T0, status=Status.UNKNOWN, key="faces/s1.jpg", StrangerId="s-1"))
    assert ledger.get(NUL) is None
    assert ledger.history(camera=NUL) == []
    assert ledger.history(user_id=NUL) == []
    assert ledger.history(camera=NUL, status=Status.IDENTIFIED, after=T0.isoformat()) == []
    with pytest.raises(InvalidParameterException):  # the time is checked whatever else is asked
        ledger.history(camera=NUL, after="yesterday")
    assert (
        ledger.naming(user_id=NUL, face_ids=[NUL], stranger_id=NUL, stranger_face_ids=[NUL]) == []
    )
    assert ids(ledger.naming(user_id=NUL, face_ids=[NUL, "f1"], stranger_id=NUL)) == ["r1"]
    assert ids(
        ledger.naming(user_id=None, face_ids=[], stranger_id="s-1", stranger_face_ids=[NUL])
    ) == ["s1"]
    assert ledger.sightings([NUL]) == []
    assert ids(ledger.sightings([NUL, "s-1"])) == ["s1"]
    assert ledger.strangers_seen([NUL]) == {}
    assert list(ledger.strangers_seen([NUL, "s-1"])) == ["s-1"]
    assert ledger.known_crops(NUL, ["faces/r1.jpg"]) == set()
    assert ledger.known_crops("crops", [NUL, "faces/r1.jpg"]) == {"faces/r1.jpg"}
    ledger.mark_crop_deleted(NUL)
    assert ledger.delete([NUL]) == 0
    assert ledger.count() == 2


def test_a_cursor_id_holding_nul_pages_in_byte_order(ledger: RecognitionLedger) -> None:
    """A cursor is compared, not matched: ids after ``"a\\0"`` in byte order are those after
    ``"a"`` (``"a" < "a\\0" < "a0"``), as SQLite compares the NUL itself."""
    t1 = T0 + timedelta(seconds=1)
    for rid in ("a", "a0", "b"):
        ledger.record(outcome(rid, t1, key=f"faces/{rid}.jpg"))
    ledger.record(outcome("z", T0, key="faces/z.jpg"))
    assert ids(ledger.history(before=(t1.isoformat(), "a\x00"))) == ["a0", "b", "z"]
    assert ids(ledger.history(before=(t1.isoformat(), "a0\x00z"))) == ["b", "z"]
    later = T0 + timedelta(hours=1)
    rest = ledger.crops_older_than(later, [Status.IDENTIFIED], after=(stamp(t1), "a\x00"))
    assert ids(rest) == ["a0", "b"]


@pytest.mark.parametrize(
    "field", ["recognition_id", "topic", "bucket", "key", "etag", "reason", "Camera", "Name\x00"]
)
def test_an_outcome_holding_nul_is_refused_and_nothing_is_stored(
    ledger: RecognitionLedger, field: str
) -> None:
    """InvalidParameterException (a client's error, never a StorageError: the worker would
    retry it forever) on both adapters, for its text columns and anywhere in its message
    (PostgreSQL's ``->>`` fails on every row whose JSON escapes NUL)."""
    good = outcome("r1", T0, key="faces/r1.jpg", Camera="door", Profile={"Name": "Ada"})
    if field[0].isupper():  # in the message: a value, or a key of a nested object
        message = dict(good.message)
        if field == "Camera":
            message["Camera"] = NUL
        else:
            message["Profile"] = {field: "Ada"}
        bad = Recognition(**{**vars(good), "message": message})
    else:
        bad = Recognition(**{**vars(good), field: NUL})
    with pytest.raises(InvalidParameterException, match="NUL"):
        ledger.record(bad)
    assert ledger.count() == 0
    assert ledger.record(good)  # the id was not taken by the refused one


def test_json_text_that_only_looks_like_an_escaped_nul_is_stored(ledger: RecognitionLedger) -> None:
    """A backslash before ``u0000`` is text, not NUL: kept, and found by its filters."""
    text = "\\u0000 and \\\\u0000"
    assert ledger.record(outcome("r1", T0, Camera=text, Note="\\"))
    got = ledger.get("r1")
    assert got is not None
    assert got.message["Camera"] == text
    assert ids(ledger.history(camera=text)) == ["r1"]


def test_a_claim_holding_nul_is_refused(ledger: RecognitionLedger) -> None:
    with pytest.raises(InvalidParameterException, match="NUL"):
        ledger.claim(NUL, "host-a", lease_seconds=LONG_LEASE_S)
    with pytest.raises(InvalidParameterException, match="NUL"):
        ledger.claim("r1", NUL, lease_seconds=LONG_LEASE_S)
    assert ledger.claim("r1", "host-a", lease_seconds=LONG_LEASE_S)
