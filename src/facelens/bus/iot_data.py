"""Publishing through AWS IoT Core's HTTPS data plane (boto3 ``iot-data``), for AWS Lambda.

Why not the MQTT publisher there: a Lambda keeps no connection between
invocations, and its execution environment is frozen the moment the handler
returns and may be discarded at any time after. The MQTT publisher's promise
(``publish`` spools to disk and returns; a background thread sends) cannot
hold there: the sender thread does not run while the environment is frozen,
``/tmp`` vanishes with the environment, and the handler's successful return
tells AWS the S3 event was handled, so nothing would ever retry it. A spool
would turn an outage into silent loss.

So this publisher is synchronous: ``publish`` returns only once IoT Core
has answered 200 to the HTTPS Publish, which means the broker took the
message and delivers it to the topic's subscribers like any MQTT publish.
If it cannot (endpoint unreachable, throttled, IoT Core failing, after
botocore's bounded retries) it raises ServiceUnavailableException: the
recognizer then neither records nor acknowledges the event, the invocation
fails, and Lambda's own retry (or SQS's redelivery) runs the event again.
Nothing accepted is lost; a message can be delivered twice when an answer
is lost on the way back (at least once, as with MQTT QoS 1). The price is
one HTTPS round trip per message (tens of milliseconds within a region),
bounded by about ``max_attempts * (connect_timeout + read_timeout)`` plus
the backoff when IoT Core is away.

IoT Core's limits are checked here, where the caller can be told: a topic
of 1-256 bytes of UTF-8 without the wildcards ``+`` and ``#``, a payload of
at most 128 KB. IoT Core has no QoS 2: it is sent as QoS 1 (at least once,
which is what the recognizer relies on anyway).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

from facelens.aws_clients import AwsClient, AwsClientOptions
from facelens.bus.publisher import encode_json
from facelens.errors import (
    ConfigurationError,
    InvalidParameterException,
    ServiceUnavailableException,
    StorageError,
)
from facelens.urls import url_options

_log = logging.getLogger(__name__)

MAX_TOPIC_BYTES = 256
"""IoT Core's longest topic name, in bytes of UTF-8."""
MAX_PAYLOAD_BYTES = 128 * 1024
"""IoT Core's largest message payload, in bytes."""

_UNAVAILABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "InternalFailureException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalServerError",
        "500",
        "503",
    }
)
"""Error codes that say "later" (after botocore's own retries), not "never"."""
_INVALID_CODES = frozenset({"InvalidRequestException", "RequestEntityTooLargeException"})
_URL_OPTIONS = frozenset({"endpoint_url", "region"})
_IOT_HOST = re.compile(r"\.iot\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")

CLIENT_OPTIONS = AwsClientOptions(connect_timeout=3.0, read_timeout=5.0)
"""boto3's chain for where; 3 s to connect, 5 s to read, 3 attempts: a failing publish gives
up within about 15 s, well inside a Lambda's timeout (IoT Core answers in milliseconds)."""


