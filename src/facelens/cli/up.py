"""`facelens up --source SRC`: camera, recognizer and dashboard in one process, until Ctrl-C."""

from __future__ import annotations

import logging
import signal
from contextlib import ExitStack
from typing import Annotated, Any

import typer

from facelens.cli.output import run
from facelens.config import MqttSettings, Settings


def up(
    source: Annotated[
        str,
        typer.Option("--source", help="Webcam index (0), video file, rtsp:// or http(s):// URL."),
    ],
    thing: Annotated[str, typer.Option("--thing", help="The camera's name.")] = "camera",
    mqtt: Annotated[
        str | None,
        typer.Option("--mqtt", help="Also publish on this broker (mqtt://host:1883)."),
    ] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Play a video file at its frame rate.")
    ] = False,
    once: Annotated[
        bool,
        typer.Option("--once", help="Exit when the source has ended and its crops are recognized."),
    ] = False,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="Dashboard port.")
    ] = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="No HTTP server.")] = False,
) -> None:
    """Runs the whole pipeline: identifications are printed here and shown on the dashboard."""
    from facelens.up import Up

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _settings(mqtt=mqtt, port=port)

    def action(stack: ExitStack) -> dict[str, Any]:
        pipeline = Up(
            settings,
            stack,
            source=source,
            thing=thing,
            realtime=realtime,
            once=once,
            serve=not no_serve,
            out=lambda line: typer.echo(line),
            announce=lambda line: typer.echo(line, err=True),
        )
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: pipeline.stop())
        summary = pipeline.run()
        return {
            "Frames": summary.frames,
            "Crops": summary.crops,
            "Identified": summary.identified,
            "Unknown": summary.unknown,
            "DeadLetters": summary.dead_letters,
        }

    run(action)


def _settings(*, mqtt: str | None, port: int | None) -> Settings:
    base = Settings()
    update: dict[str, Any] = {}
    if mqtt is not None:
        update["mqtt"] = MqttSettings(**{**base.mqtt.model_dump(), "url": mqtt})
    if port is not None:
        update["serve"] = base.serve.model_copy(update={"port": port})
    return base.model_copy(update=update)
