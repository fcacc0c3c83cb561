"""The IoT Core data-plane publisher without a network: its URL, its checks, its error mapping.

A stand-in client records each ``publish`` call (or raises botocore's own
errors), so what reaches boto3 and what the caller is told can be checked
exactly. The wire itself is tested against moto in
tests/integration/bus/test_iot_data_publisher.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoRegionError

from facelens.aws_clients import AwsClientOptions
from facelens.bus.iot_data import MAX_PAYLOAD_BYTES, IotDataPublisher, check_topic
from facelens.errors import (
    ConfigurationError,
    InvalidParameterException,
    ServiceUnavailableException,
    StorageError,
)


class FakeIotData:
    """Records publishes; raises ``error`` instead when one is set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error
        self.closed = False

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        self.calls.append(kwargs)
        return {}

    def close(self) -> None:
        self.closed = True


def client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} said no"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Publish")


@pytest.mark.parametrize(
    ("url", "endpoint_url", "region"),
    [
        ("iotdata://", None, None),
        ("iotdata:///", None, None),
        (
            "iotdata://abc123-ats.iot.eu-west-1.amazonaws.com",
            "https://abc123-ats.iot.eu-west-1.amazonaws.com",
            "eu-west-1",
        ),
        (
            "iotdata://abc123-ats.iot.cn-north-1.amazonaws.com.cn",
            "https://abc123-ats.iot.cn-north-1.amazonaws.com.cn",
            "cn-north-1",
        ),
        (
            "iotdata://abc123-ats.iot.eu-west-1.amazonaws.com?region=us-east-2",
            "https://abc123-ats.iot.eu-west-1.amazonaws.com",
            "us-east-2",
        ),
        ("iotdata://iot.example.com:8443", "https://iot.example.com:8443", None),
        (
            "iotdata://?endpoint_url=http://127.0.0.1:5000&region=us-east-1",
            "http://127.0.0.1:5000",
            "us-east-1",
        ),
        ("iotdata://?region=ap-south-1", None, "ap-south-1"),
    ],
)
def test_urls(url: str, endpoint_url: str | None, region: str | None) -> None:
    publisher = IotDataPublisher.from_url(url)
    assert publisher.aws.options.endpoint_url == endpoint_url
    assert publisher.aws.options.region == region


@pytest.mark.parametrize(
    "url",
    [
        "mqtt://broker",
        "iotdata://host/path",
        "iotdata://host#frag",
        "iotdata://user:secret@host",
        "iotdata://host:notaport",
        "iotdata://host?endpoint_url=http://127.0.0.1:5000",
        "iotdata://?endpoint_url=127.0.0.1:5000",
        "iotdata://?endpoint=http://127.0.0.1:5000",
        "iotdata://?region=",
        "iotdata://?region=a&region=b",
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        IotDataPublisher.from_url(url)


def test_bad_limits_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        IotDataPublisher.from_url("iotdata://", aws=AwsClientOptions(max_attempts=0))
    with pytest.raises(ConfigurationError):
        IotDataPublisher(aws=AwsClientOptions(connect_timeout=0))


def test_json_and_bytes_reach_boto3_as_given() -> None:
    fake = FakeIotData()
    publisher = IotDataPublisher(client=fake)
    publisher.publish("rekognition", {"Name": "Zoë", "Similarity": 99.5})
    publisher.publish("raw/bytes", b"\x00\xff", qos=0, retain=True)
    publisher.publish("raw/view", bytearray(b"abc"))  # type: ignore[arg-type]
    assert fake.calls == [
        {
            "topic": "rekognition",
            "qos": 1,
            "retain": False,
            "payload": '{"Name":"Zoë","Similarity":99.5}'.encode(),
        },
        {"topic": "raw/bytes", "qos": 0, "retain": True, "payload": b"\x00\xff"},
        {"topic": "raw/view", "qos": 1, "retain": False, "payload": b"abc"},
    ]


def test_qos_2_goes_as_qos_1_and_others_are_refused() -> None:
    fake = FakeIotData()
    publisher = IotDataPublisher(client=fake)
    publisher.publish("t", b"x", qos=2)
    assert fake.calls[0]["qos"] == 1
    with pytest.raises(InvalidParameterException):
        publisher.publish("t", b"x", qos=3)


@pytest.mark.parametrize(
    "topic", ["", "a/+/b", "a/#", "a\x00b", "x" * 257, "é" * 129, "bad\udc80surrogate"]
)
def test_topics_iot_core_cannot_take_are_refused(topic: str) -> None:
    fake = FakeIotData()
    publisher = IotDataPublisher(client=fake)
    with pytest.raises(InvalidParameterException):
        publisher.publish(topic, b"x")
    with pytest.raises(InvalidParameterException):
        publisher.publish_now(topic, b"x")
    assert fake.calls == []


def test_longest_topic_passes() -> None:
    assert check_topic("x" * 256) == "x" * 256
    assert check_topic("$aws/things/cam/shadow/update") == "$aws/things/cam/shadow/update"


def test_payloads_iot_core_cannot_take_are_refused() -> None:
    fake = FakeIotData()
    publisher = IotDataPublisher(client=fake)
    with pytest.raises(InvalidParameterException):
        publisher.publish("t", b"x" * (MAX_PAYLOAD_BYTES + 1))
    with pytest.raises(InvalidParameterException):
        publisher.publish("t", "text")  # type: ignore[arg-type]
    publisher.publish("t", b"x" * MAX_PAYLOAD_BYTES)
    assert len(fake.calls) == 1


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), ServiceUnavailableException),
        (client_error("ThrottlingException", 429), ServiceUnavailableException),
        (client_error("InternalFailureException", 500), ServiceUnavailableException),
        (client_error("InvalidRequestException", 400), InvalidParameterException),
        (client_error("UnauthorizedException", 401), StorageError),
        (client_error("ForbiddenException", 403), StorageError),
        (NoRegionError(), ConfigurationError),
    ],
)
def test_errors_are_mapped(error: Exception, raised: type[Exception]) -> None:
    publisher = IotDataPublisher(client=FakeIotData(error))
    with pytest.raises(raised) as caught:
        publisher.publish("rekognition", {"a": 1})
    assert caught.value.__cause__ is error
    if raised is StorageError:
        assert not isinstance(caught.value, ServiceUnavailableException)


def test_publish_now_is_best_effort() -> None:
    fake = FakeIotData()
    publisher = IotDataPublisher(client=fake)
    assert publisher.publish_now("things/cam/infer", {"labels": []}) is True
    assert fake.calls == [
        {"topic": "things/cam/infer", "qos": 0, "retain": False, "payload": b'{"labels":[]}'}
    ]
    for error in (
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        client_error("ThrottlingException", 429),
        client_error("ForbiddenException", 403),
    ):
        assert IotDataPublisher(client=FakeIotData(error)).publish_now("t", b"x") is False
    with pytest.raises(InvalidParameterException):
        IotDataPublisher(
            client=FakeIotData(client_error("InvalidRequestException", 400))
        ).publish_now("t", b"x")


def test_close_leaves_a_given_client_open() -> None:
    fake = FakeIotData()
    publisher = IotDataPublisher(client=fake)
    publisher.close()
    assert fake.closed is False
