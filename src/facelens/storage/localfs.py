"""File-system steps of the local object store: private dirs, durable temp files, sidecars, walk.

Kept apart from :mod:`facelens.storage.local` so the store reads as the
protocol it implements; everything here is plain POSIX file handling with no
knowledge of buckets or errors of ours (callers wrap ``OSError``).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from facelens.errors import InvalidParameterException
from facelens.storage.keys import check_key
from facelens.storage.types import ObjectInfo

DIR_MODE = 0o700
"""Every directory the store makes: face crops are biometric data, for their owner only."""


def kind(path: Path) -> str | None:
    """'dir', 'file' (anything else, symlinks included) or None, without following links."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    return "dir" if stat.S_ISDIR(mode) else "file"


def make_dirs(top: Path, parts: list[str]) -> None:
    """Creates top/parts[0]/parts[1]/... each 0o700 (os.makedirs would give parents 0o755)."""
    path = top
    for part in parts:
        path = path / part
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, DIR_MODE)


def prune(top: Path, directory: Path) -> None:
    """Removes now-empty directories from ``directory`` up to (not including) ``top``."""
    while directory != top and top in directory.parents:
        try:
            os.rmdir(directory)
        except OSError:
            return  # not empty (or gone): stop
        directory = directory.parent


def remove_tree(path: Path) -> None:
    """Deletes a directory tree, unlinking symlinks rather than following them."""
    for entry in os.scandir(path):
        child = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            remove_tree(child)
        else:
            os.unlink(child)
    os.rmdir(path)


def write_temp(directory: Path, data: bytes) -> tuple[str, int]:
    """A fsynced 0o600 temporary file holding ``data``: its path and inode."""
    fd, path = tempfile.mkstemp(dir=directory, prefix=".put-")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        inode = os.fstat(fd).st_ino
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)
    return path, inode


def fsync_dir(directory: Path) -> None:
    """Makes a rename into ``directory`` durable (POSIX needs the directory fsynced)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def sidecar_bytes(info: ObjectInfo, inode: int, previous: dict[str, Any] | None) -> bytes:
    """The sidecar of a body just written to ``inode``, carrying the one it replaces.

    ``previous`` describes the body still in place until the put's second
    rename; a reader in another process that looks in between finds that
    body described there, so it keeps its content type and metadata.
    """
    sidecar: dict[str, Any] = {
        "version": 1,
        "size": info.size,
        "etag": info.etag,
        "content_type": info.content_type,
        "metadata": dict(info.metadata),
        "last_modified": info.last_modified.isoformat(),
        "inode": inode,
    }
    if previous is not None:
        sidecar["previous"] = {k: v for k, v in previous.items() if k != "previous"}
    return json.dumps(sidecar, sort_keys=True).encode()


def read_sidecar(path: Path) -> list[dict[str, Any]]:
    """The well-formed descriptions in a sidecar: its own, then the previous body's if any.

    Empty when the sidecar is missing, unreadable or malformed (then nothing
    in it is trusted and the body is described from its bytes).
    """
    try:
        sidecar = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return []
    if not _well_formed(sidecar):
        return []
    previous = sidecar.get("previous")
    return [sidecar, previous] if _well_formed(previous) else [sidecar]


def _well_formed(sidecar: Any) -> bool:
    valid = (
        isinstance(sidecar, dict)
        and type(sidecar.get("size")) is int
        and type(sidecar.get("inode")) is int
        and isinstance(sidecar.get("etag"), str)
        and isinstance(sidecar.get("content_type"), str)
        and isinstance(sidecar.get("metadata"), dict)
        and all(isinstance(v, str) for v in sidecar["metadata"].values())
        and isinstance(sidecar.get("last_modified"), str)
    )
    if valid:
        try:
            datetime.fromisoformat(sidecar["last_modified"])
        except ValueError:
            return False
    return valid


def info_from_sidecar(bucket: str, key: str, sidecar: dict[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        bucket,
        key,
        sidecar["size"],
        sidecar["etag"],
        datetime.fromisoformat(sidecar["last_modified"]),
        sidecar["content_type"],
        sidecar["metadata"],
    )


def walk(directory: Path, rel: str, prefix: str, after: str) -> Iterator[str]:
    """Keys under ``directory`` that start with ``prefix`` and sort after ``after``, in order.

    A directory sorts as its name plus '/', which places all of its keys
    correctly among its sibling files (no name contains '/'). Subtrees that
    cannot hold a wanted key are skipped without being read.
    """
    try:
        with os.scandir(directory) as scan:
            entries = [
                (rel + e.name + "/" if e.is_dir(follow_symlinks=False) else rel + e.name, e)
                for e in scan
                if not e.is_symlink()
            ]
    except (FileNotFoundError, NotADirectoryError):
        return  # removed while we walked
    for name, entry in sorted(entries, key=lambda item: item[0]):
        if name.endswith("/"):
            if not (name.startswith(prefix) or prefix.startswith(name)):
                continue
            if name < after and not after.startswith(name):
                continue
            yield from walk(Path(entry.path), name, prefix, after)
        elif name > after and name.startswith(prefix) and is_key(name):
            yield name


def is_key(name: str) -> bool:
    try:
        check_key(name)
    except InvalidParameterException:
        return False
    return True
