"""``Settings.events`` (``FACELENS_EVENTS__*``): how ObjectCreated events reach the workers."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from facelens.config.section import Section


class EventSourceKind(StrEnum):
    OUTBOX = "outbox"
    MQTT = "mqtt"
    SQS = "sqs"


class EventSettings(Section):
    """How ObjectCreated events travel from the object store to recognizer workers."""

    source: EventSourceKind = Field(
        default=EventSourceKind.OUTBOX,
        description=(
            "'outbox': a SQLite outbox in <home> (one host); 'mqtt': an MQTT topic shared by "
            "workers ($share/group/topic, MinIO's message shape); 'sqs': an SQS queue (AWS)."
        ),
    )
    topic: str = Field(
        default="facelens/events", description="MQTT topic the object store's events go to."
    )
    group: str = Field(
        default="facelens-recognizers",
        description="Shared-subscription group: workers in one group split the events.",
    )
    sqs_queue_url: str | None = Field(default=None, description="SQS queue URL for source 'sqs'.")
    visibility_timeout: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds an event taken by a worker stays hidden from others; if the worker dies "
            "it is delivered again after this. Longer than the slowest event."
        ),
    )
