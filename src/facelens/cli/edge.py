"""`facelens edge`: one camera's runner, until the source ends or SIGINT/SIGTERM.

Prints a JSON summary at the end (frames, tracks, crops, what is still
buffered for the next start); fps, queue depth and drops are logged every
``edge.stats_seconds`` and served on the live view's ``/metrics``.
"""

from __future__ import annotations

import logging
import signal
from contextlib import ExitStack
from typing import Annotated, Any

import typer

from facelens.cli.output import run
from facelens.config import Settings


def edge(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="Webcam index (0), video file, rtsp:// or http(s):// MJPEG URL.",
        ),
    ],
    thing: Annotated[
        str, typer.Option("--thing", help="This camera's name: topics, metadata and keys.")
    ],
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Play a video file at its frame rate.")
    ] = False,
    max_frames: Annotated[
        int | None, typer.Option("--max-frames", min=1, help="Stop after this many frames.")
    ] = None,
    detector: Annotated[
        str | None, typer.Option("--detector", help="'auto', 'hog' or 'yunet' (default: settings).")
    ] = None,
    view_port: Annotated[
        int | None,
        typer.Option("--view-port", min=0, max=65535, help="Live view port (0: any free one)."),
    ] = None,
    no_view: Annotated[bool, typer.Option("--no-view", help="Serve no live view.")] = False,
) -> None:
    """Detects faces on a camera, uploads one crop per person per track, reports on MQTT."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _settings(detector=detector, view_port=view_port, no_view=no_view)

    def action(stack: ExitStack) -> dict[str, Any]:
        # Here, not at the top: the edge's parts (OpenCV, the live view's web app) would
        # slow every other command's start.
        from facelens.wiring.edge import open_edge

        runner = open_edge(
            settings, stack, source=source, thing=thing, realtime=realtime, max_frames=max_frames
        ).runner
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: runner.stop())
        summary = runner.run()
        return {
            "Thing": thing,
            "Frames": summary.frames,
            "FramesDropped": summary.dropped,
            "Tracks": summary.tracks,
            "Crops": summary.crops,
            "Uploaded": summary.uploaded,
            "Buffered": summary.pending,
            "BufferDropped": summary.buffer_dropped,
            "Seconds": round(summary.seconds, 3),
            "FramesPerSecond": round(summary.fps, 2),
        }

    run(action)


def _settings(*, detector: str | None, view_port: int | None, no_view: bool) -> Settings:
    base = Settings()
    edge_update: dict[str, Any] = {}
    if view_port is not None:
        edge_update["view_port"] = view_port
    if no_view:
        edge_update["view_port"] = None
    update: dict[str, Any] = {"edge": base.edge.model_copy(update=edge_update)}
    if detector is not None:
        update["detector"] = detector
    return base.model_copy(update=update)
