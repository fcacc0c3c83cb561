"""The edge runner end to end: real videos, a real MJPEG camera, a real broker and store.

On both test clips the runner uploads a few looks per visit (never one per
frame), under the original key layout, with the crop metadata (the visit and
the look's number), and the recognizer's engine finds a face in every crop;
profile views and backs of heads are not uploaded, and a person walking
through the crowd clip is one visit. On a live
camera it reports its status on MQTT, serves the annotated stream and
metrics, names tracks from the recognizer's answers, and survives the
camera going away and coming back.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from facelens.bus.mqtt_config import connect_client
from facelens.config import EdgeSettings, MqttSettings, Settings
from facelens.edge.quality_gate import Refusal
from facelens.edge.runner import EdgeRunner, RunSummary
from facelens.engine.registry import build_engine
from facelens.storage.crops import CropMetadata
from facelens.storage.protocol import ObjectStore
from facelens.wiring.edge import open_edge
from tests.servers.mjpeg import MjpegCamera
from tests.servers.mosquitto import MosquittoBroker, Received, Subscriber

KEY = re.compile(r"faces/(\d{1,2})_(\d{1,2})/(\d{1,2})_(\d{1,2})/(\d{13})_(\d+)\.jpg")
THING = "cam1"


def edge_settings(home: Path, models_dir: Path, **changes: Any) -> Settings:
    edge = {"view_port": None, "stats_seconds": 1.0, **changes.pop("edge", {})}
    return Settings(
        home=home,
        models_dir=models_dir,
        detector=changes.pop("detector", "yunet"),
        edge=EdgeSettings(**edge),
        **changes,
    )


def crops_in_store(store: ObjectStore, bucket: str) -> dict[str, CropMetadata]:
    return {
        info.key: CropMetadata.from_metadata(store.head_object(bucket, info.key).metadata)
        for info in store.list_objects(bucket, prefix="faces/").objects
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("clip", "detector", "max_frames"),
    [
        ("short_hamilton_clip.mp4", "yunet", None),
        ("facenet_pytorch_clip.mp4", "yunet", None),
        ("short_hamilton_clip.mp4", "hog", 150),
    ],
)
def test_a_few_looks_per_visit_each_with_a_face(
    clip: str,
    detector: str,
    max_frames: int | None,
    testdata: Path,
    models_dir: Path,
    home: Path,
) -> None:
    video = testdata / "video" / clip
    settings = edge_settings(home, models_dir, detector=detector)
    started = datetime.now(UTC)
    with ExitStack() as stack:
        edge = open_edge(settings, stack, source=str(video), thing=THING, max_frames=max_frames)
        runner = edge.runner
        summary = runner.run()
        stats = runner.stats()
        crops = crops_in_store(edge.objects, settings.bucket)
        bodies = {key: edge.objects.get_object(settings.bucket, key).body for key in crops}

    frame = cv2.VideoCapture(str(video))
    width = frame.get(cv2.CAP_PROP_FRAME_WIDTH)
    height = frame.get(cv2.CAP_PROP_FRAME_HEIGHT)
    frame.release()

    assert summary.frames == (max_frames or summary.frames)
    assert summary.dropped == 0
    assert summary.uploaded == summary.crops == len(crops) >= 1
    # At most max_looks per visit (the clips are shorter than reupload_seconds), numbered
    # 0, 1, 2... in the visit, one visit per track, and far fewer than the faces detected:
    # the original uploaded every face of every frame.
    looks: dict[str, list[int]] = {}
    for meta in crops.values():
        assert meta.visit_id is not None
        assert re.fullmatch(r"[0-9a-f]{32}", meta.visit_id)
        assert meta.look is not None
        assert meta.look_quality is not None
        assert 0 < meta.look_quality <= 1
        looks.setdefault(meta.visit_id, []).append(meta.look)
    assert all(sorted(n) == list(range(len(n))) for n in looks.values()), looks
    assert max(len(n) for n in looks.values()) <= settings.edge.max_looks
    assert len({meta.track_id for meta in crops.values()}) == len(looks) <= summary.tracks
    assert stats.faces_detected >= 5 * len(crops)

    for key, meta in crops.items():
        match = KEY.fullmatch(key)
        assert match, key
        month, day, hour, minute, millis, _ = (int(g) for g in match.groups())
        assert meta.captured_at is not None
        at = meta.captured_at
        assert (month, day, hour, minute) == (at.month, at.day, at.hour, at.minute)
        assert millis == int(at.timestamp() * 1000)
        assert started - timedelta(seconds=1) <= at <= datetime.now(UTC)
        assert meta.camera == THING
        assert meta.track_id is not None
        assert meta.track_id.isdigit()
        assert meta.confidence is not None
        assert 0 < meta.confidence <= 1
        box = meta.frame_box
        assert box is not None
        assert 0 <= box.left < box.right <= width
        assert 0 <= box.top < box.bottom <= height

    engine = build_engine(settings)
    engine.prepare()
    for key, body in bodies.items():
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None, key
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        assert engine.detect(rgb), f"the engine finds no face in {key}"


def statuses(messages: list[Received]) -> list[dict[str, Any]]:
    decoded = [json.loads(m.payload) for m in messages]
    return [d for d in decoded if "status" in d]


def labels(messages: list[Received]) -> list[dict[str, Any]]:
    return [d for d in (json.loads(m.payload) for m in messages) if "face" in d]


def has_status(status: str, **fields: Any) -> Any:
    def check(messages: list[Received]) -> bool:
        return any(
            s["status"] == status and all(s.get(k) == v for k, v in fields.items())
            for s in statuses(messages)
        )

    return check


class Running:
    """A runner on its own thread, stopped (and its parts closed) at the end."""

    def __init__(self, settings: Settings, source: str) -> None:
        self.stack = ExitStack()
        edge = open_edge(settings, self.stack, source=source, thing=THING)
        self.objects = edge.objects
        self.runner: EdgeRunner = edge.runner
        self.summary: RunSummary | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.summary = self.runner.run()
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(30)
        self.stack.close()


@pytest.fixture
def live(
    mjpeg_camera: MjpegCamera, mqtt_broker: MosquittoBroker, models_dir: Path, home: Path
) -> Iterator[tuple[Running, Subscriber]]:
    settings = edge_settings(
        home,
        models_dir,
        mqtt=MqttSettings(url=mqtt_broker.url),
        edge={
            "view_port": 0,
            "labels_per_second": 4.0,
            "reconnect_max_seconds": 0.5,
            "stream_timeout_seconds": 2.0,
        },
    )
    with Subscriber(mqtt_broker, f"things/{THING}/infer") as subscriber:
        running = Running(settings, mjpeg_camera.url)
        try:
            yield running, subscriber
        finally:
            running.stop()


def read_parts(url: str, count: int) -> list[np.ndarray | None]:
    """The first ``count`` JPEG parts of an MJPEG stream, decoded (None where one does not)."""
    images: list[np.ndarray | None] = []
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        while len(images) < count:
            line = response.readline()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                response.readline()  # the blank line before the body
                body = response.read(length)
                images.append(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR))
    return images


@pytest.mark.slow
def test_live_camera_status_view_names_and_reconnection(
    live: tuple[Running, Subscriber], mjpeg_camera: MjpegCamera, mqtt_broker: MosquittoBroker
) -> None:
    running, subscriber = live
    messages = subscriber.wait_until(has_status("uploaded"), timeout=60)
    assert running.error is None
    order = [s["status"] for s in statuses(messages)]
    assert order[:3] == ["started", "source opened", "model loaded"]
    assert all(s["thing"] == THING for s in statuses(messages))

    # Per-frame labels in the original's shape, at a bounded rate.
    found = labels(subscriber.wait_until(lambda m: len(labels(m)) >= 3, timeout=30))
    assert found
    assert all(0 < label["face"] <= 1 for label in found)
    first, last = (datetime.fromisoformat(found[i]["at"]) for i in (0, -1))
    assert len(found) <= 4.0 * (last - first).total_seconds() + 2

    # The live view: an annotated MJPEG stream of full frames, and metrics.
    server = running.runner.server
    assert server is not None
    parts = read_parts(f"{server.url}/stream.mjpg", 3)
    assert all(p is not None and p.shape == (360, 640, 3) for p in parts)
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert re.search(r'facelens_edge_frames_processed_total\{thing="cam1"\} [1-9]', metrics)
    assert 'facelens_edge_crops_uploaded_total{thing="cam1"}' in metrics

    # The recognizer's answer names the track the crop came from.
    key = next(s["key"] for s in statuses(messages) if s["status"] == "uploaded")
    meta = CropMetadata.from_metadata(running.objects.head_object("facelens", key).metadata)
    assert meta.track_id is not None
    answer = {
        "Status": "identified",
        "Key": key,
        "VisitId": meta.visit_id,
        "Revision": 0,
        "Name": "Lin-Manuel",
        "Similarity": 99.1,
    }
    recognizer = connect_client(mqtt_broker.endpoint("recognizer"), clean_session=True)
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while not recognizer.is_connected():
            assert datetime.now(UTC) < deadline, "no connection to the broker"
            threading.Event().wait(0.05)
        recognizer.publish("rekognition", json.dumps(answer), qos=1).wait_for_publish(10)
        track = int(meta.track_id)
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while running.runner.names.name_of(track) is None and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
    finally:
        recognizer.disconnect()
        recognizer.loop_stop()
    assert running.runner.names.name_of(track) == "Lin-Manuel"

    # The camera goes away and comes back: reported, and frames flow again.
    mjpeg_camera.stop()
    subscriber.wait_until(has_status("source lost"), timeout=20)
    processed = running.runner.stats().frames_processed
    mjpeg_camera.start()
    messages = subscriber.wait_until(
        lambda m: any(s["status"] == "source opened" and s["attempt"] >= 1 for s in statuses(m)),
        timeout=20,
    )
    assert has_status("source lost")(messages)
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while running.runner.stats().frames_processed <= processed + 10:
        assert datetime.now(UTC) < deadline, "no frames after the camera came back"
        threading.Event().wait(0.1)
    assert running.runner.stats().source_reconnects >= 1

    running.stop()
    assert running.error is None
    summary = running.summary
    assert summary is not None
    assert summary.frames > 0
    final = subscriber.wait_until(has_status("stopped"), timeout=10)
    assert has_status("stopped")(final)


def write_clip(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    for image in frames:
        writer.write(image)
    writer.release()
    return path


def clip_frames(video: Path, first: int, last: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    for index in range(last + 1):
        ok, image = capture.read()
        assert ok, f"{video} has no frame {index}"
        if index >= first:
            frames.append(image)
    capture.release()
    return frames


@pytest.mark.slow
def test_profiles_and_blurred_faces_are_followed_but_not_uploaded(
    testdata: Path, models_dir: Path, home: Path, tmp_path: Path
) -> None:
    # The stage clip's second shot (frames 20-80): a performer in close-up profile (yaw
    # 70-85°, or half out of the picture) and out-of-focus faces in the audience behind
    # him. Faces are detected and tracked all along (labels, live view) but none is
    # identifiable.
    video = testdata / "video" / "short_hamilton_clip.mp4"
    clip = write_clip(tmp_path / "profile.mp4", clip_frames(video, 20, 80), 29.97)
    settings = edge_settings(home, models_dir)
    with ExitStack() as stack:
        edge = open_edge(settings, stack, source=str(clip), thing=THING)
        summary = edge.runner.run()
        stats = edge.runner.stats()
        refused = edge.runner.picker.gate.refused
        crops = crops_in_store(edge.objects, settings.bucket)
    assert stats.faces_detected >= 60
    assert summary.tracks >= 2
    assert crops == {}
    assert refused[Refusal.TURNED] >= 10
    assert refused[Refusal.BLURRED] >= 10
    assert refused[Refusal.CUT] >= 1
    # What an operator sees of it: the stats (log line, /metrics) say why nothing went.
    assert stats.looks_refused == {str(reason): n for reason, n in refused.items()}


@pytest.mark.slow
def test_backs_of_heads_are_not_uploaded_and_a_walker_is_one_visit(
    testdata: Path, models_dir: Path, home: Path
) -> None:
    # The crowd clip: people walking towards the camera, heads down, one crossing in profile;
    # the detector also takes a red-haired man's crown for a face (a back of a head).
    video = testdata / "video" / "facenet_pytorch_clip.mp4"
    settings = edge_settings(home, models_dir)
    with ExitStack() as stack:
        edge = open_edge(settings, stack, source=str(video), thing=THING)
        edge.runner.run()
        refused = edge.runner.picker.gate.refused
        crops = crops_in_store(edge.objects, settings.bucket)
        bodies = {key: edge.objects.get_object(settings.bucket, key).body for key in crops}
    assert refused[Refusal.NO_FACE] >= 1  # the crown, and others like it
    assert refused[Refusal.TURNED] >= 10  # the woman crossing in profile
    engine = build_engine(settings)
    engine.prepare()
    for key, body in bodies.items():
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        assert engine.detect(rgb), f"no face in {key}"  # a back of a head has none
    # The boy in the blue hoodie walks from the back to the front through the whole clip
    # (his face's centre from about (950, 680) to (800, 700)): every look near his path is
    # of one visit.
    path = [
        meta.visit_id
        for meta in crops.values()
        if meta.frame_box is not None
        and 760 <= (meta.frame_box.left + meta.frame_box.right) / 2 <= 990
        and meta.frame_box.width >= 60
    ]
    assert path
    assert len(set(path)) == 1, path
    # Ten people show their faces in the clip (bench/edge_visits.py); visits with a look
    # are no more than that.
    assert len({meta.visit_id for meta in crops.values()}) <= 10
