"""The object store on a local directory: the default, with no server to run.

Layout under ``root`` (every directory 0o700, every file 0o600: these are
face crops, biometric data, never readable by other users)::

    root/<bucket>/objects/<key>   the body, byte for byte (browsable, greppable)
    root/<bucket>/meta/<key>      JSON sidecar: size, MD5 etag, content type,
                                  user metadata, last modified, body inode
    root/<bucket>/tmp/            temporary files, renamed into place

Keys only ever resolve under ``objects/`` (``check_key`` refuses ``..``,
absolute keys and empty segments), so no key can address a sidecar or a
temporary file, and no key can escape the bucket.

Writes are atomic per file: the body is written to a temporary file in
``tmp/`` (same file system) and fsynced, then the sidecar likewise, and
both are renamed into place with ``os.replace``, sidecar first, then body;
then both directories are fsynced. Two renames cannot be one atomic step, so
the sidecar records the inode of the body it describes (a rename keeps the
inode) and also carries the description of the body it replaces. A reader
opens the body (pinning that inode), reads the sidecar, and uses whichever
of its two descriptions has the body's inode and size: before the second
rename that is the old one, after it the new one. Within this process a lock
makes readers and writers take turns, so the first always fits. Across
processes the second covers a writer between its renames; if neither fits
(two processes writing one key at once, or a crash between the renames),
the reader looks again, and if nothing fits it hashes the body: if the hash
equals a description's etag (a tree restored from a backup: same bytes, new
inodes) that description is used, otherwise the body is described from its
bytes alone (computed MD5, file mtime, default content type, no user
metadata). A reader never gets an etag that does not match the bytes it got.

One limitation of a directory tree that S3 does not have: a key cannot be
both an object and a "directory" of other keys (``a`` and ``a/b``). Putting
the second raises ConflictException. A crash can leave files in ``tmp/``;
they are never listed and may be deleted at any time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facelens.errors import (
    ConflictException,
    InvalidParameterException,
    NoSuchBucketException,
    NoSuchKeyException,
    StorageError,
)
from facelens.storage import localfs
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

_OBJECTS, _META, _TMP = "objects", "meta", "tmp"
_ATTEMPTS = 3
"""Tries at a read (body + sidecar) before hashing the body, and at renaming a
put into place: another process's put (or delete) is between its two steps
for microseconds, so a second look nearly always finds it finished."""


class LocalObjectStore:
    """:class:`~facelens.storage.protocol.ObjectStore` on a directory (see the module docstring).

    ``root`` is created (0o700) on the first ``create_bucket``; an existing
    ``root`` keeps its permissions. Safe for threads (one lock per store) and
    for several processes sharing ``root``.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._lock = threading.RLock()

    def close(self) -> None:
        """Nothing is held open between calls; present for the protocol."""

    def create_bucket(self, bucket: str) -> None:
        check_bucket(bucket)
        try:
            if not self._root.is_dir():
                self._root.mkdir(mode=localfs.DIR_MODE, parents=True, exist_ok=True)
            base = self._root / bucket
            localfs.make_dirs(self._root, [bucket, _OBJECTS])
            localfs.make_dirs(base, [_META])
            localfs.make_dirs(base, [_TMP])
        except OSError as exc:
            raise StorageError(
                f"Creating bucket {bucket} under {self._root} failed: {exc}"
            ) from exc

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
        base = self._bucket_dir(bucket)
        info = ObjectInfo(
            bucket,
            key,
            len(data),
            hashlib.md5(data, usedforsecurity=False).hexdigest(),
            datetime.now(UTC),
            content_type,
            user_metadata,
        )
        pending: list[str] = []  # temporary files not yet renamed into place
        try:
            localfs.make_dirs(base, [_TMP])  # in case someone cleaned up tmp/ itself
            body_tmp, inode = localfs.write_temp(base / _TMP, data)
            pending.append(body_tmp)
            with self._lock:
                body_path, meta_path = self._install(base, key, info, body_tmp, inode, pending)
            localfs.fsync_dir(meta_path.parent)
            localfs.fsync_dir(body_path.parent)
        except OSError as exc:
            raise StorageError(f"Writing {bucket}/{key} failed: {exc}") from exc
        finally:
            for leftover in pending:
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
        return info

    def get_object(self, bucket: str, key: str) -> StoredObject:
        info, body = self._describe(bucket, key, want_body=True)
        return StoredObject(info, body)

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        return self._describe(bucket, key, want_body=False)[0]

    def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        max_keys: int = 1000,
        next_token: str | None = None,
    ) -> ObjectPage:
        """Keys in UTF-8 byte order (which is code-point order, so ``str`` order).

        Listings carry key, size, etag and last modified only, as S3's
        ListObjectsV2 does; ``head_object`` gives content type and metadata.
        """
        check_prefix(prefix)
        check_max_keys(max_keys)
        base = self._bucket_dir(bucket)
        after = decode_token(next_token, bucket=bucket, prefix=prefix)
        return page_of(bucket, prefix, self._infos(bucket, base, prefix, after), max_keys)

    def delete_object(self, bucket: str, key: str) -> None:
        check_key(key)
        base = self._bucket_dir(bucket)
        try:
            with self._lock:
                # Body first: a crash in between leaves an orphan sidecar, which is
                # never trusted (no body, or a body with another inode).
                for tree in (_OBJECTS, _META):
                    path = base / tree / key
                    if localfs.kind(path) == "file":
                        os.unlink(path)
                    localfs.prune(base / tree, path.parent)
        except OSError as exc:
            raise StorageError(f"Deleting {bucket}/{key} failed: {exc}") from exc

    # -- internals --
    def _bucket_dir(self, bucket: str) -> Path:
        check_bucket(bucket)
        base = self._root / bucket
        if not (base / _OBJECTS).is_dir():
            raise NoSuchBucketException(f"The specified bucket does not exist: {bucket}")
        return base

    def _install(
        self,
        base: Path,
        key: str,
        info: ObjectInfo,
        body_tmp: str,
        inode: int,
        pending: list[str],
    ) -> tuple[Path, Path]:
        """Writes the sidecar, renames it, then the body into place (call with the lock held).

        The sidecar is written here, under the lock, because it carries the
        description of the body it replaces. Each temporary file leaves
        ``pending`` once renamed.
        """
        meta_tmp: str | None = None
        for attempt in range(1, _ATTEMPTS + 1):
            body_path, meta_path = self._prepare(base, key)
            try:
                if meta_tmp is None:
                    in_place = _describing(localfs.read_sidecar(meta_path), body_path)
                    sidecar = localfs.sidecar_bytes(info, inode, in_place)
                    meta_tmp, _ = localfs.write_temp(base / _TMP, sidecar)
                    pending.append(meta_tmp)
                if meta_tmp in pending:
                    os.replace(meta_tmp, meta_path)
                    pending.remove(meta_tmp)
                os.replace(body_tmp, body_path)
                pending.remove(body_tmp)
                break
            except FileNotFoundError:
                # Another process's delete pruned a directory we had just made.
                if attempt == _ATTEMPTS:
                    raise
        return body_path, meta_path

    def _prepare(self, base: Path, key: str) -> tuple[Path, Path]:
        """Directories for ``key`` in both trees; refuses a key/prefix clash; clears orphans."""
        parts = key.split("/")
        for depth in range(1, len(parts)):
            ancestor = "/".join(parts[:depth])
            if localfs.kind(base / _OBJECTS / ancestor) == "file":
                raise _clash(key, f"the key {ancestor!r} exists")
        body_path = base / _OBJECTS / key
        if localfs.kind(body_path) == "dir":
            raise _clash(key, f"keys under {key + '/'!r} exist")
        localfs.make_dirs(base / _OBJECTS, parts[:-1])
        # The sidecar tree mirrors the object tree; what clashes there is a leftover
        # of a crashed delete (the object tree just passed the same checks).
        for depth in range(1, len(parts)):
            orphan = base / _META / "/".join(parts[:depth])
            if localfs.kind(orphan) == "file":
                os.unlink(orphan)
        meta_path = base / _META / key
        if localfs.kind(meta_path) == "dir":
            localfs.remove_tree(meta_path)
        localfs.make_dirs(base / _META, parts[:-1])
        return body_path, meta_path

    def _describe(self, bucket: str, key: str, *, want_body: bool) -> tuple[ObjectInfo, bytes]:
        check_key(key)
        base = self._bucket_dir(bucket)
        for attempt in range(1, _ATTEMPTS + 1):
            last = attempt == _ATTEMPTS
            described = self._read_once(base, bucket, key, want_body=want_body, last=last)
            if described is not None:
                return described
        raise StorageError(f"Reading {bucket}/{key} failed")  # unreachable: the last try answers

    def _read_once(
        self, base: Path, bucket: str, key: str, *, want_body: bool, last: bool
    ) -> tuple[ObjectInfo, bytes] | None:
        """Body and description if the sidecar matches the body (or ``last``); else None."""
        with self._lock:
            fd, st = _open_body(base / _OBJECTS / key, bucket, key)
            descriptions = localfs.read_sidecar(base / _META / key)
        try:
            trusted = _matching(descriptions, inode=st.st_ino, size=st.st_size)
            if trusted is not None:
                body = localfs.read_all(fd) if want_body else b""
                return localfs.info_from_sidecar(bucket, key, trusted), body
            if not last:
                return None  # another process is between its two renames: look again
            body = localfs.read_all(fd)
        except OSError as exc:
            raise StorageError(f"Reading {bucket}/{key} failed: {exc}") from exc
        finally:
            os.close(fd)
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
        same_bytes = _matching(descriptions, etag=etag, size=len(body))
        if same_bytes is not None:  # a restored copy: same bytes, new inode
            return localfs.info_from_sidecar(bucket, key, same_bytes), body
        modified = datetime.fromtimestamp(st.st_mtime, UTC)
        return ObjectInfo(bucket, key, len(body), etag, modified), body

    def _infos(self, bucket: str, base: Path, prefix: str, after: str) -> Iterator[ObjectInfo]:
        for key in localfs.walk(base / _OBJECTS, "", prefix, after):
            try:
                info = self.head_object(bucket, key)
            except NoSuchKeyException:
                continue  # deleted since the directory was read
            yield replace(info, content_type="application/octet-stream", metadata={})


