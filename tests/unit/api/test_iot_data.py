"""The IoT data-plane publish request: topics, QoS and payloads as AWS IoT accepts them."""

from __future__ import annotations

import pytest

from facelens.api.aws.iot_data import check_topic, parse_publication
from facelens.errors import InvalidRequestException, RequestEntityTooLargeException


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "a/+/b",
        "+",
        "a/#",
        "#",
        "$aws/things/door/shadow/update",
        "$SYS/broker",
        "t" * 257,
        "ü" * 129,  # 258 bytes of UTF-8
        "a/b/c/d/e/f/g/h/i",  # 8 slashes
        "nul\x00byte",
    ],
)
def test_refused_topics(topic: str) -> None:
    with pytest.raises(InvalidRequestException):
        check_topic(topic)


@pytest.mark.parametrize(
    "topic", ["rekognition", "t" * 256, "a/b/c/d/e/f/g/h", "things/front door/infer", "a$b", "/x/"]
)
def test_accepted_topics(topic: str) -> None:
    assert check_topic(topic) == topic


def test_publications() -> None:
    parsed = parse_publication("/topics/cam%2F1%20door", "qos=1&retain=true", b"{}")
    assert (parsed.topic, parsed.qos, parsed.retain, parsed.payload) == (
        "cam/1 door",
        1,
        True,
        b"{}",
    )
    default = parse_publication("/topics/x", "", b"")
    assert (default.qos, default.retain) == (0, False)
    with pytest.raises(InvalidRequestException, match="qos"):
        parse_publication("/topics/x", "qos=2", b"")
    with pytest.raises(InvalidRequestException, match="retain"):
        parse_publication("/topics/x", "retain=maybe", b"")
    with pytest.raises(InvalidRequestException, match="UTF-8"):
        parse_publication("/topics/%ff", "", b"")
    with pytest.raises(RequestEntityTooLargeException):
        parse_publication("/topics/x", "", b"x" * (128 * 1024 + 1))
