"""The suite's steps: which benchmark modules ``python -m bench`` runs, and what one run did.

Each :class:`Step` names a benchmark module, its arguments for the full and the quick
run, the result documents it writes and how long it takes here. The runner
(:mod:`bench.suite`) runs them; the report (:mod:`bench.report`) reads from them
which documents to expect and why one is missing; neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
