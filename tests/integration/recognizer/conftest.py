"""A recognizer wired as in production (Components), on real photos, a real broker and files.

Crops are made the way the edge runner makes them: the largest face with a
25 % margin, JPEG quality 90. Enrolment uses one photo per person and the
crops come from *other* photos, so a match is a real recognition.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import pytest

from facelens.collection.analysis import FaceAnalyzer
from facelens.config import MqttSettings, RecognizerSettings, Settings
from facelens.engine.images import read_image_file
from facelens.engine.protocol import FaceEngine
from facelens.recognizer.worker import RecognizerWorker
from facelens.storage.crops import CropMetadata
from facelens.wiring import Components

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
    """Components plus a worker thread; ``put_crop`` uploads as a camera would."""

    components: Components
    engine: FaceEngine
    faces: dict[str, str]
    threads: list[tuple[threading.Thread, threading.Event]] = field(default_factory=list)
    workers: list[RecognizerWorker] = field(default_factory=list)
    counter: int = 0

    def put_crop(self, body: bytes, *, camera: str = "front-door", key: str | None = None) -> str:
        self.counter += 1
        key = key or f"faces/11_26/10_30/1764150000{self.counter:03d}_0.jpg"
        meta = CropMetadata(camera=camera, captured_at=datetime.now(UTC), track_id="1")
        self.components.objects.put_object(
            self.components.settings.bucket,
            key,
            body,
            content_type="image/jpeg",
            metadata=meta.to_metadata(),
        )
        return key

    def start_worker(self, components: Components | None = None) -> RecognizerWorker:
        c = components or self.components
        worker = RecognizerWorker(c.event_source, c.recognizer, wait_seconds=0.2)
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


def build_components(
    engine: FaceEngine, home: Path, *, mqtt_url: str | None, **overrides: object
) -> Components:
    fields: dict[str, object] = {
        "home": home,
        "models_dir": None,
        "mqtt": MqttSettings(url=mqtt_url, client_id="facelens-test"),
        "recognizer": RecognizerSettings(collection_id=COLLECTION),
        **overrides,
    }
    settings = Settings(**fields)  # type: ignore[arg-type]
    components = Components(settings)
    # Share the session's loaded engine rather than loading dlib's models per test.
    components.__dict__["analyzer"] = FaceAnalyzer(engine)
    return components


def enroll(components: Components, testdata: Path) -> dict[str, str]:
    """Obama as a user with a profile; Brad Pitt as a single face with a profile on its FaceId."""
    people = testdata / "people"
    collections, users, profiles = components.collections, components.users, components.profiles
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

    def opener(mqtt_url: str | None, **overrides: object) -> Pipeline:
        components = build_components(engine, tmp_path / "home", mqtt_url=mqtt_url, **overrides)
        if not enrolled:
            enrolled.update(enroll(components, testdata))
        pipeline = Pipeline(components, engine, faces=enrolled)
        made.append(pipeline)
        return pipeline

    yield opener
    for p in made:
        p.stop_workers()
    for p in made:
        p.components.close()
