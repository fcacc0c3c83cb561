"""The Lambda entry point with collections in "Rekognition": facelens' own Rekognition endpoint.

moto has no Rekognition collections, but ``facelens serve`` speaks
Rekognition's protocol, so the function's Rekognition back-end
(``FACELENS_COLLECTIONS_URL=rekognition://``) runs here over real HTTP and
SigV4, exactly as it calls AWS: the faces are enrolled with boto3's
``index_faces``, the crops and their events come from moto's S3, the
profile from moto's DynamoDB, and the identification goes out through
moto's IoT data plane. This goes through ``handler()`` itself, as Lambda
calls it, settings and all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from facelens.aws import handler as entry
from facelens.config import Settings
from facelens.engine.protocol import FaceEngine
from tests.integration.aws.moto_aws import Aws, iot_messages, lambda_settings
from tests.integration.recognizer.conftest import make_crop
from tests.servers.facelens_api import ApiServer


@pytest.fixture
def rekognition_settings(
    aws: Aws, api_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    # One key pair for every client, as in Lambda: moto takes any, facelens checks its own.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", api_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", api_server.secret_access_key)
    url = f"rekognition://?endpoint_url={api_server.url}&region={api_server.region}"
    yield lambda_settings(aws, tmp_path / "lambda-home", collections_url=url)
    entry.reset()


def rekognition(api_server: ApiServer) -> Any:
    return boto3.session.Session().client(
        "rekognition", endpoint_url=api_server.url, region_name=api_server.region
    )


def test_the_handler_searches_the_rekognition_collection(
    aws: Aws,
    api_server: ApiServer,
    rekognition_settings: Settings,
    engine: FaceEngine,
    testdata: Path,
) -> None:
    people = testdata / "people"
    client = rekognition(api_server)
    client.create_collection(CollectionId="faces")
    indexed = client.index_faces(
        CollectionId="faces",
        Image={"Bytes": (people / "brad_pitt" / "brad_pitt_1.jpg").read_bytes()},
        ExternalImageId="brad",
        MaxFaces=1,
    )
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    aws.client("dynamodb").put_item(
        TableName=aws.table, Item={"FaceId": {"S": face_id}, "Name": {"S": "Brad Pitt"}}
    )
    aws.put_crop("faces/door/brad.jpg", make_crop(engine, people / "brad_pitt" / "brad_pitt_3.jpg"))
    aws.put_crop("faces/door/biden.jpg", make_crop(engine, people / "biden" / "biden_2.jpg"))
    records = [r for m in aws.s3_events(2) for r in json.loads(m["Body"])["Records"]]
    before = len(iot_messages())

    summary = entry.handler({"Records": records}, None, settings=lambda: rekognition_settings)

    assert (summary["identified"], summary["unknown"]) == (1, 1)
    published = {p["Key"]: (t, p) for t, p in iot_messages()[before:]}
    topic, brad = published["faces/door/brad.jpg"]
    assert (topic, brad["FaceId"], brad["Name"]) == ("rekognition", face_id, "Brad Pitt")
    assert brad["ExternalImageId"] == "brad"
    assert published["faces/door/biden.jpg"][0] == "rekognition/unknown"
    # The container is reused: the second invocation builds nothing new.
    again = entry.handler({"Records": records[:1]}, None, settings=lambda: pytest.fail("rebuilt"))
    assert again["duplicates"] == 1


def test_a_missing_collection_is_a_dead_letter_per_record(
    aws: Aws,
    api_server: ApiServer,
    rekognition_settings: Settings,
    engine: FaceEngine,
    testdata: Path,
) -> None:
    """No such collection: no retry can fix it, so each record is reported on the errors topic."""
    crop = make_crop(engine, testdata / "people" / "biden" / "biden_1.jpg")
    aws.put_crop("faces/x.jpg", crop)
    event = json.loads(aws.s3_events(1)[0]["Body"])
    before = len(iot_messages())
    summary = entry.handler(event, None, settings=lambda: rekognition_settings)
    assert summary["deadLetters"] == 1
    topic, payload = iot_messages()[before]
    assert (topic, payload["Error"]["Code"]) == ("rekognition/errors", "ResourceNotFoundException")
