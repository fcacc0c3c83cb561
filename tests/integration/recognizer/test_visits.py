"""Visits end to end: the looks of one person at the door, one answer, revised only when it changes.

Real photos through the real engine, the production wiring, real SQLite
files (and PostgreSQL for two hosts), answers read off a real Mosquitto.
A look is a crop whose metadata carries a visit id, as the edge runner
uploads them (tests/integration/recognizer/conftest.py's ``put_crop``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from facelens.bus.publisher import MemoryPublisher
from facelens.engine.protocol import FaceEngine
from facelens.history.ledger import Recognition, Status
from facelens.history.visits import VisitAnswer
from facelens.recognizer import messages
from facelens.recognizer.service import Recognizer
from facelens.storage.crops import CropMetadata
from facelens.storage.events import new_sequencer
from facelens.values.events import ObjectCreated
from tests.integration.recognizer.conftest import (
    COLLECTION,
    OpenPipeline,
    Pipeline,
    enroll,
    make_crop,
    open_recognizer_process,
)
from tests.servers.mosquitto import MosquittoBroker, Received, Subscriber
from tests.wired import Wired

BUCKET = "facelens"


def poor(body: bytes) -> bytes:
    """A look too poor to name anyone by: shrunk to 15 % and blurred (a face far off, in
    motion). The engine still finds a face in it, but no name within the open-set bound."""
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    h, w = image.shape[:2]
    small = cv2.resize(image, (int(w * 0.15), int(h * 0.15)), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(small, (0, 0), 3.0)
    back = cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)
    ok, jpeg = cv2.imencode(".jpg", back, [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    return bytes(jpeg.tobytes())


@pytest.fixture(scope="session")
def looks(engine: FaceEngine, testdata: Path) -> dict[str, bytes]:
    people = testdata / "people"
    obama_2 = make_crop(engine, people / "obama" / "obama_2.jpg")
    return {
        "obama_poor": poor(obama_2),
        # Blurred as much, obama_4 is still named (similarity 86): a look of middling quality.
        "obama_poor_4": poor(make_crop(engine, people / "obama" / "obama_4.jpg")),
        "obama_2": obama_2,
        "obama_3": make_crop(engine, people / "obama" / "obama_3.jpg"),
        "obama_4": make_crop(engine, people / "obama" / "obama_4.jpg"),
        "biden_1": make_crop(engine, people / "biden" / "biden_1.jpg"),
        "biden_2": make_crop(engine, people / "biden" / "biden_2.jpg"),
    }


def published(messages_: list[Received]) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in messages_ if m.topic.startswith("rekognition")]


def wait_handled(pipeline: Pipeline, count: int, timeout: float = 30.0) -> None:
    """Until the pipeline's worker has handled ``count`` events (published or not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(w.stats.events for w in pipeline.workers) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"handled {[w.stats for w in pipeline.workers]}, wanted {count}")


def record_of(pipeline: Pipeline, key: str) -> Recognition:
    (found,) = [r for r in pipeline.wired.stores.history.ledger.recent(limit=100) if r.key == key]
    return found


