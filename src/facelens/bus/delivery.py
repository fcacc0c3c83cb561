"""The event-source port: at-least-once delivery of ObjectCreated events to workers.

A source hands out :class:`Delivery` objects; the worker calls ``ack`` once
the delivery is fully handled (identified, or dead-lettered) and ``release``
when it failed for a reason that may pass (a store that is down), so the
delivery comes back later. A delivery that is neither acked nor released (the
worker died) comes back too: after the source's visibility timeout, or when
the worker's session reconnects. That is what makes delivery at least once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from facelens.values.events import ObjectCreated


@dataclass(frozen=True)
class Delivery:
    """One message from a source: the events it carries, or why it could not be read.

    ``delivery_id`` is the source's handle for ack/release (an outbox row id,
    an MQTT message id, an SQS receipt handle). ``attempt`` counts deliveries
    of this message, starting at 1, where the source can tell. ``error`` is
    set (and ``events`` empty) for a message that is not a readable event:
    the worker dead-letters it rather than retrying forever.
    """

    delivery_id: str
    events: tuple[ObjectCreated, ...]
    raw: bytes
    attempt: int = 1
    error: str | None = None


class EventSource(Protocol):
    """Where a recognizer worker takes events from."""

    def receive(self, *, max_events: int = 10, wait_seconds: float = 1.0) -> list[Delivery]:
        """Up to ``max_events`` deliveries, waiting at most ``wait_seconds`` for the first."""
        ...

    def ack(self, delivery: Delivery) -> None:
        """The delivery is done: never deliver it again."""
        ...

    def release(self, delivery: Delivery) -> None:
        """The delivery failed transiently: deliver it again later (to this or another worker)."""
        ...

    def close(self) -> None: ...
