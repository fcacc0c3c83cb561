"""Hypothesis strategies for hostile input: text, JSON, bodies, query strings, paths, images.

Each strategy mixes values a well-behaved client might send (so requests get
past parsing and reach the services) with the ones that break parsers:
lone surrogates and other awkward unicode, integers past 64 bits, NaN and
Infinity in JSON, nesting hundreds to a hundred thousand deep, wrong JSON
types, bad percent-encoding, dot segments, bad base64, and image bytes that
start like a PNG or JPEG and then go wrong (or are valid, tiny, odd-moded,
or declare gigapixel sizes).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

# -- text --

SPECIAL_TEXT = (
    "",
    " ",
    "..",
    ".",
    "../../../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%00",
    "\x00",
    "a\x00b",
    "null",
    "None",
    "NaN",
    "-Infinity",
    "true",
    "[]",
    "{}",
    "' OR 1=1 --",
    '"; DROP TABLE faces; --',
    "<script>alert(1)</script>",
    "{{7*7}}",
    "${jndi:ldap://x}",
    "\u202egnp.exe",
    "\ufeff",
    "ß",
    "İ",
    "\U0001f600",
    "\ud800",
    "\udfff",
    "a" * 256,
    "a" * 5000,
    "x/y",
    "x\\y",
    "#",
    "+",
    "$aws/things/x",
    "stranger-1",
    "stranger-0",
    "stranger-99999999999999999999999",
    "stranger--1",
    "fl_",
    "00000000-0000-0000-0000-000000000000",
)


def text(*, max_size: int = 40) -> st.SearchStrategy[str]:
    """Any unicode (surrogates included), printable ASCII, or a known troublemaker."""
    return st.one_of(
        st.sampled_from(SPECIAL_TEXT),
        st.text(max_size=max_size),
        st.text(st.characters(codec="ascii"), max_size=max_size),
        st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    )


def header_text(*, max_size: int = 60) -> st.SearchStrategy[str]:
    """A header value http.client can send: latin-1, no CR or LF."""
    return st.one_of(
        st.sampled_from(["", " ", "\x00", "a" * 8000, "null", "-1", "1e999", "é"]),
        st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=max_size),
    )


def mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` three times in four, else ``other``: plausible values often enough that
    requests get past validation into the code behind it."""
    return st.integers(0, 3).flatmap(lambda i: other if i == 0 else usual)


# -- JSON --

HUGE_INTS = (2**31, 2**63, -(2**63) - 1, 2**64, 10**100, -(10**300))
JSON_SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=1001),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324]),
    text(),
)


def json_values(*, keys: Sequence[str] = (), max_leaves: int = 12) -> st.SearchStrategy[Any]:
    key = st.sampled_from(keys) | text(max_size=12) if keys else text(max_size=12)
    return st.recursive(
        JSON_SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=4),
        max_leaves=max_leaves,
    )


def dumps(value: Any, *, ascii_only: bool = True) -> bytes:
    """JSON as Python writes it: NaN and Infinity as bare words; lone surrogates either
    escaped (valid JSON) or, unescaped, as the invalid UTF-8 they become."""
    return json.dumps(value, allow_nan=True, ensure_ascii=ascii_only).encode(
        "utf-8", "surrogatepass"
    )


LONE = "\ud800"
"""A lone surrogate: JSON may carry it (as ``\\ud800``, and Python's ``json`` also decodes
it from the raw bytes ``\\xed\\xa0\\x80``), UTF-8 cannot encode it, so SQLite,
PostgreSQL and ``str.encode`` all refuse it."""