def test_a_visit_whose_first_look_is_poor_is_named_by_one_revision(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, looks: dict[str, bytes]
) -> None:
    """Unknown at once, then Obama once better looks come, published as revision 1 naming
    what it revises; the third look confirms and is recorded, not published. The stranger
    face the unknown answer added is taken back."""
    p = open_pipeline(mqtt_broker.url)
    p.start_worker()
    visit = uuid.uuid4().hex
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        first = p.put_crop(looks["obama_poor"], visit=visit, look=0, quality=0.2)
        sub.wait_until(lambda ms: len(ms) >= 1, timeout=15)
        second = p.put_crop(looks["obama_2"], visit=visit, look=1, quality=0.9)
        sub.wait_until(lambda ms: len(ms) >= 2, timeout=15)
        third = p.put_crop(looks["obama_3"], visit=visit, look=2, quality=0.9)
        wait_handled(p, 3)
        p.wired.publication.publisher.flush(5)  # type: ignore[attr-defined]
        time.sleep(0.3)
        seen = list(sub.messages)
    unknown, named = published(seen)
    assert [m.topic for m in seen] == ["rekognition/unknown", "rekognition"]
    assert unknown["Key"] == first
    assert unknown["VisitId"] == visit
    assert unknown["Revision"] == 0
    assert unknown["Revises"] is None
    assert unknown["Looks"] == 1
    assert unknown["StrangerId"]
    assert named["Key"] == second
    assert named["Status"] == "identified"
    assert named["UserId"] == "obama"
    assert named["Name"] == "Barack Obama"
    assert named["VisitId"] == visit
    assert named["Revision"] == 1
    assert named["Looks"] == 2
    assert named["Revises"] == {
        "RecognitionId": unknown["RecognitionId"],
        "Status": "unknown",
        "UserId": None,
        "FaceId": None,
        "Name": None,
    }
    assert "Published" not in named
    # The confirming look: recorded with the standing answer, never published.
    quiet = record_of(p, third)
    assert quiet.status is Status.IDENTIFIED
    assert quiet.message["Published"] is False
    assert quiet.message["Revision"] == 1
    assert quiet.message["Looks"] == 3
    assert quiet.message["UserId"] == "obama"
    assert quiet.message["Name"] == "Barack Obama"
    assert p.workers[0].stats.unchanged == 1
    assert (p.workers[0].stats.identified, p.workers[0].stats.unknown) == (1, 1)
    answer = p.wired.stores.history.visits.answer(visit)
    assert answer is not None
    assert (answer.revision, answer.recognition_id, answer.looks) == (1, named["RecognitionId"], 3)
    assert answer.message == named
    # The stranger the poor look made had only that face: taken back, it is gone.
    assert p.wired.people.strangers.list(COLLECTION) == []


def test_a_strangers_visit_adds_one_face_to_one_stranger(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, looks: dict[str, bytes]
) -> None:
    p = open_pipeline(mqtt_broker.url)
    p.start_worker()
    visit = uuid.uuid4().hex
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        p.put_crop(looks["biden_1"], visit=visit, look=0, quality=0.8)
        later = p.put_crop(looks["biden_2"], visit=visit, look=1, quality=0.9)
        wait_handled(p, 2)
        p.wired.publication.publisher.flush(5)  # type: ignore[attr-defined]
        time.sleep(0.3)
        seen = published(sub.messages)
    (unknown,) = seen
    assert unknown["Status"] == "unknown"
    assert unknown["Revision"] == 0
    (stranger,) = p.wired.people.strangers.list(COLLECTION)
    assert stranger.stranger_id == unknown["StrangerId"]
    assert len(stranger.face_ids) == 1
    quiet = record_of(p, later)
    assert quiet.message["Published"] is False
    assert quiet.message["StrangerId"] == unknown["StrangerId"]
    assert quiet.message["StrangerFaceId"] == unknown["StrangerFaceId"]


def test_one_poor_look_does_not_take_a_name_back(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, looks: dict[str, bytes]
) -> None:
    """The poor look alone is unknown (the first test's first answer), and the edge even
    scored it higher: a crop-by-crop recognizer would now say "unknown"; the visit stays
    Obama, and nothing is published."""
    p = open_pipeline(mqtt_broker.url)
    p.start_worker()
    visit = uuid.uuid4().hex
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        p.put_crop(looks["obama_2"], visit=visit, look=0, quality=0.7)
        p.put_crop(looks["obama_poor"], visit=visit, look=1, quality=0.9)
        wait_handled(p, 2)
        p.wired.publication.publisher.flush(5)  # type: ignore[attr-defined]
        time.sleep(0.3)
        seen = published(sub.messages)
    assert [(m["UserId"], m["Revision"]) for m in seen] == [("obama", 0)]
    answer = p.wired.stores.history.visits.answer(visit)
    assert answer is not None
    assert (answer.revision, answer.looks) == (0, 2)


