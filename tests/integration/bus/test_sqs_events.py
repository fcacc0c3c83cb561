"""SqsEventSource against a real SQS API (moto server), fed by real S3 -> SQS notifications.

Why moto in server mode: what the source must get right happens on the wire
(receipt handles, visibility timeouts, receive counts, S3's own event JSON
with its key encoding), and on AWS nobody but S3 writes those messages. Each
test makes its own queue, so tests never see each other's messages. Waits
are SQS long polls with a deadline, never sleeps.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from facelens.aws_clients import AwsClientOptions
from facelens.bus.delivery import Delivery
from facelens.bus.sqs_events import SqsEventSource
from facelens.errors import ConfigurationError, ServiceUnavailableException, StorageError
from facelens.storage.events import to_s3_event
from facelens.storage.s3 import S3ObjectStore
from facelens.values.events import ObjectCreated
from tests.servers.moto import REGION

UNICODE_KEY = "faces/cam 1/José ü+1.jpg"
"""A matching key that S3 must URL-encode in the event: a space, non-ASCII and a '+'."""


@pytest.fixture
def sqs(moto_server: str, aws_env: dict[str, str]) -> Iterator[Any]:
    import boto3

    client = boto3.session.Session().client("sqs", endpoint_url=moto_server, region_name=REGION)
    yield client
    client.close()


@pytest.fixture
def queue_url(sqs: Any) -> str:
    url: str = sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:16]}")["QueueUrl"]
    return url


def queue_arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    arn: str = attributes["Attributes"]["QueueArn"]
    return arn


@pytest.fixture
def source(moto_server: str, aws_env: dict[str, str], queue_url: str) -> Iterator[SqsEventSource]:
    opened = SqsEventSource(
        queue_url,
        visibility_timeout=1,
        retry_delay=0,
        aws=AwsClientOptions(
            region=REGION,
            endpoint_url=moto_server,
            connect_timeout=2,
            read_timeout=10,
            max_attempts=2,
        ),
    )
    yield opened
    opened.close()


def an_event(key: str = "faces/a.jpg") -> ObjectCreated:
    return ObjectCreated(
        bucket="b",
        key=key,
        size=3,
        etag="0" * 32,
        sequencer="00000000000000000A",
        event_time=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def send_event(sqs: Any, url: str, event: ObjectCreated) -> None:
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(to_s3_event([event])))


def receive_until(
    source: SqsEventSource, count: int, *, seconds: float = 10.0, ack: bool = True
) -> list[Delivery]:
    """Deliveries until ``count`` arrived or ``seconds`` passed; acked unless told otherwise."""
    deadline = time.monotonic() + seconds
    taken: list[Delivery] = []
    while len(taken) < count and time.monotonic() < deadline:
        for delivery in source.receive(max_events=10, wait_seconds=1):
            taken.append(delivery)
            if ack:
                source.ack(delivery)
    return taken


def _closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_s3_notifications_arrive_as_deliveries_of_object_created(
    moto_server: str, sqs: Any, queue_url: str, source: SqsEventSource,
    s3_store: S3ObjectStore, s3_bucket: str,
) -> None:  # fmt: skip
    import boto3

    s3 = boto3.session.Session().client("s3", endpoint_url=moto_server, region_name=REGION)
    s3.put_bucket_notification_configuration(
        Bucket=s3_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "recognizer",
                    "QueueArn": queue_arn(sqs, queue_url),
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": "faces/"},
                                {"Name": "suffix", "Value": ".jpg"},
                            ]
                        }
                    },
                }
            ]
        },
    )
    s3.close()
    body = b"\xff\xd8\xff crop"
    info = s3_store.put_object(s3_bucket, UNICODE_KEY, body, content_type="image/jpeg")
    s3_store.put_object(s3_bucket, "faces/cam 1/2.png", b"png")  # wrong suffix
    s3_store.put_object(s3_bucket, "other/3.jpg", b"jpg")  # wrong prefix

    deliveries = receive_until(source, 2)
    tests = [d for d in deliveries if not d.events]
    created = [e for d in deliveries for e in d.events]
    # S3 (and moto) first send s3:TestEvent when the configuration is set: no events, no error.
    assert len(tests) == 1
    assert tests[0].error is None
    assert json.loads(tests[0].raw)["Event"] == "s3:TestEvent"
    (event,) = created
    assert event.bucket == s3_bucket
    assert event.key == UNICODE_KEY, "S3's URL-encoded key is decoded"
    assert event.size == len(body) == info.size
    assert event.etag == info.etag
    assert event.event_name == "ObjectCreated:Put"
    assert event.configuration_id == "recognizer"
    assert event.region == REGION
    assert all(d.error is None and d.attempt == 1 for d in deliveries)
    assert source.receive(wait_seconds=0) == [], "the other objects matched no filter"


def test_s3_events_wrapped_by_sns_are_unwrapped(
    moto_server: str, sqs: Any, queue_url: str, source: SqsEventSource,
    s3_store: S3ObjectStore, s3_bucket: str,
) -> None:  # fmt: skip
    import boto3

    session = boto3.session.Session()
    sns = session.client("sns", endpoint_url=moto_server, region_name=REGION)
    s3 = session.client("s3", endpoint_url=moto_server, region_name=REGION)
    topic = sns.create_topic(Name=f"objects-{uuid.uuid4().hex[:12]}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn(sqs, queue_url))
    s3.put_bucket_notification_configuration(
        Bucket=s3_bucket,
        NotificationConfiguration={
            "TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    info = s3_store.put_object(s3_bucket, UNICODE_KEY, b"crop")
    deliveries = receive_until(source, 2)
    assert all(json.loads(d.raw)["Type"] == "Notification" for d in deliveries), "SNS envelopes"
    assert [e.key for d in deliveries for e in d.events] == [UNICODE_KEY]
    assert [e.etag for d in deliveries for e in d.events] == [info.etag]
    sns.close()
    s3.close()


def test_an_acked_message_is_gone_for_good(
    sqs: Any, queue_url: str, source: SqsEventSource
) -> None:
    send_event(sqs, queue_url, an_event())
    (delivery,) = receive_until(source, 1)  # acked
    assert delivery.events == (an_event(),)
    # Longer than the 1 s visibility timeout: an unacked message would be back by now.
    assert source.receive(wait_seconds=2) == []


def test_a_message_with_no_events_can_be_acked(
    sqs: Any, queue_url: str, source: SqsEventSource
) -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(test_event))
    (delivery,) = receive_until(source, 1, ack=False)
    assert (delivery.events, delivery.error) == ((), None)
    source.ack(delivery)
    assert source.receive(wait_seconds=2) == []


def test_an_unacked_message_comes_back_after_the_visibility_timeout(
    sqs: Any, queue_url: str, source: SqsEventSource
) -> None:
    send_event(sqs, queue_url, an_event())
    (first,) = receive_until(source, 1, ack=False)
    received_at = time.monotonic()
    assert first.attempt == 1
    assert source.receive(wait_seconds=0) == [], "invisible while the worker holds it"
    (again,) = receive_until(source, 1, ack=False)
    assert time.monotonic() - received_at >= 0.9
    assert again.raw == first.raw
    assert again.attempt == 2, "attempt is SQS's ApproximateReceiveCount"
    source.ack(again)
    assert source.receive(wait_seconds=0) == []


def test_release_with_no_delay_makes_the_message_visible_at_once(
    sqs: Any, queue_url: str, source: SqsEventSource
) -> None:
    send_event(sqs, queue_url, an_event())
    (first,) = receive_until(source, 1, ack=False)
    source.release(first)
    (again,) = source.receive(wait_seconds=0)
    assert (again.raw, again.attempt) == (first.raw, 2)
    source.ack(again)


def test_release_makes_the_message_visible_after_the_retry_delay(
    moto_server: str, sqs: Any, queue_url: str
) -> None:
    source = SqsEventSource(
        queue_url,
        visibility_timeout=30,
        retry_delay=1,
        aws=AwsClientOptions(region=REGION, endpoint_url=moto_server),
    )
    send_event(sqs, queue_url, an_event())
    (first,) = receive_until(source, 1, ack=False)
    source.release(first)
    released_at = time.monotonic()
    assert source.receive(wait_seconds=0) == [], "not at once: a store that is down is not hammered"
    (again,) = receive_until(source, 1)
    assert time.monotonic() - released_at >= 0.9
    assert again.attempt == 2
    assert source.receive(wait_seconds=0) == []
    source.close()


def test_a_malformed_body_is_a_delivery_with_an_error(
    sqs: Any, queue_url: str, source: SqsEventSource
) -> None:
    sqs.send_message(QueueUrl=queue_url, MessageBody="this is not an S3 event")
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"Records": "none"}))
    deliveries = receive_until(source, 2, ack=False)
    errors = sorted(d.error or "" for d in deliveries)
    assert [d.events for d in deliveries] == [(), ()]
    assert "not JSON" in errors[1]
    assert "'Records' list" in errors[0]
    assert {d.raw for d in deliveries} == {
        b"this is not an S3 event",
        json.dumps({"Records": "none"}).encode(),
    }, "the raw body is kept for the dead-letter record"
    for delivery in deliveries:
        source.ack(delivery)
    assert source.receive(wait_seconds=0) == []


def test_an_injected_client_brings_its_own_endpoint(sqs: Any, queue_url: str) -> None:
    nowhere = f"http://127.0.0.1:{_closed_port()}"
    source = SqsEventSource(
        queue_url, client=sqs, aws=AwsClientOptions(endpoint_url=nowhere, max_attempts=1)
    )
    send_event(sqs, queue_url, an_event("faces/b.jpg"))
    assert [e.key for d in receive_until(source, 1) for e in d.events] == ["faces/b.jpg"]
    source.close()


def test_a_missing_queue_is_a_storage_error_not_unavailable(
    moto_server: str, aws_env: dict[str, str]
) -> None:
    source = SqsEventSource(
        f"{moto_server}/123456789012/no-such-queue-{uuid.uuid4().hex[:8]}",
        aws=AwsClientOptions(region=REGION, endpoint_url=moto_server),
    )
    with pytest.raises(StorageError) as raised:
        source.receive(wait_seconds=0)
    assert not isinstance(raised.value, ServiceUnavailableException)
    assert "receive_message" in raised.value.message
    source.close()


def test_an_unreachable_endpoint_raises_service_unavailable(aws_env: dict[str, str]) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    source = SqsEventSource(
        f"{endpoint}/123456789012/q",
        aws=AwsClientOptions(
            region=REGION,
            endpoint_url=endpoint,
            connect_timeout=0.5,
            read_timeout=2,
            max_attempts=1,
        ),
    )
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableException) as raised:
        source.receive(wait_seconds=1)
    assert raised.value.code == "ServiceUnavailableException"
    handle = Delivery("handle", (), b"")
    with pytest.raises(ServiceUnavailableException):
        source.ack(handle)
    with pytest.raises(ServiceUnavailableException):
        source.release(handle)
    assert time.monotonic() - started < 10, "few attempts, short timeouts"
    source.close()


def test_an_endpoint_that_never_answers_raises_service_unavailable(
    aws_env: dict[str, str],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts connections; nobody ever answers
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        source = SqsEventSource(
            f"{endpoint}/123456789012/q",
            aws=AwsClientOptions(
                region=REGION, endpoint_url=endpoint, read_timeout=0.5, max_attempts=1
            ),
        )
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableException, match="unreachable"):
            source.receive(wait_seconds=5)  # capped below the read timeout: not a long poll
        assert time.monotonic() - started < 5
        source.close()


@pytest.mark.parametrize(
    "limits",
    [{"connect_timeout": 0}, {"read_timeout": -1}, {"max_attempts": 0}],
)
def test_impossible_client_limits_are_refused(limits: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        SqsEventSource(
            "http://127.0.0.1:1/123456789012/q",
            aws=AwsClientOptions(**limits),  # type: ignore[arg-type]
        )
