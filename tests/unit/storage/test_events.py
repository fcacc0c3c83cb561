"""The S3 event codec: S3's exact shape out, S3 / MinIO / SNS-in-SQS / moto shapes in."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from facelens.errors import InvalidEventException
from facelens.storage.events import (
    new_sequencer,
    parse_message,
    to_minio_message,
    to_record,
    to_s3_event,
)
from facelens.values.events import ObjectCreated

WHEN = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)


def _event(key: str = "faces/cam1/0001.jpg", **changes: Any) -> ObjectCreated:
    fields: dict[str, Any] = {
        "bucket": "facelens",
        "key": key,
        "size": 4242,
        "etag": "0123456789abcdef0123456789abcdef",
        "sequencer": "0017CD3A2F1B2C3D4E",
        "event_time": WHEN,
        "configuration_id": "facelens-recognizer",
        "region": "eu-west-1",
    }
    fields.update(changes)
    return ObjectCreated(**fields)


def _wire(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def test_record_has_s3s_exact_structure() -> None:
    record = to_record(_event())
    assert record["eventVersion"] == "2.1"
    assert record["eventSource"] == "aws:s3"
    assert record["awsRegion"] == "eu-west-1"
    assert record["eventTime"] == "2024-05-06T07:08:09.123Z"
    assert record["eventName"] == "ObjectCreated:Put"
    assert set(record) == {
        "eventVersion", "eventSource", "awsRegion", "eventTime", "eventName",
        "userIdentity", "requestParameters", "responseElements", "s3",
    }  # fmt: skip
    assert set(record["userIdentity"]) == {"principalId"}
    assert set(record["requestParameters"]) == {"sourceIPAddress"}
    assert set(record["responseElements"]) == {"x-amz-request-id", "x-amz-id-2"}
    s3 = record["s3"]
    assert s3["s3SchemaVersion"] == "1.0"
    assert s3["configurationId"] == "facelens-recognizer"
    assert s3["bucket"] == {
        "name": "facelens",
        "ownerIdentity": {"principalId": s3["bucket"]["ownerIdentity"]["principalId"]},
        "arn": "arn:aws:s3:::facelens",
    }
    assert s3["object"] == {
        "key": "faces/cam1/0001.jpg",
        "size": 4242,
        "eTag": "0123456789abcdef0123456789abcdef",
        "sequencer": "0017CD3A2F1B2C3D4E",
    }
    assert to_s3_event([_event(), _event("b")])["Records"][1]["s3"]["object"]["key"] == "b"


def test_event_time_is_utc_milliseconds_whatever_the_zone() -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=-5, minutes=-30)))
    assert to_record(_event(event_time=local))["eventTime"] == "2024-05-06T07:08:09.123Z"
    naive = datetime(2024, 1, 2, 3, 4, 5, 999999)  # taken as UTC, truncated to the millisecond
    assert to_record(_event(event_time=naive))["eventTime"] == "2024-01-02T03:04:05.999Z"


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("red flower.jpg", "red+flower.jpg"),
        ("c++/a+b.jpg", "c%2B%2B/a%2Bb.jpg"),
        ("faces/cam 1/été.jpg", "faces/cam+1/%C3%A9t%C3%A9.jpg"),
        ("dt=2024-05-04/_SUCCESS", "dt%3D2024-05-04/_SUCCESS"),
        ("test/10:47:07.log", "test/10%3A47%3A07.log"),
        ("😀 & (1).png", "%F0%9F%98%80+%26+%281%29.png"),
        ("100%.jpg", "100%25.jpg"),
    ],
)
def test_keys_are_url_encoded_as_s3_does_and_decoded_back(key: str, encoded: str) -> None:
    message = to_s3_event([_event(key)])
    assert message["Records"][0]["s3"]["object"]["key"] == encoded
    (parsed,) = parse_message(_wire(message))
    assert parsed.key == key


def test_round_trip_gives_the_same_event() -> None:
    events = [_event("a b+c/é.jpg"), _event("x", event_name="ObjectCreated:Copy", size=0)]
    assert parse_message(_wire(to_s3_event(events))) == tuple(events)
    assert parse_message(json.dumps(to_s3_event(events))) == tuple(events)


def test_minio_message_shape_and_parse() -> None:
    event = _event("faces/a b.jpg")
    message = to_minio_message(event)
    assert message["EventName"] == "s3:ObjectCreated:Put"
    assert message["Key"] == "facelens/faces/a b.jpg"
    assert message["Records"][0]["eventName"] == "s3:ObjectCreated:Put"
    assert message["Records"][0]["s3"]["object"]["key"] == "faces/a+b.jpg"
    assert parse_message(_wire(message)) == (event,)


def test_a_message_as_minio_sends_it_is_read() -> None:
    # MinIO encodes '/' as %2F, names events with the s3: prefix, leaves awsRegion empty
    # and writes second-precision times.
    minio = {
        "EventName": "s3:ObjectCreated:Put",
        "Key": "images/faces/cam 1.jpg",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "awsRegion": "",
                "eventTime": "2019-05-18T07:34:32Z",
                "eventName": "s3:ObjectCreated:Put",
                "userIdentity": {"principalId": "minio"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "Config",
                    "bucket": {"name": "images", "arn": "arn:aws:s3:::images"},
                    "object": {
                        "key": "faces%2Fcam+1.jpg",
                        "size": 629648,
                        "eTag": "b7ce786cd89b182bfd5ae765557bbc37",
                        "contentType": "image/jpeg",
                        "userMetadata": {"content-type": "image/jpeg"},
                        "sequencer": "15612487A9DF732C",
                    },
                },
            }
        ],
    }
    (event,) = parse_message(_wire(minio))
    assert event == ObjectCreated(
        bucket="images",
        key="faces/cam 1.jpg",
        size=629648,
        etag="b7ce786cd89b182bfd5ae765557bbc37",
        sequencer="15612487A9DF732C",
        event_time=datetime(2019, 5, 18, 7, 34, 32, tzinfo=UTC),
        event_name="ObjectCreated:Put",
        configuration_id="Config",
        region="",
    )


def test_a_message_as_moto_sends_it_is_read() -> None:
    # moto: no sequencer, a naive time with microseconds, '/' encoded.
    moto = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2024-05-06T07:08:09.123456",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "id",
                    "bucket": {"name": "b", "arn": "arn:aws:s3:::b"},
                    "object": {"key": "faces%2Fa.jpg", "size": 3, "eTag": "abc"},
                },
            }
        ]
    }
    (event,) = parse_message(_wire(moto))
    assert (event.key, event.sequencer) == ("faces/a.jpg", "")
    assert event.event_time == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def test_sqs_body_wrapping_an_sns_notification_is_unwrapped() -> None:
    event = _event("faces/x y.jpg")
    sns = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:facelens",
        "Subject": "Amazon S3 Notification",
        "Message": json.dumps(to_s3_event([event])),
        "Timestamp": "2024-05-06T07:08:09.200Z",
        "SignatureVersion": "1",
    }
    assert parse_message(_wire(sns)) == (event,)
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "facelens"}
    assert parse_message(_wire({**sns, "Message": json.dumps(test_event)})) == ()


def test_s3_test_event_gives_no_events() -> None:
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2024-05-06T07:08:09.000Z",
        "Bucket": "facelens",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
    assert parse_message(_wire(test_event)) == ()


def test_only_object_created_records_are_returned() -> None:
    created = to_record(_event("kept"))
    removed = to_record(_event("gone"))
    removed["eventName"] = "ObjectRemoved:Delete"
    del removed["s3"]["object"]["eTag"]  # S3 sends none for a delete
    minio_removed = {**removed, "eventName": "s3:ObjectRemoved:Delete"}
    events = parse_message(_wire({"Records": [removed, created, minio_removed]}))
    assert [e.key for e in events] == ["kept"]
    assert parse_message(_wire({"Records": []})) == ()


def _with(path: str, value: Any) -> bytes:
    """A valid message with the field at dotted ``path`` replaced (or removed if value is ...)."""
    message = to_s3_event([_event()])
    node: Any = message["Records"][0]
    *parents, last = path.split(".")
    for name in parents:
        node = node[name]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return _wire(message)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[]", "JSON object"),
        (b'"Records"', "JSON object"),
        (b"{}", "no 'Records'"),
        (b'{"Records": {}}', "no 'Records'"),
        (b'{"Records": [1]}', r"Records\[0\] must be a JSON object"),
        (b'{"Type": "Notification", "Message": 5}', "'Message'"),
        (_with("eventName", ...), "eventName is missing"),
        (_with("eventName", 7), "eventName must be a string"),
        (_with("s3", ...), "s3 is missing"),
        (_with("s3", "x"), "s3 must be an object"),
        (_with("s3.bucket", ...), "bucket is missing"),
        (_with("s3.bucket.name", ...), "name is missing"),
        (_with("s3.bucket.name", ""), "empty bucket"),
        (_with("s3.object.key", ...), "key is missing"),
        (_with("s3.object.key", ["a"]), "key must be a string"),
        (_with("s3.object.key", ""), "empty bucket or key"),
        (_with("s3.object.key", "bad%FFutf8"), "URL-encoded UTF-8"),
        (_with("s3.object.size", "12"), "size must be an integer"),
        (_with("s3.object.size", True), "size must be an integer"),
        (_with("s3.object.size", 1.5), "size must be an integer"),
        (_with("s3.object.size", -1), "negative"),
        (_with("s3.object.eTag", ...), "eTag is missing"),
        (_with("s3.object.sequencer", 5), "sequencer must be a string"),
        (_with("eventTime", ...), "eventTime is missing"),
        (_with("eventTime", "yesterday"), "not an ISO 8601"),
        (_with("eventTime", "2024-05-06"), "not an ISO 8601"),
        (_with("eventTime", "2024-13-01T00:00:00Z"), "not a valid time"),
        (_with("eventTime", "2024-02-30T00:00:00.000Z"), "not a valid time"),
        (_with("awsRegion", 1), "awsRegion must be a string"),
        # NUL (U+0000): no object store holds such a key, and the history cannot record it.
        (_with("s3.object.key", "a%00b"), "key must not hold a NUL"),
        (_with("s3.bucket.name", "a\x00b"), "name must not hold a NUL"),
        (_with("s3.object.eTag", "\x00"), "eTag must not hold a NUL"),
        (_with("awsRegion", "eu\x00"), "awsRegion must not hold a NUL"),
    ],
)
def test_malformed_messages_raise_invalid_event_with_the_reason(
    payload: bytes, reason: str
) -> None:
    with pytest.raises(InvalidEventException, match=reason):
        parse_message(payload)


def test_wrapping_beyond_sqs_and_sns_is_refused() -> None:
    message: dict[str, Any] = to_s3_event([_event()])
    for _ in range(2):
        message = {"Type": "Notification", "Message": json.dumps(message)}
    with pytest.raises(InvalidEventException, match="wrapped too deeply"):
        parse_message(_wire(message))


def test_sequencers_increase_strictly_with_a_fixed_width() -> None:
    started_ns = time.time_ns()
    values = [new_sequencer() for _ in range(2000)]
    assert all(len(v) == 18 and v == v.upper() for v in values)
    assert all(int(v, 16) >= 0 for v in values)
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    # At least the wall clock in nanoseconds: a process started later (a restart) continues
    # above these, as long as the clock does not go back.
    assert int(values[0], 16) >= started_ns