def test_a_crop_without_a_visit_id_is_a_visit_of_one_look(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, looks: dict[str, bytes]
) -> None:
    """Another uploader's crops (``aws s3 cp``): each decided and published on its own."""
    p = open_pipeline(mqtt_broker.url)
    p.start_worker()
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        p.put_crop(looks["obama_2"])
        p.put_crop(looks["obama_3"])
        seen = published(sub.wait_until(lambda ms: len(ms) >= 2, timeout=15))
    assert [m["UserId"] for m in seen] == ["obama", "obama"]
    for m in seen:
        assert (m["VisitId"], m["Revision"], m["Revises"], m["Looks"]) == (None, 0, None, 1)
        assert "Published" not in m
    assert p.wired.stores.history.visits.visits() == []


def put_look(w: Wired, body: bytes, visit: str, look: int, quality: float) -> ObjectCreated:
    """A look in the raw store (no event sent) and the event a notification would carry."""
    key = f"faces/visits/{visit}/{look}-{uuid.uuid4().hex[:8]}.jpg"
    meta = CropMetadata(camera="door", visit_id=visit, look=look, look_quality=quality)
    w.stores.objects.put_object(
        BUCKET, key, body, content_type="image/jpeg", metadata=meta.to_metadata()
    )
    info = w.stores.objects.head_object(BUCKET, key)
    return ObjectCreated(
        bucket=BUCKET,
        key=key,
        size=info.size,
        etag=info.etag,
        sequencer=new_sequencer(),
        event_time=info.last_modified,
    )


def test_a_revision_whose_worker_died_before_recording_it_is_published_again(
    open_pipeline: OpenPipeline, looks: dict[str, bytes]
) -> None:
    """The worker set revision 0 from this look and died before publishing it: the event
    comes back (the claim's lease ended) and the same answer goes out, same RecognitionId."""
    p = open_pipeline(None)
    recognizer = p.wired.recognizer.recognizer
    visit = uuid.uuid4().hex
    event = put_look(p.wired, looks["obama_2"], visit, 0, 0.9)
    rid = messages.recognition_id(event)
    now = datetime.now(UTC)
    message = {"RecognitionId": rid, "Status": "identified", "UserId": "obama", "Revision": 0}
    visits = p.wired.stores.history.visits
    answer = VisitAnswer(visit, 0, rid, Status.IDENTIFIED, message, "door", 1, now, now)
    assert visits.revise(answer, expected=None)
    publisher = p.wired.publication.publisher
    assert isinstance(publisher, MemoryPublisher)
    outcome = recognizer.handle(event)
    assert outcome.published
    ((topic, sent),) = [(m.topic, json.loads(m.payload)) for m in publisher.messages]
    assert (topic, sent) == ("rekognition", message)
    assert p.wired.stores.history.ledger.get(rid) is not None
    assert recognizer.handle(event).duplicate


