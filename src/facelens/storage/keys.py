"""Checks on bucket names, object keys and user metadata, shared by every object store back end.

Why one set of rules for all back ends: a key that one store accepts must be
accepted by every other, or moving from the local directory to S3 (or back)
would fail on data that was fine yesterday. So the rules are the
intersection of what S3 allows and what a POSIX directory tree can hold
without surprises:

* buckets follow S3's general-purpose bucket naming rules;
* keys are S3 keys (at most 1024 UTF-8 bytes) that are also safe relative
  paths: no empty, ``.`` or ``..`` segment (so no leading ``/``, no ``//``
  and no trailing ``/``), no NUL, no backslash, each segment at most 255
  UTF-8 bytes (NAME_MAX on Linux file systems);
* user metadata is what S3 stores in ``x-amz-meta-*`` headers: names are
  HTTP tokens (lower-cased, as S3 returns them), values printable US-ASCII,
  at most 2 KB of names and values together.

Every check runs before any I/O and raises InvalidParameterException with a
message that names the offending value and the rule.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from facelens.errors import InvalidParameterException

MAX_KEY_BYTES = 1024
"""S3's limit on an object key, in UTF-8 bytes."""

MAX_SEGMENT_BYTES = 255
"""Longest file name (NAME_MAX) on ext4, XFS, btrfs, APFS: one key segment, in UTF-8 bytes."""

MAX_METADATA_BYTES = 2048
"""S3's limit on user metadata: names plus values, in UTF-8 bytes."""

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
"""An HTTP header-name token (RFC 9110), lower case: what fits after ``x-amz-meta-``."""
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_CONTENT_TYPE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,254}")


def check_bucket(name: str) -> str:
    """``name`` if it is a valid S3 bucket name; InvalidParameterException otherwise."""
    if not isinstance(name, str):
        raise InvalidParameterException(f"Bucket name must be a string, not {type(name).__name__}")
    if not 3 <= len(name) <= 63:
        raise InvalidParameterException(
            f"Bucket name {name!r} must be 3 to 63 characters long (it has {len(name)})"
        )
    if not _BUCKET.fullmatch(name):
        raise InvalidParameterException(
            f"Bucket name {name!r} may hold only lowercase letters, digits, dots and hyphens, "
            "and must begin and end with a letter or digit"
        )
    if ".." in name:
        raise InvalidParameterException(f"Bucket name {name!r} must not hold two adjacent dots")
    if _is_ip_address(name):
        raise InvalidParameterException(f"Bucket name {name!r} must not look like an IP address")
    for prefix in _RESERVED_PREFIXES:
        if name.startswith(prefix):
            raise InvalidParameterException(f"Bucket name {name!r} must not start with {prefix!r}")
    for suffix in _RESERVED_SUFFIXES:
        if name.endswith(suffix):
            raise InvalidParameterException(f"Bucket name {name!r} must not end with {suffix!r}")
    return name


def check_key(key: str) -> str:
    """``key`` if every back end can store it (see the module docstring); raises otherwise."""
    if not isinstance(key, str):
        raise InvalidParameterException(f"Object key must be a string, not {type(key).__name__}")
    if not key:
        raise InvalidParameterException("Object key must not be empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidParameterException(
            f"Object key {key!r} is not valid Unicode (lone surrogate)"
        ) from exc
    if size > MAX_KEY_BYTES:
        raise InvalidParameterException(
            f"Object key is {size} UTF-8 bytes long; at most {MAX_KEY_BYTES} are allowed"
        )
    if "\x00" in key:
        raise InvalidParameterException(f"Object key {key!r} must not contain a NUL character")
    if "\\" in key:
        raise InvalidParameterException(f"Object key {key!r} must not contain a backslash")
    if key.startswith("/"):
        raise InvalidParameterException(
            f"Object key {key!r} must be relative: it must not start with '/'"
        )
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            shown = segment or "empty"
            raise InvalidParameterException(
                f"Object key {key!r} has a {shown} path segment; "
                "'.', '..', '//' and a trailing '/' are not allowed"
            )
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidParameterException(
                f"Object key {key!r} has a path segment over {MAX_SEGMENT_BYTES} UTF-8 bytes"
            )
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: any string a key could start with (it need not be a whole key)."""
    if not isinstance(prefix, str):
        raise InvalidParameterException(f"Prefix must be a string, not {type(prefix).__name__}")
    if len(prefix.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidParameterException(f"Prefix is longer than {MAX_KEY_BYTES} UTF-8 bytes")
    return prefix


def check_max_keys(max_keys: int) -> int:
    """A page size of 1 to 1000 keys (S3's ``MaxKeys`` range)."""
    if isinstance(max_keys, bool) or not isinstance(max_keys, int) or not 1 <= max_keys <= 1000:
        raise InvalidParameterException(
            f"MaxKeys must be an integer from 1 to 1000, not {max_keys!r}"
        )
    return max_keys


def check_content_type(content_type: str) -> str:
    """A MIME type as S3 stores it: printable US-ASCII, 1 to 255 characters."""
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type):
        raise InvalidParameterException(
            f"Content type {content_type!r} must be 1 to 255 printable US-ASCII characters"
        )
    return content_type


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata with lower-cased names, as S3 returns it; raises on what S3 would refuse.

    Names are lower-cased first (S3 does so), so two names differing only in
    case are refused rather than one silently winning.
    """
    if metadata is None:
        return {}
    result: dict[str, str] = {}
    total = 0
    for name, value in metadata.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidParameterException("User metadata names and values must be strings")
        lowered = name.lower()
        if not _TOKEN.fullmatch(lowered):
            raise InvalidParameterException(
                f"User metadata name {name!r} must be a non-empty HTTP token "
                "(letters, digits and !#$%&'*+.^_`|~-)"
            )
        if lowered in result:
            raise InvalidParameterException(
                f"User metadata name {name!r} appears twice (names are case-insensitive)"
            )
        if not _PRINTABLE_ASCII.fullmatch(value) or value != value.strip():
            # HTTP trims header values: " x" would come back from S3 as "x".
            raise InvalidParameterException(
                f"User metadata value of {name!r} must be printable US-ASCII "
                "without leading or trailing spaces"
            )
        result[lowered] = value
        total += len(lowered) + len(value)
    if total > MAX_METADATA_BYTES:
        raise InvalidParameterException(
            f"User metadata is {total} bytes; at most {MAX_METADATA_BYTES} are allowed"
        )
    return result


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True
