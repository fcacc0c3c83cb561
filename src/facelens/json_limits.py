"""JSON with a bound on nesting: what outside input may be parsed with, and how deep it is.

Why: Python's ``json`` parser, and every recursive walk over what it
returns (validators, converters, pydantic's serializer, ``json.dumps``),
recurse once (or more) per level of nesting. A body of ``"[" * 100000``
makes ``json.loads`` raise RecursionError; a document a few hundred levels
deep parses, is stored, and then breaks whatever walks it later. No
document facelens accepts needs more than a few dozen levels, so input is
refused *before* parsing when it nests deeper than its reader allows
(:func:`loads`), and values are measured without recursion (:func:`depth`).

Errors are :class:`TooDeepError` (and :class:`NotUnicodeError` for a lone
surrogate, which JSON escapes allow and UTF-8 does not), each a ``ValueError``
like ``json``'s own, so a caller that already turns ``ValueError`` into its
clear 4xx error keeps doing so; callers map them to their AWS-style code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

_STRING = re.compile(rb'"[^"\\]*(?:\\[\s\S][^"\\]*)*(?:"|\\?\Z)')
"""A JSON string, escapes included. Also matches an unterminated one up to the end, so every
match started at a quote succeeds and stripping strings is one linear pass (a pattern that
could fail would be retried at every later quote: quadratic on a crafted body)."""
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""A ``\\uD800``-``\\uDFFF`` escape: half of a pair, or a lone surrogate (checked after)."""
_RAW_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")
"""A surrogate written as UTF-8 bytes (``ED A0..BF``), which UTF-8 forbids but ``json.loads``
decodes (with ``surrogatepass``) into a lone surrogate."""


class TooDeepError(ValueError):
    """A JSON document, or a value, that nests more containers than its reader allows."""


class NotUnicodeError(ValueError):
    """JSON whose strings hold a lone surrogate (``"\\ud800"``): JSON escapes allow it, but
    it is no Unicode character, and every later UTF-8 encode of it (a database, a
    response) raises UnicodeEncodeError."""


def scan_depth(data: bytes | bytearray | str) -> int:
    """How many arrays and objects the deepest point of JSON text ``data`` is inside.

    Counts brackets outside strings without parsing (C-speed passes of ``re``
    and ``bytes.translate``: about 10 ms per MB), so it is safe on any input:
    text that is not JSON gets some number, and the parser refuses it after.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def loads(data: bytes | bytearray | str, *, max_depth: int) -> Any:
    """``json.loads(data)``, refused with TooDeepError when nested over ``max_depth`` levels,
    and with NotUnicodeError when a string holds a lone surrogate.

    ``max_depth`` counts arrays and objects: ``{"a": [1]}`` is 2 deep. Other
    errors are ``json``'s ValueError (UnicodeDecodeError for bytes that are
    not UTF-8, -16 or -32: also a ValueError).
    """
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else data
    except UnicodeEncodeError:  # a str with a surrogate in it (e.g. argv's surrogateescape)
        raise NotUnicodeError("The JSON text is not valid Unicode") from None
    # Fewer opening brackets than the limit cannot nest past it: a large image in base64
    # (Rekognition's Image.Bytes) costs two counts, not the scan.
    if raw.count(b"[") + raw.count(b"{") > max_depth and scan_depth(raw) > max_depth:
        raise TooDeepError(f"The JSON nests more than {max_depth} arrays and objects deep")
    try:
        document = json.loads(data)
    except RecursionError:  # only if the caller's limit is near Python's recursion limit
        raise TooDeepError(f"The JSON nests too deep to parse (limit {max_depth})") from None
    surrogates = _SURROGATE_ESCAPE.search(raw) or _RAW_SURROGATE.search(raw)
    if surrogates and not _encodable(document):
        raise NotUnicodeError("A JSON string holds a lone surrogate (\\uD800-\\uDFFF unpaired)")
    return document


def _encodable(document: Any) -> bool:
    """Whether every string (keys too) of a parsed document encodes as UTF-8. Only run when
    the text has a surrogate escape (pairs are fine: an emoji), so it costs nothing else."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def depth(value: Any, *, limit: int) -> int:
    """How many lists and maps the deepest point of ``value`` is inside (``"x"``: 0, ``[1]``: 1).

    Walks without recursion, so a value of any depth is measured safely;
    stops early and answers ``limit + 1`` once the depth is known to exceed
    ``limit`` (a caller only needs to know it is too deep). Tuples count as
    lists; any Mapping as a map.
    """
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        current, level = pending.pop()
        if isinstance(current, Mapping):
            children: Any = current.values()
        elif isinstance(current, list | tuple):
            children = current
        else:
            continue
        level += 1
        if level > limit:
            return limit + 1
        deepest = max(deepest, level)
        pending.extend((child, level) for child in children)
    return deepest
