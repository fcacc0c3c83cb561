"""boto3's ``iot-data`` publish against a real facelens server, delivered by a real Mosquitto.

The server publishes through its own MessagePublisher on the broker of its
``mqtt.url``, so a subscriber of that broker receives what ``publish`` sent,
byte for byte, as a subscriber of AWS IoT Core would.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from facelens.access.keys import Role
from facelens.config import MqttSettings
from tests.contract.conftest import ServerFactory
from tests.servers.facelens_api import ApiServer
from tests.servers.mosquitto import MosquittoBroker, Subscriber


@pytest.fixture
def mqtt_server(configured_server: ServerFactory, mqtt_broker: MosquittoBroker) -> ApiServer:
    """A facelens server whose publisher is the test's Mosquitto broker."""
    return configured_server(mqtt=MqttSettings(url=mqtt_broker.url))


def iot_data(
    server: ApiServer, *, key_id: str | None = None, secret: str | None = None, **config: Any
) -> Any:
    return boto3.session.Session().client(
        "iot-data",
        endpoint_url=server.url,
        region_name=server.region,
        aws_access_key_id=key_id or server.access_key_id,
        aws_secret_access_key=secret or server.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


def error_code(info: pytest.ExceptionInfo[Any]) -> str:
    code: str = info.value.response["Error"]["Code"]
    return code


def test_publish_reaches_the_broker(mqtt_server: ApiServer, mqtt_broker: MosquittoBroker) -> None:
    client = iot_data(mqtt_server)
    payload = {"FaceId": "0b5c5c1e-6a0e-4a5c-8a39-3c6f1d2e4f50", "Name": "Anna Berg"}
    with Subscriber(mqtt_broker, "#") as subscriber:
        answer = client.publish(topic="rekognition", qos=1, payload=json.dumps(payload))
        client.publish(topic="cameras/front door/ü", qos=0, payload=b"\x00\xffbinary")
        wanted = {"rekognition", "cameras/front door/ü"}
        # "#" also sees the server's own availability message on facelens/status/…
        messages = subscriber.wait_until(lambda ms: wanted <= {m.topic for m in ms}, timeout=10)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    by_topic = {m.topic: m for m in messages}
    assert json.loads(by_topic["rekognition"].payload) == payload
    assert by_topic["rekognition"].qos == 1
    assert by_topic["cameras/front door/ü"].payload == b"\x00\xffbinary"


def test_retained_messages_stay_on_the_topic(
    mqtt_server: ApiServer, mqtt_broker: MosquittoBroker
) -> None:
    iot_data(mqtt_server).publish(topic="facelens/last", qos=1, retain=True, payload=b"kept")
    with Subscriber(mqtt_broker, "facelens/last") as late:
        [message] = late.wait_for(1, timeout=10)
    assert (message.payload, message.retain) == (b"kept", True)


def test_topics_aws_iot_refuses(api_server: ApiServer) -> None:
    client = iot_data(api_server)
    for topic in ("a/+/b", "a/#", "$aws/things/door/shadow/update", "$SYS/x", "t" * 257,
                  "a/b/c/d/e/f/g/h/i"):  # fmt: skip
        with pytest.raises(client.exceptions.InvalidRequestException):
            client.publish(topic=topic, qos=1, payload=b"{}")
    with pytest.raises(client.exceptions.InvalidRequestException, match="qos"):
        client.publish(topic="ok", qos=2, payload=b"{}")
    with pytest.raises(client.exceptions.RequestEntityTooLargeException):
        client.publish(topic="ok", qos=1, payload=b"x" * (128 * 1024 + 1))
    client.publish(topic="t" * 256, qos=0, payload=b"{}")  # the longest topic there may be
    published = api_server.bundles.publication().publisher.messages  # type: ignore[attr-defined]
    assert [m.topic for m in published] == ["t" * 256]


def test_refused_callers(api_server: ApiServer) -> None:
    unsigned = iot_data(api_server, signature_version=botocore.UNSIGNED)
    with pytest.raises(ClientError) as info:
        unsigned.publish(topic="rekognition", qos=1, payload=b"{}")
    assert error_code(info) == "MissingAuthenticationTokenException"

    wrong = iot_data(api_server, secret="not-the-secret-access-key")
    with pytest.raises(ClientError) as info:
        wrong.publish(topic="rekognition", qos=1, payload=b"{}")
    assert error_code(info) == "InvalidSignatureException"

    key = api_server.bundles.keys.create_access_key("reader", Role.READ)
    reader = iot_data(
        api_server, key_id=key.access_key_id, secret=key.secret_access_key.get_secret_value()
    )
    with pytest.raises(reader.exceptions.ForbiddenException):
        reader.publish(topic="rekognition", qos=1, payload=b"{}")
    assert api_server.bundles.publication().publisher.messages == []  # type: ignore[attr-defined]
