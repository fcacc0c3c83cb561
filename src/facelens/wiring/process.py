"""Who this process is on its host: its role, which names its MQTT clients and files, and
the home where it keeps them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facelens.config import Settings


@dataclass(frozen=True)
class ProcessRole:
    """``name`` names this process's role: its MQTT clients, spool file, availability topic
    and (an edge runner) crop buffer. ``facelens recognizer`` uses its worker id; the other
    front ends name their own (``serve``, ``edge-<thing>``, ``up-<thing>``, ``lambda``,
    ``cli``): two live processes sharing one would drain the same spool and speak for each
    other's status.

    ``mqtt_tag``: random, fixed for the process's life; it sets this process's clean-session
    MQTT clients apart from those of any other process in the same role (a broker keeps one
    connection per client id and drops the older one)."""

    name: str
    mqtt_tag: str


def process_role(settings: Settings, instance: str | None = None) -> ProcessRole:
    """The role ``instance`` (default: the recognizer's worker id), with a new tag."""
    from facelens.bus.mqtt_config import new_process_tag

    return ProcessRole(instance or settings.recognizer.worker_id, new_process_tag())


def home_file(settings: Settings, name: str) -> Path:
    """``<home>/name``, the home made (0700) if it is not there yet."""
    make_home(settings)
    return settings.home / name


def make_home(settings: Settings) -> None:
    """Makes the home (0700) if it is not there yet: the stores keep their files in it."""
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
