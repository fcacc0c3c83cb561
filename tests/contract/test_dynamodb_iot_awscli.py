"""``aws dynamodb`` and ``aws iot-data`` against a real facelens server.

The endpoint comes from the service-specific variables botocore reads
since 1.31, as a deployment would set them: ``AWS_ENDPOINT_URL_DYNAMODB`` and
``AWS_ENDPOINT_URL_IOT_DATA_PLANE`` (named after the service id "IoT Data
Plane", not the client name ``iot-data``), or from ``--endpoint-url``.
"""

from __future__ import annotations

import json
from pathlib import Path

from facelens.config import MqttSettings
from tests.contract.awscli import AwsCli, isolated_env
from tests.contract.conftest import ServerFactory
from tests.servers.facelens_api import ApiServer
from tests.servers.mosquitto import MosquittoBroker, Subscriber

FACE_ID = "0b5c5c1e-6a0e-4a5c-8a39-3c6f1d2e4f50"


def cli_for(server: ApiServer, tmp_path: Path) -> AwsCli:
    env = isolated_env(
        tmp_path,
        AWS_ACCESS_KEY_ID=server.access_key_id,
        AWS_SECRET_ACCESS_KEY=server.secret_access_key,
        AWS_DEFAULT_REGION=server.region,
        AWS_ENDPOINT_URL_DYNAMODB=server.url,
        AWS_ENDPOINT_URL_IOT_DATA_PLANE=server.url,
    )
    return AwsCli(env, tmp_path)


def test_cli_table_and_items(api_server: ApiServer, tmp_path: Path) -> None:
    aws = cli_for(api_server, tmp_path)
    created = aws(
        "dynamodb",
        "create-table",
        "--table-name",
        "facerecognition",
        "--attribute-definitions",
        "AttributeName=FaceId,AttributeType=S",
        "--key-schema",
        "AttributeName=FaceId,KeyType=HASH",
        "--provisioned-throughput",
        "ReadCapacityUnits=1,WriteCapacityUnits=1",
    )
    assert created["TableDescription"]["TableStatus"] == "ACTIVE"
    aws("dynamodb", "wait", "table-exists", "--table-name", "facerecognition")
    assert aws("dynamodb", "list-tables")["TableNames"] == ["facerecognition"]

    item = {"FaceId": {"S": FACE_ID}, "Name": {"S": "Anna Berg"}, "Bio": {"S": "Front desk"}}
    aws("dynamodb", "put-item", "--table-name", "facerecognition", "--item", json.dumps(item))
    key = json.dumps({"FaceId": {"S": FACE_ID}})
    got = aws("dynamodb", "get-item", "--table-name", "facerecognition", "--key", key)
    assert got["Item"] == item
    profile = api_server.bundles.profiles().get(FACE_ID)
    assert profile is not None
    assert profile.attributes == {"Name": "Anna Berg", "Bio": "Front desk"}

    missing = aws.run("dynamodb", "describe-table", "--table-name", "nope")
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr

    # --endpoint-url works as well as the variable.
    aws.env.pop("AWS_ENDPOINT_URL_DYNAMODB")
    scanned = aws(
        "dynamodb", "scan", "--table-name", "facerecognition", "--endpoint-url", api_server.url
    )
    assert scanned["Items"] == [item]


def test_cli_publish(
    configured_server: ServerFactory, mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    server = configured_server(mqtt=MqttSettings(url=mqtt_broker.url))
    aws = cli_for(server, tmp_path)
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({"Name": "Anna Berg"}))
    with Subscriber(mqtt_broker, "rekognition") as subscriber:
        aws(
            "iot-data",
            "publish",
            "--topic",
            "rekognition",
            "--qos",
            "1",
            "--payload",
            "fileb://payload.json",
        )
        [message] = subscriber.wait_for(1, timeout=10)
    assert json.loads(message.payload) == {"Name": "Anna Berg"}

    refused = aws.run("iot-data", "publish", "--topic", "a/#", "--payload", "fileb://payload.json")
    assert refused.returncode != 0
    assert "InvalidRequestException" in refused.stderr
