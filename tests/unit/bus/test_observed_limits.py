"""A publish whose payload nests too deep reaches the broker side and no observer, without
raising: ``ObservedPublisher`` decodes each payload for its observers, and a body of
``"[" * 100000`` (allowed through iot-data: 100 KB is under AWS IoT's 128 KiB) raised
RecursionError out of ``publish``, failing the caller's request with a 500."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from facelens.bus.publisher import MemoryPublisher, ObservedPublisher


def test_a_payload_nested_too_deep_is_published_and_not_observed() -> None:
    inner = MemoryPublisher()
    seen: list[tuple[str, Mapping[str, Any]]] = []
    publisher = ObservedPublisher(inner, [lambda topic, doc: seen.append((topic, doc))])
    publisher.publish("a/b", b"[" * 100_000)
    publisher.publish("a/c", b'{"Name": "Ada"}')
    assert [m.topic for m in inner.messages] == ["a/b", "a/c"]
    assert seen == [("a/c", {"Name": "Ada"})]
