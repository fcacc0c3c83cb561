"""Fuzz: the IoT data-plane endpoint, ``POST /topics/{topic}``, publishing to a real broker.

Topics of any unicode (wildcards, ``$``, NUL, slashes, over 256 bytes), encoded
well or badly (invalid percent escapes, invalid UTF-8), ``qos`` and ``retain``
of any text, payloads up to past AWS IoT's 128 KiB, signed for ``iotdata`` by
botocore or wrongly.
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from facelens.api.aws.iot_data import MAX_PAYLOAD_BYTES, PREFIX, SIGNING_NAME
from tests.fuzz.calls import Signer, signed_admin_call, signed_call
from tests.fuzz.conftest import Run
from tests.fuzz.harness import Fuzzer
from tests.fuzz.strategies import encode_part, query_string, text
from tests.fuzz.wire import Call
from tests.fuzz.world import Credentials


@st.composite
def topics(draw: st.DrawFn) -> str:
    """The topic part of the path, as sent."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(st.sampled_from(["%zz", "%ff%fe", "%c0%af", "%", "a%2", "%00", "%2F"]))
    if choice == 1:
        return "/".join(draw(st.lists(st.sampled_from(["a", "", "+", "#", "$aws"]), max_size=10)))
    if choice == 2:
        return "x" * draw(st.sampled_from([255, 256, 257, 4096]))
    topic = draw(st.sampled_from(["facelens/events", "rekognition"]) | text())
    return encode_part(topic, draw(st.sampled_from([0, 1, 1, 2])))


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    size = draw(st.sampled_from([0, 1, 100, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1]))
    if size > 100:
        return b"p" * size
    return draw(st.binary(min_size=size, max_size=max(size, 200)))


@st.composite
def iot_calls(draw: st.DrawFn, fuzz: Fuzzer, creds: Credentials) -> Call:
    target = PREFIX + draw(topics()) + draw(query_string(["qos", "retain"]))
    headers = {"Content-Type": draw(st.sampled_from(["application/octet-stream", "", "x/y"]))}
    return draw(
        signed_call(
            surface="iot-data",
            route="POST /topics/{topic}",
            signer=Signer(creds, SIGNING_NAME, fuzz.url),
            target=target,
            body=draw(payloads()),
            headers=headers,
            host=fuzz.host_header,
        )
    )


def classics(fuzz: Fuzzer, creds: Credentials) -> list[Call]:
    """Publishes that broke (or nearly broke) once: sent first, every run."""

    def publish(topic: str, payload: bytes = b"{}") -> Call:
        target = PREFIX + topic
        return signed_admin_call(fuzz, creds, "iot-data", SIGNING_NAME, payload, target=target)

    return [
        publish("%ff%fe"),
        publish("%ED%A0%80"),
        publish("a/b/c/d/e/f/g/h/i"),
        publish("x" * 257),
        publish("facelens/x?qos=2"),
        publish("facelens/x?qos=1&retain=true", b"p" * (MAX_PAYLOAD_BYTES + 1)),
        publish("facelens/x?qos=1&retain=true", b"p" * MAX_PAYLOAD_BYTES),
    ]


@pytest.mark.parametrize("backend", ["sqlite"])  # reaches no store
def test_iot_data(run_fuzz: Run, fuzz: Fuzzer, credentials: Credentials) -> None:
    run_fuzz("iot-data", iot_calls(fuzz, credentials), 60, classics(fuzz, credentials))