def both_encodings(document: Any) -> list[bytes]:
    """``document`` as JSON with lone surrogates escaped, and as their raw bytes."""
    return [dumps(document), dumps(document, ascii_only=False)]


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    """``[[[…]]]`` or ``{"a":{"a":…}}``, 10 to 100,000 deep, closed or not."""
    depth = draw(st.sampled_from([10, 33, 200, 301, 1000, 5000, 100_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"M":{"a":', "}}")]))
    closed = draw(st.booleans())
    return (opener * depth + ("1" + closer * depth if closed else "")).encode()


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    """Bodies that are not (quite) JSON objects."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(deep_nesting())
    if choice == 1:
        return draw(st.binary(max_size=200))
    if choice == 2:  # truncated JSON
        whole = dumps(draw(json_values()))
        return whole[: draw(st.integers(0, max(0, len(whole) - 1)))]
    if choice == 3:
        return b"\xef\xbb\xbf" + dumps(draw(st.dictionaries(text(), JSON_SCALARS, max_size=3)))
    if choice == 4:
        return b'{"a": 1, "a": 2, "CollectionId": "x", "CollectionId": 5}'
    if choice == 5:  # numbers Python's json parses into trouble
        return draw(
            st.sampled_from(
                [
                    b'{"MaxResults": 1' + b"0" * 5000 + b"}",
                    b'{"MaxResults": 1e999999}',
                    b'{"MaxResults": -0}',
                    b'{"x": 1E400, "y": -1e400}',
                    b"[" + b"1," * 10000 + b"1]",
                    b'{"' + b"k" * 100_000 + b'": 1}',
                ]
            )
        )
    if choice == 6:
        return draw(st.sampled_from([b"", b" ", b"null", b"[]", b'""', b"0", b"true", b"\x00"]))
    if choice == 7:  # UTF-16 / UTF-32 encoded JSON
        encoding = draw(st.sampled_from(["utf-16", "utf-16-be", "utf-32"]))
        return json.dumps(draw(json_values())).encode(encoding)
    if choice == 8:
        return dumps(draw(json_values()), ascii_only=False)
    return dumps(draw(json_values()))


# -- query strings and paths --

DATES = (
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59",
    "9999-12-31T23:59:59-14:00",
    "2024-13-45T99:99:99",
    "2024-02-30",
    "-1",
    "1e10",
    "now",
    "2024-01-01T00:00:00+99:00",
    "20240101T000000Z",
)


def token_values() -> st.SearchStrategy[str]:
    """Paging tokens: garbage, and base64 of what a decoder might choke on."""
    payloads = st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [
                b"9" * 400,
                b"-1",
                b"1e999",
                b'["a"]',
                b'["a", "b", "c"]',
                b"[1, 2]",
                b'{"a": 1}',
                b"null",
                b'["0001-01-01T00:00:00", ""]',
                b'[1e999, "x"]',
                b"\xff\xfe",
                b"18446744073709551616",
                b"99999999999999999999999999999999999999",
            ]
        ),
        st.builds(lambda v: dumps(v), json_values(max_leaves=4)),
    )
    encoded = payloads.map(lambda b: base64.urlsafe_b64encode(b).decode())
    return st.one_of(encoded, encoded.map(lambda s: s.rstrip("=")), text(), st.just("====="))


def query_value(name: str) -> st.SearchStrategy[str]:
    numbers = st.one_of(
        st.integers(-5, 1500).map(str),
        st.sampled_from(["0", "-1", "1e3", "1.5", "nan", "inf", "", "1" * 40, "0x10", "٣"]),
        st.sampled_from([str(i) for i in HUGE_INTS]),
    )
    if name in ("max_results", "MaxResults", "qos"):
        return numbers | text(max_size=10)
    if name in ("next_token", "NextToken"):
        return token_values()
    if name in ("since", "after"):
        return st.sampled_from(DATES) | text(max_size=30)
    if name in ("forget", "retain", "Extend"):
        return st.sampled_from(["true", "false", "1", "0", "yes", "TRUE", "", "maybe"])
    if name == "status":
        return st.sampled_from(["identified", "unknown", "error", "IDENTIFIED", ""]) | text()
    if name == "action":
        return st.sampled_from(["enrol", "forget", "profile-read", "x"]) | text()
    return text()


def encode_part(value: str, how: int) -> str:
    """A path segment or query part as a client might send it: properly percent-encoded
    (0), slashes left bare (1), or sent as-is where that is still a legal request target
    (2: only bytes http.client lets through, anything else percent-encoded)."""
    if how == 0:
        return quote(value, safe="", errors="surrogatepass")
    if how == 1:
        return quote(value, safe="/", errors="surrogatepass")
    return quote(value, safe="/%?#&=+$,;:@!*'()[]~", errors="surrogatepass")


@st.composite
def query_string(draw: st.DrawFn, names: Sequence[str]) -> str:
    """``?a=b&…``: some of ``names`` (repeated at times), some strangers, bad escapes."""
    pairs: list[tuple[str, str]] = []
    for name in names:
        if draw(st.integers(0, 2)) > 0:
            pairs.append((name, draw(query_value(name))))
            if draw(st.integers(0, 9)) == 0:
                pairs.append((name, draw(query_value(name))))
    if draw(st.integers(0, 5)) == 0:
        pairs.append((draw(text(max_size=8)), draw(text(max_size=8))))
    how = draw(st.integers(0, 5))
    parts = [f"{encode_part(k, 0)}={encode_part(v, 0 if how else 2)}" for k, v in pairs]
    if draw(st.integers(0, 12)) == 0:
        parts.append(draw(st.sampled_from(["%zz", "%", "%ff%fe=%c0%af", "a=%", "=&&=", ";x"])))
    return ("?" + "&".join(parts)) if parts else ""


@st.composite
def segments(draw: st.DrawFn, known: Sequence[str]) -> str:
    """A path segment: a known id (most often, to reach deep code) or hostile text."""
    value = draw(mostly(st.sampled_from(known), text())) if known else draw(text())
    how = draw(st.sampled_from([0, 0, 0, 1, 2]))
    return encode_part(value, how) or draw(st.sampled_from(["", "%20", "."]))
