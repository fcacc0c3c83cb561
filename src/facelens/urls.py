"""Reading the options of back-end URLs (``s3://?region=...``, ``rekognition://``, ...).

Each registry names its back ends by URL; this is the one place their query
strings are read, strictly: a typo'd or repeated option is a
``ConfigurationError`` naming the known ones, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qs, urlsplit

from facelens.errors import ConfigurationError


def url_options(url: str, *, known: Collection[str]) -> dict[str, str]:
    """The query options of ``url``: each one of ``known``, given at most once, not empty."""
    query = urlsplit(url).query
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ConfigurationError(f"URL {url!r} has a malformed query: {exc}") from exc
    unknown = sorted(set(parsed) - set(known))
    if unknown:
        names = ", ".join(sorted(known)) or "none"
        raise ConfigurationError(f"URL {url!r} has unknown options {unknown}; known: {names}")
    if any(len(values) > 1 for values in parsed.values()):
        raise ConfigurationError(f"URL {url!r} repeats an option")
    if any(not values[0] for values in parsed.values()):
        raise ConfigurationError(f"URL {url!r} has an empty option")
    return {name: values[0] for name, values in parsed.items()}
