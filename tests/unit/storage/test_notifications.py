"""Notification rules and the notifying store, on the in-memory store and list-backed sinks."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from facelens.errors import (
    ConfigurationError,
    EventNotRecordedException,
    NoSuchBucketException,
    ServiceUnavailableException,
    StorageError,
)
from facelens.storage.events import parse_message, to_s3_event
from facelens.storage.memory import MemoryObjectStore
from facelens.storage.notifications import NotificationRule, NotifyingObjectStore
from facelens.values.events import ObjectCreated

BUCKET = "facelens"
R = NotificationRule


class ListSink:
    """An EventSink that keeps what it is sent, as its S3 event JSON (what a queue would hold)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.closed = False

    def send(self, event: ObjectCreated) -> None:
        self.messages.append(json.dumps(to_s3_event([event])))

    def close(self) -> None:
        self.closed = True

    @property
    def events(self) -> list[ObjectCreated]:
        return [e for message in self.messages for e in parse_message(message)]


class DownSink:
    """An EventSink whose broker is unreachable."""

    def send(self, event: ObjectCreated) -> None:
        raise ServiceUnavailableException("broker down")

    def close(self) -> None:
        pass


def _store(rules: list[NotificationRule], **sinks: object) -> NotifyingObjectStore:
    inner = MemoryObjectStore()
    inner.create_bucket(BUCKET)
    return NotifyingObjectStore(inner, rules=rules, sinks=sinks, region="eu-west-1")  # type: ignore[arg-type]


def _created(key: str, name: str = "ObjectCreated:Put") -> ObjectCreated:
    return ObjectCreated(BUCKET, key, 1, "e", "01", datetime.now(UTC), event_name=name)


PUT_ONLY = ("s3:ObjectCreated:Put",)


