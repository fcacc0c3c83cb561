"""The object store on S3 or any S3-compatible service (MinIO, Ceph RGW, moto) through boto3.

boto3 is imported, and the client made, on first use: opening a store costs
nothing and needs no network. Credentials come from boto3's usual chain
(environment, shared config files, instance or task role); we never read
them ourselves.

Privacy: objects are face crops, so nothing here ever passes an ACL, and
``create_bucket`` blocks public access on a bucket it creates. Integrity: a
put sends ``Content-MD5``, which S3 and every compatible server verify, and
asks boto3 to add its newer checksums only where an operation requires them
(``when_required``): the default trailing checksums of boto3 >= 1.36 are
refused by some S3-compatible servers.

Errors are mapped at this boundary: missing bucket or key to
NoSuchBucket/NoSuchKey, an unreachable endpoint (refused, timed out, closed)
or S3 asking us to slow down to ServiceUnavailableException (retry later),
anything else to StorageError naming the AWS error code.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from facelens.aws_clients import DEFAULT_OPTIONS, AwsClient, AwsClientOptions
from facelens.errors import (
    InvalidParameterException,
    NoSuchBucketException,
    NoSuchKeyException,
    ServiceUnavailableException,
    StorageError,
)
from facelens.storage.keys import (
    check_bucket,
    check_content_type,
    check_key,
    check_max_keys,
    check_metadata,
    check_prefix,
)
from facelens.storage.types import ObjectInfo, ObjectPage, StoredObject

_UNAVAILABLE_CODES = frozenset({"SlowDown", "ServiceUnavailable", "503", "RequestTimeout"})
_NOT_IMPLEMENTED_CODES = frozenset({"NotImplemented", "XNotImplemented"})
_PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


class S3ObjectStore:
    """:class:`~facelens.storage.protocol.ObjectStore` on S3; safe for threads (boto3 clients are).

    ``aws.endpoint_url``: a non-AWS service (``http://minio:9000``);
    ``aws.region``: where buckets are created (and requests signed for).
    Timeouts and attempts as :class:`~facelens.aws_clients.AwsClientOptions`
    says (botocore's "standard" retry mode, with jittered backoff between
    tries), so an unreachable endpoint fails after about ``max_attempts *
    connect_timeout`` plus the backoff. ``client``: a ready boto3 S3 client
    (for tests or special set-ups); endpoint and timeouts are then its own,
    and ``close`` leaves it open.
    """

    def __init__(self, *, aws: AwsClientOptions = DEFAULT_OPTIONS, client: Any = None) -> None:
        self.aws = AwsClient("s3", aws, client=client, checksums_when_required=True)

    def close(self) -> None:
        self.aws.close()

    def create_bucket(self, bucket: str) -> None:
        """Creates the bucket in the store's region and blocks all public access to it.

        A bucket we already own is fine; its public access is blocked too
        (idempotent), so a bucket made by hand is made private. A server that
        does not implement public access blocks (MinIO: buckets are private
        unless a policy says otherwise) is fine; any other failure of it
        raises, since a bucket that might be public must not be used silently.
        """
        check_bucket(bucket)
        client = self.aws.get()
        region = self.aws.options.region or client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with self._errors(f"create bucket {bucket}", ok={"BucketAlreadyOwnedByYou"}):
            client.create_bucket(**kwargs)
        with self._errors(f"block public access to {bucket}", ok=_NOT_IMPLEMENTED_CODES):
            client.put_public_access_block(
                Bucket=bucket, PublicAccessBlockConfiguration=_PUBLIC_ACCESS_BLOCK
            )

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Stores the object; ``last_modified`` is the server's Date header (second precision).

        PutObject does not return Last-Modified; the response date is within
        a second of it. ``head_object`` gives the exact value. The etag is
        S3's: the body's MD5 except on SSE-KMS encrypted buckets, where S3
        makes it something else (the upload was still MD5-checked).
        """
        check_bucket(bucket)
        check_key(key)
        check_content_type(content_type)
        user_metadata = check_metadata(metadata)
        if not isinstance(body, bytes | bytearray | memoryview):
            raise InvalidParameterException(f"Body must be bytes, not {type(body).__name__}")
        data = bytes(body)
        digest = hashlib.md5(data, usedforsecurity=False)
        with self._errors(f"put {bucket}/{key}", bucket=bucket):
            response = self.aws.get().put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ContentMD5=base64.b64encode(digest.digest()).decode("ascii"),
                Metadata=user_metadata,
            )
        etag = _etag(response.get("ETag")) or digest.hexdigest()
        return ObjectInfo(
            bucket, key, len(data), etag, _response_date(response), content_type, user_metadata
        )

    def get_object(self, bucket: str, key: str) -> StoredObject:
        check_bucket(bucket)
        check_key(key)
        with self._errors(f"get {bucket}/{key}", bucket=bucket, key=key):
            response = self.aws.get().get_object(Bucket=bucket, Key=key)
            stream = response["Body"]
            try:
                body = stream.read()
            finally:
                stream.close()
        return StoredObject(_info(bucket, key, response, size=len(body)), body)

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        check_bucket(bucket)
        check_key(key)
        with self._errors(f"head {bucket}/{key}", bucket=bucket, key=key):
            response = self.aws.get().head_object(Bucket=bucket, Key=key)
        return _info(bucket, key, response, size=int(response.get("ContentLength", 0)))

    def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        max_keys: int = 1000,
        next_token: str | None = None,
    ) -> ObjectPage:
        """ListObjectsV2; ``next_token`` is S3's ContinuationToken.

        Listings carry key, size, etag and last modified only (ListObjectsV2
        returns no content type or metadata).
        """
        check_bucket(bucket)
        check_prefix(prefix)
        check_max_keys(max_keys)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max_keys}
        if next_token is not None:
            kwargs["ContinuationToken"] = next_token
        with self._errors(f"list {bucket}", bucket=bucket):
            response = self.aws.get().list_objects_v2(**kwargs)
        objects = tuple(
            ObjectInfo(
                bucket,
                item["Key"],
                int(item["Size"]),
                _etag(item.get("ETag")),
                _utc(item["LastModified"]),
            )
            for item in response.get("Contents", [])
        )
        token = response.get("NextContinuationToken") if response.get("IsTruncated") else None
        return ObjectPage(objects, token)

    def delete_object(self, bucket: str, key: str) -> None:
        check_bucket(bucket)
        check_key(key)
        with self._errors(f"delete {bucket}/{key}", bucket=bucket):
            self.aws.get().delete_object(Bucket=bucket, Key=key)

    # -- internals --
    @contextmanager
    def _errors(
        self,
        action: str,
        *,
        bucket: str | None = None,
        key: str | None = None,
        ok: frozenset[str] | set[str] = frozenset(),
    ) -> Iterator[None]:
        """Maps botocore's errors to ours; codes in ``ok`` are swallowed (the block ends early)."""
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        try:
            yield
        except (BotoConnectionError, HTTPClientError) as exc:
            raise ServiceUnavailableException(f"S3 is unreachable ({action}): {exc}") from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            if code in ok:
                return
            raise self._client_error(action, code, exc, bucket=bucket, key=key) from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 {action} failed: {exc}") from exc

    def _client_error(
        self, action: str, code: str, exc: Exception, *, bucket: str | None, key: str | None
    ) -> Exception:
        if code == "NoSuchBucket" and bucket is not None:
            return NoSuchBucketException(f"The specified bucket does not exist: {bucket}")
        if code in ("NoSuchKey", "404", "NotFound") and bucket is not None and key is not None:
            # HeadObject answers a bare 404 for a missing bucket and a missing key alike.
            if code != "NoSuchKey" and not self._bucket_exists(bucket):
                return NoSuchBucketException(f"The specified bucket does not exist: {bucket}")
            return NoSuchKeyException(f"The specified key does not exist: {bucket}/{key}")
        if code in _UNAVAILABLE_CODES:
            return ServiceUnavailableException(f"S3 is unavailable ({action}): {code}: {exc}")
        return StorageError(f"S3 {action} failed: {code}: {exc}")

    def _bucket_exists(self, bucket: str) -> bool:
        """False only if S3 says so; on any other answer the key is what is missing."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.aws.get().head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            return code not in ("404", "NoSuchBucket", "NotFound")
        except BotoCoreError:
            return True
        return True


def _info(bucket: str, key: str, response: Mapping[str, Any], *, size: int) -> ObjectInfo:
    return ObjectInfo(
        bucket,
        key,
        size,
        _etag(response.get("ETag")),
        _utc(response["LastModified"]),
        response.get("ContentType") or "application/octet-stream",
        {str(k).lower(): str(v) for k, v in (response.get("Metadata") or {}).items()},
    )


def _etag(value: Any) -> str:
    """S3 quotes ETags on the wire (``"abc..."``); ObjectInfo holds them bare."""
    return str(value or "").strip('"')


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _response_date(response: Mapping[str, Any]) -> datetime:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return _utc(parsedate_to_datetime(headers["date"]))
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)
