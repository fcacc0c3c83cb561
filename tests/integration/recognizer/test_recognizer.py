"""The recognizer end to end: crop put in the store -> event -> search -> profile -> MQTT.

Real Mosquitto, real SQLite files, the real dlib engine, the production
wiring (:mod:`facelens.wiring`'s factories). Each test names the promise of
the issue it shows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from facelens.bus.mqtt_config import MqttCallbacks, connect_client
from facelens.config import EventSettings, RecognizerSettings
from facelens.history.ledger import Status
from facelens.storage.events import new_sequencer
from facelens.values.events import ObjectCreated
from tests.integration.recognizer.conftest import COLLECTION, OpenPipeline, Pipeline
from tests.servers.mosquitto import MosquittoBroker, Received, Subscriber


def payloads(messages: list[Received], topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in messages if m.topic == topic]


def on_topic(topic: str, count: int = 1) -> Any:
    return lambda ms: sum(m.topic == topic for m in ms) >= count


def wait_drained(pipeline: Pipeline, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while pipeline.outbox().pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pipeline.outbox().pending() == 0


def test_known_face_is_published_with_its_profile_within_two_seconds(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, crops: dict[str, bytes]
) -> None:
    p = open_pipeline(mqtt_broker.url)
    p.wired.recognizer.recognizer.prepare()
    p.start_worker()
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        started = time.monotonic()
        key = p.put_crop(crops["obama"], camera="front-door")
        seen = sub.wait_until(on_topic("rekognition"), timeout=15)
        elapsed = time.monotonic() - started
        key2 = p.put_crop(crops["brad"], camera="garage")
        seen = sub.wait_until(on_topic("rekognition", 2), timeout=15)
    obama, brad = payloads(seen, "rekognition")
    assert elapsed < 2.0, f"identification took {elapsed:.2f} s"
    assert obama["Name"] == "Barack Obama"
    assert obama["Role"] == "44th President"
    assert obama["UserId"] == "obama"
    assert obama["FaceId"] == p.faces["obama"]
    assert obama["ExternalImageId"] == "obama_1.jpg"
    assert obama["Similarity"] >= 80
    assert obama["Bucket"] == "facelens"
    assert obama["Key"] == key
    assert obama["Camera"] == "front-door"
    assert obama["CapturedAt"]
    assert obama["RecognizedAt"]
    assert obama["RecognitionId"]
    assert set(obama["BoundingBox"]) == {"Width", "Height", "Left", "Top"}
    # A face-only enrolment: the profile is keyed by the FaceId, there is no user.
    assert brad["Name"] == "Brad Pitt"
    assert brad["FaceId"] == p.faces["brad"]
    assert brad["UserId"] is None
    assert brad["Key"] == key2
    assert brad["Camera"] == "garage"
    assert not payloads(seen, "rekognition/unknown")


def test_a_stranger_is_published_as_unknown(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, crops: dict[str, bytes]
) -> None:
    p = open_pipeline(mqtt_broker.url)
    p.start_worker()
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        key = p.put_crop(crops["biden"])
        seen = sub.wait_until(on_topic("rekognition/unknown"), timeout=15)
    (unknown,) = payloads(seen, "rekognition/unknown")
    assert unknown["Key"] == key
    assert unknown["Status"] == "unknown"
    assert 0 < unknown["BoundingBox"]["Width"] <= 1
    assert not payloads(seen, "rekognition")
    (recorded,) = p.wired.stores.history.ledger.recent(status=Status.UNKNOWN)
    assert recorded.key == key


def test_bad_objects_are_dead_lettered_and_the_worker_goes_on(
    open_pipeline: OpenPipeline,
    mqtt_broker: MosquittoBroker,
    crops: dict[str, bytes],
    testdata: Path,
) -> None:
    p = open_pipeline(mqtt_broker.url)
    p.start_worker()
    bad = {
        "faces/bad/corrupt.jpg": b"\xff\xd8\xff\xe0 this is not really a jpeg",
        "faces/bad/empty.jpg": b"",
        "faces/bad/truncated.jpg": crops["obama"][: len(crops["obama"]) // 3],
        "faces/bad/noface.jpg": (testdata / "noface" / "compreface_no-faces.jpg").read_bytes(),
    }
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        for key, body in bad.items():
            p.put_crop(body, key=key)
        good = p.put_crop(crops["obama"])
        seen = sub.wait_until(
            lambda ms: on_topic("rekognition/errors", 4)(ms) and on_topic("rekognition")(ms),
            timeout=20,
        )
    errors = {m["Key"]: m["Error"]["Code"] for m in payloads(seen, "rekognition/errors")}
    assert errors == {
        "faces/bad/corrupt.jpg": "InvalidImageFormatException",
        "faces/bad/empty.jpg": "InvalidImageFormatException",
        "faces/bad/truncated.jpg": "InvalidImageFormatException",
        "faces/bad/noface.jpg": "InvalidParameterException",
    }
    assert payloads(seen, "rekognition")[0]["Key"] == good
    dead = {r.key: r.reason for r in p.wired.stores.history.ledger.dead_letters()}
    assert dead == errors
    assert p.workers[0].stats.dead_letters == 4


def test_keys_outside_the_crop_prefix_or_suffix_are_ignored(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, crops: dict[str, bytes]
) -> None:
    p = open_pipeline(mqtt_broker.url)
    p.start_worker()
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        p.put_crop(crops["obama"], key="snapshots/obama.jpg")
        p.put_crop(crops["obama"], key="faces/obama.png")
        key = p.put_crop(crops["obama"])
        seen = sub.wait_until(on_topic("rekognition"), timeout=15)
        time.sleep(0.3)  # anything else would have been published with the one above
        seen = sub.messages
    assert [m["Key"] for m in payloads(seen, "rekognition")] == [key]
    assert len(seen) == 1


def test_a_duplicate_event_publishes_once(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, crops: dict[str, bytes]
) -> None:
    p = open_pipeline(mqtt_broker.url)
    p.start_worker()
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        key = p.put_crop(crops["obama"])
        first = sub.wait_until(on_topic("rekognition"), timeout=15)
        info = p.wired.stores.objects.head_object("facelens", key)
        again = ObjectCreated(
            bucket="facelens",
            key=key,
            size=info.size,
            etag=info.etag,
            sequencer=new_sequencer(),
            event_time=info.last_modified,
        )
        p.outbox().send(again)
        p.outbox().send(again)
        wait_drained(p)
        p.wired.publication.publisher.flush(5)  # type: ignore[attr-defined]
        time.sleep(0.3)
        seen = sub.messages
    assert len(payloads(first, "rekognition")) == 1
    assert len(payloads(seen, "rekognition")) == 1
    assert p.workers[0].stats.duplicates == 2
    assert len(p.wired.stores.history.ledger.recent()) == 1


def test_stopping_the_broker_mid_run_loses_no_message(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, crops: dict[str, bytes]
) -> None:
    p = open_pipeline(mqtt_broker.url)
    p.start_worker()
    received: list[dict[str, Any]] = []
    lock = threading.Condition()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        with lock:
            received.append(json.loads(message.payload))
            lock.notify_all()

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe("rekognition", qos=1)

    # A persistent session: the broker keeps its subscription and queued messages over restarts.
    client = connect_client(
        mqtt_broker.endpoint("durable-subscriber"),
        clean_session=False,
        callbacks=MqttCallbacks(on_connect=on_connect, on_message=on_message),
    )

    def wait_count(n: int) -> list[dict[str, Any]]:
        """Messages once ``n`` distinct identifications arrived. QoS 1 is at least once: a
        message in flight when the broker stopped may come twice, with the same id."""
        with lock:
            lock.wait_for(lambda: len({m["RecognitionId"] for m in received}) >= n, timeout=30)
            return list(received)

    try:
        time.sleep(0.5)
        keys = [p.put_crop(crops["obama"]) for _ in range(3)]
        assert len({m["Key"] for m in wait_count(3)}) == 3
        mqtt_broker.stop()
        keys += [p.put_crop(crops["brad"] if i % 2 else crops["obama"]) for i in range(4)]
        wait_drained(p)  # all processed and published into the spool while the broker is down
        mqtt_broker.start()
        got = wait_count(7)
    finally:
        client.disconnect()
        client.loop_stop()
    by_id = {m["RecognitionId"]: m["Key"] for m in got}
    assert sorted(by_id.values()) == sorted(keys)  # every crop, each under one id
    assert len(by_id) == 7


def test_two_workers_on_one_shared_subscription_split_the_events(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, crops: dict[str, bytes]
) -> None:
    mqtt_events = EventSettings(source="mqtt")  # type: ignore[arg-type]
    first = open_pipeline(mqtt_broker.url, events=mqtt_events)
    second = open_pipeline(
        mqtt_broker.url,
        events=mqtt_events,
        recognizer=RecognizerSettings(collection_id=COLLECTION, worker_id="recognizer-2"),
    )
    for p in (first, second):
        source = p.event_source()
        assert source.wait_ready(10)  # type: ignore[attr-defined]
        p.start_worker()
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        bodies = [crops["obama"], crops["brad"], crops["biden"]]
        keys = [first.put_crop(bodies[i % 3]) for i in range(12)]
        seen = sub.wait_for(12, timeout=60)
    done = [json.loads(m.payload)["Key"] for m in seen]
    assert sorted(done) == sorted(keys)  # every event once: none lost, none done twice
    a, b = first.workers[0].stats, second.workers[0].stats
    deadline = time.monotonic() + 5  # a worker counts an event just after publishing it
    while a.events + b.events < 12 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert a.events + b.events == 12
    assert a.events > 0
    assert b.events > 0
    assert a.duplicates == b.duplicates == 0


def test_a_malformed_event_message_is_dead_lettered(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, crops: dict[str, bytes]
) -> None:
    p = open_pipeline(mqtt_broker.url, events=EventSettings(source="mqtt"))  # type: ignore[arg-type]
    assert p.event_source().wait_ready(10)  # type: ignore[attr-defined]
    p.start_worker()
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        assert p.wired.publication.broker is not None
        p.wired.publication.broker.publish("facelens/events", b"{not json")
        key = p.put_crop(crops["obama"])
        seen = sub.wait_until(
            lambda ms: on_topic("rekognition/errors")(ms) and on_topic("rekognition")(ms),
            timeout=20,
        )
    (error,) = payloads(seen, "rekognition/errors")
    assert error["Error"]["Code"] == "InvalidEventException"
    assert payloads(seen, "rekognition")[0]["Key"] == key


LEASE_AND_HANG = textwrap.dedent(
    """
    import sys, time
    from facelens.bus.outbox import SqliteOutbox
    outbox = SqliteOutbox(sys.argv[1], worker_id="recognizer-1")
    taken = outbox.receive(max_events=1, wait_seconds=10)
    print(len(taken), flush=True)
    time.sleep(600)
    """
)


def test_a_worker_killed_mid_event_has_it_redone_after_restart(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, crops: dict[str, bytes]
) -> None:
    p = open_pipeline(mqtt_broker.url)
    key = p.put_crop(crops["obama"])
    outbox_file = p.wired.settings.home / "events.db"
    # A worker process (same worker id) takes the event, then dies before acking it.
    doomed = subprocess.Popen(
        [sys.executable, "-c", LEASE_AND_HANG, str(outbox_file)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert doomed.stdout is not None
    assert doomed.stdout.readline().strip() == "1"
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    assert p.outbox().pending() == 1  # leased, not lost
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        p.start_worker()  # the restart: same worker id, so it takes its lease back at once
        seen = sub.wait_until(on_topic("rekognition"), timeout=15)
    (message,) = payloads(seen, "rekognition")
    assert message["Key"] == key
    # The worker counts an identification once its publish is in the spool, which can be
    # after the broker has delivered it to us: give the count a moment to follow.
    deadline = time.monotonic() + 5
    while p.workers[0].stats.identified < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.workers[0].stats.identified == 1
