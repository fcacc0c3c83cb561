"""Retention deletes exactly the crops that are due: a real ledger and a real file object store,
records at several ages around each limit, orphans, a dry run, a store that is down."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from facelens.config import RetentionSettings
from facelens.errors import ServiceUnavailableException
from facelens.history.ledger import CROP_DELETED, Recognition, RecognitionLedger, Status
from facelens.history.sqlite import SqliteLedger, SqliteVisitLedger
from facelens.history.visits import VisitAnswer, VisitLook
from facelens.people.retention import (
    ABANDONED_CLAIM_S,
    RetentionJob,
    RetentionRunner,
    start_retention,
)
from facelens.storage.local import LocalObjectStore

BUCKET = "facelens"
NOW = datetime.now(UTC)
SETTINGS = RetentionSettings(identified_crops_hours=168, stranger_crops_hours=8)


@dataclass
class World:
    ledger: RecognitionLedger
    objects: LocalObjectStore
    root: Path

    def crop(self, key: str) -> None:
        self.objects.put_object(BUCKET, key, b"\xff\xd8 a crop " + key.encode())

    def record(self, rid: str, status: Status, hours_ago: float, *, crop: bool = True) -> str:
        key = f"faces/{rid}.jpg"
        if crop:
            self.crop(key)
        message = {"RecognitionId": rid, "Status": status.value, "Key": key}
        if status is Status.IDENTIFIED:
            message["UserId"] = "anna"
        at = NOW - timedelta(hours=hours_ago)
        self.ledger.record(
            Recognition(rid, status, "rekognition", message, at, BUCKET, key if crop else None)
        )
        return key

    def exists(self, key: str) -> bool:
        return (self.root / BUCKET / "objects" / key).exists()

    def job(self, settings: RetentionSettings = SETTINGS, **kwargs: object) -> RetentionJob:
        objects = kwargs.pop("objects", self.objects)
        return RetentionJob(
            ledger=self.ledger,
            objects=objects,  # type: ignore[arg-type]
            settings=settings,
            bucket=BUCKET,
            prefix="faces/",
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    objects = LocalObjectStore(tmp_path / "objects")
    objects.create_bucket(BUCKET)
    ledger = SqliteLedger(tmp_path / "recognizer.db")
    yield World(ledger, objects, tmp_path / "objects")
    ledger.close()


def populate(world: World) -> dict[str, list[str]]:
    """Records on both sides of each limit; which crops are due at NOW and which stay."""
    due = [
        world.record("id-200h", Status.IDENTIFIED, 200),
        world.record("id-168.1h", Status.IDENTIFIED, 168.1),
        world.record("unknown-9h", Status.UNKNOWN, 9),
        world.record("dead-10h", Status.ERROR, 10),
    ]
    kept = [
        world.record("id-167.9h", Status.IDENTIFIED, 167.9),
        world.record("id-1h", Status.IDENTIFIED, 1),
        world.record("unknown-7.9h", Status.UNKNOWN, 7.9),
        world.record("dead-1h", Status.ERROR, 1),
    ]
    world.record("rejected-delivery", Status.ERROR, 500, crop=False)  # a record without a crop
    world.crop("faces/never-recognized.jpg")  # an orphan, new: not due yet
    world.crop("elsewhere/old.jpg")  # outside the recognizer's prefix: never retention's
    kept += ["faces/never-recognized.jpg", "elsewhere/old.jpg"]
    return {"due": due, "kept": kept}


def test_deletes_exactly_what_is_due_then_nothing_more(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    crops = populate(world)
    job = world.job()
    with caplog.at_level(logging.INFO, logger="facelens.people.retention"):
        report = job.run_once(NOW)
    assert (report.identified, report.strangers, report.orphans, report.failed) == (2, 2, 0, 0)
    assert sorted(report.keys) == sorted(crops["due"])
    assert [k for k in crops["due"] if world.exists(k)] == []
    assert [k for k in crops["kept"] if not world.exists(k)] == []
    assert "retention: deleted 2 identified, 2 stranger crops" in caplog.text

    # the history stays, marked; the crop's key is no longer a live column
    record = world.ledger.get("id-200h")
    assert record is not None
    assert record.key is None
    assert record.bucket is None
    assert record.message[CROP_DELETED] is True
    assert record.message["UserId"] == "anna"

    again = job.run_once(NOW)  # idempotent
    assert (again.identified, again.strangers, again.orphans, again.keys) == (0, 0, 0, ())
    assert [k for k in crops["kept"] if not world.exists(k)] == []


def test_orphans_go_after_the_longer_time(world: World) -> None:
    crops = populate(world)
    later = NOW + timedelta(hours=169)  # every crop put in this test is now > 168 h old
    report = world.job().run_once(later)
    assert report.orphans == 1
    assert "faces/never-recognized.jpg" in report.keys
    assert (report.identified, report.strangers) == (4, 4)
    assert not world.exists("faces/never-recognized.jpg")
    assert world.exists("elsewhere/old.jpg")
    assert [
        k for k in crops["due"] + crops["kept"] if k.startswith("faces/") and world.exists(k)
    ] == []
    # a recent crop with no record yet (its event still queued) is not touched
    world.crop("faces/just-uploaded.jpg")
    assert world.job().run_once(NOW).orphans == 0
    assert world.exists("faces/just-uploaded.jpg")


def test_none_keeps_a_class_forever_and_orphans_too(world: World) -> None:
    crops = populate(world)
    forever = RetentionSettings(identified_crops_hours=None, stranger_crops_hours=8)
    report = world.job(forever).run_once(NOW + timedelta(days=3650))
    assert report.identified == 0
    assert report.orphans == 0
    assert report.strangers == 4
    assert all(world.exists(k) for k in crops["due"][:2] + crops["kept"][:2])
    assert world.exists("faces/never-recognized.jpg")
    off = RetentionSettings(
        identified_crops_hours=None,
        stranger_crops_hours=None,
        strangers_hours=None,
        visit_look_seconds=None,
    )
    assert not off.enabled
    assert RetentionSettings(**{**off.model_dump(), "visit_look_seconds": 600}).enabled
    assert start_retention(world.job(off), off) is None


def test_dry_run_deletes_nothing(world: World, caplog: pytest.LogCaptureFixture) -> None:
    crops = populate(world)
    with caplog.at_level(logging.INFO, logger="facelens.people.retention"):
        report = world.job().run_once(NOW, dry_run=True)
    assert report.dry_run
    assert sorted(report.keys) == sorted(crops["due"])
    assert all(world.exists(k) for k in crops["due"])
    assert "retention: would delete 2 identified, 2 stranger crops" in caplog.text
    assert world.job().run_once(NOW).deleted == 4  # still due


class DownStore:
    """The object store, down for deletions until ``up`` is set."""

    def __init__(self, inner: LocalObjectStore) -> None:
        self.inner = inner
        self.up = False

    def delete_object(self, bucket: str, key: str) -> None:
        if not self.up:
            raise ServiceUnavailableException("the store is down")
        self.inner.delete_object(bucket, key)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_store_that_is_down_is_retried_next_run(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    crops = populate(world)
    store = DownStore(world.objects)
    job = world.job(objects=store)
    report = job.run_once(NOW)  # logs, does not raise
    assert report.failed == 1
    assert report.deleted == 0
    assert "ServiceUnavailableException" in caplog.text
    assert all(world.exists(k) for k in crops["due"])
    store.up = True
    assert job.run_once(NOW).deleted == 4
    assert [k for k in crops["due"] if world.exists(k)] == []


def test_claims_abandoned_long_ago_are_dropped_and_counted(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A claim no outcome ended (its worker crashed): a negative lease ended that long ago."""
    ledger = world.ledger
    assert ledger.claim("crashed", "host-a", lease_seconds=-(ABANDONED_CLAIM_S + 60))
    assert ledger.claim("lapsed", "host-a", lease_seconds=-(ABANDONED_CLAIM_S - 60))
    assert ledger.claim("held", "host-a", lease_seconds=60)
    job = world.job(RetentionSettings())  # whatever the crops' settings: the claims go
    due = job.run_once(NOW, dry_run=True)
    assert (due.abandoned_claims, due.as_json()["AbandonedClaims"]) == (1, 1)
    assert ledger.drop_abandoned_claims(0, dry_run=True) == 2  # a dry run dropped nothing
    with caplog.at_level(logging.INFO, logger="facelens.people.retention"):
        report = job.run_once(NOW)
    assert (report.abandoned_claims, report.deleted, report.failed) == (1, 0, 0)
    assert "strangers forgotten; 1 abandoned claims" in caplog.text
    assert ledger.drop_abandoned_claims(0, dry_run=True) == 1  # "lapsed" stays, for now
    assert job.run_once(NOW).abandoned_claims == 0
    assert not ledger.claim("held", "host-b", lease_seconds=60)


