"""U+0000 (NUL), the one character the history does not store, in any adapter.

Why refuse it: PostgreSQL's ``text`` cannot hold it (a parameter holding it
fails the statement), and its ``json`` operators (``->>``, which the
ledger's indexes and filters use) fail on any row whose JSON escapes it as
``\\u0000``. SQLite stores both, so had each adapter done what its database
allows, one history would keep what the other refuses. Both adapters refuse
it instead, as the profile stores do: a write holding it is
InvalidParameterException (a client's 400, never a 500), and since nothing
stored holds it, a filter holding it matches nothing on either.

Ids, topics and names never hold it in practice; this is the rule for what
slips through (a fuzzed query, a crafted event). The audit log's details
may name it: they are stored as JSON text, where it is the six characters
``\\u0000``, which both databases keep.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from facelens.errors import InvalidParameterException

NUL = "\x00"

_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""NUL in JSON text: ``\\u0000`` after an even number of backslashes (after an odd number the
backslash is escaped, and the rest is the text ``u0000``)."""


def refuse(**fields: str | None) -> None:
    """InvalidParameterException naming the first field that holds NUL. The value is not
    quoted in the error: its message may be stored (a dead letter's reason)."""
    for name, value in fields.items():
        if value is not None and NUL in value:
            raise InvalidParameterException(f"The {name} holds a NUL character (U+0000)")


def refuse_in_json(name: str, text: str) -> None:
    """:func:`refuse` for a JSON document as ``json.dumps`` wrote it (NUL escaped)."""
    if _ESCAPED_NUL.search(text):
        raise InvalidParameterException(f"The {name} holds a NUL character (U+0000)")


def holds_nul(value: str | None) -> bool:
    """Whether ``value`` holds NUL: a filter on it matches nothing, as no stored text holds it
    (and PostgreSQL would refuse it as a parameter)."""
    return value is not None and NUL in value


def matchable(values: Iterable[str]) -> list[str]:
    """``values`` without those holding NUL: for a list filter, where they match nothing."""
    return [value for value in values if NUL not in value]


def before_nul(value: str) -> str:
    """What to bind for ``column > value`` (byte order): ``value`` up to its first NUL. No
    stored text holds NUL, so for each one ``x``, ``x > value`` exactly when ``x > value[:i]``
    (where ``x`` starts with ``value[:i]`` and goes on, its next character is above NUL)."""
    return value.split(NUL, 1)[0]
