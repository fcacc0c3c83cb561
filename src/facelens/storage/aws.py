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
