"""Two recognizer hosts on one PostgreSQL and one broker share one history.

Each host is a real ``facelens recognizer`` process with a home of its own;
both name the same PostgreSQL database (collections, profiles, ledger, audit
log) and the same bucket. Each takes events in a shared-subscription group of
its own, so every ObjectCreated event the object store sends reaches both:
a duplicate S3 notification delivered to two hosts, every time. Each event
must still be published once (the ledger's claim), and both hosts' HTTP APIs
must serve the same identifications and the same strangers' sightings.
Without PostgreSQL or Mosquitto this skips on a laptop and fails in CI
(tests/servers/).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest
import requests

from facelens.bus.mqtt_events import MqttEventSource
from facelens.collection.analysis import FaceAnalyzer
from facelens.config import EventSettings, MqttSettings, RecognizerSettings, ServeSettings, Settings
from facelens.engine.protocol import FaceEngine
from facelens.storage.crops import CropMetadata
from tests.servers.facelens_api import ApiServer, start_server
from tests.servers.mosquitto import MosquittoBroker, Subscriber
from tests.wired import Wired, open_wired

COLLECTION = "faces"
EVENTS_TOPIC = "facelens/events"
CLIENT_PREFIX = "facelens"
START_TIMEOUT_S = 60.0
"""A host loads its engine (a second or two) before it takes events; CI machines are slow."""
DONE_TIMEOUT_S = 30.0


@dataclass
class Host:
    """One ``facelens recognizer`` process; its log lines are read as they come."""

    name: str
    home: Path
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def read(self, stream: IO[str]) -> None:
        for line in stream:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_for(self, text: str, count: int = 1, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while sum(text in line for line in self.lines) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    log = "\n".join(self.lines)
                    raise AssertionError(f"{self.name}: no {text!r} x{count} in its log:\n{log}")
                self.changed.wait(min(left, 0.2))

    def count(self, text: str) -> int:
        with self.changed:
            return sum(text in line for line in self.lines)

    def stop(self) -> dict[str, int]:
        """SIGTERM: the worker finishes the event in hand, flushes, prints its counts."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=DONE_TIMEOUT_S)  # stderr is read by our thread, not here
        assert self.process.returncode == 0, "\n".join(self.lines)
        assert self.process.stdout is not None
        stats: dict[str, int] = json.loads(self.process.stdout.read())
        return stats


def _settings(home: Path, postgres_db: str, bucket: Path, broker: MosquittoBroker) -> Settings:
    return Settings(
        home=home,
        models_dir=None,
        collections_url=postgres_db,
        objects_url=f"file://{bucket}",
        mqtt=MqttSettings(url=broker.url, client_id=CLIENT_PREFIX),
        events=EventSettings(source="mqtt", topic=EVENTS_TOPIC),  # type: ignore[arg-type]
        recognizer=RecognizerSettings(collection_id=COLLECTION),
        serve=ServeSettings(port=0),
    )


def _environment(
    name: str, home: Path, postgres_db: str, bucket: Path, broker: MosquittoBroker
) -> dict[str, str]:
    kept = ("FACELENS_TESTDATA", "FACELENS_MODELS_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACELENS_") or k in kept}
    return {
        **env,
        "FACELENS_HOME": str(home),
        "FACELENS_COLLECTIONS_URL": postgres_db,
        "FACELENS_OBJECTS_URL": f"file://{bucket}",
        "FACELENS_MQTT__URL": broker.url,
        "FACELENS_MQTT__CLIENT_ID": CLIENT_PREFIX,
        "FACELENS_EVENTS__SOURCE": "mqtt",
        "FACELENS_EVENTS__TOPIC": EVENTS_TOPIC,
        "FACELENS_EVENTS__GROUP": name,  # a group per host: each gets every event
        "FACELENS_RECOGNIZER__WORKER_ID": name,
        "FACELENS_RECOGNIZER__COLLECTION_ID": COLLECTION,
    }


def _subscribe_once(broker: MosquittoBroker, name: str) -> None:
    """Makes the host's persistent broker session, subscribed, before the host runs: events
    sent from now on wait in it, however long the host takes to start."""
    source = MqttEventSource(
        broker.endpoint(f"{CLIENT_PREFIX}-{name}"), topic=EVENTS_TOPIC, group=name
    )
    try:
        assert source.wait_ready(10)
    finally:
        source.close()


def _copy_engine_cache(engine: FaceEngine, home: Path) -> None:
    """The ONNX model the session's engine converted, so a host need not convert its own."""
    cache = getattr(getattr(engine, "embedder", None), "cache_dir", None)
    if isinstance(cache, Path) and cache.is_dir():
        shutil.copytree(cache, home / "models")


