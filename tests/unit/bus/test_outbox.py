"""The SQLite outbox as an event source: leases, visibility, release, reclaim, many workers.

Why these cases: the outbox promises SQS's semantics on one host (at least
once, never to two workers at once while a lease holds), and a restarted
worker must redo what it died holding right away rather than after the
timeout. Timeouts here are fractions of a second; every wait is a receive
with a deadline, never a sleep.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from facelens.bus.delivery import Delivery
from facelens.bus.outbox import SqliteOutbox
from facelens.values.events import ObjectCreated

SHORT = 0.3
"""A visibility timeout / retry delay (seconds) short enough to wait out in a test."""


def event(n: int) -> ObjectCreated:
    return ObjectCreated(
        bucket="faces",
        key=f"faces/cam 1/{n:04d} é.jpg",
        size=100 + n,
        etag=f"{n:032x}",
        sequencer=f"{n:018X}",
        event_time=datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC),
    )


def keys(deliveries: list[Delivery]) -> list[str]:
    return [e.key for d in deliveries for e in d.events]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def outbox(db: Path) -> Iterator[SqliteOutbox]:
    box = SqliteOutbox(db, worker_id="w1", visibility_timeout=60, retry_delay=0)
    yield box
    box.close()


def test_send_receive_ack_round_trips_the_event(outbox: SqliteOutbox) -> None:
    sent = [event(n) for n in range(3)]
    for e in sent:
        outbox.send(e)
    assert outbox.pending() == 3
    deliveries = outbox.receive(max_events=10, wait_seconds=0)
    assert [d.events for d in deliveries] == [(e,) for e in sent], "one event per row, as sent"
    assert all(d.attempt == 1 and d.error is None for d in deliveries)
    assert all(b'"Records"' in d.raw for d in deliveries), "rows hold S3's own event JSON"
    assert len({d.delivery_id for d in deliveries}) == 3
    assert outbox.pending() == 3, "leased events are still pending until acked"
    for d in deliveries:
        outbox.ack(d)
    assert outbox.pending() == 0
    assert outbox.receive(wait_seconds=0) == []


def test_events_come_out_first_in_first_out(outbox: SqliteOutbox) -> None:
    for n in range(7):
        outbox.send(event(n))
    seen: list[str] = []
    for _ in range(4):
        batch = outbox.receive(max_events=2, wait_seconds=0)
        assert len(batch) <= 2
        seen += keys(batch)
    assert seen == [event(n).key for n in range(7)]


def test_a_non_positive_max_events_still_takes_one(outbox: SqliteOutbox) -> None:
    for n in range(3):
        outbox.send(event(n))
    assert keys(outbox.receive(max_events=0, wait_seconds=0)) == [event(0).key]
    assert keys(outbox.receive(max_events=-1, wait_seconds=0)) == [event(1).key]


def test_a_leased_event_is_not_received_again(outbox: SqliteOutbox) -> None:
    outbox.send(event(1))
    (first,) = outbox.receive(wait_seconds=0)
    started = time.monotonic()
    assert outbox.receive(wait_seconds=0.2) == []
    assert time.monotonic() - started >= 0.2, "waited the whole wait for nothing"
    outbox.ack(first)
    assert outbox.pending() == 0


def test_an_expired_lease_makes_the_event_visible_again(db: Path) -> None:
    box = SqliteOutbox(db, worker_id="w1", visibility_timeout=SHORT)
    box.send(event(1))
    (first,) = box.receive(wait_seconds=0)
    leased_at = time.monotonic()
    assert box.receive(wait_seconds=0) == []
    (again,) = box.receive(wait_seconds=5)
    assert time.monotonic() - leased_at >= SHORT * 0.9
    assert again.delivery_id == first.delivery_id
    assert again.events == first.events
    assert again.attempt == 2, "attempt counts deliveries"
    box.ack(again)
    assert box.pending() == 0
    box.close()


def test_release_makes_the_event_visible_after_the_retry_delay(db: Path) -> None:
    box = SqliteOutbox(db, worker_id="w1", visibility_timeout=60, retry_delay=SHORT)
    box.send(event(1))
    (first,) = box.receive(wait_seconds=0)
    box.release(first)
    released_at = time.monotonic()
    assert box.receive(wait_seconds=0) == [], "not at once: a store that is down is not hammered"
    (again,) = box.receive(wait_seconds=5)
    assert time.monotonic() - released_at >= SHORT * 0.9
    assert (again.delivery_id, again.attempt) == (first.delivery_id, 2)
    box.close()


def test_release_with_no_retry_delay_is_visible_at_once(outbox: SqliteOutbox) -> None:
    outbox.send(event(1))
    (first,) = outbox.receive(wait_seconds=0)
    outbox.release(first)
    (again,) = outbox.receive(wait_seconds=0)
    assert (again.delivery_id, again.attempt) == (first.delivery_id, 2)


def test_a_restarted_worker_reclaims_its_own_leases_on_its_first_receive(db: Path) -> None:
    dead = SqliteOutbox(db, worker_id="w1", visibility_timeout=60)
    for n in range(3):
        dead.send(event(n))
    held = dead.receive(max_events=2, wait_seconds=0)
    assert keys(held) == [event(0).key, event(1).key]
    dead.close()  # "dies" holding two leases

    other = SqliteOutbox(db, worker_id="w2", visibility_timeout=60)
    assert keys(other.receive(max_events=10, wait_seconds=0)) == [event(2).key]
    assert other.receive(wait_seconds=0) == [], "another worker's leases still hold"

    restarted = SqliteOutbox(db, worker_id="w1", visibility_timeout=60)
    redone = restarted.receive(max_events=10, wait_seconds=0)
    assert keys(redone) == [event(0).key, event(1).key]
    assert [d.attempt for d in redone] == [2, 2]
    assert [d.delivery_id for d in redone] == [d.delivery_id for d in held]
    assert restarted.receive(wait_seconds=0) == [], "only the first receive reclaims"
    assert other.receive(wait_seconds=0) == []
    for box in (restarted, other):
        box.close()


def test_another_workers_leases_come_back_only_after_they_expire(db: Path) -> None:
    holder = SqliteOutbox(db, worker_id="w1", visibility_timeout=SHORT)
    holder.send(event(1))
    (held,) = holder.receive(wait_seconds=0)
    leased_at = time.monotonic()

    other = SqliteOutbox(db, worker_id="w2", visibility_timeout=60)
    assert other.receive(wait_seconds=0) == []
    (taken,) = other.receive(wait_seconds=5)
    assert time.monotonic() - leased_at >= SHORT * 0.9
    assert (taken.delivery_id, taken.attempt) == (held.delivery_id, 2)
    assert holder.receive(wait_seconds=0) == [], "now leased to w2"
    for box in (holder, other):
        box.close()


def test_a_malformed_row_comes_out_as_a_delivery_with_an_error(
    outbox: SqliteOutbox, db: Path
) -> None:
    outbox.send(event(1))  # creates the schema
    with sqlite3.connect(db) as raw:
        raw.execute(
            "INSERT INTO outbox (body, enqueued_at, visible_at) VALUES (?, ?, ?)",
            ("{not json", time.time(), time.time()),
        )
        raw.execute(
            "INSERT INTO outbox (body, enqueued_at, visible_at) VALUES (?, ?, ?)",
            ('{"Records": [{"eventName": "ObjectCreated:Put"}]}', time.time(), time.time()),
        )
    raw.close()
    good, not_json, incomplete = outbox.receive(max_events=10, wait_seconds=0)
    assert good.error is None
    assert good.events == (event(1),)
    assert not_json.events == ()
    assert not_json.raw == b"{not json"
    assert not_json.error is not None
    assert "not JSON" in not_json.error
    assert incomplete.events == ()
    assert incomplete.error is not None
    assert "s3 is missing" in incomplete.error
    for d in (good, not_json, incomplete):
        outbox.ack(d)
    assert outbox.pending() == 0


def test_receive_returns_early_when_another_thread_sends(outbox: SqliteOutbox) -> None:
    sender = threading.Timer(0.2, outbox.send, args=(event(1),))
    started = time.monotonic()
    sender.start()
    try:
        deliveries = outbox.receive(wait_seconds=10)
    finally:
        sender.join()
    assert keys(deliveries) == [event(1).key]
    assert time.monotonic() - started < 5, "woken by the send, not by the end of the wait"


def test_receive_sees_rows_written_by_another_outbox_object(outbox: SqliteOutbox, db: Path) -> None:
    writer = SqliteOutbox(db, worker_id="store")
    sender = threading.Timer(0.2, writer.send, args=(event(1),))
    started = time.monotonic()
    sender.start()
    try:
        deliveries = outbox.receive(wait_seconds=10)
    finally:
        sender.join()
        writer.close()
    assert keys(deliveries) == [event(1).key]
    assert time.monotonic() - started < 5, "found by polling, long before the wait ran out"


def _drain(path: str, worker_id: str, barrier: Any, results: Any) -> None:
    """A worker process: take and ack events until none is visible (all were sent beforehand)."""
    box = SqliteOutbox(path, worker_id=worker_id, visibility_timeout=60)
    taken: list[str] = []
    barrier.wait(30)
    while batch := box.receive(max_events=3, wait_seconds=0.2):
        for delivery in batch:
            taken += [e.key for e in delivery.events]
            box.ack(delivery)
    box.close()
    results.put((worker_id, taken))


def test_two_processes_draining_one_outbox_share_the_events_without_overlap(db: Path) -> None:
    box = SqliteOutbox(db)
    sent = [event(n).key for n in range(150)]
    for n in range(150):
        box.send(event(n))
    box.close()

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_drain, args=(str(db), f"p{i}", barrier, results)) for i in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        taken = dict(results.get(timeout=30) for _ in workers)
    finally:
        for worker in workers:
            worker.join(10)
    assert [worker.exitcode for worker in workers] == [0, 0]
    first, second = taken["p0"], taken["p1"]
    assert not set(first) & set(second), "no event went to both workers"
    assert sorted(first + second) == sorted(sent), "every event went to one of them"
    assert len(first) + len(second) == len(sent), "and exactly once"
    assert first == sorted(first), "each saw them in FIFO order"
    assert second == sorted(second)
    reopened = SqliteOutbox(db)
    assert reopened.pending() == 0
    reopened.close()
