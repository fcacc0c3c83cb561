"""AWS on moto for the Lambda tests: a bucket whose crops notify SQS and SNS, a profile table.

``aws`` (the fixture, in conftest.py) builds them per test on the session's
moto server; ``lambda_settings`` gives the function the settings
deploy/aws gives it, pointed at them.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from facelens.config import MqttSettings, RecognizerSettings, Settings
from facelens.storage.crops import CropMetadata
from tests.servers.moto import REGION

COLLECTION = "faces"


def iot_messages() -> list[tuple[str, dict[str, Any]]]:
    """What the function published through moto's IoT data plane, oldest first.

    moto's backend is shared by the session: other tests' payloads on other topics
    (some not JSON) are left out."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.iotdata.models import iotdata_backends

    backend = iotdata_backends[DEFAULT_ACCOUNT_ID][REGION]
    return [
        (topic, json.loads(payload))
        for topic, payload in backend.published_payloads
        if topic == "rekognition" or topic.startswith("rekognition/")
    ]


@dataclass
class Aws:
    """boto3 clients on the moto server, and the resources one test made."""

    endpoint: str
    bucket: str
    table: str
    queue_url: str
    sns_queue_url: str

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint, region_name=REGION
        )

    def put_crop(self, key: str, body: bytes) -> None:
        self.client("s3").put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType="image/jpeg",
            Metadata=CropMetadata(camera="front-door").to_metadata(),
        )

    def s3_events(self, count: int, *, queue_url: str | None = None) -> list[dict[str, Any]]:
        """The next ``count`` SQS messages holding ObjectCreated events (S3's test event
        skipped), deleted from the queue as Lambda's poller would."""
        sqs = self.client("sqs")
        url = queue_url or self.queue_url
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while len(found) < count and time.monotonic() < deadline:
            response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in response.get("Messages", []):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                if "ObjectCreated" in message["Body"]:
                    found.append(message)
        if len(found) < count:
            raise AssertionError(f"moto delivered {len(found)} of {count} S3 events")
        return found


def lambda_settings(aws: Aws, home: Path, **overrides: Any) -> Settings:
    """The settings deploy/aws gives the function, on moto (and a local collection)."""
    on_moto = f"endpoint_url={aws.endpoint}&region={REGION}"
    fields: dict[str, Any] = {
        "home": home,
        "models_dir": None,
        "objects_url": f"s3://?{on_moto}",
        "bucket": aws.bucket,
        "profiles_url": f"dynamodb://{aws.table}?{on_moto}",
        "mqtt": MqttSettings(url=f"iotdata://?{on_moto}"),
        "recognizer": RecognizerSettings(collection_id=COLLECTION),
        **overrides,
    }
    return Settings(**fields)


def make_aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    """A bucket whose crops (faces/*.jpg) notify an SQS queue and an SNS topic (with an SQS
    subscriber), and a profile table keyed by FaceId."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", moto_server)
    name = f"t-{uuid.uuid4().hex[:12]}"
    session = boto3.session.Session()

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=moto_server, region_name=REGION)

    sqs, s3 = client("sqs"), client("s3")
    sns = client("sns")
    queue_url = sqs.create_queue(QueueName=f"{name}-events")["QueueUrl"]
    sns_queue_url = sqs.create_queue(QueueName=f"{name}-via-sns")["QueueUrl"]

    def arn(url: str) -> str:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])

    topic = sns.create_topic(Name=f"{name}-crops")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn(sns_queue_url))
    crops = {
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
    s3.create_bucket(Bucket=name)
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn(queue_url), **crops}],
            "TopicConfigurations": [{"TopicArn": topic, **crops}],
        },
    )
    client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "FaceId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "FaceId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return Aws(moto_server, name, name, queue_url, sns_queue_url)
