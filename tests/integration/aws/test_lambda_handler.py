"""The Lambda handler on S3 events that moto's server produced, with AWS back ends on moto.

Everything AWS is moto in server mode (S3, SQS, SNS, DynamoDB, IoT data),
reached over HTTP by the same adapters the function uses on AWS. The events
are the ones moto's S3 sends when a crop is put: to an SQS queue directly,
or through an SNS topic. The function gets them in each shape Lambda
delivers: S3 invoking it with several records, an SQS batch, an SNS record.

Faces are searched by facelens' own engine here (the "own engine" variant
of the serverless set-up, a local collection): moto has no Rekognition
collections. The Rekognition variant runs against facelens' own
Rekognition endpoint in ``test_lambda_rekognition.py``, and the adapter
against botocore's Stubber in ``tests/unit/collection``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from facelens.aws.handler import LambdaRecognizer
from facelens.collection.analysis import FaceAnalyzer
from facelens.config import NotifyChannel, NotifyRule, Settings
from facelens.engine.protocol import FaceEngine
from facelens.errors import ServiceUnavailableException
from facelens.storage.crops import CropMetadata
from facelens.storage.protocol import ObjectStore
from facelens.wiring.bus import open_publication
from facelens.wiring.people import people_of
from facelens.wiring.process import process_role
from facelens.wiring.recognizer import open_recognizer
from facelens.wiring.stores import CollectionParts, open_stores
from tests.integration.aws.moto_aws import COLLECTION, Aws, iot_messages, lambda_settings
from tests.integration.recognizer.conftest import make_crop
from tests.servers.moto import REGION


@dataclass(frozen=True)
class Container:
    """A warm container's parts, as the handler opens them, on the session's loaded engine."""

    lambda_: LambdaRecognizer
    collections: CollectionParts
    objects: ObjectStore


def open_container(settings: Settings, stack: ExitStack, engine: FaceEngine) -> Container:
    publication = open_publication(settings, stack, process_role(settings, "lambda"))
    stores = open_stores(settings, stack, FaceAnalyzer(engine))
    parts = open_recognizer(settings, stack, stores, people_of(settings, stores), publication)
    return Container(LambdaRecognizer(parts), stores.own_collections(), stores.objects)


@dataclass
class Function:
    lambda_: LambdaRecognizer
    faces: dict[str, str]
    objects: ObjectStore


@pytest.fixture
def function(aws: Aws, engine: FaceEngine, testdata: Path, tmp_path: Path) -> Iterator[Function]:
    """The function as one warm Lambda container, with Brad Pitt enrolled and profiled."""
    with ExitStack() as stack:
        container = open_container(lambda_settings(aws, tmp_path / "home"), stack, engine)
        collections = container.collections.collections
        photo = testdata / "people" / "brad_pitt" / "brad_pitt_1.jpg"
        collections.create_collection(COLLECTION)
        indexed = collections.index_faces(
            COLLECTION, photo.read_bytes(), external_image_id="brad_pitt_1.jpg", max_faces=1
        )
        brad = indexed.face_records[0].face.face_id
        aws.client("dynamodb").put_item(
            TableName=aws.table,
            Item={"FaceId": {"S": brad}, "Name": {"S": "Brad Pitt"}, "Role": {"S": "Actor"}},
        )
        yield Function(container.lambda_, {"brad": brad}, container.objects)


@pytest.fixture(scope="module")
def crops(engine: FaceEngine, testdata: Path) -> dict[str, bytes]:
    people = testdata / "people"
    return {
        "brad": make_crop(engine, people / "brad_pitt" / "brad_pitt_2.jpg"),
        "brad_3": make_crop(engine, people / "brad_pitt" / "brad_pitt_3.jpg"),
        "biden": make_crop(engine, people / "biden" / "biden_1.jpg"),
        "no_face": sorted((testdata / "noface").glob("*.jpg"))[0].read_bytes(),
    }


def by_key(messages: list[tuple[str, dict[str, Any]]]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {payload["Key"]: (topic, payload) for topic, payload in messages}


def test_every_record_of_a_direct_s3_invocation_is_recognized(
    aws: Aws, function: Function, crops: dict[str, bytes]
) -> None:
    """S3 invoking the function with three records (the original handled only the first),
    keys as S3 encodes them: a space and a plus."""
    keys = ["faces/front door/brad+1.jpg", "faces/front door/biden.jpg", "faces/empty.jpg"]
    for key, crop in zip(keys, [crops["brad"], crops["biden"], crops["no_face"]], strict=True):
        aws.put_crop(key, crop)
    aws.put_crop("faces/notes.txt", b"not a crop")  # filtered out by the notification
    records = [r for m in aws.s3_events(3) for r in json.loads(m["Body"])["Records"]]
    encoded = {r["s3"]["object"]["key"] for r in records}
    # As S3 sends them: a space as '+', a plus as '%2B' (moto also encodes '/' as '%2F').
    assert any("front+door" in key and "brad%2B1" in key for key in encoded)
    before = len(iot_messages())

    summary = function.lambda_.handle({"Records": records})

    assert summary["records"] == 3
    assert (summary["identified"], summary["unknown"], summary["deadLetters"]) == (1, 1, 1)
    published = by_key(iot_messages()[before:])
    topic, brad = published["faces/front door/brad+1.jpg"]
    assert topic == "rekognition"
    assert (brad["Name"], brad["Role"], brad["FaceId"]) == (
        "Brad Pitt",
        "Actor",
        function.faces["brad"],
    )
    assert brad["Camera"] == "front-door"
    assert published["faces/front door/biden.jpg"][0] == "rekognition/unknown"
    error_topic, error = published["faces/empty.jpg"]
    assert error_topic == "rekognition/errors"
    assert error["Error"]["Code"] == "InvalidParameterException"


def test_a_repeated_invocation_publishes_nothing_twice(
    aws: Aws, function: Function, crops: dict[str, bytes]
) -> None:
    aws.put_crop("faces/brad.jpg", crops["brad"])
    event = json.loads(aws.s3_events(1)[0]["Body"])
    function.lambda_.handle(event)
    before = len(iot_messages())
    summary = function.lambda_.handle(event)  # Lambda's retry of an async invocation
    assert summary["duplicates"] == 1
    assert len(iot_messages()) == before


def test_an_sqs_batch_reports_only_its_failed_records(
    aws: Aws, function: Function, crops: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 -> SQS -> Lambda: a record whose crop cannot be read now is handed back by
    messageId (batchItemFailures), the others are done."""
    aws.put_crop("faces/a.jpg", crops["brad"])
    aws.put_crop("faces/b.jpg", crops["biden"])
    messages = aws.s3_events(2)
    event = {
        "Records": [
            {
                "eventSource": "aws:sqs",
                "messageId": m["MessageId"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
            }
            for m in messages
        ]
    }
    objects = function.objects
    real_get = objects.get_object

    def flaky(bucket: str, key: str) -> Any:
        if key == "faces/b.jpg":
            raise ServiceUnavailableException("S3 is unavailable for the test")
        return real_get(bucket, key)

    monkeypatch.setattr(objects, "get_object", flaky)
    summary = function.lambda_.handle(event)
    failed_id = next(m["MessageId"] for m in messages if "b.jpg" in m["Body"])
    assert summary["batchItemFailures"] == [{"itemIdentifier": failed_id}]
    assert summary["identified"] == 1

    monkeypatch.setattr(objects, "get_object", real_get)
    retried = function.lambda_.handle(
        {"Records": [r for r in event["Records"] if r["messageId"] == failed_id]}
    )
    assert (retried["batchItemFailures"], retried["unknown"]) == ([], 1)


def test_a_direct_invocation_with_a_failed_record_raises_for_lambdas_retry(
    aws: Aws, engine: FaceEngine, tmp_path: Path, crops: dict[str, bytes]
) -> None:
    """The profile table is unreachable (nothing listens on its port): the invocation raises,
    so Lambda retries it and, after its retries, sends it to the dead-letter queue."""
    down = f"dynamodb://{aws.table}?endpoint_url=http://127.0.0.1:9&region={REGION}"
    settings = lambda_settings(aws, tmp_path / "home", profiles_url=down)
    with ExitStack() as stack:
        container = open_container(settings, stack, engine)
        photo = crops["brad"]
        container.collections.collections.create_collection(COLLECTION)
        container.collections.collections.index_faces(COLLECTION, photo, max_faces=1)
        aws.put_crop("faces/a.jpg", photo)
        event = json.loads(aws.s3_events(1)[0]["Body"])
        before = len(iot_messages())
        with pytest.raises(ServiceUnavailableException, match="will be retried"):
            container.lambda_.handle(event)
    assert len(iot_messages()) == before  # nothing published for the failed record


def test_events_through_sns_are_unwrapped(
    aws: Aws, function: Function, crops: dict[str, bytes]
) -> None:
    """S3 -> SNS -> Lambda: the function gets SNS records whose Message is the S3 event."""
    aws.put_crop("faces/sns/brad.jpg", crops["brad"])
    (message,) = aws.s3_events(1, queue_url=aws.sns_queue_url)
    envelope = json.loads(message["Body"])
    assert envelope["Type"] == "Notification"
    event = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": envelope["Message"]}}]}
    summary = function.lambda_.handle(event)
    assert summary["identified"] == 1
    topic, payload = iot_messages()[-1]
    assert (topic, payload["Key"], payload["Name"]) == (
        "rekognition",
        "faces/sns/brad.jpg",
        "Brad Pitt",
    )


def test_malformed_events_are_dead_letters_not_crashes(function: Function) -> None:
    before = len(iot_messages())
    summary = function.lambda_.handle({"Records": [{"eventSource": "aws:s3", "eventName": 7}]})
    assert summary["deadLetters"] == 1
    topic, payload = iot_messages()[before]
    assert topic == "rekognition/errors"
    assert payload["Error"]["Code"] == "InvalidEventException"


def test_alerts_go_to_an_sns_topic_before_the_invocation_returns(
    aws: Aws, engine: FaceEngine, testdata: Path, tmp_path: Path, crops: dict[str, bytes]
) -> None:
    """A notification channel on SNS (the recipe's last step, here without the IoT rule)."""
    sqs, sns = aws.client("sqs"), aws.client("sns")
    inbox = sqs.create_queue(QueueName=f"{aws.bucket}-alerts")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])
    topic = sns.create_topic(Name=f"{aws.bucket}-alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn["Attributes"]["QueueArn"])
    channel = NotifyChannel(url=SecretStr(topic), rule=NotifyRule.UNKNOWN, cooldown_seconds=0)
    settings = lambda_settings(aws, tmp_path / "home", notify=[channel])
    with ExitStack() as stack:
        container = open_container(settings, stack, engine)
        aws.put_crop("faces/stranger.jpg", crops["biden"])
        summary = container.lambda_.handle(json.loads(aws.s3_events(1)[0]["Body"]))
    assert summary["unknown"] == 1
    alerts = sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=1).get("Messages", [])
    assert len(alerts) == 1
    assert "faces/stranger.jpg" in json.loads(alerts[0]["Body"])["Message"]


