"""S3-style event notifications for stores that send none themselves (local directory, memory).

A :class:`NotifyingObjectStore` wraps any object store and, after each
successful ``put_object``, sends one ObjectCreated event per matching
:class:`NotificationRule` to that rule's destination sink, as S3's bucket
notification configuration does for its queues and topics.

Rules match as S3's do: an event-type pattern (``s3:ObjectCreated:*`` or an
exact ``s3:ObjectCreated:Put``) and an optional key prefix and suffix on the
real (decoded) key. Like S3, rules that would send the same event twice are
refused: two rules *for one destination* whose event types, prefixes and
suffixes all overlap raise ConfigurationError. S3 refuses such overlaps
across all destinations of a bucket; we allow them across distinct
destinations on purpose, so one put can fan out to, say, the recognizer and
an archive without an SNS topic in between.

Delivery: each sink's ``send`` returns once the event is durable. If any
sink fails, the object is already stored (the put happened); the remaining
sinks are still tried, then EventNotRecordedException (a StorageError) is
raised, naming the destinations that did not get the event, so the caller
knows the recognizer may never hear of this object and can put it again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import combinations
from typing import Protocol

from facelens.errors import ConfigurationError, EventNotRecordedException
from facelens.storage.events import new_sequencer
from facelens.storage.protocol import ObjectStore
from facelens.storage.types import ObjectInfo, ObjectPage, StoredObject
from facelens.values.events import ObjectCreated

_EVENT_PATTERN = re.compile(r"s3:[A-Za-z]+(:([A-Za-z]+|\*))?")


class EventSink(Protocol):
    """Where a notifying object store sends events; ``send`` returns once the event is durable.

    The store's port, declared here beside its one caller: the bus's outbox and MQTT
    sink implement it, so the bus depends on the store and never the other way round.
    """

    def send(self, event: ObjectCreated) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class NotificationRule:
    """Send ObjectCreated events for keys with ``prefix`` and ``suffix`` to ``destination``.

    ``rule_id`` becomes the event's ``configurationId``; ``destination`` names
    a sink given to :class:`NotifyingObjectStore`; ``events`` are S3 event
    types, ``s3:ObjectCreated:*`` matching every ObjectCreated:... name.
    """

    rule_id: str
    destination: str
    prefix: str = ""
    suffix: str = ""
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)

    def __post_init__(self) -> None:
        if not isinstance(self.rule_id, str) or not 1 <= len(self.rule_id) <= 255:
            raise ConfigurationError("A notification rule id must be 1 to 255 characters")
        if not isinstance(self.destination, str) or not self.destination:
            raise ConfigurationError(f"Notification rule {self.rule_id!r} names no destination")
        if not isinstance(self.prefix, str) or not isinstance(self.suffix, str):
            raise ConfigurationError(f"Notification rule {self.rule_id!r}: prefix/suffix not text")
        if isinstance(self.events, str) or not self.events:
            raise ConfigurationError(
                f"Notification rule {self.rule_id!r}: events must be a non-empty sequence of "
                "event types such as ('s3:ObjectCreated:*',)"
            )
        object.__setattr__(self, "events", tuple(self.events))
        for pattern in self.events:
            if not isinstance(pattern, str) or not _EVENT_PATTERN.fullmatch(pattern):
                raise ConfigurationError(
                    f"Notification rule {self.rule_id!r}: {pattern!r} is not an S3 event type "
                    "such as 's3:ObjectCreated:*' or 's3:ObjectCreated:Put'"
                )

    def matches(self, event: ObjectCreated) -> bool:
        """Whether S3 would send ``event`` under this rule."""
        return (
            event.key.startswith(self.prefix)
            and event.key.endswith(self.suffix)
            and any(_type_matches(pattern, event.event_name) for pattern in self.events)
        )

    def overlaps(self, other: NotificationRule) -> bool:
        """Whether some event would match both rules (S3's "ambiguously defined")."""
        return (
            (self.prefix.startswith(other.prefix) or other.prefix.startswith(self.prefix))
            and (self.suffix.endswith(other.suffix) or other.suffix.endswith(self.suffix))
            and any(_types_overlap(a, b) for a in self.events for b in other.events)
        )


class NotifyingObjectStore:
    """An ObjectStore that sends ObjectCreated events after puts (see the module docstring).

    Every other call goes straight to ``store``. ``region`` is written into
    the events' ``awsRegion``. ``close`` closes ``store`` only: the sinks
    belong to whoever made them (one sink may serve several stores).
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        rules: Sequence[NotificationRule],
        sinks: Mapping[str, EventSink],
        region: str = "local",
    ) -> None:
        self._store = store
        self._rules = tuple(rules)
        self._sinks = dict(sinks)
        self._region = region
        _check_rules(self._rules, self._sinks)

    @property
    def rules(self) -> tuple[NotificationRule, ...]:
        return self._rules

    def create_bucket(self, bucket: str) -> None:
        self._store.create_bucket(bucket)

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Stores the object, then sends its events; EventNotRecordedException if a sink fails."""
        info = self._store.put_object(
            bucket, key, body, content_type=content_type, metadata=metadata
        )
        self._notify(info)
        return info

    def get_object(self, bucket: str, key: str) -> StoredObject:
        return self._store.get_object(bucket, key)

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        return self._store.head_object(bucket, key)

    def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        max_keys: int = 1000,
        next_token: str | None = None,
    ) -> ObjectPage:
        return self._store.list_objects(
            bucket, prefix=prefix, max_keys=max_keys, next_token=next_token
        )

    def delete_object(self, bucket: str, key: str) -> None:
        self._store.delete_object(bucket, key)

    def close(self) -> None:
        self._store.close()

    def _notify(self, info: ObjectInfo) -> None:
        # One sequencer per put, shared by its events, as S3 does for one object write.
        event = ObjectCreated(
            bucket=info.bucket,
            key=info.key,
            size=info.size,
            etag=info.etag,
            sequencer=new_sequencer(),
            event_time=datetime.now(UTC),
            region=self._region,
        )
        failures: list[tuple[NotificationRule, Exception]] = []
        for rule in self._rules:
            if not rule.matches(event):
                continue
            try:
                self._sinks[rule.destination].send(replace(event, configuration_id=rule.rule_id))
            except Exception as exc:  # any failure means the same: the event is not recorded
                failures.append((rule, exc))
        if failures:
            missed = "; ".join(f"{r.destination} (rule {r.rule_id}): {e}" for r, e in failures)
            raise EventNotRecordedException(
                f"{info.bucket}/{info.key} was stored, but its ObjectCreated event was not "
                f"recorded for {missed}"
            ) from failures[0][1]


