"""End to end: a frame's capture to its identification's publication, through `facelens up`.

Why: the mission is "who is it, in well under a second", and issue 19's
target is the first answer of a visit within 100 ms (p50; 200 ms p95). This
is the whole path a user runs: the edge runner (decode, detect, track, the
quality gate, JPEG, store), the ObjectCreated event, the recognizer (read,
detect, embed, search, fuse the visit's looks, profile) and the MQTT
publication, as the broker delivers it.

How: two people of the Hamilton clip are enrolled once (``facelens
enroll``), then ``facelens up --source short_hamilton_clip.mp4 --realtime
--once`` plays the clip at its frame rate (as a camera would deliver it)
``--runs`` times, each in a fresh copy of that home, publishing to a
Mosquitto on loopback, with the edge's and recognizer's default settings
(``--also NAME=VALUE,...`` adds runs with those environment settings, e.g.
``--also FACELENS_EDGE__TRACK_TIMEOUT_SECONDS=2``). A subscriber records
when each recognizer message arrives. Everything shares this machine's
cores: camera loop, recognizer and server.

Figures per setting:

* ``first_answer`` / ``final_answer`` (per visit): messages are grouped by
  ``VisitId``; a message without one (code from before visits) by the
  track of its crop (the crop's ``track-id`` metadata, read back from the
  home's object store by the message's ``Key``). First-answer latency is
  the arrival of the visit's first message (Revision 0, else the earliest)
  minus its ``CapturedAt``; final-answer latency is the arrival of its last
  revision (the highest ``Revision``, else the latest message) minus the
  ``CapturedAt`` of its first message: how long until the visit's answer
  stopped changing, counted from the first look. ``final_differs``: the share
  of visits whose final answer (the name, or unknown) differs from the first.
  Each as the median over runs of each run's p50 (with min and max) and the
  pooled percentiles.
* ``identifications`` / ``all_outcomes`` (per message, the figures this
  bench reported before visits, kept so that old and new runs compare):
  every identification message's (every message's) arrival minus its own
  crop's ``CapturedAt``. Before visits, with the default half-second best-of
  window, these were 553 ms p50 and 775 ms p95 (issue 19); with the window at
  0, 157 / 202 ms.

Run from the repository root (needs Mosquitto: ``apt-get install mosquitto``)::

    python -m bench.up_latency [--runs 3] [--also NAME=VALUE[,NAME=VALUE...]]

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import (
    crop_metadata,
    machine_facts,
    summarize_ms,
    testdata_dir,
    write_result,
)
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


@dataclass(frozen=True)
class Published:
    """One recognizer answer as the subscriber saw it: the visit it belongs to (VisitId, else
    ``track:<id>`` of its crop, else ``message:<RecognitionId>``), when its crop was captured
    and when it arrived (Unix seconds), its Revision (None before visits) and the answer (the
    Name, else UserId, for an identification; None for unknown)."""

    visit: str
    captured_at: float
    received_at: float
    revision: int | None
    answer: str | None


@dataclass(frozen=True)
class VisitTiming:
    """One visit's latencies (seconds, module docstring) and whether its answer changed."""

    visit: str
    first_s: float
    final_s: float
    changed: bool


def published(body: Mapping[str, Any], received_at: float, home: Path) -> Published | None:
    """The answer a message gives (None for a dead letter or a message without CapturedAt)."""
    status = body.get("Status")
    if status not in ("identified", "unknown"):
        return None
    try:
        captured = datetime.fromisoformat(body["CapturedAt"]).astimezone(UTC).timestamp()
    except (ValueError, KeyError, TypeError):
        return None
    visit = body.get("VisitId")
    if not isinstance(visit, str):
        crop = crop_metadata(home, str(body.get("Bucket")), str(body.get("Key")))
        track = None if crop is None else crop.track_id
        visit = f"track:{track}" if track else f"message:{body.get('RecognitionId')}"
    revision = body.get("Revision")
    answer = body.get("Name") or body.get("UserId") if status == "identified" else None
    return Published(
        visit,
        captured,
        received_at,
        revision if isinstance(revision, int) else None,
        None if answer is None else str(answer),
    )


