"""IotDataPublisher against a real iot-data API on the wire: moto in server mode, and servers
that fail in the ways IoT Core can (refuse, never answer, answer with an AWS error).

moto's server runs in this process, so what it received is read straight
from its backend (``published_payloads``: (topic, payload) pairs per account
and region). Each test publishes under a topic prefix of its own, since the
backend is shared by the session.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from facelens.aws_clients import AwsClientOptions
from facelens.bus.iot_data import CLIENT_OPTIONS, IotDataPublisher
from facelens.errors import InvalidParameterException, ServiceUnavailableException, StorageError
from tests.servers.moto import REGION


def published(prefix: str) -> list[tuple[str, bytes]]:
    """What moto's iot-data backend received on topics under ``prefix``, in order."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.iotdata.models import iotdata_backends

    payloads: list[tuple[str, bytes]] = iotdata_backends[DEFAULT_ACCOUNT_ID][
        REGION
    ].published_payloads
    return [(topic, bytes(body)) for topic, body in payloads if topic.startswith(prefix)]


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def publisher(moto_server: str, aws_env: dict[str, str]) -> Iterator[IotDataPublisher]:
    opened = IotDataPublisher.from_url(f"iotdata://?endpoint_url={moto_server}&region={REGION}")
    yield opened
    opened.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_json_and_bytes_are_published(publisher: IotDataPublisher, prefix: str) -> None:
    publisher.publish(f"{prefix}/rekognition", {"Name": "Zoë", "Similarity": 99.5})
    publisher.publish(f"{prefix}/raw", b"\x00\xff binary", qos=0, retain=True)
    publisher.publish(f"{prefix}/cam 1/José", {"n": 1}, qos=2)
    got = published(prefix)
    assert [topic for topic, _ in got] == [
        f"{prefix}/rekognition",
        f"{prefix}/raw",
        f"{prefix}/cam 1/José",
    ]
    assert json.loads(got[0][1]) == {"Name": "Zoë", "Similarity": 99.5}
    assert got[1][1] == b"\x00\xff binary"


def test_publish_now_sends_at_qos_0(publisher: IotDataPublisher, prefix: str) -> None:
    assert publisher.publish_now(f"{prefix}/things/cam/infer", {"labels": ["face"]}) is True
    assert published(prefix) == [(f"{prefix}/things/cam/infer", b'{"labels":["face"]}')]


def test_publishers_are_shared_by_threads(publisher: IotDataPublisher, prefix: str) -> None:
    def send(n: int) -> None:
        publisher.publish(f"{prefix}/t", {"n": n})

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(json.loads(body)["n"] for _, body in published(prefix)) == list(range(8))


def test_bad_topics_are_refused_before_the_network(
    publisher: IotDataPublisher, prefix: str
) -> None:
    for topic in (f"{prefix}/+/x", f"{prefix}/#", "", "x" * 300):
        with pytest.raises(InvalidParameterException):
            publisher.publish(topic, b"x")
    assert published(prefix) == []


def test_an_unreachable_endpoint_raises_service_unavailable_quickly(
    aws_env: dict[str, str],
) -> None:
    publisher = IotDataPublisher(
        aws=AwsClientOptions(
            endpoint_url=f"http://127.0.0.1:{_closed_port()}",
            region=REGION,
            connect_timeout=0.5,
            read_timeout=1,
            max_attempts=2,
        )
    )
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableException) as raised:
        publisher.publish("rekognition", {"a": 1})
    assert raised.value.code == "ServiceUnavailableException"
    assert publisher.publish_now("things/cam/infer", b"{}") is False
    assert time.monotonic() - started < 10
    publisher.close()


def test_an_endpoint_that_never_answers_raises_service_unavailable(
    aws_env: dict[str, str],
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts; nobody answers
        publisher = IotDataPublisher.from_url(
            f"iotdata://?endpoint_url=http://127.0.0.1:{silent.getsockname()[1]}&region={REGION}",
            aws=replace(CLIENT_OPTIONS, read_timeout=0.5, max_attempts=1),
        )
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableException):
            publisher.publish("rekognition", b"x")
        assert time.monotonic() - started < 5
        publisher.close()


@dataclass
class Refusing:
    """A server that answers every request with one AWS error; ``requests``: the paths asked."""

    url: str
    answer: tuple[int, str] = (500, "InternalFailureException")
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def refusing() -> Iterator[Refusing]:
    state = Refusing(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(self.path)
            status, code = state.answer
            body = json.dumps({"message": f"{code} says no"}).encode()
            self.send_response(status)
            self.send_header("x-amzn-ErrorType", code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(
    ("status", "code", "raised"),
    [
        (429, "ThrottlingException", ServiceUnavailableException),
        (500, "InternalFailureException", ServiceUnavailableException),
        (400, "InvalidRequestException", InvalidParameterException),
        (401, "UnauthorizedException", StorageError),
    ],
)
def test_aws_errors_on_the_wire_are_mapped(
    aws_env: dict[str, str],
    refusing: Refusing,
    status: int,
    code: str,
    raised: type[Exception],
) -> None:
    refusing.answer = (status, code)
    publisher = IotDataPublisher(
        aws=replace(CLIENT_OPTIONS, endpoint_url=refusing.url, region=REGION, max_attempts=2)
    )
    with pytest.raises(raised) as caught:
        publisher.publish("rekognition/x", {"a": 1})
    assert code in str(caught.value)
    if raised is StorageError:
        assert not isinstance(caught.value, ServiceUnavailableException)
    assert refusing.requests, "the request reached the server"
    assert refusing.requests[0].startswith("/topics/rekognition")
    publisher.close()
