"""The AWS IoT data-plane endpoint: ``iot-data`` ``publish`` reaches facelens' MQTT broker.

The original recipe's function published its identification with
``boto3.client("iot-data").publish(topic=…, qos=1, payload=…)``. That call is
REST-JSON: ``POST /topics/{topic}?qos=1[&retain=true]`` with the payload as
the body, signed with SigV4 scoped to the service ``iotdata``. facelens hands
the payload, byte for byte, to its own publisher (the server's
``MessagePublisher``: the MQTT broker of ``mqtt.url``, or, with none configured, the in-memory
publisher that logs), so subscribers of facelens' broker receive it as
AWS IoT's subscribers would.

Topics are checked as AWS IoT checks a publish: not empty, at most 256 bytes
of UTF-8, at most 7 slashes, no wildcards (``+``, ``#``) and no NUL. Topics
starting with ``$`` are refused: on AWS IoT they are reserved (``$aws/…``
reaches shadows, jobs and rules, which facelens does not have). Payloads
are capped at AWS IoT's 128 KiB. Errors leave with ``x-amzn-ErrorType``
(what botocore reads for REST-JSON), so boto3 raises
``client.exceptions.InvalidRequestException`` and its kin.

Publishing changes what others see, so it needs the ``admin`` role; a
``read`` key gets ForbiddenException, as AWS IoT answers a denied publish.
For the same reason a signed publish is accepted once: sent again as it
was, it gets ThrottlingException (:class:`facelens.api.aws.replays.ReplayCache`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request, Response

from facelens.access.keys import Role
from facelens.api.aws import protocol, sigv4
from facelens.api.aws.protocol import SigningKeys
from facelens.api.aws.replays import ReplayCache
from facelens.api.security import Authenticator, client_address
from facelens.bus.publisher import MessagePublisher
from facelens.errors import (
    ForbiddenException,
    InvalidRequestException,
    RequestEntityTooLargeException,
)

SIGNING_NAME = "iotdata"
"""The service name in the SigV4 credential scope (boto3's signing name for ``iot-data``)."""

PREFIX = "/topics/"
MAX_TOPIC_BYTES = 256
MAX_TOPIC_SLASHES = 7
MAX_PAYLOAD_BYTES = 128 * 1024
"""AWS IoT's message size limit (bytes)."""


@dataclass(frozen=True)
class Publication:
    """A checked publish request. ``qos``: MQTT QoS 0 or 1 (AWS IoT has no QoS 2)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


def publish_router(keys: SigningKeys, publisher: Callable[[], MessagePublisher]) -> APIRouter:
    """The ``POST /topics/{topic}`` route: a publish signed with ``keys`` goes to
    ``publisher`` (asked for only once the request has passed every check)."""
    router = APIRouter()

    @router.post("/topics/{topic:path}", include_in_schema=False)
    async def publish(request: Request) -> Response:
        """One ``iot-data`` Publish; errors leave through the app's handler (REST-JSON)."""
        authenticator: Authenticator = request.app.state.authenticator
        body = await request.body()
        signed = protocol.signed_request(request, body)
        replays = protocol.replay_cache(request)
        await protocol.run_signed(
            _publish, keys, publisher, authenticator, signed, client_address(request), replays
        )
        return Response(
            b"{}", media_type="application/json", headers={"x-amzn-RequestId": str(uuid.uuid4())}
        )

    return router


def _publish(
    keys: SigningKeys,
    publisher: Callable[[], MessagePublisher],
    authenticator: Authenticator,
    signed: sigv4.SignedRequest,
    client: str,
    replays: ReplayCache,
) -> None:
    # Each publish delivers a message again: an exact repeat is refused (not repeatable).
    principal = protocol.authenticate(
        keys, authenticator, signed, client, service=SIGNING_NAME, replays=replays
    )
    publication = parse_publication(signed.path, signed.query_string, signed.body)
    if not principal.role.allows(Role.ADMIN):
        raise ForbiddenException(
            f"User: {principal.name} ({principal.role}) is not authorized to perform: "
            f"iot:Publish on topic {publication.topic}"
        )
    publisher().publish(
        publication.topic, publication.payload, qos=publication.qos, retain=publication.retain
    )


def parse_publication(raw_path: str, query_string: str, body: bytes) -> Publication:
    """The publication a request asks for; InvalidRequestException for what AWS IoT refuses."""
    try:
        topic = check_topic(unquote(raw_path.removeprefix(PREFIX), errors="strict"))
    except UnicodeDecodeError:
        raise InvalidRequestException("The topic is not valid UTF-8") from None
    query = parse_qs(query_string, keep_blank_values=True)
    qos_text = query.get("qos", ["0"])[-1]
    if qos_text not in ("0", "1"):
        raise InvalidRequestException(f"qos must be 0 or 1, not {qos_text!r}")
    retain_text = query.get("retain", ["false"])[-1].lower()
    if retain_text not in ("true", "false"):
        raise InvalidRequestException(f"retain must be true or false, not {retain_text!r}")
    if len(body) > MAX_PAYLOAD_BYTES:
        raise RequestEntityTooLargeException(
            f"Payload exceeds the maximum size of {MAX_PAYLOAD_BYTES} bytes"
        )
    return Publication(topic, body, int(qos_text), retain_text == "true")


def check_topic(topic: str) -> str:
    """``topic`` if AWS IoT would let a client publish on it; InvalidRequestException if not."""
    if not topic:
        raise InvalidRequestException("The topic must not be empty")
    if len(topic.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        raise InvalidRequestException(f"The topic is over {MAX_TOPIC_BYTES} bytes")
    if "+" in topic or "#" in topic:
        raise InvalidRequestException(
            f"The topic {topic!r} contains a wildcard (+ or #): publish to a topic name, "
            "not a filter"
        )
    if "\x00" in topic:
        raise InvalidRequestException("The topic contains a NUL character")
    if topic.startswith("$"):
        raise InvalidRequestException(
            f"The topic {topic!r} is reserved: topics starting with $ are not published here"
        )
    if topic.count("/") > MAX_TOPIC_SLASHES:
        raise InvalidRequestException(
            f"The topic {topic!r} has more than {MAX_TOPIC_SLASHES} forward slashes"
        )
    return topic
