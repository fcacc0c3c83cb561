"""The original cloud recipe, replayed unchanged against facelens.

The recipe: enrol a face with ``aws rekognition index-faces``, store who it
is with ``aws dynamodb put-item`` under the FaceId, then a Lambda function,
triggered by S3 when a camera uploads a crop, searches the collection with
the crop's S3 location, reads the profile from DynamoDB and publishes it to
the IoT topic ``rekognition``. Here nothing of that changes but where the
services are: the service-specific endpoint variables
(``AWS_ENDPOINT_URL_REKOGNITION``, ``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_ENDPOINT_URL_IOT_DATA_PLANE``, the last named after the service id
"IoT Data Plane") point at one facelens server, and the credentials are a
facelens access key.

S3 and SQS are moto's server: the crop goes into an S3 bucket that is also
the facelens server's object store (its Rekognition endpoint reads
``S3Object`` images from there), and the Lambda's event is the very message
S3's bucket notification delivers to an SQS queue, key URL-encoded. The
identification must arrive on the facelens server's MQTT broker, a real
Mosquitto.
"""

from __future__ import annotations

import io
import json
import os
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from facelens.config import MqttSettings
from tests.contract.awscli import AwsCli, isolated_env
from tests.contract.conftest import ServerFactory
from tests.servers.facelens_api import ApiServer
from tests.servers.mosquitto import MosquittoBroker, Subscriber

COLLECTION = "family_collection"
TABLE = "facerecognition"
CROP_KEY = "faces/cam 1/Obama+crop.jpg"
"""A key S3 must encode in its event (a space and a plus), as camera names make them."""
SQS_WAIT_S = 20


# -- the original function, as it was written (only its names of things are ours) --


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    rekognition = boto3.client("rekognition")
    dynamodb = boto3.resource("dynamodb")

    bucket = event["Records"][0]["s3"]["bucket"]["name"]
    key = urllib.parse.unquote_plus(event["Records"][0]["s3"]["object"]["key"], encoding="utf-8")

    response = rekognition.search_faces_by_image(
        CollectionId=COLLECTION,
        Image={"S3Object": {"Bucket": bucket, "Name": key}},
        FaceMatchThreshold=70,
        MaxFaces=1,
    )
    for match in response["FaceMatches"]:
        face = dynamodb.Table(TABLE).get_item(Key={"FaceId": match["Face"]["FaceId"]})
        if "Item" in face:
            person = face["Item"]
            payload = {
                "FaceId": person["FaceId"],
                "Name": person["Name"],
                "Bio": person["Bio"],
                "Similarity": float(match["Similarity"]),
                "Bucket": bucket,
                "Key": key,
            }
            client = boto3.client("iot-data")
            client.publish(topic="rekognition", qos=1, payload=json.dumps(payload))
            return payload
    return {}


# -- the replay --


@pytest.fixture
def s3_session(moto_server: str) -> Any:
    """boto3 for moto's S3 and SQS (moto takes any credentials)."""
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


def crop_of(server: ApiServer, photo: Path) -> bytes:
    """The face of ``photo`` with a margin, as an edge camera uploads it (found by the server)."""
    client = boto3.session.Session().client(
        "rekognition",
        endpoint_url=server.url,
        region_name=server.region,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
    )
    [face] = client.detect_faces(Image={"Bytes": photo.read_bytes()})["FaceDetails"]
    box = face["BoundingBox"]
    image = Image.open(photo).convert("RGB")
    width, height = image.size
    margin = 0.3
    left = max(0.0, box["Left"] - margin * box["Width"]) * width
    top = max(0.0, box["Top"] - margin * box["Height"]) * height
    right = min(1.0, box["Left"] + (1 + margin) * box["Width"]) * width
    bottom = min(1.0, box["Top"] + (1 + margin) * box["Height"]) * height
    out = io.BytesIO()
    image.crop((int(left), int(top), int(right), int(bottom))).save(out, "JPEG", quality=90)
    return out.getvalue()


def s3_event_from_sqs(sqs: Any, queue_url: str) -> dict[str, Any]:
    """The first ObjectCreated event on the queue (S3's s3:TestEvent is skipped)."""
    for _ in range(5):
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=SQS_WAIT_S
        )
        for message in received.get("Messages", []):
            body: dict[str, Any] = json.loads(message["Body"])
            if "Records" in body:
                return body
    raise AssertionError("S3 delivered no ObjectCreated event to the queue")


