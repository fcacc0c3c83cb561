"""Opaque page tokens and keyset pagination, for any store back end.

Why keyset (``WHERE key > last ORDER BY key LIMIT n``) rather than OFFSET:
rows added or removed between two calls never shift a page, so a listing
that resumes from a token neither repeats nor skips the rows that were there
throughout, and every page costs one index seek however deep it lies.

A token is urlsafe base64 of ``{"c": scope, "k": key, "after": last key}``
(one level of JSON: a token nested deeper is refused unparsed).
Callers treat it as opaque; the scope (a collection id, or ``""`` for the
list of collections) and the key column are checked on the way back in, so a
token from another listing or another collection is refused rather than
misread.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from facelens import json_limits
from facelens.errors import InvalidParameterException
from facelens.sql import Connection


def encode_token(scope: str, key: str, after: str) -> str:
    """The token that resumes a listing of ``scope`` ordered by ``key`` after ``after``."""
    state = {"c": scope, "k": key, "after": after}
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def decode_token(token: str, *, scope: str, key: str) -> str:
    """The last key of the previous page, from a token made for this very listing.

    Raises InvalidParameterException for anything else: garbage, a token
    edited by hand, or one from another listing or scope.
    """
    try:
        state = json_limits.loads(base64.urlsafe_b64decode(token.encode("ascii")), max_depth=1)
    except (binascii.Error, ValueError):  # UnicodeError and json_limits.TooDeepError too
        state = None
    if not isinstance(state, dict) or not isinstance(state.get("after"), str):
        raise _invalid()
    if state.get("c") != scope or state.get("k") != key:
        raise _invalid()
    after: str = state["after"]
    return after


def keyset_page(
    conn: Connection,
    sql: str,
    params: Sequence[Any],
    key: str,
    max_results: int,
    token: str | None,
    scope: str,
) -> tuple[list[Any], str | None]:
    """Up to ``max_results`` rows of ``sql`` in ``key`` order, and the token for the rest.

    ``sql`` is a SELECT whose first column is ``key`` (unique within
    ``scope``) and which ends in a WHERE clause (``WHERE 1`` will do): the
    page condition is appended with AND. One extra row is read to tell
    whether another page follows, so the last page has no token.
    """
    if max_results < 1:
        raise InvalidParameterException("MaxResults must be at least 1")
    if token is not None:
        sql, params = f"{sql} AND {key} > ?", [*params, decode_token(token, scope=scope, key=key)]
    rows = conn.execute(f"{sql} ORDER BY {key} LIMIT ?", [*params, max_results + 1]).fetchall()
    if len(rows) <= max_results:
        return rows, None
    return rows[:max_results], encode_token(scope, key, rows[max_results - 1][0])


def _invalid() -> InvalidParameterException:
    return InvalidParameterException("The pagination token is not valid for this request")
