"""A Lambda invocation's event as an event source, so the recognizer's worker handles it.

Lambda hands the function one JSON event per invocation; the worker
(:class:`~facelens.recognizer.worker.RecognizerWorker`) takes deliveries
from an :class:`~facelens.bus.delivery.EventSource`. This source serves
the invocation's records once, as deliveries, and remembers which were
acknowledged and which released, so the handler can tell Lambda what to
retry. The shapes understood:

* S3 invoking the function directly: ``{"Records": [{"eventSource":
  "aws:s3", ...}, ...]}``. Every record is its own delivery (the original
  function read only the first), so one bad record does not hold up the
  others. Keys arrive as S3 encodes them (``+`` for a space, ``%2B`` for a
  plus) and are decoded by :func:`facelens.storage.events.parse_message`.
* SQS between S3 and the function: ``{"Records": [{"eventSource":
  "aws:sqs", "messageId": ..., "body": "<S3 event or SNS envelope>"}]}``;
  a record is a delivery, its failures are reported back by messageId.
* SNS between S3 and the function: ``{"Records": [{"EventSource":
  "aws:sns", "Sns": {"Message": "<S3 event>"}}]}``.

Anything else becomes one delivery with an error: the worker dead-letters it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from facelens.bus.delivery import Delivery
from facelens.errors import InvalidEventException
from facelens.storage.events import parse_message


class EventKind(StrEnum):
    S3 = "s3"
    SQS = "sqs"
    SNS = "sns"
    OTHER = "other"


class LambdaEventSource:
    """The records of one invocation, served once; ``released`` lists what must be retried."""

    def __init__(self, event: Any) -> None:
        self.kind, self._pending = _deliveries(event)
        self.acked: list[Delivery] = []
        self.released: list[Delivery] = []

    @property
    def size(self) -> int:
        """How many deliveries the invocation held (before any were taken)."""
        return len(self._pending) + len(self.acked) + len(self.released)

    def receive(self, *, max_events: int = 10, wait_seconds: float = 1.0) -> list[Delivery]:
        taken, self._pending = self._pending[:max_events], self._pending[max_events:]
        return taken

    def ack(self, delivery: Delivery) -> None:
        self.acked.append(delivery)

    def release(self, delivery: Delivery) -> None:
        self.released.append(delivery)

    def close(self) -> None:
        self._pending = []


def _deliveries(event: Any) -> tuple[EventKind, list[Delivery]]:
    raw = _encode(event)
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list) or not records:
        # Includes S3's s3:TestEvent, which parse_message answers with no events.
        return EventKind.OTHER, [_parsed("event", raw)]
    kind = _kind(records[0])
    deliveries = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping) or _kind(record) is not kind:
            error = f"Records[{index}] is not an {kind.value} record like Records[0]"
            deliveries.append(Delivery(f"record-{index}", (), _encode(record), error=error))
        elif kind is EventKind.SQS:
            deliveries.append(_sqs(record, index))
        elif kind is EventKind.SNS:
            deliveries.append(_sns(record, index))
        else:
            # One record per delivery, in the shape S3 sends, so it parses (and fails) alone.
            deliveries.append(_parsed(f"record-{index}", _encode({"Records": [record]})))
    return kind, deliveries


def _kind(record: Any) -> EventKind:
    if not isinstance(record, Mapping):
        return EventKind.OTHER
    source = record.get("eventSource") or record.get("EventSource")
    return {"aws:s3": EventKind.S3, "aws:sqs": EventKind.SQS, "aws:sns": EventKind.SNS}.get(
        str(source), EventKind.OTHER
    )


def _sqs(record: Mapping[str, Any], index: int) -> Delivery:
    message_id = str(record.get("messageId") or f"record-{index}")
    body = record.get("body")
    attributes = record.get("attributes")
    count = attributes.get("ApproximateReceiveCount", 1) if isinstance(attributes, Mapping) else 1
    try:
        attempt = max(1, int(count))
    except (TypeError, ValueError):
        attempt = 1
    if not isinstance(body, str):
        return Delivery(message_id, (), _encode(record), attempt, error="SQS record has no body")
    delivery = _parsed(message_id, body.encode())
    return Delivery(message_id, delivery.events, delivery.raw, attempt, error=delivery.error)


def _sns(record: Mapping[str, Any], index: int) -> Delivery:
    sns = record.get("Sns")
    message = sns.get("Message") if isinstance(sns, Mapping) else None
    if not isinstance(message, str):
        return Delivery(f"record-{index}", (), _encode(record), error="SNS record has no Message")
    return _parsed(f"record-{index}", message.encode())


def _parsed(delivery_id: str, raw: bytes) -> Delivery:
    try:
        return Delivery(delivery_id, parse_message(raw), raw)
    except InvalidEventException as exc:
        return Delivery(delivery_id, (), raw, error=exc.message)


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()
