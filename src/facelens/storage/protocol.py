"""The object store port: named buckets of objects with user metadata.

Implementations: a local directory (default, :mod:`facelens.storage.local`)
and any S3-compatible service through boto3 (:mod:`facelens.storage.s3`).
Objects are never made public: no implementation accepts or sets an ACL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from facelens.storage.types import ObjectInfo, ObjectPage, StoredObject


class ObjectStore(Protocol):
    """Buckets of objects. Keys are checked by :func:`facelens.storage.keys.check_key`.

    Errors: ``NoSuchBucketException`` / ``NoSuchKeyException`` for what does
    not exist, ``InvalidParameterException`` for a bad bucket name or key,
    ``ServiceUnavailableException`` when the back end cannot be reached and
    ``StorageError`` for any other back-end failure.
    """

    def create_bucket(self, bucket: str) -> None:
        """Creates the bucket; a bucket that already exists (and is ours) is fine."""
        ...

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Stores ``body`` under ``key`` atomically: readers see the old or the new object."""
        ...

    def get_object(self, bucket: str, key: str) -> StoredObject: ...

    def head_object(self, bucket: str, key: str) -> ObjectInfo: ...

    def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        max_keys: int = 1000,
        next_token: str | None = None,
    ) -> ObjectPage:
        """Objects whose key starts with ``prefix``, in key (UTF-8 byte) order."""
        ...

    def delete_object(self, bucket: str, key: str) -> None:
        """Deletes the object; deleting a missing key is not an error (as in S3)."""
        ...

    def close(self) -> None: ...