def test_looks_of_one_visit_in_one_container_publish_one_answer(
    aws: Aws, function: Function, crops: dict[str, bytes]
) -> None:
    """Two looks of Brad at the door (the edge's visit-id on both): the first is published,
    the second confirms it and is only recorded (the container's own visit ledger)."""
    for look, key in enumerate(["faces/visit/0.jpg", "faces/visit/1.jpg"]):
        meta = CropMetadata(camera="front-door", visit_id="visit-1", look=look, look_quality=0.8)
        aws.client("s3").put_object(
            Bucket=aws.bucket,
            Key=key,
            Body=crops["brad"] if look == 0 else crops["brad_3"],
            ContentType="image/jpeg",
            Metadata=meta.to_metadata(),
        )
    records = [r for m in aws.s3_events(2) for r in json.loads(m["Body"])["Records"]]
    records.sort(key=lambda r: str(r["s3"]["object"]["key"]))
    before = len(iot_messages())

    summary = function.lambda_.handle({"Records": records})

    assert (summary["identified"], summary["unchanged"]) == (1, 1)
    ((topic, answer),) = iot_messages()[before:]
    assert topic == "rekognition"
    assert (answer["Name"], answer["VisitId"], answer["Revision"]) == ("Brad Pitt", "visit-1", 0)
