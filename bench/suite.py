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
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench._common import REPO_ROOT, RESULTS_DIR, machine_facts
from bench.steps import STEPS, Step, StepRun


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
