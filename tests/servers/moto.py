"""An S3 endpoint for the tests: moto in server mode on a loopback port, one per session.

Why server mode rather than moto's in-process patching: the S3 store is an
adapter, and what it must get right (signing, retries, timeouts, error
codes, ETag quoting) happens on the HTTP path, which patching skips. moto
binds port 0 and reports the port it got, so there is no probe-then-bind
race and no hang on a taken port. Each test gets a fresh, uniquely named
bucket, so tests never see each other's objects. Missing moto skips on a
laptop and fails when ``CI=true``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from facelens.storage.s3 import S3ObjectStore

REGION = "us-east-1"


def _missing(message: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL (``http://127.0.0.1:PORT``) of a moto server for this session."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # moto[server] needs flask too
        _missing(f"moto[server] is not installed: {exc}")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in reports
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake credentials for boto3's chain, so no test can reach a real AWS account."""
    values = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def s3_bucket() -> str:
    """A bucket name no other test uses."""
    return f"test-{uuid.uuid4().hex[:20]}"


@pytest.fixture
def s3_store(moto_server: str, aws_env: dict[str, str], s3_bucket: str) -> Iterator[S3ObjectStore]:
    """An S3ObjectStore on the moto server, with bucket ``s3_bucket`` created."""
    from facelens.aws_clients import AwsClientOptions
    from facelens.storage.s3 import S3ObjectStore

    store = S3ObjectStore(aws=AwsClientOptions(endpoint_url=moto_server, region=REGION))
    store.create_bucket(s3_bucket)
    yield store
    store.close()