def _check_rules(rules: tuple[NotificationRule, ...], sinks: Mapping[str, EventSink]) -> None:
    seen: set[str] = set()
    for rule in rules:
        if not isinstance(rule, NotificationRule):
            raise ConfigurationError(f"Not a NotificationRule: {rule!r}")
        if rule.rule_id in seen:
            raise ConfigurationError(f"Two notification rules have the id {rule.rule_id!r}")
        seen.add(rule.rule_id)
        if rule.destination not in sinks:
            known = ", ".join(sorted(sinks)) or "none"
            raise ConfigurationError(
                f"Notification rule {rule.rule_id!r} sends to {rule.destination!r}, "
                f"which is not a sink (sinks: {known})"
            )
    for a, b in combinations(rules, 2):
        if a.destination == b.destination and a.overlaps(b):
            raise ConfigurationError(
                f"Notification rules {a.rule_id!r} and {b.rule_id!r} overlap for destination "
                f"{a.destination!r}: their prefixes, suffixes and event types all overlap, so "
                "one put would send the same event twice"
            )


def _type_matches(pattern: str, event_name: str) -> bool:
    wanted, name = pattern.removeprefix("s3:"), event_name.removeprefix("s3:")
    if wanted.endswith(":*"):
        return name.startswith(wanted[:-1])
    return name == wanted


def _types_overlap(a: str, b: str) -> bool:
    return _type_matches(a, b) or _type_matches(b, a)
