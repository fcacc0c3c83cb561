"""The spool-backed publisher against a real Mosquitto: delivery, outages, availability."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.bus.mqtt_publisher import MqttPublisher
from facelens.bus.spool import Spool
from tests.servers.mosquitto import MosquittoBroker, Subscriber

DEADLINE_S = 15.0


def wait_until(condition: object, timeout: float = DEADLINE_S) -> bool:
    """Poll ``condition()`` every 10 ms until it is true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    opened = Spool(tmp_path / "spool.db", fsync=False)
    yield opened
    opened.close()


def test_published_messages_reach_a_subscriber_in_order(
    mqtt_broker: MosquittoBroker, spool: Spool
) -> None:
    with Subscriber(mqtt_broker, "cams/#") as subscriber:
        publisher = MqttPublisher(mqtt_broker.endpoint(), spool=spool)
        publisher.start()
        try:
            for n in range(10):
                publisher.publish("cams/1/labels", f"m{n}".encode())
            publisher.publish("cams/1/json", {"FaceId": "abc", "Similarity": 99.5})
            assert publisher.flush(DEADLINE_S)
            got = subscriber.wait_for(11)
        finally:
            publisher.stop()
    assert [m.payload for m in got[:10]] == [f"m{n}".encode() for n in range(10)]
    assert json.loads(got[10].payload) == {"FaceId": "abc", "Similarity": 99.5}
    assert all(m.qos == 1 for m in got)
    stats = publisher.stats
    assert (stats.published, stats.pending, stats.dropped) == (11, 0, 0)


def test_publish_now_sends_only_while_connected_and_never_spools(
    mqtt_broker: MosquittoBroker, spool: Spool
) -> None:
    publisher = MqttPublisher(mqtt_broker.endpoint(), spool=spool)
    assert not publisher.publish_now("cams/1/labels", {"face": 0.9})  # not started: dropped
    with Subscriber(mqtt_broker, "cams/#") as subscriber:
        publisher.start()
        try:
            assert wait_until(lambda: publisher.connected)
            assert publisher.publish_now("cams/1/labels", {"face": 0.97})
            [got] = subscriber.wait_for(1)
            mqtt_broker.stop()
            assert wait_until(lambda: not publisher.connected)
            assert not publisher.publish_now("cams/1/labels", {"face": 0.5})
        finally:
            publisher.stop(timeout=1)
    assert json.loads(got.payload) == {"face": 0.97}
    assert got.qos == 0
    assert len(spool) == 0


def test_messages_published_while_the_broker_is_down_all_arrive_in_order(
    mqtt_broker: MosquittoBroker, spool: Spool
) -> None:
    # A persistent subscriber: the broker keeps its subscription and queues for it across the
    # restart, so what it sees is exactly what the publisher delivered.
    subscriber = Subscriber(mqtt_broker, "out/#", client_id="sub-outage", clean_session=False)
    publisher = MqttPublisher(mqtt_broker.endpoint(), spool=spool)
    publisher.start()
    try:
        assert wait_until(lambda: publisher.connected)
        publisher.publish("out/x", b"before")
        assert publisher.flush(DEADLINE_S)

        mqtt_broker.stop()
        assert wait_until(lambda: not publisher.connected)
        for n in range(50):
            publisher.publish("out/x", f"down {n}".encode())  # returns at once: spooled
        assert publisher.stats.pending == 50
        mqtt_broker.start()

        assert publisher.flush(DEADLINE_S)
        got = subscriber.wait_for(51)
    finally:
        publisher.stop()
        subscriber.close()
    assert [m.payload for m in got] == [b"before"] + [f"down {n}".encode() for n in range(50)]
    assert publisher.stats.published == 51


def test_a_publisher_started_while_the_broker_is_down_sends_once_it_is_up(
    mqtt_broker: MosquittoBroker, spool: Spool
) -> None:
    # A persistent subscription made now, while the broker is up, queues what arrives later.
    Subscriber(mqtt_broker, "late/#", client_id="late-sub", clean_session=False).close()
    mqtt_broker.stop()
    publisher = MqttPublisher(mqtt_broker.endpoint(), spool=spool)
    publisher.start()
    try:
        publisher.publish("late/x", b"waited")
        assert not publisher.flush(0.2)
        assert not publisher.connected
        mqtt_broker.start()
        assert publisher.flush(DEADLINE_S)
    finally:
        publisher.stop()
    with Subscriber(mqtt_broker, "late/#", client_id="late-sub", clean_session=False) as sub:
        assert [m.payload for m in sub.wait_for(1)] == [b"waited"]


