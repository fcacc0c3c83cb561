"""What crosses the object store's boundary: object descriptions, bodies, pages.

(The ObjectCreated event a put sends is :mod:`facelens.values.events`: the bus and the
recognizer read it too.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType


def _frozen(metadata: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(metadata))


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object's description, as S3's HeadObject gives it.

    ``etag`` is the hex MD5 of the body without quotes (S3 quotes it on the
    wire; we strip them at the adapter). ``metadata`` is the user metadata
    (S3's ``x-amz-meta-*`` without the prefix), keys lower-cased as S3 does.
    """

    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime
    content_type: str = "application/octet-stream"
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen(self.metadata))


@dataclass(frozen=True)
class StoredObject:
    """An object's description and its bytes (crops are small: read whole)."""

    info: ObjectInfo
    body: bytes


@dataclass(frozen=True)
class ObjectPage:
    """One page of a listing in key order; ``next_token`` resumes after it."""

    objects: tuple[ObjectInfo, ...]
    next_token: str | None = None