def test_more_than_one_batch(world: World) -> None:
    keys = [world.record(f"old-{i:02d}", Status.UNKNOWN, 20 + i) for i in range(7)]
    report = world.job(batch=3).run_once(NOW)
    assert report.strangers == 7
    assert sorted(report.keys) == sorted(keys)


def test_runner_runs_now_and_then_every_interval(world: World) -> None:
    populate(world)
    runner = RetentionRunner(world.job(), interval_seconds=0.05, clock=lambda: NOW)
    runner.start()
    deadline = time.monotonic() + 10
    while runner.runs < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    assert runner.runs >= 2
    assert not world.exists("faces/id-200h.jpg")


def test_a_run_that_deleted_something_is_audited(world: World, tmp_path: Path) -> None:
    from facelens.history.sqlite import SqliteAuditLog

    populate(world)
    audit = SqliteAuditLog(tmp_path / "audit.db")
    world.job(audit=audit).run_once(NOW)
    world.job(audit=audit).run_once(NOW)  # nothing deleted: nothing recorded
    [entry] = audit.entries(action="retention").entries
    assert entry.actor == "recognizer"
    assert entry.details == {
        "IdentifiedCrops": 2,
        "StrangerCrops": 2,
        "OrphanCrops": 0,
        "ForgottenStrangers": 0,
        "VisitLooks": 0,
    }
    audit.close()


