"""`facelens up` end to end, as a user runs it: enrol two people, play the clip, see them named.

Real processes, a real broker, the real engine: ``facelens enroll`` twice,
then ``facelens up`` on the Hamilton clip at its frame rate (as a camera
would deliver it). Both people must be identified with their profiles on
stdout, in the HTTP API's history and on MQTT. The same run measures the
time from each frame's capture (the crop's ``CapturedAt``) to the
publication of its identification as the broker delivers it, and writes
p50/p95 to ``bench/results/up_latency.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from bench._common import summarize_ms, write_result

from tests.integration.test_cli import facelens
from tests.servers._common import free_port
from tests.servers.mosquitto import MosquittoBroker, Received, Subscriber

PEOPLE = {
    "Alex Lacamoire": ("alex_lacamoire/alex_lacamoire_1.png", "Music director"),
    "Lin-Manuel Miranda": ("lin_manuel_miranda/lin_manuel_miranda_1.png", "Composer"),
}


def _json(message: Received) -> dict[str, Any]:
    """The message's JSON object; {} for others (availability is plain 'online')."""
    try:
        body = json.loads(message.payload)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _ended(messages: list[Received]) -> bool:
    return any(
        m.topic == "things/camera/infer" and _json(m).get("status") == "source ended"
        for m in messages
    )


def _identified(messages: list[Received]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for m in messages:
        body = _json(m)
        if m.topic == "rekognition" and body.get("Status") == "identified":
            found.setdefault(body["Name"], body)
    return found


@pytest.mark.slow
def test_up_names_both_people_on_stdout_api_and_mqtt(
    cli_env: dict[str, str],
    testdata: Path,
    models_dir: Path,
    mqtt_broker: MosquittoBroker,
) -> None:
    env = {**cli_env, "FACELENS_MODELS_DIR": str(models_dir), "FACELENS_DETECTOR": "yunet"}
    for name, (photo, role) in PEOPLE.items():
        enrolled = json.loads(
            facelens(
                "enroll",
                str(testdata / "people" / photo),
                "--name",
                name,
                "--attr",
                f"Role={role}",
                env=env,
            ).stdout
        )
        assert enrolled["Profile"]["Name"] == name

    port = free_port()
    clip = testdata / "video" / "short_hamilton_clip.mp4"
    with Subscriber(mqtt_broker, "#") as subscriber:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "facelens",
                "up",
                "--source",
                str(clip),
                "--realtime",
                "--mqtt",
                mqtt_broker.url,
                "--port",
                str(port),
            ],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not (
                _ended(subscriber.messages)
                and _identified(subscriber.messages).keys() >= set(PEOPLE)
            ):
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "not both identified within 2 minutes"
                time.sleep(0.1)
            time.sleep(3)  # the last crops' identifications (the edge has ended its tracks)

            history = requests.get(
                f"http://127.0.0.1:{port}/api/v1/identifications",
                params={"status": "identified"},
                timeout=10,
            ).json()["Identifications"]
            process.send_signal(signal.SIGINT)  # Ctrl-C: everything stops cleanly
            stdout, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, stderr
    assert f"dashboard at http://127.0.0.1:{port}/ui/" in stderr

    on_mqtt = _identified(subscriber.messages)
    in_api = {r["Message"]["Name"]: r["Message"] for r in history}
    for name, (_, role) in PEOPLE.items():
        assert on_mqtt[name]["Role"] == role
        assert on_mqtt[name]["Camera"] == "camera"
        assert in_api[name]["Role"] == role
        assert any(name in line and f"Role={role}" in line for line in stdout.splitlines())

    # Frame capture -> publication (as the broker delivered it), every recognizer outcome.
    latencies, identified = [], []
    for m in subscriber.messages:
        if not m.topic.startswith("rekognition"):
            continue
        body = _json(m)
        captured = datetime.fromisoformat(body["CapturedAt"]).astimezone(UTC).timestamp()
        latencies.append(m.received_at - captured)
        if body.get("Status") == "identified":
            identified.append(m.received_at - captured)
    write_result(
        "up_latency",
        {
            "what": (
                "facelens up on short_hamilton_clip.mp4 at its frame rate (--realtime), YuNet, "
                "default settings (a visit's first look sent at once): from a frame's capture "
                "to its recognizer message arriving at an MQTT subscriber (Mosquitto on loopback)"
            ),
            "all_outcomes": summarize_ms(latencies),
            "identifications": summarize_ms(identified),
        },
    )