@pytest.fixture
def hosts(
    tmp_path: Path,
    postgres_db: str,
    mqtt_broker: MosquittoBroker,
    engine: FaceEngine,
) -> Iterator[tuple[Wired, list[Host]]]:
    """The camera side (enrols, uploads) in this process, and two recognizer hosts."""
    bucket = tmp_path / "bucket"
    stack = ExitStack()
    camera = open_wired(
        _settings(tmp_path / "camera", postgres_db, bucket, mqtt_broker),
        stack,
        instance="camera",
        analyzer=FaceAnalyzer(engine),  # the session's engine, loaded once
    )
    started: list[Host] = []
    try:
        for name in ("host-a", "host-b"):
            _subscribe_once(mqtt_broker, name)
            home = tmp_path / name
            home.mkdir(mode=0o700)
            _copy_engine_cache(engine, home)
            process = subprocess.Popen(
                [sys.executable, "-m", "facelens", "recognizer"],
                env=_environment(name, home, postgres_db, bucket, mqtt_broker),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            host = Host(name, home, process)
            assert process.stderr is not None
            threading.Thread(target=host.read, args=(process.stderr,), daemon=True).start()
            started.append(host)
        yield camera, started
    finally:
        for host in started:
            if host.process.poll() is None:
                host.process.kill()
                host.process.wait(10)
        stack.close()


def _enrol(camera: Wired, testdata: Path) -> None:
    people = testdata / "people"
    collections, users = camera.collections.collections, camera.collections.users
    collections.create_collection(COLLECTION)
    result = collections.index_faces(
        COLLECTION, (people / "obama" / "obama_1.jpg").read_bytes(), max_faces=1
    )
    users.create_user(COLLECTION, "obama")
    users.associate_faces(COLLECTION, "obama", [result.face_records[0].face.face_id])
    camera.stores.profiles.put("obama", {"Name": "Barack Obama"})


def _upload(camera: Wired, photo: Path, key: str) -> None:
    """A camera's crop: the put sends its ObjectCreated event on the broker."""
    meta = CropMetadata(camera="front-door", captured_at=datetime.now(UTC), track_id="1")
    camera.objects.put_object(
        camera.settings.bucket,
        key,
        photo.read_bytes(),
        content_type="image/jpeg",
        metadata=meta.to_metadata(),
    )


def _get(server: ApiServer, path: str) -> Any:
    answer = requests.get(f"{server.url}/api/v1{path}", headers=server.headers(), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_event_delivered_to_two_hosts_is_published_once_and_both_serve_it(
    hosts: tuple[Wired, list[Host]],
    testdata: Path,
    mqtt_broker: MosquittoBroker,
    tmp_path: Path,
    postgres_db: str,
) -> None:
    camera, (a, b) = hosts
    _enrol(camera, testdata)
    people = testdata / "people"
    uploads = {
        "faces/11_26/10_30/1_0.jpg": people / "obama" / "obama_2.jpg",
        "faces/11_26/10_30/2_0.jpg": people / "biden" / "biden_1.jpg",
    }
    for host in (a, b):
        host.wait_for("started")  # its engine is loaded: both take each event as it comes
    with Subscriber(mqtt_broker, "rekognition/#") as published:
        for key, photo in uploads.items():
            _upload(camera, photo, key)
        # Every event reaches both hosts: one publishes it, the other finds it done (or,
        # were the claim broken, publishes it too: then stop looking at once).
        deadline = time.monotonic() + DONE_TIMEOUT_S
        while a.count("already handled") + b.count("already handled") < len(uploads):
            if len(published.messages) > len(uploads):
                break
            assert time.monotonic() < deadline, "\n".join(a.lines + b.lines)
            time.sleep(0.05)
        stats = [a.stop(), b.stop()]  # each flushes what it published before it exits
        published.wait_for(len(uploads) + 1, timeout=1.0)  # a second copy would be here now
        messages = published.messages
    by_topic = {m.topic: json.loads(m.payload) for m in messages}
    assert len(messages) == len(uploads), [m.topic for m in messages]
    assert by_topic["rekognition"]["Key"] == "faces/11_26/10_30/1_0.jpg"
    assert by_topic["rekognition"]["Name"] == "Barack Obama"
    assert by_topic["rekognition/unknown"]["Key"] == "faces/11_26/10_30/2_0.jpg"
    stranger_id = by_topic["rekognition/unknown"]["StrangerId"]
    assert [s["Events"] for s in stats] == [2, 2]
    assert sum(s["Identified"] for s in stats) == 1
    assert sum(s["Unknown"] for s in stats) == 1
    assert sum(s["Duplicates"] for s in stats) == 2

    # Both hosts serve the same history and the same strangers' sightings.
    servers = [
        start_server(_settings(host.home, postgres_db, tmp_path / "bucket", mqtt_broker))
        for host in (a, b)
    ]
    try:
        histories = [_get(s, "/identifications")["Identifications"] for s in servers]
        strangers = [_get(s, f"/collections/{COLLECTION}/strangers")["Strangers"] for s in servers]
    finally:
        for server in servers:
            server.server.stop()
            server.stack.close()
    assert histories[0] == histories[1]
    assert sorted(r["Message"]["Key"] for r in histories[0]) == sorted(uploads)
    assert strangers[0] == strangers[1]
    (stranger,) = strangers[0]
    assert stranger["StrangerId"] == stranger_id
    assert stranger["Sightings"] == 1