class IotDataPublisher:
    """:class:`~facelens.bus.publisher.MessagePublisher` on IoT Core's data plane; thread-safe.

    ``endpoint_url``: the account's data endpoint
    (``https://abc123-ats.iot.eu-west-1.amazonaws.com``, from ``aws iot
    describe-endpoint --endpoint-type iot:Data-ATS``), or moto, or None for
    boto3's default (``AWS_ENDPOINT_URL_IOT_DATA_PLANE``, else the region's
    ``data-ats`` endpoint), in ``aws.endpoint_url``; ``aws.region``: for
    signing, None takes boto3's. Timeouts and attempts: see
    :data:`CLIENT_OPTIONS`. ``client``: a ready boto3 ``iot-data`` client
    (tests, special set-ups); endpoint and timeouts are then its own, and
    ``close`` leaves it open. Nothing connects until the first publish.
    """

    def __init__(self, *, aws: AwsClientOptions = CLIENT_OPTIONS, client: Any = None) -> None:
        self.aws = AwsClient("iot-data", aws, client=client)

    @classmethod
    def from_url(cls, url: str, *, aws: AwsClientOptions = CLIENT_OPTIONS) -> IotDataPublisher:
        """The publisher for ``iotdata://<endpoint host>[?region=...]``, with ``aws``' timeouts
        and attempts (its endpoint and region are the URL's).

        ``iotdata://abc123-ats.iot.eu-west-1.amazonaws.com``: that HTTPS
        endpoint, its region taken from the host name. ``iotdata://``: boto3's
        default endpoint. ``?endpoint_url=http://127.0.0.1:5000`` (with no
        host): any other endpoint, moto or facelens. Unknown, repeated or
        empty options, and a host together with ``endpoint_url``, are
        ConfigurationErrors: a typo must not send identifications elsewhere.
        """
        parsed = urlparse(url)
        if parsed.scheme != "iotdata":
            raise ConfigurationError(f"Not an iotdata:// URL: {url!r}")
        if parsed.path not in ("", "/") or parsed.params or parsed.fragment:
            raise ConfigurationError(f"An iotdata URL names only an endpoint host: {url!r}")
        if "@" in parsed.netloc:
            raise ConfigurationError(f"Credentials never go in an iotdata URL: {url!r}")
        options = url_options(url, known=_URL_OPTIONS)
        endpoint_url = options.get("endpoint_url")
        region = options.get("region")
        if endpoint_url is not None:
            if parsed.netloc:
                raise ConfigurationError(
                    f"Give the endpoint host or endpoint_url, not both: {url!r}"
                )
            endpoint = urlparse(endpoint_url)
            if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
                raise ConfigurationError(f"endpoint_url must be an http(s) URL: {endpoint_url!r}")
        elif parsed.netloc:
            try:
                host = parsed.hostname or ""
                parsed.port  # noqa: B018  (raises ValueError for a bad port)
            except ValueError as exc:
                raise ConfigurationError(f"Bad endpoint host in {url!r}: {exc}") from exc
            if not host:
                raise ConfigurationError(f"Bad endpoint host in {url!r}")
            endpoint_url = f"https://{parsed.netloc}"
            if region is None and (match := _IOT_HOST.search(host)):
                region = match.group(1)
        return cls(aws=replace(aws, endpoint_url=endpoint_url, region=region))

    def publish(
        self, topic: str, payload: bytes | Mapping[str, Any], *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publishes now and returns once IoT Core took the message (see the module).

        A mapping is sent as compact JSON. Raises InvalidParameterException
        for a topic, QoS or payload IoT Core would refuse;
        ServiceUnavailableException when IoT Core cannot be reached or asks
        us to slow down (retry the event later); StorageError otherwise (an
        IAM policy without ``iot:Publish``, say).
        """
        if qos not in (0, 1, 2):
            raise InvalidParameterException(f"QoS must be 0, 1 or 2, not {qos}")
        body = _body(topic, payload)
        self._send(topic, body, qos=min(qos, 1), retain=retain)

    def publish_now(self, topic: str, payload: bytes | Mapping[str, Any]) -> bool:
        """QoS 0, best effort: whether IoT Core took it. A failure is logged, never raised.

        Still one HTTPS request (with the client's retries when it fails): on
        Lambda there is no connection to hand it to without waiting. A bad
        topic or payload raises InvalidParameterException, as for ``publish``:
        that is the caller's mistake, not the network's.
        """
        body = _body(topic, payload)
        try:
            self._send(topic, body, qos=0, retain=False)
        except InvalidParameterException:
            raise
        except StorageError as exc:
            _log.warning("Dropped a QoS 0 message to %s: %s", topic, exc.message)
            return False
        return True

    def close(self) -> None:
        self.aws.close()

    # -- internals --
    def _send(self, topic: str, body: bytes, *, qos: int, retain: bool) -> None:
        with self._errors(topic):
            self.aws.get().publish(topic=topic, qos=qos, retain=retain, payload=body)

    @contextmanager
    def _errors(self, topic: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoRegionError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        action = f"publish to {topic!r}"
        try:
            yield
        except (BotoConnectionError, HTTPClientError) as exc:
            # Refused, timed out (connect or read), closed mid-answer: all may pass.
            raise ServiceUnavailableException(f"IoT Core is unreachable ({action}): {exc}") from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            message = str(error.get("Message", exc))
            if code in _UNAVAILABLE_CODES:
                raise ServiceUnavailableException(
                    f"IoT Core is unavailable ({action}): {code}: {message}"
                ) from exc
            if code in _INVALID_CODES:
                raise InvalidParameterException(
                    f"IoT Core refused {action}: {code}: {message}"
                ) from exc
            raise StorageError(f"IoT Core {action} failed: {code}: {message}") from exc
        except NoRegionError as exc:
            raise ConfigurationError(
                "No AWS region for IoT Core: add ?region= to the URL or set AWS_REGION"
            ) from exc
        except BotoCoreError as exc:
            raise StorageError(f"IoT Core {action} failed: {exc}") from exc


def check_topic(topic: str) -> str:
    """The topic, if IoT Core can publish to it: 1-256 bytes of UTF-8, no wildcards or NUL."""
    if not isinstance(topic, str) or not topic or any(c in topic for c in "+#\x00"):
        raise InvalidParameterException(f"Not a topic to publish to: {str(topic)[:100]!r}")
    try:
        size = len(topic.encode())
    except UnicodeEncodeError as exc:
        raise InvalidParameterException(f"Not a topic to publish to: {topic[:100]!r}") from exc
    if size > MAX_TOPIC_BYTES:
        raise InvalidParameterException(
            f"A topic is at most {MAX_TOPIC_BYTES} bytes of UTF-8, not {size}: {topic[:100]!r}"
        )
    return topic


def _body(topic: str, payload: bytes | Mapping[str, Any]) -> bytes:
    check_topic(topic)
    if isinstance(payload, Mapping):
        try:
            body = encode_json(payload)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterException(f"Payload is not JSON-serialisable: {exc}") from exc
    elif isinstance(payload, bytes | bytearray | memoryview):
        body = bytes(payload)
    else:
        raise InvalidParameterException(
            f"A payload is bytes or a JSON object, not {type(payload).__name__}"
        )
    if len(body) > MAX_PAYLOAD_BYTES:
        raise InvalidParameterException(
            f"IoT Core takes at most {MAX_PAYLOAD_BYTES} bytes per message, not {len(body)}"
        )
    return body
