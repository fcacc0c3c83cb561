"""End to end: a frame's capture to its identification's publication, through `facelens up`.

Why: the mission is "who is it, in well under a second". This is the whole
path a user runs: the edge runner (decode, detect, track, pick, verify,
JPEG, store), the ObjectCreated event, the recognizer (read, detect, embed,
search, profile) and the MQTT publication, as the broker delivers it.

How: two people of the Hamilton clip are enrolled once (``facelens
enroll``), then ``facelens up --source short_hamilton_clip.mp4 --realtime
--once`` plays the clip at its frame rate (as a camera would deliver it)
``--runs`` times, each in a fresh copy of that home, publishing to a
Mosquitto on loopback. A subscriber records when each recognizer message
arrives; latency is that minus the crop's ``CapturedAt``. With the default
half-second best-of window a new face waits up to 0.5 s for a better crop
by design; ``--immediate`` adds runs with ``best_of_seconds`` 0 (the
pipeline's own latency). Everything shares this machine's cores: camera
loop, recognizer and server.

Run from the repository root (needs Mosquitto: ``apt-get install mosquitto``)::

    python -m bench.up_latency [--runs 3] [--immediate]

Writes bench/results/up_latency_runs.json (pytest's tests/integration/test_up.py
writes a single-run bench/results/up_latency.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import machine_facts, summarize_ms, testdata_dir, write_result
from bench.edge_fps import models_dir

PEOPLE = {
    "Alex Lacamoire": "alex_lacamoire/alex_lacamoire_1.png",
    "Lin-Manuel Miranda": "lin_manuel_miranda/lin_manuel_miranda_1.png",
}
CLIP = "short_hamilton_clip.mp4"
RUN_TIMEOUT_S = 180


def facelens(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One CLI run; raises with its stderr when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "facelens", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"facelens {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def base_env(home: Path) -> dict[str, str]:
    """This process's environment without FACELENS_* settings, plus a home and the models."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACELENS_")}
    env.update(FACELENS_HOME=str(home), FACELENS_MODELS_DIR=str(models_dir()))
    return env


def one_run(home: Path, broker: Any, extra_env: dict[str, str]) -> dict[str, Any]:
    """``facelens up --once`` on the clip; latencies (s) of every recognizer message."""
    from tests.servers.mosquitto import Subscriber

    clip = testdata_dir() / "video" / CLIP
    env = {**base_env(home), **extra_env}
    with Subscriber(broker, "rekognition/#") as everything, Subscriber(broker, "rekognition"):
        started = time.perf_counter()
        facelens(
            "up",
            "--source",
            str(clip),
            "--realtime",
            "--once",
            "--no-serve",
            "--mqtt",
            broker.url,
            env=env,
        )
        wall = time.perf_counter() - started
        messages = everything.messages
    outcomes: list[float] = []
    identified: list[float] = []
    names: set[str] = set()
    for message in messages:
        try:
            body = json.loads(message.payload)
            captured = datetime.fromisoformat(body["CapturedAt"]).astimezone(UTC).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        latency = message.received_at - captured
        outcomes.append(latency)
        if body.get("Status") == "identified":
            identified.append(latency)
            names.add(str(body.get("Name")))
    return {
        "wall_s": round(wall, 1),
        "messages": len(outcomes),
        "identified_names": sorted(names),
        "all_outcomes": outcomes,
        "identifications": identified,
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over runs of each run's p50 (with min and max), and the pooled percentiles."""
    report: dict[str, Any] = {"runs": len(runs)}
    for key in ("identifications", "all_outcomes"):
        per_run = [summarize_ms(run[key]) for run in runs if run[key]]
        p50s = [s["p50_ms"] for s in per_run]
        pooled = [x for run in runs for x in run[key]]
        report[key] = {
            "p50_ms_median_of_runs": round(statistics.median(p50s), 1) if p50s else None,
            "p50_ms_min": round(min(p50s), 1) if p50s else None,
            "p50_ms_max": round(max(p50s), 1) if p50s else None,
            "pooled": summarize_ms(pooled),
        }
    report["identified_names_per_run"] = [run["identified_names"] for run in runs]
    report["messages_per_run"] = [run["messages"] for run in runs]
    report["wall_s_per_run"] = [run["wall_s"] for run in runs]
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="plays of the clip per setting")
    parser.add_argument("--immediate", action="store_true", help="also measure best_of_seconds 0")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    from tests.servers.mosquitto import _binary, running_broker

    if _binary() is None:
        write_result("up_latency_runs", {"skipped": "mosquitto is not installed"})
        return
    machine = machine_facts()
    settings: dict[str, dict[str, str]] = {"default (best_of_seconds 0.5)": {}}  # label: extra env
    if args.immediate:
        settings["immediate (best_of_seconds 0)"] = {"FACELENS_EDGE__BEST_OF_SECONDS": "0"}
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="facelens-up-") as tmp, running_broker() as broker:
        template = Path(tmp) / "enrolled"
        for name, photo in PEOPLE.items():
            facelens(
                "enroll", str(testdata_dir() / "people" / photo), "--name", name,
                env=base_env(template),
            )  # fmt: skip
        for label, extra in settings.items():
            runs = []
            for i in range(args.runs):
                home = Path(tmp) / f"run-{len(results)}-{i}"
                shutil.copytree(template, home)
                runs.append(one_run(home, broker, extra))
                print(f"{label} run {i + 1}: {summarize_ms(runs[-1]['identifications'])}")
            results[label] = aggregate(runs)
    write_result(
        "up_latency_runs",
        {
            "machine": machine,
            "what": (
                "facelens up --realtime --once on short_hamilton_clip.mp4 (detector auto: YuNet "
                "when its model is present), two people enrolled: from a frame's capture "
                "(CapturedAt) to the recognizer's message arriving at an MQTT subscriber "
                "(Mosquitto on loopback)"
            ),
            "results": results,
            "total_s": round(time.perf_counter() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
