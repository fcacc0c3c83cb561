"""The S3 event JSON codec: ObjectCreated to S3's notification message and back.

Why S3's exact shape: the recognizer must take events from AWS S3 (through
SQS, SNS or Lambda), from MinIO (MQTT or webhook) and from our own notifying
store alike. Writing S3's shape ourselves means one reader for all of them,
and any tool that understands S3 events understands ours.

Key encoding: S3 URL-encodes the key form-style, a space as ``+`` and
``+`` as ``%2B``, but leaves ``/`` as it is (minio/minio#11665 compares the
two); MinIO and moto encode ``/`` as ``%2F`` too. We write S3's form
(``quote_plus(key, safe="/")``) and read any of them with ``unquote_plus``.

Reading is strict about what the recognizer needs (bucket, key, size, etag,
event time, event name: missing or mistyped raises InvalidEventException
with the reason) and lenient about what it does not (region, configuration
id and sequencer default to ""; moto sends no sequencer).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from facelens import json_limits
from facelens.errors import InvalidEventException
from facelens.values.events import ObjectCreated

PRINCIPAL = "facelens"
"""userIdentity / ownerIdentity principal in events we write (S3 puts an account id there)."""

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?")
_MAX_WRAPPING = 2
"""Message levels: an SNS envelope (S3 -> SNS -> SQS) around the S3 event; more is not ours."""
_MAX_DEPTH = 32
"""Arrays and objects an event message may nest (S3's own nest 5): deeper is refused
before parsing, which for ``"[" * 100000`` raised RecursionError, not InvalidEventException."""

_sequence_lock = threading.Lock()
_last_sequence = 0


def new_sequencer() -> str:
    """A fixed-width uppercase hex string that increases with every call.

    Nanoseconds since the epoch, bumped by one when the clock has not moved
    (or went back) since the last call, so values increase strictly within a
    process and across restarts (as long as the clock does not go back
    across a restart). 18 digits, as S3's sequencers have: compare as
    strings. Processes running at once may produce equal values; S3 only
    promises order for events of one key.
    """
    global _last_sequence
    with _sequence_lock:
        _last_sequence = max(time.time_ns(), _last_sequence + 1)
        return f"{_last_sequence:018X}"


def encode_key(key: str) -> str:
    """The key as S3 writes it into an event: form-encoded, '/' kept."""
    return quote_plus(key, safe="/")


def to_record(event: ObjectCreated) -> dict[str, Any]:
    """One record in S3's event message structure (event version 2.1).

    A naive ``event_time`` is taken as UTC; the time is written to the
    millisecond, as S3 does, so a round trip drops microseconds.
    """
    name = event.event_name.removeprefix("s3:")
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": event.region,
        "eventTime": format_time(event.event_time),
        "eventName": name,
        "userIdentity": {"principalId": PRINCIPAL},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": event.sequencer, "x-amz-id-2": PRINCIPAL},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": event.configuration_id,
            "bucket": {
                "name": event.bucket,
                "ownerIdentity": {"principalId": PRINCIPAL},
                "arn": f"arn:aws:s3:::{event.bucket}",
            },
            "object": {
                "key": encode_key(event.key),
                "size": event.size,
                "eTag": event.etag,
                "sequencer": event.sequencer,
            },
        },
    }


def to_s3_event(events: Iterable[ObjectCreated]) -> dict[str, Any]:
    """S3's notification message: ``{"Records": [...]}``."""
    return {"Records": [to_record(event) for event in events]}


def to_minio_message(event: ObjectCreated) -> dict[str, Any]:
    """The message MinIO's MQTT and webhook targets send for one event.

    MinIO adds ``EventName`` and ``Key`` (bucket/key, not encoded) around the
    records, and its records name the event with the ``s3:`` prefix.
    """
    record = to_record(event)
    record["eventName"] = f"s3:{record['eventName']}"
    return {
        "EventName": record["eventName"],
        "Key": f"{event.bucket}/{event.key}",
        "Records": [record],
    }


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC to the millisecond with a Z, as S3 writes ``eventTime``."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def parse_message(payload: bytes | str) -> tuple[ObjectCreated, ...]:
    """The ObjectCreated events in an S3 event, a MinIO message or an SQS-wrapped SNS envelope.

    Returns () for S3's ``s3:TestEvent``; records of other event types
    (ObjectRemoved...) are skipped. Raises InvalidEventException saying
    what is wrong with anything else.
    """
    if isinstance(payload, bytes | bytearray):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEventException(f"Event message is not UTF-8: {exc}") from exc
    if not isinstance(payload, str):
        raise InvalidEventException(f"Event message must be bytes or str, not {type(payload)}")
    return _parse_text(payload, depth=0)


def _parse_text(text: str, *, depth: int) -> tuple[ObjectCreated, ...]:
    try:
        message = json_limits.loads(text, max_depth=_MAX_DEPTH)
    except ValueError as exc:  # json_limits.TooDeepError too
        raise InvalidEventException(f"Event message is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise InvalidEventException("Event message must be a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return ()
    if "Records" not in message and message.get("Type") == "Notification":
        inner = message.get("Message")
        if not isinstance(inner, str):
            raise InvalidEventException("SNS notification has no string 'Message'")
        if depth + 1 >= _MAX_WRAPPING:
            raise InvalidEventException("Event message is wrapped too deeply")
        return _parse_text(inner, depth=depth + 1)
    records = message.get("Records")
    if not isinstance(records, list):
        raise InvalidEventException("Event message has no 'Records' list")
    events: list[ObjectCreated] = []
    for index, record in enumerate(records):
        event = _parse_record(record, f"Records[{index}]")
        if event is not None:
            events.append(event)
    return tuple(events)


def _parse_record(record: Any, where: str) -> ObjectCreated | None:
    if not isinstance(record, dict):
        raise InvalidEventException(f"{where} must be a JSON object")
    name = _field(record, "eventName", str, where).removeprefix("s3:")
    if not name.startswith("ObjectCreated:"):
        return None
    s3 = _field(record, "s3", dict, where)
    bucket = _field(s3, "bucket", dict, f"{where}.s3")
    obj = _field(s3, "object", dict, f"{where}.s3")
    bucket_name = _field(bucket, "name", str, f"{where}.s3.bucket")
    raw_key = _field(obj, "key", str, f"{where}.s3.object")
    size = _field(obj, "size", int, f"{where}.s3.object")
    if size < 0:
        raise InvalidEventException(f"{where}.s3.object.size must not be negative")
    try:
        key = unquote_plus(raw_key, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidEventException(
            f"{where}.s3.object.key is not valid URL-encoded UTF-8"
        ) from exc
    if not bucket_name or not key:
        raise InvalidEventException(f"{where} names an empty bucket or key")
    _no_nul(key, f"{where}.s3.object.key")
    return ObjectCreated(
        bucket=bucket_name,
        key=key,
        size=size,
        etag=_field(obj, "eTag", str, f"{where}.s3.object"),
        sequencer=_optional(obj, "sequencer", f"{where}.s3.object"),
        event_time=_parse_time(_field(record, "eventTime", str, where), where),
        event_name=name,
        configuration_id=_optional(s3, "configurationId", f"{where}.s3"),
        region=_optional(record, "awsRegion", where),
    )


def _field(container: Mapping[str, Any], name: str, kind: type[Any], where: str) -> Any:
    value = container.get(name)
    if value is None:
        raise InvalidEventException(f"{where}.{name} is missing")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidEventException(
            f"{where}.{name} must be {_KINDS[kind]}, not {type(value).__name__}"
        )
    if isinstance(value, str):
        _no_nul(value, f"{where}.{name}")
    return value


def _optional(container: Mapping[str, Any], name: str, where: str) -> str:
    value = container.get(name, "")
    if not isinstance(value, str):
        raise InvalidEventException(f"{where}.{name} must be a string")
    return _no_nul(value, f"{where}.{name}")


def _no_nul(value: str, where: str) -> str:
    """``value``, unless it holds NUL (U+0000): no object store holds such a key
    (:func:`facelens.storage.keys.check_key`) and the history refuses to record it, so an
    event naming one is invalid here, once, instead of failing twice further on."""
    if "\x00" in value:
        raise InvalidEventException(f"{where} must not hold a NUL character")
    return value


def _parse_time(text: str, where: str) -> datetime:
    """ISO 8601 date and time; S3 writes UTC with a Z, a naive time is taken as UTC."""
    if not _TIME.fullmatch(text):
        raise InvalidEventException(f"{where}.eventTime {text!r} is not an ISO 8601 date and time")
    try:
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # Overflow: year 1 or 9999 moved to UTC
        raise InvalidEventException(f"{where}.eventTime {text!r} is not a valid time") from exc


_KINDS: dict[type[Any], str] = {str: "a string", int: "an integer", dict: "an object"}
