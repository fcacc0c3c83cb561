"""ObjectCreated events over a real Mosquitto: a consumer group that loses nothing.

Workers share ``$share/<group>/<topic>`` at QoS 1 with persistent sessions
and acknowledge by hand, so these tests check what that buys: each event to
one worker, an unacknowledged event back after the worker reconnects (even
across a broker restart), unreadable messages reported rather than raised,
``release`` bringing an event back, and Receive Maximum keeping a worker
from holding more than its share.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from facelens.bus.delivery import Delivery
from facelens.bus.mqtt_events import MqttEventSink, MqttEventSource
from facelens.bus.mqtt_publisher import MqttPublisher
from facelens.bus.spool import Spool
from facelens.storage.events import new_sequencer
from facelens.values.events import ObjectCreated
from tests.servers.mosquitto import MosquittoBroker

TOPIC = "facelens/events"
DEADLINE_S = 10.0


def event(n: int) -> ObjectCreated:
    return ObjectCreated(
        bucket="faces",
        key=f"cam-1/face {n}.jpg",
        size=1000 + n,
        etag=f"{n:032x}",
        sequencer=new_sequencer(),
        event_time=datetime.now(UTC),
    )


@pytest.fixture
def publisher(mqtt_broker: MosquittoBroker, tmp_path: Path) -> Iterator[MqttPublisher]:
    spool = Spool(tmp_path / "spool.db", fsync=False)
    started = MqttPublisher(mqtt_broker.endpoint("event-publisher"), spool=spool)
    started.start()
    yield started
    started.stop()
    spool.close()


@pytest.fixture
def sink(publisher: MqttPublisher) -> MqttEventSink:
    return MqttEventSink(publisher, TOPIC)


def open_source(
    broker: MosquittoBroker, client_id: str, *, receive_maximum: int = 4
) -> MqttEventSource:
    source = MqttEventSource(
        broker.endpoint(client_id), topic=TOPIC, receive_maximum=receive_maximum
    )
    assert source.wait_ready(DEADLINE_S), "no SUBACK for the shared subscription"
    return source


def receive_until(source: MqttEventSource, n: int, timeout: float = DEADLINE_S) -> list[Delivery]:
    """Deliveries from ``source`` (not acked) until there are ``n`` or ``timeout`` passed."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += source.receive(max_events=n - len(got), wait_seconds=0.1)
    return got


def keys(deliveries: list[Delivery]) -> list[str]:
    return [e.key for d in deliveries for e in d.events]


def test_two_workers_in_one_group_split_the_events_and_none_gets_one_twice(
    mqtt_broker: MosquittoBroker, sink: MqttEventSink
) -> None:
    first, second = open_source(mqtt_broker, "worker-1"), open_source(mqtt_broker, "worker-2")
    try:
        for n in range(20):
            sink.send(event(n))
        seen: dict[str, list[str]] = {"worker-1": [], "worker-2": []}
        deadline = time.monotonic() + DEADLINE_S
        while sum(map(len, seen.values())) < 20 and time.monotonic() < deadline:
            for name, source in (("worker-1", first), ("worker-2", second)):
                for delivery in source.receive(max_events=10, wait_seconds=0.05):
                    assert delivery.error is None
                    assert delivery.attempt == 1
                    seen[name] += keys([delivery])
                    source.ack(delivery)
        assert first.receive(wait_seconds=0.2) == []
        assert second.receive(wait_seconds=0.0) == []
    finally:
        first.close()
        second.close()
    one, two = seen["worker-1"], seen["worker-2"]
    assert sorted(one + two) == sorted(event(n).key for n in range(20))
    assert not set(one) & set(two), "an event went to both workers"
    assert one, "the group did not share the work"
    assert two, "the group did not share the work"


def test_an_unacked_event_comes_back_when_the_worker_reconnects(
    mqtt_broker: MosquittoBroker, sink: MqttEventSink
) -> None:
    worker = open_source(mqtt_broker, "worker-a")
    sink.send(event(1))
    (delivery,) = receive_until(worker, 1)
    assert delivery.attempt == 1
    assert delivery.events[0].key == "cam-1/face 1.jpg"
    worker.close()  # "killed" mid-event: no ack

    again = open_source(mqtt_broker, "worker-a")
    try:
        (redelivered,) = receive_until(again, 1)
        assert redelivered.events == delivery.events
        assert redelivered.raw == delivery.raw
        assert redelivered.attempt == 2  # the broker resent it with DUP set
        again.ack(redelivered)
    finally:
        again.close()

    after_ack = open_source(mqtt_broker, "worker-a")
    try:
        assert after_ack.receive(wait_seconds=0.3) == []
    finally:
        after_ack.close()


