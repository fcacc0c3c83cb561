"""One storage contract, run against every back end: local directory, memory, S3 (moto server).

Why one parametrized set: the ports-and-adapters promise is that code which
works on the embedded default works on S3. Each test here states a rule of
the ObjectStore protocol and must hold for all three; back-end specifics
(file modes, sidecars, ACLs, an unreachable endpoint) follow at the end.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from facelens.aws_clients import AwsClientOptions
from facelens.errors import (
    ConflictException,
    InvalidParameterException,
    NoSuchBucketException,
    NoSuchKeyException,
    ServiceUnavailableException,
)
from facelens.storage.local import LocalObjectStore
from facelens.storage.memory import MemoryObjectStore
from facelens.storage.protocol import ObjectStore
from facelens.storage.s3 import S3ObjectStore

BACKENDS = ["local", "memory", "s3"]
LISTED = [
    "x/y/z", "x/y.z", "x/y-z", "a-c", "a/b", "a0", "B", "b", "é", "z", "~",
    "😀", "ｚ", "faces/10.jpg", "faces/2.jpg", "faces/1.jpg", "red flower.jpg",
]  # fmt: skip
"""Keys whose UTF-8 byte order differs from naive orders: '-' < '.' < '/' < '0', upper < lower,
2-, 3- and 4-byte UTF-8; no key is also a 'directory' of others (the local store refuses that)."""


@dataclass
class Backend:
    kind: str
    store: ObjectStore
    bucket: str
    root: Path | None = None  # the local store's directory


def _closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "s3":
        yield Backend(
            "s3", request.getfixturevalue("s3_store"), request.getfixturevalue("s3_bucket")
        )
        return
    root = tmp_path / "objects"
    store: ObjectStore = LocalObjectStore(root) if request.param == "local" else MemoryObjectStore()
    store.create_bucket("test-bucket")
    yield Backend(request.param, store, "test-bucket", root)
    store.close()


@pytest.fixture(params=BACKENDS)
def unusable(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """A store on which any I/O would fail: no root, no buckets, or an endpoint that is down."""
    if request.param == "s3":
        request.getfixturevalue("aws_env")
        return S3ObjectStore(
            aws=AwsClientOptions(
                endpoint_url=f"http://127.0.0.1:{_closed_port()}",
                connect_timeout=0.5,
                max_attempts=1,
            )
        )
    if request.param == "local":
        return LocalObjectStore(tmp_path / "never-created")
    return MemoryObjectStore()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _all_keys(backend: Backend, *, prefix: str = "", max_keys: int = 1000) -> list[str]:
    keys: list[str] = []
    token = None
    while True:
        page = backend.store.list_objects(
            backend.bucket, prefix=prefix, max_keys=max_keys, next_token=token
        )
        assert len(page.objects) <= max_keys
        keys.extend(o.key for o in page.objects)
        token = page.next_token
        if token is None:
            return keys


# -- the contract --
def test_put_get_head_round_trip_body_type_metadata_and_md5_etag(backend: Backend) -> None:
    body = bytes(range(256)) * 40
    key = "faces/cam 1/été+1.jpg"
    before = datetime.now(UTC) - timedelta(seconds=2)
    put = backend.store.put_object(
        backend.bucket,
        key,
        body,
        content_type="image/jpeg",
        metadata={"Thing": "cam1", "captured-at": "2024-05-06T07:08:09.123+00:00"},
    )
    expected_metadata = {"thing": "cam1", "captured-at": "2024-05-06T07:08:09.123+00:00"}
    assert (put.bucket, put.key, put.size, put.etag) == (backend.bucket, key, len(body), _md5(body))
    assert (put.content_type, dict(put.metadata)) == ("image/jpeg", expected_metadata)

    got = backend.store.get_object(backend.bucket, key)
    head = backend.store.head_object(backend.bucket, key)
    assert got.body == body
    assert got.info == head
    assert (head.size, head.etag, head.content_type) == (len(body), _md5(body), "image/jpeg")
    assert dict(head.metadata) == expected_metadata
    assert head.last_modified.tzinfo is not None
    assert before <= head.last_modified <= datetime.now(UTC) + timedelta(seconds=2)


def test_defaults_and_an_empty_body(backend: Backend) -> None:
    info = backend.store.put_object(backend.bucket, "empty", b"")
    head = backend.store.head_object(backend.bucket, "empty")
    assert (info.size, head.size, head.etag) == (0, 0, _md5(b""))
    assert head.content_type == "application/octet-stream"
    assert dict(head.metadata) == {}
    assert backend.store.get_object(backend.bucket, "empty").body == b""


def test_overwrite_replaces_body_type_and_metadata(backend: Backend) -> None:
    store, bucket = backend.store, backend.bucket
    store.put_object(bucket, "k", b"old", content_type="image/png", metadata={"a": "1"})
    store.put_object(bucket, "k", b"newer", content_type="image/jpeg", metadata={"b": "2"})
    got = store.get_object(bucket, "k")
    assert (got.body, got.info.etag, got.info.size) == (b"newer", _md5(b"newer"), 5)
    assert (got.info.content_type, dict(got.info.metadata)) == ("image/jpeg", {"b": "2"})
    assert _all_keys(backend) == ["k"]


def test_list_is_in_utf8_byte_order_and_pages_resume_exactly(backend: Backend) -> None:
    for key in LISTED:
        backend.store.put_object(backend.bucket, key, key.encode(), content_type="text/plain")
    expected = sorted(LISTED, key=lambda k: k.encode("utf-8"))
    assert _all_keys(backend) == expected
    for size in (1, 2, 5, 16, 17):
        assert _all_keys(backend, max_keys=size) == expected

    page = backend.store.list_objects(backend.bucket, max_keys=1000)
    assert page.next_token is None
    by_key = {o.key: o for o in page.objects}
    assert by_key["é"].size == 2
    assert by_key["é"].etag == _md5("é".encode())
    assert by_key["é"].last_modified.tzinfo is not None


def test_list_with_prefix(backend: Backend) -> None:
    for key in LISTED:
        backend.store.put_object(backend.bucket, key, b".")
    assert _all_keys(backend, prefix="x/y") == ["x/y-z", "x/y.z", "x/y/z"]
    assert _all_keys(backend, prefix="x/y/") == ["x/y/z"]
    assert _all_keys(backend, prefix="faces/", max_keys=2) == [
        "faces/1.jpg",
        "faces/10.jpg",
        "faces/2.jpg",
    ]
    assert _all_keys(backend, prefix="a") == ["a-c", "a/b", "a0"]
    assert _all_keys(backend, prefix="nothing-here") == []
    assert _all_keys(backend, prefix="../") == []


def test_listing_survives_writes_between_pages(backend: Backend) -> None:
    for key in ("k1", "k3", "k5"):
        backend.store.put_object(backend.bucket, key, b".")
    first = backend.store.list_objects(backend.bucket, max_keys=2)
    assert [o.key for o in first.objects] == ["k1", "k3"]
    backend.store.put_object(backend.bucket, "k4", b".")
    backend.store.delete_object(backend.bucket, "k3")
    rest = backend.store.list_objects(backend.bucket, max_keys=2, next_token=first.next_token)
    assert [o.key for o in rest.objects] == ["k4", "k5"]


def test_delete_removes_and_deleting_a_missing_key_is_fine(backend: Backend) -> None:
    store, bucket = backend.store, backend.bucket
    store.put_object(bucket, "faces/deep/er/a.jpg", b"1")
    store.put_object(bucket, "faces/b.jpg", b"2")
    store.delete_object(bucket, "faces/deep/er/a.jpg")
    store.delete_object(bucket, "faces/deep/er/a.jpg")
    store.delete_object(bucket, "never/was")
    with pytest.raises(NoSuchKeyException):
        store.get_object(bucket, "faces/deep/er/a.jpg")
    assert _all_keys(backend) == ["faces/b.jpg"]
    store.delete_object(bucket, "faces/b.jpg")
    assert _all_keys(backend) == []


def test_missing_bucket_and_missing_key(backend: Backend) -> None:
    store = backend.store
    calls: list[Callable[[], Any]] = [
        lambda: store.get_object("no-such-bucket", "k"),
        lambda: store.head_object("no-such-bucket", "k"),
        lambda: store.put_object("no-such-bucket", "k", b"x"),
        lambda: store.list_objects("no-such-bucket"),
        lambda: store.delete_object("no-such-bucket", "k"),
    ]
    for call in calls:
        with pytest.raises(NoSuchBucketException, match="no-such-bucket"):
            call()
    store.put_object(backend.bucket, "dir/file", b"x")
    for key in ("missing", "dir", "dir/file/below"):
        with pytest.raises(NoSuchKeyException):
            store.get_object(backend.bucket, key)
        with pytest.raises(NoSuchKeyException):
            store.head_object(backend.bucket, key)


def test_create_bucket_is_idempotent(backend: Backend) -> None:
    backend.store.put_object(backend.bucket, "kept", b"x")
    backend.store.create_bucket(backend.bucket)
    assert _all_keys(backend) == ["kept"]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a/./b", "a//b", "dir/", "n\x00ul", "b\\s"])
def test_bad_keys_are_refused_before_any_io(unusable: ObjectStore, key: str) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: unusable.put_object("bucket", key, b"x"),
        lambda: unusable.get_object("bucket", key),
        lambda: unusable.head_object("bucket", key),
        lambda: unusable.delete_object("bucket", key),
    ]
    for call in calls:
        with pytest.raises(InvalidParameterException, match="key"):
            call()


def test_bad_arguments_are_refused_before_any_io(unusable: ObjectStore) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: unusable.create_bucket("Bad_Bucket"),
        lambda: unusable.put_object("ab", "k", b"x"),
        lambda: unusable.put_object("bucket", "k", b"x", content_type=""),
        lambda: unusable.put_object("bucket", "k", b"x", metadata={"a": "ünicode"}),
        lambda: unusable.put_object("bucket", "k", "text"),  # type: ignore[arg-type]
        lambda: unusable.list_objects("bucket", max_keys=0),
        lambda: unusable.list_objects("bucket", max_keys=1001),
    ]
    for call in calls:
        with pytest.raises(InvalidParameterException):
            call()


def test_threads_never_see_a_body_with_another_writes_etag(backend: Backend) -> None:
    store, bucket = backend.store, backend.bucket
    store.put_object(bucket, "hot", b"0", metadata={"n": "0"})
    failures: list[str] = []

    def write(worker: int) -> None:
        for i in range(15):
            n = str(worker * 100 + i)
            store.put_object(bucket, "hot", n.encode() * 50, metadata={"n": n})

    def read() -> None:
        for _ in range(30):
            got = store.get_object(bucket, "hot")
            n = got.info.metadata["n"]
            if got.info.etag != _md5(got.body) or got.body != n.encode() * (50 if n != "0" else 1):
                failures.append(f"etag {got.info.etag} / metadata {n} / body {got.body[:8]!r}")

    threads = [threading.Thread(target=write, args=(w,)) for w in (1, 2)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# -- local directory specifics --
def test_local_files_are_private_and_keys_cannot_reach_sidecars(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    store.create_bucket("bucket")
    store.put_object("bucket", "a.jpg", b"face", content_type="image/jpeg")
    # Keys that name the store's own directories stay under objects/.
    for key in ("meta/a.jpg", "tmp/x", "objects/a.jpg", ".facelens-meta/a.jpg"):
        store.put_object("bucket", key, b"other", content_type="text/plain")
    head = store.head_object("bucket", "a.jpg")
    assert (head.content_type, head.etag) == ("image/jpeg", _md5(b"face"))
    assert (root / "bucket" / "objects" / "a.jpg").read_bytes() == b"face"

    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for path in [root / "bucket", *(root / "bucket").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} has mode {oct(mode)}"
    assert list((root / "bucket" / "tmp").iterdir()) == []


def test_local_store_refuses_a_key_that_is_also_a_directory(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.create_bucket("bucket")
    store.put_object("bucket", "a/b", b"1")
    with pytest.raises(ConflictException, match="keys under 'a/' exist"):
        store.put_object("bucket", "a", b"2")
    store.put_object("bucket", "c", b"3")
    with pytest.raises(ConflictException, match="the key 'c' exists"):
        store.put_object("bucket", "c/d", b"4")
    store.delete_object("bucket", "a/b")
    store.put_object("bucket", "a", b"2")  # its directory was pruned with its last key
    assert [o.key for o in store.list_objects("bucket").objects] == ["a", "c"]


@pytest.mark.parametrize("backend", ["memory", "s3"], indirect=True)
def test_memory_and_s3_hold_a_key_and_keys_under_it(backend: Backend) -> None:
    """The local store refuses this by design (see the test above); the others hold both."""
    backend.store.put_object(backend.bucket, "a", b"1")
    backend.store.put_object(backend.bucket, "a/b", b"2")
    assert _all_keys(backend) == ["a", "a/b"]


def test_local_restored_copy_keeps_its_metadata(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "live")
    store.create_bucket("bucket")
    store.put_object("bucket", "k", b"body", content_type="image/jpeg", metadata={"a": "1"})
    shutil.copytree(tmp_path / "live", tmp_path / "restored")  # new inodes, same bytes
    restored = LocalObjectStore(tmp_path / "restored").head_object("bucket", "k")
    assert (restored.content_type, dict(restored.metadata)) == ("image/jpeg", {"a": "1"})
    assert restored.etag == _md5(b"body")


def test_local_body_without_its_sidecar_is_described_from_the_bytes(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.create_bucket("bucket")
    store.put_object("bucket", "k", b"old", content_type="image/jpeg", metadata={"a": "1"})
    # As after a crash between the two renames of a put: the sidecar describes a body
    # that never arrived (here the other way round: a body replaced behind our back).
    replacement = tmp_path / "replacement"
    replacement.write_bytes(b"different bytes")
    os.replace(replacement, tmp_path / "bucket" / "objects" / "k")
    got = store.get_object("bucket", "k")
    assert got.body == b"different bytes"
    assert (got.info.etag, got.info.size) == (_md5(b"different bytes"), 15)
    assert (got.info.content_type, dict(got.info.metadata)) == ("application/octet-stream", {})
    (tmp_path / "bucket" / "meta" / "k").unlink()
    assert store.head_object("bucket", "k").etag == _md5(b"different bytes")


def test_local_sidecars_left_by_a_crashed_delete_do_not_block_puts(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.create_bucket("bucket")
    objects = tmp_path / "bucket" / "objects"
    store.put_object("bucket", "a", b"1")
    store.put_object("bucket", "x/y", b"2")
    # A delete removes the body first; crash before the sidecar goes:
    (objects / "a").unlink()
    (objects / "x" / "y").unlink()
    (objects / "x").rmdir()
    with pytest.raises(NoSuchKeyException):
        store.head_object("bucket", "a")
    assert store.list_objects("bucket").objects == ()
    store.put_object("bucket", "a/b", b"3")  # meta/a is an orphan file where a dir must go
    store.put_object("bucket", "x", b"4")  # meta/x is an orphan dir where a file must go
    assert [o.key for o in store.list_objects("bucket").objects] == ["a/b", "x"]
    assert store.get_object("bucket", "x").info.etag == _md5(b"4")


def test_local_stores_sharing_a_root_stay_consistent(tmp_path: Path) -> None:
    """Two stores on one root have separate locks, as two processes would: a reader that
    looks while a put is between its two renames still gets a matching etag and metadata."""
    writer, reader = LocalObjectStore(tmp_path), LocalObjectStore(tmp_path)
    writer.create_bucket("bucket")
    writer.put_object("bucket", "k", b"-", metadata={"n": "-"})
    done = threading.Event()
    mismatches: list[str] = []

    def write() -> None:
        for i in range(100):
            writer.put_object("bucket", "k", str(i).encode() * 10, metadata={"n": str(i)})
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    while not done.is_set():
        got = reader.get_object("bucket", "k")
        n = got.info.metadata.get("n", "missing")
        expected = b"-" if n == "-" else n.encode() * 10
        if got.info.etag != _md5(got.body) or got.body != expected:
            mismatches.append(f"{got.info.etag} {n} {got.body[:12]!r}")
    thread.join()
    assert mismatches == []


# -- S3 specifics --
def test_s3_objects_and_buckets_are_never_public(
    s3_store: S3ObjectStore, s3_bucket: str, moto_server: str
) -> None:
    import boto3

    s3_store.put_object(s3_bucket, "faces/a.jpg", b"face", content_type="image/jpeg")
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    grants = client.get_object_acl(Bucket=s3_bucket, Key="faces/a.jpg")["Grants"]
    owner = client.get_object_acl(Bucket=s3_bucket, Key="faces/a.jpg")["Owner"]["ID"]
    assert [(g["Grantee"].get("ID"), g["Permission"]) for g in grants] == [(owner, "FULL_CONTROL")]
    block = client.get_public_access_block(Bucket=s3_bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert client.head_object(Bucket=s3_bucket, Key="faces/a.jpg")["ContentType"] == "image/jpeg"


def test_s3_bucket_in_another_region(moto_server: str, aws_env: dict[str, str]) -> None:
    import boto3

    store = S3ObjectStore(aws=AwsClientOptions(endpoint_url=moto_server, region="eu-west-1"))
    store.create_bucket("facelens-eu-test")
    store.create_bucket("facelens-eu-test")  # BucketAlreadyOwnedByYou outside us-east-1
    client = boto3.client("s3", endpoint_url=moto_server, region_name="eu-west-1")
    assert (
        client.get_bucket_location(Bucket="facelens-eu-test")["LocationConstraint"] == "eu-west-1"
    )
    store.close()


def test_s3_down_endpoint_is_service_unavailable(aws_env: dict[str, str]) -> None:
    down = S3ObjectStore(
        aws=AwsClientOptions(
            endpoint_url=f"http://127.0.0.1:{_closed_port()}", connect_timeout=0.5, max_attempts=1
        )
    )
    calls: list[Callable[[], Any]] = [
        lambda: down.create_bucket("facelens"),
        lambda: down.put_object("facelens", "k", b"x"),
        lambda: down.get_object("facelens", "k"),
        lambda: down.head_object("facelens", "k"),
        lambda: down.list_objects("facelens"),
        lambda: down.delete_object("facelens", "k"),
    ]
    for call in calls:
        with pytest.raises(ServiceUnavailableException, match="unreachable"):
            call()
