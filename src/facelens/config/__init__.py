"""facelens' configuration: the root :class:`Settings` and one module per section.

``from facelens.config import Settings`` is how every front end reads it;
the sections are named for what they configure (``mqtt``, ``events``,
``recognizer``, ``edge``, ``serve``, ``notify``, ``retention``), and
:mod:`~facelens.config.section` is the base they share.
"""

from __future__ import annotations

from facelens.config.edge import EdgeSettings
from facelens.config.events import EventSettings, EventSourceKind
from facelens.config.mqtt import MqttSettings
from facelens.config.notify import NotifyChannel, NotifyRule
from facelens.config.recognizer import RecognizerSettings
from facelens.config.retention import RetentionSettings
from facelens.config.section import Section
from facelens.config.serve import Camera, ServeSettings
from facelens.config.settings import Settings

__all__ = [
    "Camera",
    "EdgeSettings",
    "EventSettings",
    "EventSourceKind",
    "MqttSettings",
    "NotifyChannel",
    "NotifyRule",
    "RecognizerSettings",
    "RetentionSettings",
    "Section",
    "ServeSettings",
    "Settings",
]
