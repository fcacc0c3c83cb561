"""Event messages nested too deep, or dated where UTC cannot reach, are InvalidEventException.

Both used to escape as RecursionError and OverflowError: not the clear refusal a
recognizer logs and skips.
"""

from __future__ import annotations

import json

import pytest

from facelens.errors import InvalidEventException
from facelens.storage.events import parse_message


def test_a_message_nested_too_deep_is_an_invalid_event() -> None:
    with pytest.raises(InvalidEventException):
        parse_message(b"[" * 100_000)
    with pytest.raises(InvalidEventException):
        parse_message(b'{"Records": ' + b"[" * 500 + b"]" * 500 + b"}")


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_event_time_past_utc_s_range_is_an_invalid_event(when: str) -> None:
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": when,
        "s3": {"bucket": {"name": "b"}, "object": {"key": "k.jpg", "size": 1, "eTag": "e"}},
    }
    with pytest.raises(InvalidEventException, match="eventTime"):
        parse_message(json.dumps({"Records": [record]}).encode())
