"""Recognizer events per second for one and two workers, and its own time per event.

Why: the recognizer is the cloud half's hot loop. Its throughput bounds how
many cameras one host serves; its overhead beyond the face engine (object
read, ledger, profile lookup, publish to the MQTT spool, event ack) is the
part facelens' plumbing adds, and must stay small next to the engine.

How: crops are made from the shared test photos the way the edge runner
makes them (largest face, 25 % margin, JPEG 90); one photo per identity is
enrolled (a user with a profile) and the crops come from that identity's
other photos, so every event is a real identification (search, user match,
profile read, publish), the recognizer's most expensive path. Every crop is put
into a local object store under ``faces/``, which queues its ObjectCreated
event in the SQLite outbox. Then N worker processes (each its own engine,
as ``facelens recognizer`` runs) drain the outbox; the clock runs from the
moment all workers are ready to the last event acknowledged. Publication
goes to a real Mosquitto when one is installed, else to the in-memory
publisher (the JSON says which).

Per event, ``engine`` is decode + detect + embed (the analyzer's probe) and
``own`` is everything else the recognizer did for that event.

Run from the repository root::

    python -m bench.recognizer_throughput [--events 60] [--workers 1 2] [--repeat 3]

The crops are made and queued once, in a template home; each run drains its
own copy of it, ``--repeat`` times per worker count, and
``events_per_second`` is the median run (``_min``/``_max`` beside it). The
engine is what the settings build by default, with the models directory of
``$FACELENS_MODELS_DIR`` (default ../shared/models), so the detector is
YuNet when its model is there (``detector: auto``); the JSON names both.

Writes bench/results/recognizer_throughput.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench._common import machine_facts, summarize_ms, testdata_dir, write_result
from bench.edge_fps import models_dir
from facelens.collection.analysis import FaceAnalyzer
from facelens.config import MqttSettings, RecognizerSettings, Settings
from facelens.recognizer.worker import RecognizerWorker
from facelens.storage.crops import CropMetadata
from facelens.storage.protocol import ObjectStore
from facelens.wiring.bus import (
    open_event_sink,
    open_event_source,
    open_publication,
    sends_events_by_broker,
)
from facelens.wiring.people import people_of
from facelens.wiring.process import process_role
from facelens.wiring.recognizer import open_recognizer
from facelens.wiring.stores import (
    notifying_objects,
    open_collections,
    open_profiles,
    open_raw_objects,
    open_stores,
)


def _settings(home: Path, mqtt_url: str | None, worker_id: str) -> Settings:
    return Settings(
        home=home,
        models_dir=models_dir(),
        mqtt=MqttSettings(url=mqtt_url, client_id="bench"),
        recognizer=RecognizerSettings(worker_id=worker_id),
    )


def _crop(analyzer: FaceAnalyzer, photo: Path) -> bytes | None:
    import cv2

    from facelens.engine.images import read_image_file

    image = read_image_file(photo, max_bytes=50_000_000, max_pixels=50_000_000).pixels
    faces = analyzer.engine.detect(image, largest_only=True)
    if not faces:
        return None
    box = faces[0].face.box
    dx, dy = box.width / 4, box.height / 4
    h, w = image.shape[:2]
    crop = image[
        max(0, int(box.top - dy)) : min(h, int(box.bottom + dy)),
        max(0, int(box.left - dx)) : min(w, int(box.right + dx)),
    ]
    ok, jpeg = cv2.imencode(
        ".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
    )
    return bytes(jpeg.tobytes()) if ok else None


def crop_store(settings: Settings, stack: ExitStack) -> ObjectStore:
    """The object store a camera puts crops in: each put queues the recognizer's event (as
    ``facelens objects put``, in the process role ``cli``)."""
    publication = None
    if sends_events_by_broker(settings):
        publication = open_publication(settings, stack, process_role(settings, "cli"))
    sink = open_event_sink(settings, stack, publication)
    return notifying_objects(settings, open_raw_objects(settings, stack), sink)


def prepare(home: Path, mqtt_url: str | None, events: int) -> int:
    """Enrols one photo per identity and queues ``events`` crop events; returns the count."""
    settings = _settings(home, mqtt_url, "setup")
    with ExitStack() as stack:
        own = open_collections(settings, stack)
        profiles = open_profiles(settings, stack)
        collections, users = own.collections, own.users
        collections.create_collection("faces")
        crops: list[bytes] = []
        for person in sorted((testdata_dir() / "people").iterdir()):
            photos = sorted(p for p in person.iterdir() if p.suffix in (".jpg", ".png"))
            enrolled = collections.index_faces("faces", photos[0].read_bytes(), max_faces=1)
            if enrolled.face_records:
                face_id = enrolled.face_records[0].face.face_id
                users.create_user("faces", person.name)
                users.associate_faces("faces", person.name, [face_id])
                profiles.put(person.name, {"Name": person.name.replace("_", " ")})
            crops += [c for c in (_crop(own.analyzer, p) for p in photos[1:]) if c is not None]
        objects = crop_store(settings, stack)
        objects.create_bucket("facelens")
        meta = CropMetadata(camera="bench").to_metadata()
        for i in range(events):
            objects.put_object(
                "facelens", f"faces/bench/{i:05d}.jpg", crops[i % len(crops)], metadata=meta
            )
    return events


def _work(home: str, mqtt_url: str | None, worker_id: str, ready: Any, go: Any, out: Any) -> None:
    settings = _settings(Path(home), mqtt_url, worker_id)
    with ExitStack() as stack:  # as `facelens recognizer`, its worker driven from here
        publication = open_publication(settings, stack, process_role(settings))
        stores = open_stores(settings, stack)
        people = people_of(settings, stores)
        recognizer = open_recognizer(settings, stack, stores, people, publication).recognizer
        recognizer.prepare()
        source = open_event_source(settings, stack)
        worker = RecognizerWorker(source, recognizer, wait_seconds=0.2, keep_outcomes=True)
        ready.put(worker_id)
        go.wait()
        while worker.run_once():
            pass
        finished = time.perf_counter()
        if publication.broker is not None:
            publication.broker.flush(30)
    outcomes = worker.stats.outcomes
    out.put(
        {
            "finished": finished,
            "events": len(outcomes),
            "identified": worker.stats.identified,
            "unknown": worker.stats.unknown,
            "dead_letters": worker.stats.dead_letters,
            "engine": [o.engine_seconds for o in outcomes],
            "total": [o.total_seconds for o in outcomes],
        }
    )


def run(home: Path, mqtt_url: str | None, workers: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_work, args=(str(home), mqtt_url, f"bench-{i}", ready, go, out))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    started = time.perf_counter()
    go.set()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    wall = max(r["finished"] for r in results) - started
    events = sum(r["events"] for r in results)
    engine = [s for r in results for s in r["engine"]]
    total = [s for r in results for s in r["total"]]
    return {
        "workers": workers,
        "events": events,
        "per_worker_events": [r["events"] for r in results],
        "identified": sum(r["identified"] for r in results),
        "unknown": sum(r["unknown"] for r in results),
        "dead_letters": sum(r["dead_letters"] for r in results),
        "wall_s": round(wall, 3),
        "events_per_second": round(events / wall, 2),
        "event_total": summarize_ms(total),
        "event_engine": summarize_ms(engine),
        "event_own": summarize_ms([t - e for t, e in zip(total, engine, strict=True)]),
    }


def _mosquitto(root: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = root / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    process = subprocess.Popen([binary, "-c", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"mqtt://127.0.0.1:{port}"
        time.sleep(0.05)
    process.kill()
    return None


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median events per second, with the min and max of all runs beside it."""
    ordered = sorted(runs, key=lambda r: r["events_per_second"])
    rates = [r["events_per_second"] for r in ordered]
    return {
        **ordered[len(ordered) // 2],
        "events_per_second_min": rates[0],
        "events_per_second_max": rates[-1],
        "repeats": len(runs),
    }


def engine_names(home: Path) -> dict[str, str]:
    """The detector and embedder the default settings build (what the workers ran)."""
    from facelens.engine.registry import detector_name

    settings = _settings(home, None, "names")
    return {
        "detector": detector_name(settings),
        "embedder": settings.embedder,
        "embed_flip": str(settings.embed_flip),
        "embed_views": settings.embed_views,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="runs per worker count (median)")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = _mosquitto(Path(tmp))
        mqtt_url = broker[1] if broker else None
        try:
            template = Path(tmp) / "template"
            prepare(template, mqtt_url, args.events)
            for n in args.workers:
                repeats = []
                for i in range(args.repeat):
                    home = Path(tmp) / f"home-{n}-{i}"
                    shutil.copytree(template, home)
                    repeats.append(run(home, mqtt_url, n))
                    shutil.rmtree(home, ignore_errors=True)
                runs.append(median_run(repeats))
        finally:
            if broker:
                broker[0].terminate()
                broker[0].wait(10)
    write_result(
        "recognizer_throughput",
        {
            "publisher": "mqtt (mosquitto on loopback)" if mqtt_url else "memory",
            "events_source": "sqlite outbox",
            "engine": engine_names(Path(tmp)),
            "runs": runs,
            "machine": machine_facts(),
        },
    )


if __name__ == "__main__":
    main()
