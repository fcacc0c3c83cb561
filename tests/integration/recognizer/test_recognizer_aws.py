"""The AWS shape of the pipeline, on moto's server: S3 notifies SQS, the recognizer reads SQS.

No facelens code sends the event here: S3 (moto) does, from the bucket's
notification configuration, exactly as on AWS. The recognizer only reads
the queue, the bucket and the collection.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import boto3
import pytest

from facelens.config import EventSettings
from tests.integration.recognizer.conftest import OpenPipeline
from tests.servers.mosquitto import MosquittoBroker, Subscriber


def test_s3_notification_to_sqs_to_recognizer(
    open_pipeline: OpenPipeline,
    mqtt_broker: MosquittoBroker,
    crops: dict[str, bytes],
    moto_server: str,
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_server)
    session = boto3.session.Session()
    s3 = session.client("s3", endpoint_url=moto_server)
    sqs = session.client("sqs", endpoint_url=moto_server)
    bucket = f"crops-{uuid.uuid4().hex[:12]}"
    queue_url = sqs.create_queue(QueueName=f"recognizer-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    p = open_pipeline(
        mqtt_broker.url,
        objects_url=f"s3://?endpoint_url={quote(moto_server, safe='')}&region=us-east-1",
        bucket=bucket,
        events=EventSettings(source="sqs", sqs_queue_url=queue_url),  # type: ignore[arg-type]
    )
    p.wired.stores.objects.create_bucket(bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn["Attributes"]["QueueArn"],
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
    p.start_worker()
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        key = p.put_crop(crops["obama"], key="faces/11_26/10_30/front door 1.jpg")
        seen = sub.wait_until(lambda ms: any(m.topic == "rekognition" for m in ms), timeout=30)
    (message,) = [json.loads(m.payload) for m in seen if m.topic == "rekognition"]
    assert message["Key"] == key  # S3 URL-encoded the space; the recognizer decoded it
    assert message["Bucket"] == bucket
    assert message["Name"] == "Barack Obama"
    assert message["Camera"] == "front-door"
    s3.close()
    sqs.close()