def test_idle_visits_lose_their_looks_and_keep_their_answers(world: World, tmp_path: Path) -> None:
    visits = SqliteVisitLedger(tmp_path / "recognizer.db")  # beside the ledger, as wired
    try:
        now = datetime.now(UTC)
        old, recent = now - timedelta(seconds=900), now - timedelta(seconds=60)
        for rid, visit, at in (("a1", "gone", old), ("a2", "gone", old), ("b1", "here", recent)):
            visits.add_look(VisitLook(rid, visit, at, 0.5, b"\x01\x02"), keep=5)
        first = {"RecognitionId": "a1", "VisitId": "gone", "Revision": 0}
        answer = VisitAnswer("gone", 0, "a1", Status.UNKNOWN, first, "door", 2, old, old)
        assert visits.revise(answer, expected=None)
        job = world.job(RetentionSettings(visit_look_seconds=600), visits=visits)
        due = job.run_once(NOW, dry_run=True)
        assert (due.visit_looks, due.as_json()["VisitLooks"]) == (2, 2)
        assert job.run_once(NOW).visit_looks == 2
        assert job.run_once(NOW).visit_looks == 0
        assert visits.answer("gone") == answer  # the answer stays, as history
        assert [
            x.recognition_id for x in visits.add_look(VisitLook("b2", "here", now, 0.5), keep=5)
        ] == [
            "b1",
            "b2",
        ]
        kept = world.job(RetentionSettings(visit_look_seconds=None), visits=visits)
        assert kept.run_once(NOW + timedelta(days=1)).visit_looks == 0
    finally:
        visits.close()