@pytest.mark.parametrize(
    ("rule", "key", "name", "expected"),
    [
        (R("r", "d"), "any/key", "ObjectCreated:Put", True),
        (R("r", "d"), "any/key", "ObjectCreated:CompleteMultipartUpload", True),
        (R("r", "d"), "any/key", "ObjectRemoved:Delete", False),
        (R("r", "d", prefix="faces/"), "faces/a.jpg", "ObjectCreated:Put", True),
        (R("r", "d", prefix="faces/"), "logs/a.jpg", "ObjectCreated:Put", False),
        (R("r", "d", prefix="faces/"), "faces", "ObjectCreated:Put", False),
        (R("r", "d", suffix=".jpg"), "faces/a.jpg", "ObjectCreated:Put", True),
        (R("r", "d", suffix=".jpg"), "faces/a.png", "ObjectCreated:Put", False),
        (R("r", "d", "a ", "b+"), "a x b+", "ObjectCreated:Put", True),  # on the decoded key
        (R("r", "d", events=PUT_ONLY), "k", "ObjectCreated:Put", True),
        (R("r", "d", events=PUT_ONLY), "k", "ObjectCreated:Copy", False),
        (R("r", "d", events=PUT_ONLY), "k", "s3:ObjectCreated:Put", True),
        (R("r", "d", events=("s3:ObjectRemoved:*",)), "k", "ObjectCreated:Put", False),
    ],
)
def test_rules_match_as_s3s_do(rule: NotificationRule, key: str, name: str, expected: bool) -> None:
    assert rule.matches(_created(key, name)) is expected


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"rule_id": "", "destination": "d"}, "rule id"),
        ({"rule_id": "r", "destination": ""}, "no destination"),
        ({"rule_id": "r", "destination": "d", "events": ()}, "non-empty"),
        ({"rule_id": "r", "destination": "d", "events": "s3:ObjectCreated:*"}, "non-empty"),
        ({"rule_id": "r", "destination": "d", "events": ("ObjectCreated:*",)}, "S3 event type"),
        ({"rule_id": "r", "destination": "d", "events": ("s3:Object*",)}, "S3 event type"),
    ],
)
def test_malformed_rules_are_refused(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        NotificationRule(**kwargs)  # type: ignore[arg-type]


def test_events_given_as_a_list_become_a_tuple() -> None:
    rule = NotificationRule("r", "d", events=["s3:ObjectCreated:Put"])  # type: ignore[arg-type]
    assert rule.events == ("s3:ObjectCreated:Put",)


def test_put_sends_one_event_per_matching_rule_to_its_sink() -> None:
    recognizer, archive, logs = ListSink(), ListSink(), ListSink()
    rules = [
        NotificationRule("crops", "recognizer", prefix="faces/", suffix=".jpg"),
        NotificationRule("archive-all", "archive"),
        NotificationRule("logs", "logs", prefix="logs/"),
    ]
    store = _store(rules, recognizer=recognizer, archive=archive, logs=logs)
    body = b"\xff\xd8 jpeg bytes"
    info = store.put_object(BUCKET, "faces/cam 1/0001.jpg", body, content_type="image/jpeg")

    assert len(recognizer.messages) == 1
    assert len(archive.messages) == 1
    assert logs.messages == []
    (event,) = recognizer.events
    assert (event.bucket, event.key, event.size) == (BUCKET, "faces/cam 1/0001.jpg", len(body))
    assert event.etag == info.etag == hashlib.md5(body).hexdigest()
    assert event.configuration_id == "crops"
    assert event.event_name == "ObjectCreated:Put"
    assert event.region == "eu-west-1"
    (archived,) = archive.events
    assert archived.configuration_id == "archive-all"
    assert archived.sequencer == event.sequencer  # one write, one sequencer

    store.put_object(BUCKET, "faces/cam 1/0001.jpg", b"again")
    assert len(recognizer.messages) == 2
    assert recognizer.events[1].sequencer > event.sequencer
    assert recognizer.events[1].size == 5


def test_other_calls_pass_straight_through_and_send_nothing() -> None:
    sink = ListSink()
    store = _store([NotificationRule("all", "q")], q=sink)
    store.put_object(BUCKET, "a", b"1", metadata={"Thing": "cam1"})
    assert store.get_object(BUCKET, "a").body == b"1"
    assert store.head_object(BUCKET, "a").metadata == {"thing": "cam1"}
    assert [o.key for o in store.list_objects(BUCKET).objects] == ["a"]
    store.delete_object(BUCKET, "a")
    store.create_bucket("other")
    assert store.list_objects(BUCKET).objects == ()
    assert len(sink.messages) == 1
    store.close()
    assert not sink.closed  # sinks belong to whoever made them


def test_a_failed_sink_raises_after_the_put_and_still_feeds_the_others() -> None:
    good = ListSink()
    rules = [NotificationRule("down", "broker"), NotificationRule("up", "outbox")]
    store = _store(rules, broker=DownSink(), outbox=good)
    with pytest.raises(EventNotRecordedException, match=r"was stored.*broker") as caught:
        store.put_object(BUCKET, "faces/a.jpg", b"x")
    assert isinstance(caught.value, StorageError)
    assert isinstance(caught.value.__cause__, ServiceUnavailableException)
    assert store.get_object(BUCKET, "faces/a.jpg").body == b"x"  # the put happened
    assert [e.key for e in good.events] == ["faces/a.jpg"]


def test_a_failed_put_sends_nothing() -> None:
    sink = ListSink()
    store = _store([NotificationRule("all", "q")], q=sink)
    with pytest.raises(NoSuchBucketException):
        store.put_object("missing-bucket", "a", b"x")
    assert sink.messages == []


def test_every_destination_needs_a_sink() -> None:
    with pytest.raises(ConfigurationError, match=r"'nowhere', which is not a sink.*sinks: q"):
        _store([NotificationRule("r", "nowhere")], q=ListSink())


def test_rule_ids_are_unique() -> None:
    with pytest.raises(ConfigurationError, match="id 'r'"):
        _store([R("r", "q", prefix="a/"), R("r", "q", prefix="b/")], q=ListSink())


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        (R("a", "q"), R("b", "q"), True),
        (R("a", "q", prefix="faces/"), R("b", "q", prefix="faces/x"), True),
        (R("a", "q", prefix="faces/"), R("b", "q", prefix="logs/"), False),
        (R("a", "q", suffix=".jpg"), R("b", "q", suffix="x.jpg"), True),
        (R("a", "q", suffix=".jpg"), R("b", "q", suffix=".png"), False),
        (R("a", "q", events=("s3:ObjectCreated:*",)), R("b", "q", events=PUT_ONLY), True),
        (R("a", "q", events=PUT_ONLY), R("b", "q", events=("s3:ObjectCreated:Copy",)), False),
        (R("a", "q"), R("b", "other"), False),  # fan-out to distinct destinations is fine
    ],
)
def test_overlapping_rules_for_one_destination_are_refused(
    first: NotificationRule, second: NotificationRule, overlap: bool
) -> None:
    sinks = {"q": ListSink(), "other": ListSink()}
    if overlap:
        with pytest.raises(ConfigurationError, match="overlap"):
            _store([first, second], **sinks)
    else:
        _store([first, second], **sinks)
