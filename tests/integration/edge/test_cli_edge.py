"""`facelens edge` as a user runs it: a clear error for a bad source, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_cli import error, facelens
from tests.servers.mjpeg import MjpegCamera


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("/nonexistent/clip.mp4", "ResourceNotFoundException"),
        ("ftp://camera/stream", "InvalidParameterException"),
        ("", "InvalidParameterException"),
    ],
)
def test_a_bad_source_is_a_clear_error(cli_env: dict[str, str], source: str, code: str) -> None:
    done = facelens(
        "edge", "--source", source, "--thing", "t", "--no-view", env=cli_env, check=False
    )
    assert done.returncode == 254
    assert error(done)["Code"] == code


def test_a_file_that_is_not_a_video(cli_env: dict[str, str], tmp_path: Path) -> None:
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"\x00" * 1000)
    done = facelens(
        "edge", "--source", str(fake), "--thing", "t", "--no-view", env=cli_env, check=False
    )
    assert error(done)["Code"] == "InvalidImageFormatException"
    assert str(fake) in error(done)["Message"]


def test_sigterm_stops_cleanly_and_keeps_nothing_behind(
    cli_env: dict[str, str], mjpeg_camera: MjpegCamera, home: Path
) -> None:
    env = {**os.environ, **cli_env, "FACELENS_EDGE__STATS_SECONDS": "0.5"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facelens",
            "edge",
            "--source",
            mjpeg_camera.url,
            "--thing",
            "door",
            "--no-view",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        objects = home / "objects" / "facelens" / "objects" / "faces"
        while not any(objects.rglob("*.jpg")):  # running: a crop has been uploaded
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no crop within a minute"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["Thing"] == "door"
    assert summary["Frames"] > 0
    assert summary["Uploaded"] == summary["Crops"] >= 1
    assert summary["Buffered"] == 0
    assert '"status":"stopped"' in stderr  # no broker configured: status goes to the log
