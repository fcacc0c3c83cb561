"""Opens the object store named by a URL: an explicit table of schemes, no guessing.

* ``file:///abs/dir``: :class:`~facelens.storage.local.LocalObjectStore` on that
  directory. The path is taken literally (not percent-decoded), as
  ``Settings.objects_store_url`` builds it, and must be absolute.
* ``s3://`` with optional ``?endpoint_url=...&region=...``:
  :class:`~facelens.storage.s3.S3ObjectStore`. The bucket is not part of the
  URL (it is chosen per call, ``Settings.bucket``), so ``s3://name`` is refused
  rather than silently ignoring ``name``.
* ``memory://``: a fresh :class:`~facelens.storage.memory.MemoryObjectStore`.

Nothing is connected or created here: stores open lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from facelens.errors import ConfigurationError
from facelens.storage.protocol import ObjectStore
from facelens.urls import url_options


def _file(url: str) -> ObjectStore:
    from facelens.storage.local import LocalObjectStore

    path = url.removeprefix("file://")
    if not path.startswith("/") or path == "/":
        raise ConfigurationError(
            f"file URL {url!r} must name an absolute directory: file:///absolute/path"
        )
    return LocalObjectStore(Path(path))


def _s3(url: str) -> ObjectStore:
    from facelens.aws_clients import AwsClientOptions
    from facelens.storage.s3 import S3ObjectStore

    parts = urlsplit(url)
    if parts.netloc or parts.path not in ("", "/") or parts.fragment:
        raise ConfigurationError(
            f"s3 URL {url!r} must be 's3://' with an optional '?endpoint_url=...&region=...'; "
            "the bucket is a separate setting"
        )
    options = url_options(url, known=("endpoint_url", "region"))
    return S3ObjectStore(
        aws=AwsClientOptions(endpoint_url=options.get("endpoint_url"), region=options.get("region"))
    )


def _memory(url: str) -> ObjectStore:
    from facelens.storage.memory import MemoryObjectStore

    if url not in ("memory://", "memory:"):
        raise ConfigurationError(f"memory URL {url!r} takes no path or options: memory://")
    return MemoryObjectStore()


STORES: dict[str, Callable[[str], ObjectStore]] = {"file": _file, "s3": _s3, "memory": _memory}


def open_object_store(url: str) -> ObjectStore:
    """The object store for ``url`` ('file:///dir', 's3://[?endpoint_url=...&region=...]',
    'memory://')."""
    scheme = urlsplit(url).scheme
    factory = STORES.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(STORES))
        raise ConfigurationError(f"unknown object store URL scheme in {url!r}; known: {known}")
    return factory(url)
