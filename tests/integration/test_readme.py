"""Every command in the README runs, in order, as a reader would type it: the README never
goes stale.

The ``bash`` code blocks are read from README.md and each command is run
for real (``facelens`` and ``aws`` as subprocesses, in one private
``FACELENS_HOME``), with only what the reader's machine has and this one
lacks swapped for local stand-ins (``SUBSTITUTIONS``): a webcam and an RTSP
camera become a real MJPEG camera on loopback (the same FFmpeg network path
in OpenCV), photos become the shared test photos, and the MQTT broker, S3
and PostgreSQL addresses become the test servers'. Commands that run until
Ctrl-C (``up``, ``serve``, ``recognizer``, ``edge`` on a camera) run for a
few seconds and are then interrupted: they must stop cleanly (status 0).
``export`` lines hold for the rest of their block. The ``sh`` block is the
set-up, which ``.ci/run`` runs itself; this test checks that it is the same.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.servers.mjpeg import MjpegCamera
from tests.servers.mosquitto import MosquittoBroker

RUNS_UNTIL_CTRL_C_S = 6.0
"""How long a command that serves until Ctrl-C runs before it is interrupted."""


def readme_blocks(language: str) -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    pattern = rf"^```{language}\n(.*?)^```"
    return [
        [line for line in block.splitlines() if line.strip()]
        for block in re.findall(pattern, text, flags=re.S | re.M)
    ]


def test_the_setup_block_is_what_ci_runs() -> None:
    [setup] = readme_blocks("sh")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert setup == ['pip install -e ".[dev]"', "pytest"]
    assert 'pip install --quiet -e ".[dev]"' in ci
    assert ci.rstrip().splitlines()[-1].strip() in ("pytest", "exec pytest")


def _long_running(argv: list[str]) -> bool:
    if argv[:1] != ["facelens"] or len(argv) < 2:
        return False
    command = argv[1]
    if command == "up":
        return "--once" not in argv
    if command == "serve":
        return True
    if command == "recognizer":
        return len(argv) == 2
    if command == "edge":
        return not any(a.endswith(".mp4") for a in argv)
    return False


def _argv(argv: list[str]) -> list[str]:
    if argv[0] == "facelens":
        return [sys.executable, "-m", "facelens", *argv[1:]]
    if argv[0] == "aws":
        return [sys.executable, "-m", "awscli", *argv[1:]]
    raise AssertionError(f"the README runs {argv[0]!r}, which this test does not know")


def _run(line: str, env: dict[str, str]) -> None:
    argv = shlex.split(line, comments=True)
    command_env = dict(env)
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
        name, _, value = argv.pop(0).partition("=")
        command_env[name] = value
    if _long_running(argv):
        process = subprocess.Popen(
            _argv(argv), env=command_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            time.sleep(RUNS_UNTIL_CTRL_C_S)
            assert process.poll() is None, f"{line!r} ended early: {process.communicate()}"
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, f"{line!r} after Ctrl-C: {stderr[-2000:]}"
        return
    done = subprocess.run(_argv(argv), env=command_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{line!r} exited {done.returncode}: {done.stderr[-2000:]}"


@pytest.mark.slow
def test_every_readme_command_runs(
    tmp_path: Path,
    cli_env: dict[str, str],
    testdata: Path,
    models_dir: Path,
    mjpeg_camera: MjpegCamera,
    mqtt_broker: MosquittoBroker,
    moto_server: str,
    aws_env: dict[str, str],
    postgres_url: str,
) -> None:
    people = testdata / "people"
    obama = sorted((people / "obama").glob("*.jpg"))
    photos = tmp_path / "photos"
    (photos / "bob").mkdir(parents=True)
    for photo in obama[3:5]:
        shutil.copy(photo, photos / "bob" / photo.name)
    substitutions = {
        "rtsp://user:pass@192.168.1.20:554/stream1": mjpeg_camera.url,
        "--source 0": f"--source {mjpeg_camera.url}",
        "me.jpg": str(people / "lin_manuel_miranda" / "lin_manuel_miranda_1.png"),
        "clip.mp4": str(testdata / "video" / "short_hamilton_clip.mp4"),
        "crop.jpg": str(obama[5]),
        "photos/alice.jpg": str(obama[0]),
        "photos/someone.jpg": str(obama[1]),
        "photos/bob-at-the-door.jpg": str(obama[2]),
        "photos/": f"{photos}/",
        "mqtt://127.0.0.1:1883": mqtt_broker.url,
        "http://127.0.0.1:9000": moto_server,
        "postgresql://facelens@127.0.0.1:5432/facelens": postgres_url,
    }
    base = {
        **os.environ,
        **cli_env,
        **aws_env,
        "FACELENS_MODELS_DIR": str(models_dir),
        "FACELENS_SERVE__PORT": "0",  # the reader's 8080 may be taken here
        "FACELENS_EDGE__VIEW_PORT": "0",
    }
    blocks = readme_blocks("bash")
    assert len(blocks) >= 5
    for block in blocks:
        env = dict(base)
        for raw in block:
            line = raw
            for placeholder, local in substitutions.items():
                line = line.replace(placeholder, local)
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                env[name] = shlex.split(value)[0]
                continue
            _run(line, env)
