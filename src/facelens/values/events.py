"""The event that starts every recognition: an object was created in the store.

The object store's notifications make it, the bus carries it (outbox, MQTT, SQS,
Lambda), and the recognizer's worker handles it and names its messages after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ObjectCreated:
    """One S3 ObjectCreated notification record, decoded.

    ``key`` is the real key (S3 URL-encodes it in the event JSON; the codec
    in :mod:`facelens.storage.events` decodes it). ``sequencer`` orders
    events for one key as S3's does (hex, compare after left-padding).
    """

    bucket: str
    key: str
    size: int
    etag: str
    sequencer: str
    event_time: datetime
    event_name: str = "ObjectCreated:Put"
    configuration_id: str = ""
    region: str = "local"
