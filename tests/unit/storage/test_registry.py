"""Object store URLs: an explicit table of schemes, nothing opened or connected."""

from __future__ import annotations

from pathlib import Path

import pytest

from facelens.errors import ConfigurationError
from facelens.storage.local import LocalObjectStore
from facelens.storage.memory import MemoryObjectStore
from facelens.storage.registry import open_object_store
from facelens.storage.s3 import S3ObjectStore


def test_known_schemes_open_their_store(tmp_path: Path) -> None:
    local = open_object_store(f"file://{tmp_path / 'with space'}")
    assert isinstance(local, LocalObjectStore)
    assert not (tmp_path / "with space").exists()  # nothing made until a bucket is
    assert isinstance(open_object_store("memory://"), MemoryObjectStore)
    assert isinstance(open_object_store("s3://"), S3ObjectStore)
    s3 = open_object_store("s3://?endpoint_url=http://127.0.0.1:9000&region=eu-west-1")
    assert isinstance(s3, S3ObjectStore)


def test_memory_stores_are_separate() -> None:
    first, second = open_object_store("memory://"), open_object_store("memory://")
    first.create_bucket("shared")
    first.put_object("shared", "k", b"1")
    second.create_bucket("shared")
    assert second.list_objects("shared").objects == ()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://host/dir", "known: file://, memory://, s3://"),
        ("/plain/path", "known: file://"),
        ("file://relative/dir", "absolute"),
        ("file:///", "absolute"),
        ("s3://my-bucket", "bucket is a separate setting"),
        ("s3://?bucket=x", "unknown options"),
        ("s3://?region=a&region=b", "repeats"),
        ("memory://name", "takes no path"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        open_object_store(url)