@pytest.mark.usefixtures("aws_env")  # the facelens server's own S3 client needs credentials
def test_the_original_recipe_runs_unchanged(
    configured_server: ServerFactory,
    mqtt_broker: MosquittoBroker,
    moto_server: str,
    s3_session: Any,
    testdata: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = f"camera-crops-{uuid.uuid4().hex[:12]}"
    s3 = s3_session.client("s3", endpoint_url=moto_server)
    sqs = s3_session.client("sqs", endpoint_url=moto_server)
    s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName=f"crops-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn["Attributes"]["QueueArn"],
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "faces/"}]}},
                }
            ]
        },
    )
    server = configured_server(
        objects_url=f"s3://?endpoint_url={urllib.parse.quote(moto_server, safe='')}"
        "&region=us-east-1",
        bucket=bucket,
        mqtt=MqttSettings(url=mqtt_broker.url),
    )

    # Only the endpoints and the credentials differ from the cloud.
    endpoints = {
        "AWS_ACCESS_KEY_ID": server.access_key_id,
        "AWS_SECRET_ACCESS_KEY": server.secret_access_key,
        "AWS_DEFAULT_REGION": server.region,
        "AWS_ENDPOINT_URL_REKOGNITION": server.url,
        "AWS_ENDPOINT_URL_DYNAMODB": server.url,
        "AWS_ENDPOINT_URL_IOT_DATA_PLANE": server.url,
    }
    aws = AwsCli(isolated_env(tmp_path, **endpoints), tmp_path)

    # 1. Enrolment, as the recipe's README typed it.
    people = testdata / "people" / "obama"
    s3.put_object(
        Bucket=bucket, Key="enrol/obama_1.jpg", Body=(people / "obama_1.jpg").read_bytes()
    )
    aws("rekognition", "create-collection", "--collection-id", COLLECTION)
    indexed = aws(
        "rekognition",
        "index-faces",
        "--image",
        json.dumps({"S3Object": {"Bucket": bucket, "Name": "enrol/obama_1.jpg"}}),
        "--collection-id",
        COLLECTION,
        "--detection-attributes",
        "ALL",
        "--external-image-id",
        "obama_1.jpg",
    )
    [record] = indexed["FaceRecords"]
    face_id = record["Face"]["FaceId"]
    aws(
        "dynamodb",
        "create-table",
        "--table-name",
        TABLE,
        "--attribute-definitions",
        "AttributeName=FaceId,AttributeType=S",
        "--key-schema",
        "AttributeName=FaceId,KeyType=HASH",
        "--provisioned-throughput",
        "ReadCapacityUnits=1,WriteCapacityUnits=1",
    )
    profile = {
        "FaceId": {"S": face_id},
        "Name": {"S": "Barack Obama"},
        "Bio": {"S": "44th President of the United States."},
    }
    aws("dynamodb", "put-item", "--table-name", TABLE, "--item", json.dumps(profile))

    # 2. A camera uploads a crop; S3 tells SQS; the function runs on that event.
    s3.put_object(Bucket=bucket, Key=CROP_KEY, Body=crop_of(server, people / "obama_2.jpg"))
    event = s3_event_from_sqs(sqs, queue_url)
    assert event["Records"][0]["s3"]["object"]["key"] != CROP_KEY  # S3 encoded it

    # The function's environment: the endpoints and the facelens key, nothing else of AWS.
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in isolated_env(tmp_path, **endpoints).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # no credentials cached by others
    with Subscriber(mqtt_broker, "rekognition") as subscriber:
        published = lambda_handler(event, None)
        [message] = subscriber.wait_for(1, timeout=10)

    # 3. Who it was, on facelens' broker, as the recipe's subscribers expect it.
    assert published
    identification = json.loads(message.payload)
    assert identification["FaceId"] == face_id
    assert identification["Name"] == "Barack Obama"
    assert identification["Bio"] == "44th President of the United States."
    assert identification["Similarity"] > 70
    assert (identification["Bucket"], identification["Key"]) == (bucket, CROP_KEY)
    assert message.qos == 1
    stored = server.bundles.profiles().get(face_id)
    assert stored is not None
    assert stored.attributes["Name"] == "Barack Obama"
    s3.close()
    sqs.close()