def per_visit(answers: Sequence[Published]) -> list[VisitTiming]:
    """Each visit's first-answer and final-answer latency and whether the answer changed."""
    visits: dict[str, list[Published]] = {}
    for a in answers:
        visits.setdefault(a.visit, []).append(a)
    out = []
    for visit, group in visits.items():
        ordered = sorted(group, key=lambda a: (a.revision or 0, a.received_at))
        first, final = ordered[0], ordered[-1]
        out.append(
            VisitTiming(
                visit,
                first.received_at - first.captured_at,
                final.received_at - first.captured_at,
                final.answer != first.answer,
            )
        )
    return out


def one_run(home: Path, broker: Any, extra_env: dict[str, str]) -> dict[str, Any]:
    """``facelens up --once`` on the clip; latencies (s) of every recognizer message and of
    every visit's first and final answer."""
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
    answers: list[Published] = []
    with_visit_id = 0
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
        answer = published(body, message.received_at, home)
        if answer is not None:
            answers.append(answer)
            with_visit_id += isinstance(body.get("VisitId"), str)
    visits = per_visit(answers)
    return {
        "wall_s": round(wall, 1),
        "messages": len(outcomes),
        "identified_names": sorted(names),
        "all_outcomes": outcomes,
        "identifications": identified,
        "first_answer": [v.first_s for v in visits],
        "final_answer": [v.final_s for v in visits],
        "visits": len(visits),
        "visits_changed": sum(v.changed for v in visits),
        "messages_with_visit_id": with_visit_id,
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over runs of each run's p50 (with min and max), and the pooled percentiles."""
    report: dict[str, Any] = {"runs": len(runs)}
    for key in ("first_answer", "final_answer", "identifications", "all_outcomes"):
        per_run = [summarize_ms(run[key]) for run in runs if run[key]]
        p50s = [s["p50_ms"] for s in per_run]
        pooled = [x for run in runs for x in run[key]]
        report[key] = {
            "p50_ms_median_of_runs": round(statistics.median(p50s), 1) if p50s else None,
            "p50_ms_min": round(min(p50s), 1) if p50s else None,
            "p50_ms_max": round(max(p50s), 1) if p50s else None,
            "pooled": summarize_ms(pooled),
        }
    visits = sum(run["visits"] for run in runs)
    report["final_differs"] = {
        "share": round(sum(run["visits_changed"] for run in runs) / visits, 3) if visits else None,
        "per_run": [f"{run['visits_changed']}/{run['visits']}" for run in runs],
    }
    report["identified_names_per_run"] = [run["identified_names"] for run in runs]
    report["messages_per_run"] = [run["messages"] for run in runs]
    report["visits_per_run"] = [run["visits"] for run in runs]
    report["messages_with_visit_id_per_run"] = [run["messages_with_visit_id"] for run in runs]
    report["wall_s_per_run"] = [run["wall_s"] for run in runs]
    return report


def parse_also(text: str) -> dict[str, str]:
    """``NAME=VALUE,NAME=VALUE`` -> the environment a setting adds (ValueError if malformed)."""
    env: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        if not sep or not name.startswith("FACELENS_"):
            raise ValueError(f"--also {part!r}: expected FACELENS_NAME=VALUE")
        env[name] = value
    if not env:
        raise ValueError("--also: no setting given")
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="plays of the clip per setting")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        help="another setting: FACELENS_NAME=VALUE[,FACELENS_NAME=VALUE...] (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        also = {text: parse_also(text) for text in args.also}
    except ValueError as exc:
        parser.error(str(exc))

    from tests.servers.mosquitto import _binary, running_broker

    if _binary() is None:
        write_result("up_latency_runs", {"skipped": "mosquitto is not installed"})
        return
    machine = machine_facts()
    settings: dict[str, dict[str, str]] = {"default": {}, **also}  # label: extra env
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
                print(f"{label} run {i + 1}: first {summarize_ms(runs[-1]['first_answer'])}")
            results[label] = aggregate(runs)
    write_result(
        "up_latency_runs",
        {
            "machine": machine,
            "what": (
                "facelens up --realtime --once on short_hamilton_clip.mp4 (detector auto: YuNet "
                "when its model is present), two people enrolled: from a frame's capture "
                "(CapturedAt) to the recognizer's message arriving at an MQTT subscriber "
                "(Mosquitto on loopback); first_answer/final_answer per visit (VisitId, else "
                "the crop's track), identifications/all_outcomes per message (module docstring)"
            ),
            "results": results,
            "total_s": round(time.perf_counter() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