def _clash(key: str, reason: str) -> ConflictException:
    return ConflictException(
        f"Key {key!r} cannot be stored: {reason}, and a local store cannot hold both a key "
        "and keys under it (a file cannot also be a directory)"
    )


def _matching(descriptions: list[dict[str, Any]], **wanted: object) -> dict[str, Any] | None:
    """The first description whose fields equal ``wanted`` (inode and size, or etag and size)."""
    for description in descriptions:
        if all(description[name] == value for name, value in wanted.items()):
            return description
    return None


def _describing(descriptions: list[dict[str, Any]], body_path: Path) -> dict[str, Any] | None:
    """Which of the current sidecar's descriptions fits the body now in place, if any."""
    try:
        st = os.lstat(body_path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return _matching(descriptions, inode=st.st_ino, size=st.st_size)


def _open_body(path: Path, bucket: str, key: str) -> tuple[int, os.stat_result]:
    """The body's descriptor (pinned to one inode whatever renames follow) and its stat."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        raise _no_key(bucket, key) from exc
    except OSError as exc:  # ELOOP: a symlink, which this store never makes
        raise StorageError(f"Opening {bucket}/{key} failed: {exc}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # a directory: a prefix of other keys, not a key
        os.close(fd)
        raise _no_key(bucket, key)
    return fd, st


def _no_key(bucket: str, key: str) -> NoSuchKeyException:
    return NoSuchKeyException(f"The specified key does not exist: {bucket}/{key}")
