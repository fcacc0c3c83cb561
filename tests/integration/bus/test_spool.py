"""The outgoing-message spool: FIFO order, the bound (oldest dropped), and surviving a reopen."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from facelens.bus.spool import OutgoingMessage, Spool
from facelens.errors import InvalidParameterException, StorageError


def message(n: int, *, qos: int = 1, retain: bool = False) -> OutgoingMessage:
    return OutgoingMessage(f"t/{n}", f"payload {n}".encode(), qos=qos, retain=retain)


def test_messages_come_out_in_the_order_they_went_in(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    ids = [spool.put(message(n)) for n in range(5)]
    assert ids == sorted(ids)
    assert len(spool) == 5
    peeked = spool.peek(3)
    assert [item.message.topic for item in peeked] == ["t/0", "t/1", "t/2"]
    assert [item.id for item in peeked] == ids[:3]
    assert len(spool) == 5, "peek leaves messages in place"
    spool.remove(item.id for item in peeked)
    assert [item.message.topic for item in spool.peek(10)] == ["t/3", "t/4"]
    spool.remove([ids[0], 999_999])  # already gone / never there: ignored
    assert len(spool) == 2
    spool.close()


def test_fields_round_trip(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.put(OutgoingMessage("a/b", b"\x00\xffbin", qos=0, retain=True))
    (item,) = spool.peek(1)
    assert item.message.topic == "a/b"
    assert item.message.payload == b"\x00\xffbin"
    assert item.message.qos == 0
    assert item.message.retain is True
    assert item.message.enqueued_at > 1_600_000_000  # stamped on put, Unix seconds
    spool.close()


def test_a_full_spool_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_messages=3, fsync=False)
    for n in range(5):
        spool.put(message(n))
    assert len(spool) == 3
    assert spool.dropped == 2
    assert [item.message.topic for item in spool.peek(10)] == ["t/2", "t/3", "t/4"]
    spool.close()


def test_the_spool_survives_a_reopen_and_ids_keep_growing(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path, max_messages=2)
    for n in range(3):
        spool.put(message(n))
    last_id = spool.put(message(3))
    spool.close()

    reopened = Spool(path, max_messages=2)
    assert [item.message.topic for item in reopened.peek(10)] == ["t/2", "t/3"]
    assert reopened.dropped == 2
    reopened.remove(item.id for item in reopened.peek(10))
    assert len(reopened) == 0
    assert reopened.put(message(4)) > last_id, "an emptied spool never reuses an id"
    reopened.close()


def test_threads_can_put_at_the_same_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", fsync=False)

    def put_many(base: int) -> None:
        for n in range(50):
            spool.put(message(base + n))

    threads = [threading.Thread(target=put_many, args=(1000 * t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(spool) == 200
    topics = [item.message.topic for item in spool.peek(1000)]
    for t in range(4):
        mine = [topic for topic in topics if topic.startswith(f"t/{t}") and len(topic) == 6]
        assert mine == sorted(mine, key=lambda topic: int(topic[2:])), "each thread's order kept"
    spool.close()


def test_bad_messages_and_use_after_close_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterException):
        OutgoingMessage("a/#", b"x")
    with pytest.raises(InvalidParameterException):
        OutgoingMessage("a", b"x", qos=3)
    with pytest.raises(InvalidParameterException):
        Spool(tmp_path / "spool.db", max_messages=0)
    spool = Spool(tmp_path / "spool.db")
    spool.close()
    with pytest.raises(StorageError):
        spool.put(message(1))
