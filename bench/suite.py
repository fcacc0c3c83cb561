"""`python -m bench`: every benchmark in one run, then one JSON, a Markdown table and plots.

Why one command: figures are only comparable when they come from the same
machine in the same hour, and a reader should be able to reproduce the
README's table with one line. Each benchmark runs in its own process (its
peak memory, CPU pinning and imported libraries stay its own), writes its
own JSON to ``bench/results/``, and its output goes to
``bench/results/logs/<name>.log``. A failing step is recorded and the
suite goes on; the report says which figures are missing and why.

Budget: the default run is sized to finish in under 15 minutes on a
2-core machine (each step's ``budget_s`` is what it took here);
``--quick`` runs every step small, in about 3 minutes, to check the wiring.

Run from the repository root::

    python -m bench [--quick] [--only NAME ...] [--skip NAME ...] [--report-only]
                    [--publish docs/benchmarks] [--update-readme]

Writes bench/results/bench.json, bench/results/bench.md and
bench/results/plots/*.png.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench._common import REPO_ROOT, RESULTS_DIR, machine_facts


@dataclass(frozen=True)
class Step:
    """One benchmark module, its arguments for the full and the quick run, and its result."""

    name: str
    module: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    results: tuple[str, ...]
    """Result document names (``bench/results/<name>.json``) this step writes."""
    budget_s: int
    """About how long the full run of this step takes here (2 cores); its timeout is 3x."""


STEPS: tuple[Step, ...] = (
    Step(
        "detectors",
        "bench.detectors",
        ("--images", "60"),
        ("--images", "10", "--sizes", "20", "64", "--rounds", "1"),
        ("detectors",),
        40,
    ),
    Step(
        "engine_speed",
        "bench.engine_speed",
        (
            "--detect-repeat",
            "3",
            "--align-repeat",
            "50",
            "--embed-rounds",
            "3",
            "--rounds",
            "2",
            "--per-worker",
            "16",
        ),
        (
            "--detect-repeat",
            "1",
            "--align-repeat",
            "5",
            "--embed-rounds",
            "2",
            "--rounds",
            "1",
            "--per-worker",
            "8",
            "--workers",
            "1",
        ),
        ("engine_speed",),
        70,
    ),
    Step(
        "compare",
        "bench.compare",
        # LFW on compare's default 3 of 5 folds, both sides on the same pairs: 4 folds (a
        # steadier TAR at FAR 0.001) took the suite to 16 minutes here. All 3000 pairs:
        # python -m bench.compare --stages lfw --lfw-folds 5 (about 7 minutes).
        (),
        ("--quick",),
        ("compare",),
        260,
    ),
    Step(
        "search_scale",
        "bench.search_scale",
        (),
        ("--sizes", "10000", "100000"),
        ("search_scale",),
        300,
    ),
    Step(
        "recognizer_throughput",
        "bench.recognizer_throughput",
        ("--events", "40", "--repeat", "3"),
        ("--events", "6", "--workers", "1"),
        ("recognizer_throughput",),
        60,
    ),
    Step(
        "recognizer_memory",
        "bench.recognizer_memory",
        (),
        ("--faces", "20000", "--events", "4"),
        ("recognizer_memory",),
        60,
    ),
    Step(
        "peak_rss",
        "bench.peak_rss",
        (),
        ("--concurrency", "2", "--images", "black_png"),
        ("peak_rss",),
        60,
    ),
    Step(
        "edge_fps",
        "bench.edge_fps",
        ("--repeat", "3", "--no-latency"),
        ("--repeat", "1", "--no-latency"),
        ("edge_fps",),
        150,
    ),
    Step(
        "identify",
        "bench.identify",
        # Cold: ours embeds the 3811 LFW photos in about 2.5 minutes on 2 workers, the peer in
        # about 4; both are cached (ours in $FACELENS_HOME/cache, the peer's in
        # bench/results/cache), so a later run takes seconds.
        (),
        ("--quick",),
        ("identify",),
        400,
    ),
    Step(
        "up_latency",
        "bench.up_latency",
        ("--runs", "3"),
        ("--runs", "1"),
        ("up_latency_runs",),
        60,
    ),
)


@dataclass(frozen=True)
class StepRun:
    """What running one step did: exit status (None: timed out), seconds, its log."""

    step: Step
    returncode: int | None
    seconds: float
    log: Path


def environment() -> dict[str, str]:
    """This environment, with the shared test data and models found beside the checkout."""
    env = dict(os.environ)
    shared = REPO_ROOT.parent / "shared"
    env.setdefault("FACELENS_TESTDATA", str(shared / "testdata"))
    env.setdefault("FACELENS_MODELS_DIR", str(shared / "models"))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_step(step: Step, *, quick: bool, env: dict[str, str]) -> StepRun:
    """Runs ``python -m <module> <args>`` from the repository root, output to its log."""
    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{step.name}.log"
    args = step.quick_args if quick else step.args
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        out.write(f"$ python -m {step.module} {' '.join(args)}\n")
        out.flush()
        try:
            done = subprocess.run(
                [sys.executable, "-m", step.module, *args],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=step.budget_s * 3,
                check=False,
            )
            code: int | None = done.returncode
        except subprocess.TimeoutExpired:
            out.write(f"\n[suite] timed out after {step.budget_s * 3} s\n")
            code = None
    return StepRun(step, code, time.perf_counter() - started, log)


def select(only: list[str] | None, skip: list[str] | None) -> list[Step]:
    """The steps to run, in suite order; unknown names are an error."""
    known = {s.name for s in STEPS}
    unknown = set(only or []) | set(skip or [])
    unknown -= known
    if unknown:
        raise SystemExit(f"unknown step(s) {sorted(unknown)}; known: {sorted(known)}")
    return [s for s in STEPS if (not only or s.name in only) and s.name not in (skip or [])]


def main(argv: list[str] | None = None) -> None:
    from bench.report import build_report, publish, update_readme

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every step small (wiring check)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these steps")
    parser.add_argument("--skip", nargs="+", metavar="NAME", help="skip these steps")
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild the report from existing results"
    )
    parser.add_argument(
        "--publish", type=Path, metavar="DIR", help="also copy the table and plots into DIR"
    )
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="put the short table into README.md between its bench:headline markers",
    )
    args = parser.parse_args(argv)
    steps = select(args.only, args.skip)
    machine = machine_facts()
    started = time.perf_counter()
    runs: list[StepRun] = []
    if not args.report_only:
        env = environment()
        columns = (
            TextColumn("{task.description:<24}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TimeElapsedColumn(),
        )
        with Progress(*columns) as progress:
            task = progress.add_task("benchmarks", total=len(steps))
            for step in steps:
                progress.update(task, description=step.name)
                run = run_step(step, quick=args.quick, env=env)
                runs.append(run)
                status = "ok" if run.returncode == 0 else f"FAILED ({run.returncode})"
                progress.console.print(f"{step.name:<24} {run.seconds:7.1f} s  {status}")
                progress.advance(task)
    report = build_report(
        runs,
        machine=machine,
        total_s=time.perf_counter() - started,
        quick=args.quick,
        finished_at=datetime.now(UTC).isoformat(),
    )
    print(report.markdown)
    print(f"wrote {report.json_path}, {report.markdown_path} and {len(report.plots)} plot(s)")
    if args.publish:
        publish(report, args.publish)
        print(f"published to {args.publish}")
    if args.update_readme:
        readme = REPO_ROOT / "README.md"
        changed = update_readme(report, readme)
        print(f"updated {readme}" if changed else f"no bench:headline markers in {readme}")
    failed = [r.step.name for r in runs if r.returncode != 0]
    if failed:
        print(f"failed steps: {', '.join(failed)} (see bench/results/logs/)", file=sys.stderr)
        raise SystemExit(1)


def copy_into(paths: list[Path], folder: Path) -> None:
    """Copies files into ``folder`` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        shutil.copy2(path, folder / path.name)
