"""An object store in a dict: for tests and throwaway runs (``memory://``).

It follows the same contract as the directory and S3 stores (same key
checks, MD5 etags, listings in UTF-8 byte order without content type or
metadata), so a test that passes here means something for the others. It
has none of the local store's key/prefix clash: like S3, ``a`` and ``a/b``
can both exist. Everything is lost when the process ends.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from facelens.errors import InvalidParameterException, NoSuchBucketException, NoSuchKeyException
from facelens.storage.keys import (
    check_bucket,
    check_content_type,
    check_key,
    check_max_keys,
    check_metadata,
    check_prefix,
)
from facelens.storage.paging import decode_token, page_of
from facelens.storage.types import ObjectInfo, ObjectPage, StoredObject


class MemoryObjectStore:
    """:class:`~facelens.storage.protocol.ObjectStore` in process memory; safe for threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[str, StoredObject]] = {}

    def close(self) -> None:
        """Keeps the objects: a closed memory store is as good as a stopped server's disk."""

    def create_bucket(self, bucket: str) -> None:
        check_bucket(bucket)
        with self._lock:
            self._buckets.setdefault(bucket, {})

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        check_key(key)
        check_content_type(content_type)
        user_metadata = check_metadata(metadata)
        if not isinstance(body, bytes | bytearray | memoryview):
            raise InvalidParameterException(f"Body must be bytes, not {type(body).__name__}")
        data = bytes(body)
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        info = ObjectInfo(
            bucket, key, len(data), etag, datetime.now(UTC), content_type, user_metadata
        )
        with self._lock:
            self._objects(bucket)[key] = StoredObject(info, data)
        return info

    def get_object(self, bucket: str, key: str) -> StoredObject:
        check_key(key)
        with self._lock:
            stored = self._objects(bucket).get(key)
        if stored is None:
            raise NoSuchKeyException(f"The specified key does not exist: {bucket}/{key}")
        return stored

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        return self.get_object(bucket, key).info

    def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        max_keys: int = 1000,
        next_token: str | None = None,
    ) -> ObjectPage:
        """Keys in ``str`` order, which for valid keys is UTF-8 byte order."""
        check_prefix(prefix)
        check_max_keys(max_keys)
        after = decode_token(next_token, bucket=bucket, prefix=prefix)
        with self._lock:
            objects = self._objects(bucket)
            keys = sorted(k for k in objects if k > after and k.startswith(prefix))
            infos = [objects[k].info for k in keys[: max_keys + 1]]
        return page_of(bucket, prefix, _listed(infos), max_keys)

    def delete_object(self, bucket: str, key: str) -> None:
        check_key(key)
        with self._lock:
            self._objects(bucket).pop(key, None)

    def _objects(self, bucket: str) -> dict[str, StoredObject]:
        """The bucket's objects; call with the lock held."""
        check_bucket(bucket)
        objects = self._buckets.get(bucket)
        if objects is None:
            raise NoSuchBucketException(f"The specified bucket does not exist: {bucket}")
        return objects


def _listed(infos: list[ObjectInfo]) -> Iterator[ObjectInfo]:
    for info in infos:
        yield replace(info, content_type="application/octet-stream", metadata={})