def race(recognizers: list[Recognizer], events: list[list[ObjectCreated]]) -> None:
    """Each recognizer handles its own looks on a thread of its own, all at once."""
    start = threading.Barrier(len(recognizers))
    failures: list[BaseException] = []

    def work(recognizer: Recognizer, mine: list[ObjectCreated]) -> None:
        try:
            start.wait(10)
            for event in mine:
                recognizer.handle(event)
        except BaseException as exc:  # reported below, on the test's thread
            failures.append(exc)

    threads = [
        threading.Thread(target=work, args=pair) for pair in zip(recognizers, events, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures


def assert_one_answer_per_revision(
    answers: list[dict[str, Any]], visits: list[VisitAnswer], visit: str
) -> None:
    """Exactly one revision 0; revisions 0..n each published once, each revising the one
    before; the visit's current answer is the last, naming Obama."""
    revisions = sorted(m["Revision"] for m in answers)
    assert revisions == list(range(len(answers))), revisions
    by_revision = {m["Revision"]: m for m in answers}
    for n in range(1, len(answers)):
        assert by_revision[n]["Revises"]["RecognitionId"] == by_revision[n - 1]["RecognitionId"]
    assert all(m["VisitId"] == visit for m in answers)
    (current,) = [v for v in visits if v.visit_id == visit]
    assert current.revision == len(answers) - 1
    assert current.message["UserId"] == "obama"


def test_two_workers_given_looks_of_one_visit_at_once_publish_each_revision_once(
    open_pipeline: OpenPipeline, mqtt_broker: MosquittoBroker, looks: dict[str, bytes]
) -> None:
    """Two recognizer processes on one home (one SQLite history), each handed half the looks
    of one visit at the same moment: the compare-and-set decides."""
    a, b = open_pipeline(mqtt_broker.url), open_pipeline(mqtt_broker.url)
    visit = uuid.uuid4().hex
    mine = [
        [
            put_look(a.wired, looks["obama_poor"], visit, 0, 0.2),
            put_look(a.wired, looks["obama_2"], visit, 2, 0.9),
        ],
        [
            put_look(a.wired, looks["obama_poor_4"], visit, 1, 0.2),
            put_look(a.wired, looks["obama_3"], visit, 3, 0.9),
        ],
    ]
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        race([a.wired.recognizer.recognizer, b.wired.recognizer.recognizer], mine)
        for p in (a, b):
            p.wired.publication.publisher.flush(5)  # type: ignore[attr-defined]
        time.sleep(0.3)
        answers = published(sub.messages)
    assert_one_answer_per_revision(answers, a.wired.stores.history.visits.visits(), visit)
    assert len(a.wired.stores.history.ledger.recent(limit=10)) == 4
    assert a.wired.people.strangers.list(COLLECTION) == []


@pytest.fixture
def two_hosts(
    engine: FaceEngine,
    testdata: Path,
    tmp_path: Path,
    postgres_db: str,
    mqtt_broker: MosquittoBroker,
) -> Iterator[tuple[Wired, Wired]]:
    """Two recognizer hosts: homes of their own, one PostgreSQL, one bucket, one broker."""
    with ExitStack() as stack:
        hosts = tuple(
            open_recognizer_process(
                engine,
                tmp_path / name,
                stack,
                mqtt_url=mqtt_broker.url,
                collections_url=postgres_db,
                objects_url=f"file://{tmp_path / 'bucket'}",
            )
            for name in ("host-a", "host-b")
        )
        enroll(hosts[0], testdata)
        yield hosts[0], hosts[1]


def test_two_hosts_on_postgresql_publish_each_revision_of_a_visit_once(
    two_hosts: tuple[Wired, Wired], mqtt_broker: MosquittoBroker, looks: dict[str, bytes]
) -> None:
    a, b = two_hosts
    # Each host's history connects (and checks its tables) before the race: two hosts doing
    # that for the first time while the other already writes looks can deadlock in
    # PostgreSQL (facelens.postgres.create_missing_tables re-runs CREATE INDEX after waiting
    # for the other's advisory lock); the worker retries such an event, this test would not.
    for w in (a, b):
        assert w.stores.history.visits.answer("warm-up") is None
    visit = uuid.uuid4().hex
    mine = [
        [
            put_look(a, looks["obama_poor"], visit, 0, 0.2),
            put_look(a, looks["obama_2"], visit, 2, 0.9),
        ],
        [
            put_look(a, looks["obama_poor_4"], visit, 1, 0.2),
            put_look(a, looks["obama_3"], visit, 3, 0.9),
        ],
    ]
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        race([a.recognizer.recognizer, b.recognizer.recognizer], mine)
        for w in (a, b):
            w.publication.publisher.flush(5)  # type: ignore[attr-defined]
        time.sleep(0.3)
        answers = published(sub.messages)
    assert_one_answer_per_revision(answers, b.stores.history.visits.visits(), visit)
    assert len(b.stores.history.ledger.recent(limit=10)) == 4
