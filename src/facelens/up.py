"""``facelens up``: the edge runner, the recognizer and the HTTP server in one process.

The same parts as ``facelens edge``, ``facelens recognizer`` and ``facelens
serve``, built by the same factories (:mod:`facelens.wiring`) on one set of
stores: only the assembly differs. Events go through the SQLite outbox in
``<home>`` (so a second start picks up what the first left: unrecognized
crops, buffered uploads), identifications are printed one line each and
name the live view's tracks in-process (with or without an MQTT broker),
and the dashboard shows them live.

Threads: the edge runner's frame loop runs on the caller's thread; the
recognizer worker, the server and the retention job (``settings.retention``)
on their own. ``stop`` (set by Ctrl-C)
ends the runner, then the worker finishes the event in hand, then the
server stops; the caller's ExitStack then stops the retention job and
closes every store, the publisher last.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from facelens.config import Settings
from facelens.edge.names import display_name
from facelens.edge.runner import EdgeRunner
from facelens.recognizer.messages import RESERVED
from facelens.recognizer.worker import RecognizerWorker
from facelens.wiring.bus import open_event_sink, open_outbox, open_publication
from facelens.wiring.edge import open_edge_runner
from facelens.wiring.people import people_of
from facelens.wiring.process import process_role
from facelens.wiring.recognizer import open_recognizer, start_worker
from facelens.wiring.server import open_server_bundles
from facelens.wiring.stores import notifying_objects, open_stores

_log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.5
"""How long the worker waits for an event before checking whether it should stop."""


@dataclass(frozen=True)
class UpSummary:
    frames: int
    crops: int
    identified: int
    unknown: int
    dead_letters: int
    url: str | None


def identification_line(message: Mapping[str, Any]) -> str | None:
    """One readable line for a recognizer message; None for messages of other shapes."""
    status = message.get("Status")
    if status not in ("identified", "unknown"):
        return None
    at = _clock(message.get("CapturedAt")) or _clock(message.get("RecognizedAt")) or "--:--:--"
    camera = message.get("Camera") or "?"
    # A visit's revision replaces the line printed for it before: say so.
    fix = "correction: " if isinstance(message.get("Revises"), Mapping) else ""
    if status == "unknown":
        return f"{at}  {camera}  {fix}unknown face  ({message.get('Key')})"
    name = display_name(message)
    who = f"{fix}{name} ({message.get('UserId') or message.get('FaceId')})"
    extras = [
        f"{k}={v}"
        for k, v in message.items()
        if k not in _SHOWN and isinstance(v, str | int | float) and not isinstance(v, bool)
    ]
    similarity = message.get("Similarity")
    score = f"{similarity:.1f}%" if isinstance(similarity, int | float) else ""
    return "  ".join(part for part in (at, camera, who, score, " ".join(extras)) if part)


_SHOWN = {*RESERVED, "Name"}
"""The recognizer's own fields (and the name): the rest of a message is the profile."""


def _clock(text: object) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return None


class Up:
    """One process running a camera, the recognizer and the server on ``settings``, in the
    process role ``up-<thing>``; what it opens is closed by ``stack``.

    out: where identification lines go (stdout in the CLI); announce: where the
    dashboard's address goes, once it listens (default: ``out``). once: stop when
    the source has ended and every crop it made has been recognized (video
    files, scripts, tests) instead of serving until ``stop()``.
    """

    def __init__(
        self,
        settings: Settings,
        stack: ExitStack,
        *,
        source: str,
        thing: str,
        realtime: bool = False,
        once: bool = False,
        serve: bool = True,
        out: Callable[[str], None] = print,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self._out = out
        self._announce = announce or out
        self._once = once
        self._stop = threading.Event()
        self._edge_done = threading.Event()
        self._stats = {"identified": 0, "unknown": 0}
        self._lock = threading.Lock()
        role = process_role(settings, f"up-{thing}")
        # Opened first, so closed last: what is spooled goes out after everything else stops.
        publication = open_publication(settings, stack, role, observers=[self._observe])
        stores = open_stores(settings, stack)
        people = people_of(settings, stores)
        outbox = open_outbox(settings, stack)  # the camera's crops wake the worker at once
        sink = open_event_sink(settings, stack, publication, outbox=outbox)
        self.runner: EdgeRunner = open_edge_runner(
            settings,
            stack,
            role,
            publication,
            notifying_objects(settings, stores.objects, sink),
            source=source,
            thing=thing,
            realtime=realtime,
        )
        recognizer = open_recognizer(settings, stack, stores, people, publication)
        self.server = None
        if serve:
            from facelens.api.serve import build_server

            bundles = open_server_bundles(
                settings, stack, role, stores=stores, people=people, publication=publication
            )
            self.server, _ = build_server(bundles)
        # Started by run(), which loads the engine: constructing loads nothing, so the
        # caller has its Ctrl-C handler in place before the slow part begins.
        self._start_worker = partial(
            start_worker, settings, stack, recognizer, wait_seconds=_IDLE_WAIT_S, outbox=outbox
        )

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def stop(self) -> None:
        """Ends the run (safe from a signal handler)."""
        self._stop.set()
        self.runner.stop()

    def run(self) -> UpSummary:
        worker = self._start_worker()
        if self.server is not None:
            self.server.start()
            self._announce(f"facelens up: dashboard at {self.server.url}/ui/")
        worker_thread = threading.Thread(
            target=self._recognize, args=(worker,), name="facelens-recognizer", daemon=True
        )
        worker_thread.start()
        try:
            summary = self.runner.run()
            self._edge_done.set()
            if self._once:
                worker_thread.join()  # it ends once the outbox is empty
            else:
                self._stop.wait()
        finally:
            self._stop.set()
            self._edge_done.set()
            worker_thread.join(30)
            if self.server is not None:
                self.server.stop()
        stats = worker.stats
        return UpSummary(
            frames=summary.frames,
            crops=summary.crops,
            identified=stats.identified,
            unknown=stats.unknown,
            dead_letters=stats.dead_letters,
            url=self.url,
        )

    def _recognize(self, worker: RecognizerWorker) -> None:
        while not self._stop.is_set():
            try:
                handled = worker.run_once()
            except Exception:  # the worker's own errors are dead letters; this is a bug
                _log.exception("The recognizer failed; retrying")
                self._stop.wait(1.0)
                continue
            if handled == 0 and self._once and self._edge_done.is_set():
                return

    def _observe(self, topic: str, message: Mapping[str, Any]) -> None:
        line = identification_line(message)
        if line is None:
            return
        self.runner.names.apply(message)
        with self._lock:
            self._out(line)