def test_an_unacked_event_survives_a_broker_restart(
    mqtt_broker: MosquittoBroker, sink: MqttEventSink
) -> None:
    worker = open_source(mqtt_broker, "worker-b")
    sink.send(event(7))
    (delivery,) = receive_until(worker, 1)
    worker.close()
    mqtt_broker.stop()
    mqtt_broker.start()
    again = open_source(mqtt_broker, "worker-b")
    try:
        (redelivered,) = receive_until(again, 1)
        assert redelivered.events == delivery.events
        again.ack(redelivered)
    finally:
        again.close()


def test_an_ack_made_while_the_broker_is_away_is_sent_when_it_is_back(
    mqtt_broker: MosquittoBroker, sink: MqttEventSink
) -> None:
    worker = open_source(mqtt_broker, "worker-f")
    try:
        sink.send(event(5))
        (delivery,) = receive_until(worker, 1)
        mqtt_broker.stop()
        deadline = time.monotonic() + DEADLINE_S
        while worker.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not worker.connected
        worker.ack(delivery)  # no connection: the PUBACK waits for the broker's resend
        mqtt_broker.start()
        assert worker.wait_ready(DEADLINE_S)
        # The broker resent the message on reconnect; it was acked, not handed out again.
        assert worker.receive(wait_seconds=0.3) == []
    finally:
        worker.close()
    reopened = open_source(mqtt_broker, "worker-f")
    try:
        assert reopened.receive(wait_seconds=0.3) == []
    finally:
        reopened.close()


def test_an_unreadable_message_is_a_delivery_with_an_error(
    mqtt_broker: MosquittoBroker, publisher: MqttPublisher
) -> None:
    worker = open_source(mqtt_broker, "worker-c")
    try:
        publisher.publish(TOPIC, b"not json {")
        (delivery,) = receive_until(worker, 1)
        assert delivery.events == ()
        assert delivery.raw == b"not json {"
        assert delivery.error is not None
        assert "JSON" in delivery.error
        worker.ack(delivery)
        assert worker.receive(wait_seconds=0.2) == []
    finally:
        worker.close()


def test_a_released_event_comes_back_with_its_attempt_counted(
    mqtt_broker: MosquittoBroker, sink: MqttEventSink
) -> None:
    worker = open_source(mqtt_broker, "worker-d")
    try:
        sink.send(event(3))
        (delivery,) = receive_until(worker, 1)
        worker.release(delivery)
        (back,) = receive_until(worker, 1)
        assert back.events == delivery.events
        assert back.attempt == 2
        worker.release(back)
        (third,) = receive_until(worker, 1)
        assert third.attempt == 3
        worker.ack(third)
        assert worker.receive(wait_seconds=0.3) == []
    finally:
        worker.close()
    # The original copies were acked: a reconnect brings nothing back.
    reopened = open_source(mqtt_broker, "worker-d")
    try:
        assert reopened.receive(wait_seconds=0.3) == []
    finally:
        reopened.close()


def test_receive_maximum_keeps_a_worker_from_holding_more_than_it_works_on(
    mqtt_broker: MosquittoBroker, sink: MqttEventSink
) -> None:
    worker = open_source(mqtt_broker, "worker-e", receive_maximum=2)
    try:
        for n in range(6):
            sink.send(event(n))
        held = receive_until(worker, 2)
        assert len(held) == 2
        assert worker.receive(wait_seconds=0.3) == [], "the broker sent past Receive Maximum"
        got = keys(held)
        while len(got) < 6:
            for delivery in held:
                worker.ack(delivery)
            held = receive_until(worker, 2)
            assert len(held) == 2
            got += keys(held)
        for delivery in held:
            worker.ack(delivery)
    finally:
        worker.close()
    assert got == [event(n).key for n in range(6)]
