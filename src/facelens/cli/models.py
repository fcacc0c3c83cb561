"""`facelens models list` and `facelens models pull NAME...`: the catalogue of model files.

Both read only settings (``models_dir``, ``home``): no store, no engine, so
they stay quick and work before anything else is configured.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from facelens.cli.output import aws_errors, emit
from facelens.config import Settings
from facelens.engine.model_files import (
    CATALOGUE,
    DEFAULT_TIMEOUT_S,
    ModelState,
    PullResult,
    lookup,
    model_state,
    models_directory,
    pull,
    source_url,
)
from facelens.errors import InvalidParameterException

app = typer.Typer(
    help="Model files: what is known, present and verified; downloads.", no_args_is_help=True
)


def _state_document(state: ModelState) -> dict[str, Any]:
    entry = state.entry
    return {
        "Name": entry.name,
        "File": entry.file_name,
        "Kind": entry.kind,
        "Present": state.present,
        "Verified": state.verified,
        "Size": state.size,
        "ExpectedSize": entry.size,
        "Sha256": entry.sha256,
        "PartialBytes": state.partial,
        "Licence": entry.licence,
        "SourceUrl": entry.url,
        "Path": str(state.path),
        "Description": entry.description,
    }


def _pull_document(result: PullResult) -> dict[str, Any]:
    return {
        "Name": result.entry.name,
        "File": result.entry.file_name,
        "Path": str(result.path),
        "Size": result.entry.size,
        "Sha256": result.entry.sha256,
        "AlreadyPresent": result.already_present,
        "ResumedFrom": result.resumed_from,
        "Downloaded": result.downloaded,
    }


@app.command("list")
def list_models() -> None:
    """Every known model: file, present?, verified (size and SHA-256)?, licence, source."""
    with aws_errors():
        directory = models_directory(Settings())
        states = [model_state(entry, directory) for entry in CATALOGUE.values()]
    emit(
        {
            "ModelsDirectory": str(directory),
            "Models": [_state_document(state) for state in states],
        }
    )


@app.command("pull")
def pull_models(
    names: Annotated[
        list[str], typer.Argument(help=f"Models to fetch: {', '.join(sorted(CATALOGUE))}.")
    ],
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help=(
                "Download from here instead of the official location: a URL ending in '/' is "
                "a base (the file name is appended), otherwise the file itself (one model only)."
            ),
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=1.0, help="Seconds a connect or one read may wait before giving up."
        ),
    ] = DEFAULT_TIMEOUT_S,
) -> None:
    """Downloads models into the models directory, verified, resuming a partial download.

    A file is put in place only once its size and SHA-256 match; a download that
    stops keeps its partial file (run again to resume), a wrong one is deleted.
    """
    results: list[PullResult] = []
    with aws_errors():
        entries = [lookup(name) for name in dict.fromkeys(names)]
        if url is not None and not url.endswith("/") and len(entries) > 1:
            raise InvalidParameterException(
                "--url names one file; for several models give a base URL ending in '/'"
            )
        for entry in entries:
            source_url(entry, url)  # refuse a bad URL before any download starts
        directory = models_directory(Settings())
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as progress:
            for entry in entries:
                task = progress.add_task(entry.file_name, total=entry.size)

                def advance(done: int, total: int, task: TaskID = task) -> None:
                    progress.update(task, completed=done, total=total)

                results.append(pull(entry, directory, url=url, timeout_s=timeout, progress=advance))
    emit({"ModelsDirectory": str(directory), "Models": [_pull_document(r) for r in results]})
