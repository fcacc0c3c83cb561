"""One file of named numpy arrays and a JSON header, written atomically and checked on read.

Why our own container rather than ``np.savez`` or faiss's writer: a saved
face index is several GB at 10M faces, and a restart must read it at disk
speed into its final memory, with no zip layer, no second copy and nothing
faiss-specific (the faiss lists are re-encoded from the float32 rows on load,
about 0.7 s per million faces, which keeps the file independent of faiss's
own format). A single file replaced by ``os.replace`` means a reader sees an
old or a new index, never a mix, whoever else saves at the same time.

Layout: ``MAGIC``, then each array's raw bytes (C order, aligned to 64),
then the UTF-8 JSON header (array names, dtypes, shapes, offsets, CRC-32s
and the caller's meta), then a trailer: header offset, header length (both
little-endian uint64) and ``MAGIC`` again. Written front to back, the
trailer last, so a truncated file has no valid trailer. Every array's CRC-32
is checked as it is read (about 4 GB/s), so a corrupt file is refused
rather than searched.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from facelens.errors import IndexFileError

MAGIC = b"FLFACEIX"
FORMAT = 1
_ALIGN = 64
_TRAILER = struct.Struct("<QQ8s")
ABANDONED_AFTER_S = 3600.0
"""A temporary file this old is no save in progress (a 10M-face save takes about 20 s)."""
_READ_CHUNK = 1 << 26
"""Bytes per read call (64 MiB): large enough for disk speed, small enough to checksum in cache."""

Chunks = npt.NDArray[Any] | list[npt.NDArray[Any]]
"""An array, or consecutive row chunks of one (same dtype and trailing shape), written as one."""


def write_file(path: Path, meta: dict[str, Any], arrays: dict[str, Chunks]) -> int:
    """Writes ``arrays`` and ``meta`` to ``path`` atomically; returns the file's size in bytes.

    The data goes to a temporary file in the same directory, then is renamed
    over ``path``. It is not fsync'ed: the file is a cache of what the database
    holds, and a file the system lost or tore in a crash fails its trailer or
    checksums on load and is rebuilt, so waiting for the disk (about 20 s for
    the 7 GB of a 10M-face index here) would buy nothing.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(MAGIC)
            entries = {name: _write_array(file, chunks) for name, chunks in arrays.items()}
            header = json.dumps({"format": FORMAT, "meta": meta, "arrays": entries}).encode()
            offset = file.tell()
            file.write(header)
            file.write(_TRAILER.pack(offset, len(header), MAGIC))
            size = file.tell()
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _forget_abandoned(path)
    return size


def _forget_abandoned(path: Path) -> None:
    """Deletes temporary files of ``path`` that a killed process left (older than an hour)."""
    cutoff = time.time() - ABANDONED_AFTER_S
    for temp in path.parent.glob(f".{path.name}.*.tmp"):
        with suppress(OSError):  # another process may be removing it too
            if temp.stat().st_mtime < cutoff:
                temp.unlink()


def _write_array(file: IO[bytes], chunks: Chunks) -> dict[str, Any]:
    parts = chunks if isinstance(chunks, list) else [chunks]
    if not parts:
        raise ValueError("an array needs at least one chunk")
    first = parts[0]
    file.write(b"\0" * (-file.tell() % _ALIGN))
    offset, crc, rows = file.tell(), 0, 0
    for part in parts:
        if part.dtype != first.dtype or part.shape[1:] != first.shape[1:]:
            raise ValueError("chunks of one array differ in dtype or shape")
        data = _bytes_of(np.ascontiguousarray(part))
        crc = zlib.crc32(data, crc)
        file.write(data)
        rows += part.shape[0] if part.ndim else 1
    shape = [rows, *first.shape[1:]] if first.ndim else []
    return {"dtype": first.dtype.str, "shape": shape, "offset": offset, "crc32": crc}


