"""boto3 clients made one way for every AWS adapter (S3, SQS, SNS, Rekognition, DynamoDB, IoT data).

Why one place: each adapter needs the same things, and getting one wrong
shows up in production rather than in a test. A session of its own: boto3's
default session is shared and not thread-safe, so two threads making their
first clients at once can fail. Bounded connect and read timeouts, in
seconds per attempt. botocore's "standard" retry mode (jittered backoff)
with a bounded number of attempts, counting the first try: an unreachable
endpoint then fails after about ``max_attempts * connect_timeout`` plus the
backoff, rather than after minutes. No connection until the first call, one
client shared by an adapter's threads, and a client handed in by a caller
(tests with botocore's Stubber, special set-ups) left open, since it is the
caller's.

:class:`AwsClientOptions` says where a service is and how long to wait for
it; :class:`AwsClient` is one adapter's client, made from them on first use.
Each adapter maps botocore's errors to facelens' own itself, since what a
code means depends on the service.

boto3 is imported on first use, and credentials and endpoints come from
boto3's usual chain (environment, shared config, instance or task role)
unless passed in: we never read them ourselves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from facelens.errors import ConfigurationError


@dataclass(frozen=True)
class AwsClientOptions:
    """Where an AWS service is and how long to wait for it.

    ``region`` and ``endpoint_url``: None takes boto3's chain (``AWS_REGION``
    in Lambda, ``AWS_ENDPOINT_URL_<SERVICE>``, the shared config).
    ``connect_timeout`` and ``read_timeout``: seconds per attempt.
    ``max_attempts``: attempts per call, counting the first try. Limits a
    client cannot work with are a ConfigurationError here, when the options
    are made, not at the first call.
    """

    region: str | None = None
    endpoint_url: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.connect_timeout <= 0 or self.read_timeout <= 0 or self.max_attempts < 1:
            raise ConfigurationError(
                "connect_timeout and read_timeout must be positive and max_attempts at least 1"
            )


DEFAULT_OPTIONS = AwsClientOptions()
"""boto3's chain for where; 5 s to connect, 30 s to read, 3 attempts: an S3 upload or a
Rekognition search fits in the read time, an endpoint that is down fails within about 15 s."""


def make_client(
    service: str, options: AwsClientOptions, *, checksums_when_required: bool = False
) -> Any:
    """A boto3 client for ``service`` on a session of its own, with ``options``' timeouts and
    retries.

    ``checksums_when_required``: only add boto3's newer request checksums
    where an operation requires them (S3: boto3 >= 1.36 adds trailing
    checksums by default, which some S3-compatible servers refuse).
    """
    import boto3
    from botocore.config import Config

    extra: dict[str, Any] = {}
    if checksums_when_required:
        extra["request_checksum_calculation"] = "when_required"
        extra["response_checksum_validation"] = "when_required"
    config = Config(
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"total_max_attempts": options.max_attempts, "mode": "standard"},
        **extra,
    )
    session = boto3.session.Session()
    return session.client(
        service, endpoint_url=options.endpoint_url, region_name=options.region, config=config
    )


class AwsClient:
    """One adapter's boto3 client: made on first use (thread-safe), closed with the adapter.

    ``client``: a ready boto3 client (tests with botocore's Stubber, special
    set-ups); its endpoint and timeouts are its own, and :meth:`close` only
    lets go of it. After :meth:`close` the next :meth:`get` makes a fresh
    client. ``checksums_when_required``: see :func:`make_client`.
    """

    def __init__(
        self,
        service: str,
        options: AwsClientOptions,
        *,
        client: Any = None,
        checksums_when_required: bool = False,
    ) -> None:
        self.service = service
        self.options = options
        self._checksums_when_required = checksums_when_required
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The client, made now if there is none yet."""
        with self._lock:
            if self._client is None:
                self._client = make_client(
                    self.service,
                    self.options,
                    checksums_when_required=self._checksums_when_required,
                )
                self._owns_client = True
            return self._client

    def close(self) -> None:
        """Closes a client made here; one handed in is only let go of."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._owns_client:
            client.close()
