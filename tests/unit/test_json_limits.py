"""json_limits: nesting measured without recursion, and refused before parsing."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from facelens.json_limits import NotUnicodeError, TooDeepError, depth, loads, scan_depth


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"", 0),
        (b"7", 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'"[[[["', 0),  # brackets in a string do not count
        (b'{"a": "\\"[[[", "b": "\\\\"}', 1),  # nor after escaped quotes and backslashes
        ('{"é": ["["]}'.encode(), 2),
        (b'"unterminated [[[', 0),
        (b"[" * 100_000, 100_000),
    ],
)
def test_scan_depth_counts_brackets_outside_strings(text: bytes, expected: int) -> None:
    assert scan_depth(text) == expected
    assert scan_depth(text.decode()) == expected


def test_scan_depth_is_linear_on_a_crafted_body() -> None:
    # Escaped quotes after an unterminated string: a pattern that could fail would be
    # retried at each of the million quotes (quadratic: minutes).
    crafted = b'"' + b'\\"' * 1_000_000
    started = time.perf_counter()
    scan_depth(crafted)
    assert time.perf_counter() - started < 2.0


def test_loads_refuses_what_nests_too_deep_before_parsing() -> None:
    assert loads(b'{"a": [1]}', max_depth=2) == {"a": [1]}
    with pytest.raises(TooDeepError):
        loads(b'{"a": [[1]]}', max_depth=2)
    with pytest.raises(TooDeepError, match="100"):
        loads(b"[" * 100_000, max_depth=100)
    with pytest.raises(json.JSONDecodeError):  # json's own errors are still raised
        loads(b"{not json", max_depth=100)
    assert loads('["[[[[["]', max_depth=1) == ["[[[[["]


def test_depth_measures_without_recursion() -> None:
    assert depth("x", limit=5) == 0
    assert depth({"a": {"b": [1]}}, limit=5) == 3
    assert depth(({"a": 1},), limit=5) == 2
    value: Any = "leaf"
    for _ in range(100_000):  # far past Python's recursion limit
        value = {"a": value}
    assert depth(value, limit=31) == 32  # stops once it is known to be too deep
    assert depth(value, limit=200_000) == 100_000
    with pytest.raises(RecursionError):
        json.dumps(value)  # what depth() spares its callers


def test_loads_refuses_lone_surrogates_and_keeps_pairs() -> None:
    with pytest.raises(NotUnicodeError):
        loads(b'{"a": "\\ud800"}', max_depth=5)
    with pytest.raises(NotUnicodeError):
        loads(b'{"\\udfff": 1}', max_depth=5)
    with pytest.raises(NotUnicodeError):
        loads('{"a": "\udc80"}', max_depth=5)  # a str from argv's surrogateescape
    assert loads(b'{"a": "\\ud83d\\ude00"}', max_depth=5) == {"a": "\U0001f600"}
    assert loads(b'{"a": "\\\\ud800"}', max_depth=5) == {"a": "\\ud800"}  # an escaped backslash


def test_a_surrogate_as_raw_utf8_bytes_is_refused() -> None:
    """``ED A0 80`` is a surrogate in UTF-8's form, which UTF-8 forbids; ``json.loads``
    decoded it into a lone surrogate, and DynamoDB CreateTable answered 500 (fuzz suite)."""
    with pytest.raises(NotUnicodeError):
        loads(b'{"TableName": "t\xed\xa0\x80"}', max_depth=10)
