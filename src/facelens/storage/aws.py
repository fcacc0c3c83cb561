"""boto3 clients made one way for every AWS adapter (S3, SQS, SNS).

Why one helper: each adapter needs the same three things, and getting one
wrong shows up in production rather than in a test. A session of its own:
boto3's default session is shared and not thread-safe, so two threads making
their first clients at once can fail. Bounded connect and read timeouts, in
seconds per attempt. botocore's "standard" retry mode (jittered backoff)
with a bounded number of attempts, counting the first try: an unreachable
endpoint then fails after about ``max_attempts * connect_timeout`` plus the
backoff, rather than after minutes.

boto3 is imported on first use, and credentials and endpoints come from
boto3's usual chain (environment, shared config, instance or task role)
unless passed in: we never read them ourselves.
"""

from __future__ import annotations

import threading
from typing import Any

from facelens.errors import ConfigurationError


def check_client_limits(*, connect_timeout: float, read_timeout: float, max_attempts: int) -> None:
    """Raises ConfigurationError for limits a client cannot work with."""
    if connect_timeout <= 0 or read_timeout <= 0 or max_attempts < 1:
        raise ConfigurationError(
            "connect_timeout and read_timeout must be positive and max_attempts at least 1"
        )


def make_client(
    service: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
    max_attempts: int = 3,
    checksums_when_required: bool = False,
) -> Any:
    """A boto3 client for ``service`` on a session of its own, with bounded timeouts and retries.

    ``checksums_when_required``: only add boto3's newer request checksums
    where an operation requires them (S3: boto3 >= 1.36 adds trailing
    checksums by default, which some S3-compatible servers refuse).
    """
    check_client_limits(
        connect_timeout=connect_timeout, read_timeout=read_timeout, max_attempts=max_attempts
    )
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {}
    if checksums_when_required:
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
        **options,
    )
    session = boto3.session.Session()
    return session.client(service, endpoint_url=endpoint_url, region_name=region, config=config)


class LazyClient:
    """One adapter's boto3 client: made on first use (thread-safe), closed with the adapter.

    Every AWS adapter (S3, SQS, Rekognition, DynamoDB, IoT data) needs the
    same three things: no connection until the first call, one client shared
    by its threads, and a client handed in by a caller (tests with botocore's
    Stubber, special set-ups) left open on close, since it is the caller's.
    ``connect_timeout`` and ``read_timeout`` are seconds per attempt,
    ``max_attempts`` counts the first try (see :func:`make_client`). After
    :meth:`close` the next :meth:`get` makes a fresh client.
    """

    def __init__(
        self,
        service: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
        checksums_when_required: bool = False,
    ) -> None:
        check_client_limits(
            connect_timeout=connect_timeout, read_timeout=read_timeout, max_attempts=max_attempts
        )
        self.service = service
        self.endpoint_url = endpoint_url
        self.region = region
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
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
                    endpoint_url=self.endpoint_url,
                    region=self.region,
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                    max_attempts=self.max_attempts,
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