class IndexFile:
    """A file :func:`write_file` wrote, open for reading; use as a context manager.

    Opening reads and checks only the trailer and header; arrays are read
    (and checksummed) on demand. Any inconsistency raises IndexFileError.
    """

    def __init__(self, path: Path) -> None:
        try:
            self._file = open(path, "rb")  # noqa: SIM115  # closed by __exit__ or on error below
        except OSError as exc:
            raise IndexFileError(f"cannot open {path}: {exc}") from exc
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            self._header = self._read_header()
        except BaseException:
            self._file.close()
            raise
        self.meta: dict[str, Any] = self._header["meta"]

    def __enter__(self) -> IndexFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def names(self) -> set[str]:
        return set(self._header["arrays"])

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._entry(name)[1])

    def array(self, name: str) -> npt.NDArray[Any]:
        """The whole array ``name``, checksum verified."""
        dtype, shape, offset, crc = self._entry(name)
        out = np.empty(shape, dtype=dtype)
        self._read_into(out, offset, crc)
        return out

    def rows_into(self, name: str, blocks: Iterator[npt.NDArray[Any]]) -> None:
        """Reads array ``name`` row-wise into the arrays ``blocks`` yields, until it is read.

        For arrays too large to hold twice: the caller allocates its final
        storage one block at a time. The checksum covers the whole array.
        """
        dtype, shape, offset, crc = self._entry(name)
        rows, done, running = shape[0] if shape else 0, 0, 0
        self._file.seek(offset)
        while done < rows:
            block = next(blocks, None)
            if block is None or block.dtype != dtype or tuple(block.shape[1:]) != tuple(shape[1:]):
                raise IndexFileError(f"no fitting storage for the rows of {name!r}")
            target = block[: rows - done]
            running = self._fill(_bytes_of(target), running)
            done += len(target)
        if running != crc:
            raise IndexFileError(f"the array {name!r} fails its checksum")

    def _entry(self, name: str) -> tuple[np.dtype[Any], list[int], int, int]:
        try:
            entry = self._header["arrays"][name]
            dtype = np.dtype(entry["dtype"])
            shape = [int(n) for n in entry["shape"]]
            offset, crc = int(entry["offset"]), int(entry["crc32"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFileError(f"the header does not describe an array {name!r}") from exc
        if dtype.hasobject or min(shape, default=0) < 0:
            raise IndexFileError(f"the array {name!r} has an unusable type or shape")
        if offset < len(MAGIC) or offset + dtype.itemsize * int(np.prod(shape)) > self._size:
            raise IndexFileError(f"the array {name!r} lies outside the file")
        return dtype, shape, offset, crc

    def _read_header(self) -> dict[str, Any]:
        if self._size < len(MAGIC) + _TRAILER.size:
            raise IndexFileError("the file is too short to be a saved index")
        if self._file.read(len(MAGIC)) != MAGIC:
            raise IndexFileError("the file is not a saved index")
        self._file.seek(self._size - _TRAILER.size)
        offset, length, magic = _TRAILER.unpack(self._file.read(_TRAILER.size))
        if magic != MAGIC or offset + length + _TRAILER.size != self._size:
            raise IndexFileError("the file's trailer is damaged (a truncated file?)")
        self._file.seek(offset)
        try:
            header = json.loads(self._file.read(length))
        except ValueError as exc:
            raise IndexFileError("the file's header is not JSON") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise IndexFileError("the file has another format version")
        if not isinstance(header.get("meta"), dict) or not isinstance(header.get("arrays"), dict):
            raise IndexFileError("the file's header is incomplete")
        return header

    def _read_into(self, out: npt.NDArray[Any], offset: int, crc: int) -> None:
        self._file.seek(offset)
        if self._fill(_bytes_of(out), 0) != crc:
            raise IndexFileError("an array fails its checksum")

    def _fill(self, target: memoryview, crc: int) -> int:
        """Reads exactly ``len(target)`` bytes into ``target``; returns the running CRC-32."""
        done = 0
        while done < len(target):
            part = target[done : done + _READ_CHUNK]
            got = self._file.readinto(part)
            if not got:
                raise IndexFileError("the file ends inside an array")
            crc = zlib.crc32(part[:got], crc)
            done += got
        return crc


def _bytes_of(array: npt.NDArray[Any]) -> memoryview:
    """A writable byte view of a C-contiguous array (any dtype, any shape)."""
    return memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