def test_availability_is_online_while_connected_and_offline_after_stop(
    mqtt_broker: MosquittoBroker, spool: Spool
) -> None:
    topic = "things/cam-1/status"
    publisher = MqttPublisher(mqtt_broker.endpoint(), spool=spool, availability_topic=topic)
    with Subscriber(mqtt_broker, topic) as subscriber:
        publisher.start()
        assert [m.payload for m in subscriber.wait_for(1)] == [b"online"]
        with Subscriber(mqtt_broker, topic) as late:  # the broker has it by now: retained
            assert [(m.payload, m.retain) for m in late.wait_for(1)] == [(b"online", True)]
        publisher.stop()
        assert [m.payload for m in subscriber.wait_for(2)] == [b"online", b"offline"]
    with Subscriber(mqtt_broker, topic) as late:
        assert [(m.payload, m.retain) for m in late.wait_for(1)] == [(b"offline", True)]


PUBLISHER_PROCESS = """
import sys, time
from pathlib import Path
from facelens.bus.mqtt_config import MqttEndpoint
from facelens.bus.mqtt_publisher import MqttPublisher
from facelens.bus.spool import Spool

url, topic, spool_path = sys.argv[1:4]
endpoint = MqttEndpoint.from_url(url, client_id="doomed-publisher")
publisher = MqttPublisher(endpoint, spool=Spool(Path(spool_path)), availability_topic=topic)
publisher.start()
publisher.publish(topic + "/data", b"hello")
publisher.flush(10)
print("ready", flush=True)
time.sleep(60)
"""


def test_the_last_will_says_offline_when_the_publisher_process_is_killed(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    topic = "things/doomed/status"
    with Subscriber(mqtt_broker, "things/doomed/#") as subscriber:
        process = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER_PROCESS, mqtt_broker.url, topic, str(tmp_path / "s")],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            seen = subscriber.wait_until(
                lambda ms: (
                    {(m.topic, m.payload) for m in ms}
                    >= {(topic, b"online"), (topic + "/data", b"hello")}
                )
            )
            assert (topic, b"online") in [(m.topic, m.payload) for m in seen]
            os.kill(process.pid, signal.SIGKILL)
            process.wait(DEADLINE_S)
            got = subscriber.wait_until(lambda ms: ms[-1].payload == b"offline")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
    assert got[-1].topic == topic
    assert got[-1].payload == b"offline"
    with Subscriber(mqtt_broker, topic) as late:
        assert [(m.payload, m.retain) for m in late.wait_for(1)] == [(b"offline", True)]


def test_a_full_spool_drops_the_oldest_while_the_broker_is_away(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "small.db", max_messages=5, fsync=False)
    subscriber = Subscriber(mqtt_broker, "small/#", client_id="sub-small", clean_session=False)
    mqtt_broker.stop()
    publisher = MqttPublisher(mqtt_broker.endpoint(), spool=spool)
    publisher.start()
    try:
        for n in range(8):
            publisher.publish("small/x", f"{n}".encode())
        assert (publisher.stats.pending, publisher.stats.dropped) == (5, 3)
        mqtt_broker.start()
        assert publisher.flush(DEADLINE_S)
        got = subscriber.wait_for(5)
    finally:
        publisher.stop()
        subscriber.close()
        spool.close()
    assert [m.payload for m in got] == [f"{n}".encode() for n in range(3, 8)]


def test_an_unsendable_spooled_message_is_dropped_without_blocking_the_rest(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    path = tmp_path / "spool.db"
    made = Spool(path)
    assert len(made) == 0  # the file and its tables exist from the first use
    made.close()
    with sqlite3.connect(path) as conn:  # as an older version might have left it
        conn.execute(
            "INSERT INTO messages (topic, payload, qos, retain, enqueued_at)"
            " VALUES ('bad/#', x'00', 1, 0, 0)"
        )
    conn.close()
    spool = Spool(path, fsync=False)
    with Subscriber(mqtt_broker, "good/#") as subscriber:
        publisher = MqttPublisher(mqtt_broker.endpoint(), spool=spool)
        publisher.start()
        try:
            publisher.publish("good/x", b"behind it")
            assert publisher.flush(DEADLINE_S)
            assert [m.payload for m in subscriber.wait_for(1)] == [b"behind it"]
            assert (publisher.stats.published, publisher.stats.dropped) == (1, 1)
        finally:
            publisher.stop()
            spool.close()
