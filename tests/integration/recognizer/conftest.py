"""A recognizer wired as in production (the wiring's factories), on real photos, a real
broker and files.

Crops are made the way the edge runner makes them: the largest face with a
25 % margin, JPEG quality 90. Enrolment uses one photo per person and the
crops come from *other* photos, so a match is a real recognition.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import pytest

from facelens.bus.delivery import EventSource
from facelens.bus.outbox import SqliteOutbox
from facelens.collection.analysis import FaceAnalyzer
from facelens.config import MqttSettings, RecognizerSettings, Settings
from facelens.engine.images import read_image_file
from facelens.engine.protocol import FaceEngine
from facelens.recognizer.worker import RecognizerWorker
from facelens.storage.crops import CropMetadata
from facelens.wiring.bus import open_event_source
from tests.wired import Wired, open_wired

COLLECTION = "faces"
OpenPipeline = Callable[..., "Pipeline"]
LIMIT = 50_000_000


def make_crop(engine: FaceEngine, photo: Path, *, margin: float = 0.25) -> bytes:
    image = read_image_file(photo, max_bytes=LIMIT, max_pixels=LIMIT).pixels
    face = engine.detect(image, largest_only=True)[0].face.box
    h, w = image.shape[:2]
    dx, dy = face.width * margin, face.height * margin
    left, top = max(0, int(face.left - dx)), max(0, int(face.top - dy))
    right, bottom = min(w, int(face.right + dx)), min(h, int(face.bottom + dy))
    ok, jpeg = cv2.imencode(
        ".jpg",
        cv2.cvtColor(image[top:bottom, left:right], cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, 90],
    )
    if not ok:
        raise RuntimeError(f"could not encode a crop of {photo}")
    return bytes(jpeg.tobytes())


@pytest.fixture(scope="session")
def crops(engine: FaceEngine, testdata: Path) -> dict[str, bytes]:
    people = testdata / "people"
    return {
        "obama": make_crop(engine, people / "obama" / "obama_2.jpg"),
        "obama_3": make_crop(engine, people / "obama" / "obama_3.jpg"),
        "brad": make_crop(engine, people / "brad_pitt" / "brad_pitt_2.jpg"),
        "biden": make_crop(engine, people / "biden" / "biden_1.jpg"),
    }


@dataclass
class Pipeline:
    """A recognizer process's bundles plus worker threads; ``put_crop`` uploads as a camera
    would. ``stack`` closes what the process opened."""

    wired: Wired
    stack: ExitStack
    engine: FaceEngine
    faces: dict[str, str]
    threads: list[tuple[threading.Thread, threading.Event]] = field(default_factory=list)
    workers: list[RecognizerWorker] = field(default_factory=list)
    counter: int = 0
    source: EventSource | None = None

    def put_crop(
        self,
        body: bytes,
        *,
        camera: str = "front-door",
        key: str | None = None,
        visit: str | None = None,
        look: int | None = None,
        quality: float | None = None,
    ) -> str:
        """Uploads a crop; ``visit``/``look``/``quality``: as the edge marks a visit's looks."""
        self.counter += 1
        key = key or f"faces/11_26/10_30/1764150000{self.counter:03d}_0.jpg"
        meta = CropMetadata(
            camera=camera,
            captured_at=datetime.now(UTC),
            track_id="1",
            visit_id=visit,
            look=look,
            look_quality=quality,
        )
        self.wired.objects.put_object(
            self.wired.settings.bucket,
            key,
            body,
            content_type="image/jpeg",
            metadata=meta.to_metadata(),
        )
        return key

    def outbox(self) -> SqliteOutbox:
        """The local event queue (events.source 'outbox', the default)."""
        assert self.wired.outbox is not None, "this pipeline's events go elsewhere"
        return self.wired.outbox

    def event_source(self) -> EventSource:
        """The worker's event source, opened on the first call: an MQTT subscription takes
        its share of the events from then on, so only a pipeline that will work opens it."""
        if self.source is None:
            w = self.wired
            self.source = open_event_source(w.settings, self.stack, outbox=w.outbox)
        return self.source

    def start_worker(self) -> RecognizerWorker:
        worker = RecognizerWorker(
            self.event_source(), self.wired.recognizer.recognizer, wait_seconds=0.2
        )
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        self.threads.append((thread, stop))
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        for thread, stop in self.threads:
            stop.set()
            thread.join(10)
        self.threads.clear()


def pipeline_settings(home: Path, *, mqtt_url: str | None, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        "home": home,
        "models_dir": None,
        "mqtt": MqttSettings(url=mqtt_url, client_id="facelens-test"),
        "recognizer": RecognizerSettings(collection_id=COLLECTION),
        **overrides,
    }
    return Settings(**fields)  # type: ignore[arg-type]


def open_recognizer_process(
    engine: FaceEngine, home: Path, stack: ExitStack, *, mqtt_url: str | None, **overrides: object
) -> Wired:
    """The recognizer's process on ``home``, sharing the session's loaded engine rather than
    loading dlib's models per test."""
    settings = pipeline_settings(home, mqtt_url=mqtt_url, **overrides)
    return open_wired(settings, stack, analyzer=FaceAnalyzer(engine))


def enroll(wired: Wired, testdata: Path) -> dict[str, str]:
    """Obama as a user with a profile; Brad Pitt as a single face with a profile on its FaceId."""
    people = testdata / "people"
    collections, users = wired.collections.collections, wired.collections.users
    profiles = wired.stores.profiles
    collections.create_collection(COLLECTION)

    def index(photo: Path, external: str) -> str:
        result = collections.index_faces(
            COLLECTION, photo.read_bytes(), external_image_id=external, max_faces=1
        )
        return result.face_records[0].face.face_id

    obama_face = index(people / "obama" / "obama_1.jpg", "obama_1.jpg")
    users.create_user(COLLECTION, "obama")
    users.associate_faces(COLLECTION, "obama", [obama_face])
    profiles.put("obama", {"Name": "Barack Obama", "Role": "44th President"})
    brad_face = index(people / "brad_pitt" / "brad_pitt_1.jpg", "brad_pitt_1.jpg")
    profiles.put(brad_face, {"Name": "Brad Pitt", "Role": "Actor"})
    return {"obama": obama_face, "brad": brad_face}


@pytest.fixture
def open_pipeline(engine: FaceEngine, testdata: Path, tmp_path: Path) -> Iterator[OpenPipeline]:
    """Opens pipelines on a shared home (enrolled once) and closes them all at the end."""
    made: list[Pipeline] = []
    enrolled: dict[str, str] = {}
    with ExitStack() as every:

        def opener(mqtt_url: str | None, **overrides: object) -> Pipeline:
            stack = every.enter_context(ExitStack())
            wired = open_recognizer_process(
                engine, tmp_path / "home", stack, mqtt_url=mqtt_url, **overrides
            )
            if not enrolled:
                enrolled.update(enroll(wired, testdata))
            pipeline = Pipeline(wired, stack, engine, faces=enrolled)
            made.append(pipeline)
            return pipeline

        yield opener
        for p in made:
            p.stop_workers()
