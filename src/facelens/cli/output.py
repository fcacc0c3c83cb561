"""The one place the CLI turns results and errors into output.

Results are JSON on stdout with Rekognition's field names; errors are
``{"Error": {"Code", "Message"}}`` on stderr with exit status 254, the AWS
CLI's status for an error the service returned (252 for bad usage is
typer's own 2 here).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import typer

from facelens.errors import FacelensError

ERROR_EXIT = 254


def emit(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def emit_error(error: FacelensError) -> None:
    sys.stderr.write(json.dumps(error.to_dict()) + "\n")


@contextmanager
def aws_errors() -> Iterator[None]:
    """Renders FacelensError as AWS-style JSON and exits non-zero."""
    try:
        yield
    except FacelensError as exc:
        emit_error(exc)
        raise typer.Exit(ERROR_EXIT) from None


def run(action: Callable[[ExitStack], dict[str, Any]]) -> None:
    """Runs ``action`` and emits its JSON, or its error. ``action`` opens what it uses on
    the stack it is given (a store that cannot open is an error like any other); all of it
    is closed before the JSON is printed, so what a publisher had spooled has gone out."""
    with aws_errors():
        with ExitStack() as stack:
            document = action(stack)
        emit(document)
