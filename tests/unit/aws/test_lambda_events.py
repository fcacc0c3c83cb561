"""How a Lambda invocation's event becomes deliveries: S3 direct, SQS, SNS, and junk."""

from __future__ import annotations

import json
from typing import Any

import pytest

from facelens.aws.lambda_events import EventKind, LambdaEventSource


def s3_record(key: str, *, size: int = 10, name: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-12-01T10:00:00.000Z",
        "eventName": name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "crops",
            "bucket": {"name": "crops", "arn": "arn:aws:s3:::crops"},
            "object": {"key": key, "size": size, "eTag": "abc", "sequencer": "01"},
        },
    }


def test_every_s3_record_is_a_delivery_of_its_own_with_its_key_decoded() -> None:
    source = LambdaEventSource(
        {"Records": [s3_record("faces/cam+1/a.jpg"), s3_record("faces/b%2Bc.jpg")]}
    )
    deliveries = source.receive(max_events=10)
    assert source.kind is EventKind.S3
    assert [d.events[0].key for d in deliveries] == ["faces/cam 1/a.jpg", "faces/b+c.jpg"]
    assert source.receive() == []  # served once


def test_a_bad_record_fails_alone() -> None:
    bad = s3_record("faces/x.jpg", size=-1)
    deliveries = LambdaEventSource({"Records": [bad, s3_record("faces/y.jpg")]}).receive()
    assert deliveries[0].error is not None
    assert "size" in deliveries[0].error
    assert deliveries[1].events[0].key == "faces/y.jpg"


def test_sqs_records_carry_their_message_id_and_receive_count() -> None:
    body = json.dumps({"Records": [s3_record("faces/a.jpg"), s3_record("faces/b.jpg")]})
    event = {
        "Records": [
            {
                "eventSource": "aws:sqs",
                "messageId": "m-1",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "3"},
            },
            {"eventSource": "aws:sqs", "messageId": "m-2", "body": "not json"},
        ]
    }
    source = LambdaEventSource(event)
    good, bad = source.receive()
    assert source.kind is EventKind.SQS
    assert (good.delivery_id, good.attempt, len(good.events)) == ("m-1", 3, 2)
    assert bad.delivery_id == "m-2"
    assert bad.error is not None


def test_sns_records_unwrap_their_message() -> None:
    message = json.dumps({"Records": [s3_record("faces/a.jpg")]})
    event = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": message}}]}
    source = LambdaEventSource(event)
    (delivery,) = source.receive()
    assert source.kind is EventKind.SNS
    assert delivery.events[0].key == "faces/a.jpg"


def test_s3_test_events_and_other_event_types_carry_no_events() -> None:
    test_event = LambdaEventSource({"Event": "s3:TestEvent", "Bucket": "crops"}).receive()
    assert test_event[0].events == ()
    assert test_event[0].error is None
    removed = LambdaEventSource(
        {"Records": [s3_record("faces/a.jpg", name="ObjectRemoved:Delete")]}
    )
    assert removed.receive()[0].events == ()


@pytest.mark.parametrize(
    "event",
    [None, "text", [], {}, {"Records": "x"}, {"detail-type": "Object Created"}],
)
def test_anything_else_is_one_delivery_with_an_error(event: Any) -> None:
    (delivery,) = LambdaEventSource(event).receive()
    assert delivery.error is not None


def test_a_record_unlike_the_first_is_refused() -> None:
    event = {"Records": [s3_record("faces/a.jpg"), {"eventSource": "aws:sqs", "body": "{}"}]}
    deliveries = LambdaEventSource(event).receive()
    assert deliveries[1].error is not None
    assert "not an s3 record" in deliveries[1].error


def test_acks_and_releases_are_remembered() -> None:
    source = LambdaEventSource({"Records": [s3_record("faces/a.jpg"), s3_record("faces/b.jpg")]})
    first, second = source.receive()
    source.ack(first)
    source.release(second)
    assert (source.acked, source.released, source.size) == ([first], [second], 2)
