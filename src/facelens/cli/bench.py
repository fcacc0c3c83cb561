"""`facelens bench lfw`: face verification accuracy on LFW-style pairs; `bench identify`: open-set
identification (1:N) at the recognizer's own rule; `bench all`: the suite."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, TaskID

from facelens.cli.output import aws_errors, emit
from facelens.config import Settings
from facelens.errors import ConfigurationError
from facelens.evaluation import identification
from facelens.evaluation.identify_run import run_identify
from facelens.evaluation.lfw import run_lfw
from facelens.wiring.evaluation import open_recognizer_rule

app = typer.Typer(help="Benchmarks.", no_args_is_help=True)


@app.command()
def lfw(
    pairs: Annotated[Path, typer.Option("--pairs", help="LFW pairs file (with folds header).")],
    images: Annotated[
        Path, typer.Option("--images", help="LFW images folder (Name/Name_0001.jpg).")
    ],
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Processes (default: the setting).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the JSON here.")
    ] = None,
) -> None:
    """Accuracy (threshold chosen on the other folds), TAR at FAR <= 0.001, FAR and TAR at
    the default FaceMatchThreshold, and images per second; printed as JSON."""
    settings = Settings()
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    with aws_errors(), Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("Embedding LFW images", total=None)
        report, _, _ = run_lfw(
            pairs,
            images,
            settings,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    document = dataclasses.asdict(report)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(document, indent=2) + "\n")
    emit(document)


@app.command()
def identify(
    images: Annotated[
        Path, typer.Option("--images", help="Photos in LFW layout: <identity>/<photo>.jpg.")
    ],
    gallery_sizes: Annotated[
        str,
        typer.Option(
            "--gallery-sizes", help="Identities enrolled, comma-separated; 'all': every one."
        ),
    ] = "10,100,all",
    enrol_photos: Annotated[
        str,
        typer.Option(
            "--enrol-photos",
            help="Photos enrolled per identity, comma-separated (k: identities with k+1 or "
            "more photos enrol k, the others one).",
        ),
    ] = "1",
    seed: Annotated[
        int, typer.Option("--seed", help="Draws the galleries smaller than 'all'.")
    ] = 0,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Processes (default: the setting).")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Embedding cache folder (default: <home>/cache)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the JSON here.")
    ] = None,
) -> None:
    """Open-set identification: rank-1, FNIR at FPIR 1% and 0.1%, and FNIR/FPIR at the rule
    the recognizer applies, per gallery size; printed as JSON (facelens.evaluation)."""
    settings = Settings()
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    with aws_errors(), Progress(console=Console(stderr=True), transient=True) as progress:
        sizes = identification.parse_sizes(gallery_sizes)
        counts = identification.parse_counts(enrol_photos, "--enrol-photos")
        tasks: dict[str, TaskID] = {}

        def step(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage.capitalize(), total=total)
            progress.update(tasks[stage], completed=done, total=total)

        report = run_identify(
            images,
            settings,
            sizes=sizes,
            enrol_counts=counts,
            seed=seed,
            cache_dir=cache_dir if cache_dir is not None else settings.home / "cache",
            open_rule=open_recognizer_rule,
            progress=step,
        )
    document = dataclasses.asdict(report)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(document, indent=2) + "\n")
    emit(document)


def checkout_root() -> Path:
    """The source checkout this facelens runs from, if it has the benchmark suite (bench/).

    The suite is not part of the installed package (it needs the test data
    and the peer library), so it runs only from a checkout.
    """
    root = Path(__file__).resolve().parents[3]
    if not (root / "bench" / "suite.py").is_file():
        raise ConfigurationError(
            "the benchmark suite lives in facelens' source checkout (bench/); install facelens "
            "from a checkout with pip install -e . and run it there"
        )
    return root


@app.command(name="all")
def all_benchmarks(
    quick: Annotated[
        bool, typer.Option("--quick", help="Every step small (wiring check).")
    ] = False,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this step (repeatable).")
    ] = None,
    publish: Annotated[
        Path | None, typer.Option("--publish", help="Also copy the table and plots here.")
    ] = None,
) -> None:
    """Every benchmark (python -m bench): one JSON, a Markdown table and plots in bench/results."""
    with aws_errors():
        root = checkout_root()
    args = ["--quick"] if quick else []
    if only:
        args += ["--only", *only]
    if publish is not None:
        args += ["--publish", str(publish.resolve())]
    done = subprocess.run([sys.executable, "-m", "bench", *args], cwd=root, check=False)
    raise typer.Exit(done.returncode)
