"""Opaque listing tokens for the stores that page by key themselves (local directory, memory).

A listing resumes *after* the last key it returned (S3's ``StartAfter``
semantics), so keys put or deleted between two calls never shift a page:
the keys that were there throughout are neither repeated nor skipped.

The token is urlsafe base64 of ``{"b": bucket, "p": prefix, "a": last key}``
(one level of JSON: a token nested deeper is refused unparsed).
Callers treat it as opaque; bucket and prefix are checked on the way back
in, so a token from another listing is refused instead of silently listing
the wrong range. (The S3 back end passes S3's own ``ContinuationToken``.)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator

from facelens import json_limits
from facelens.errors import InvalidParameterException
from facelens.storage.types import ObjectInfo, ObjectPage


def encode_token(bucket: str, prefix: str, after: str) -> str:
    """The token that resumes the listing of ``bucket``/``prefix`` after key ``after``."""
    state = {"b": bucket, "p": prefix, "a": after}
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def decode_token(token: str | None, *, bucket: str, prefix: str) -> str:
    """The key to resume after ("" to start at the beginning); raises on a foreign token."""
    if token is None:
        return ""
    try:
        state = json_limits.loads(base64.urlsafe_b64decode(token.encode("ascii")), max_depth=1)
    except (binascii.Error, ValueError, AttributeError):  # UnicodeError, TooDeepError too
        state = None
    if (
        not isinstance(state, dict)
        or not isinstance(state.get("a"), str)
        or state.get("b") != bucket
        or state.get("p") != prefix
    ):
        raise InvalidParameterException("The continuation token is not valid for this listing")
    after: str = state["a"]
    return after


def page_of(bucket: str, prefix: str, infos: Iterable[ObjectInfo], max_keys: int) -> ObjectPage:
    """The first ``max_keys`` of ``infos`` (already in key order, after the token) as a page.

    Reads one more item than it returns, so the last page has no token.
    """
    taken: list[ObjectInfo] = []
    iterator: Iterator[ObjectInfo] = iter(infos)
    for info in iterator:
        if len(taken) == max_keys:
            return ObjectPage(tuple(taken), encode_token(bucket, prefix, taken[-1].key))
        taken.append(info)
    return ObjectPage(tuple(taken), None)
