"""`facelens bench lfw`: face verification accuracy on LFW-style pairs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from facelens.cli.context import Context
from facelens.cli.output import aws_errors, emit
from facelens.evaluation.lfw import run_lfw

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
    ctx = Context()
    settings = (
        ctx.settings if workers is None else ctx.settings.model_copy(update={"workers": workers})
    )
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
