"""The catalogue of model files facelens knows, and how one is fetched and verified.

A model file is code-like input to a native parser (ONNX Runtime, OpenCV),
so each entry pins the exact bytes: size and SHA-256. A file counts as
*verified* only when both match; a download is renamed into place only
after they do, so the models directory never holds a half-written or
altered file under a known name.

Downloads are resumable: bytes arrive in ``<file>.part`` next to the target,
and a later pull asks for the rest with an HTTP ``Range`` request. A server
that ignores ``Range`` (status 200, not 206), answers for another offset, or
a partial file longer than the model, restarts the download from zero: the
hash covers the whole file, so a wrong guess costs time, never integrity.

Embedders and detectors look entries up here by name (:func:`lookup`);
tests and mirrors pass a catalogue of their own (every function takes one).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Final

from facelens import __version__
from facelens.config import Settings
from facelens.errors import (
    BadDigestException,
    ConfigurationError,
    ConflictException,
    InvalidParameterException,
    ServiceUnavailableException,
)

__all__ = [
    "CATALOGUE",
    "DEFAULT_TIMEOUT_S",
    "SFACE",
    "YUNET",
    "ModelEntry",
    "ModelState",
    "PullResult",
    "lookup",
    "model_state",
    "models_directory",
    "pull",
    "source_url",
]

_OPENCV_ZOO: Final = (
    "https://github.com/opencv/opencv_zoo/raw/966be4cb6eefc2a4f586ed0581bf4bbaa2533070/models/"
)
"""OpenCV Zoo at a fixed commit (2025-05-29), so the URL names the bytes we pin.

The files are Git LFS objects: ``github.com/.../raw/...`` redirects to
``media.githubusercontent.com``, which serves them with ``Range`` support.
"""

FILE_MODE: Final = 0o644
"""Mode of a model file put in place: readable by all, written by its owner.

A model is public weights, not personal data, and the service account that
runs ``facelens serve`` may not be the user who pulled it. The models
directory itself keeps whatever mode its owner gave it.
"""

DEFAULT_TIMEOUT_S: Final = 30.0
"""Seconds a connect or a single read may wait before the pull gives up (and can resume)."""

PART_SUFFIX: Final = ".part"
"""A download under way is ``<file>.part`` next to where the file will go."""

_CHUNK: Final = 1 << 16
"""Bytes read from the connection per step (64 KiB): the progress bar's granularity."""


@dataclass(frozen=True)
class ModelEntry:
    """One model file facelens can use: where it comes from and the bytes it must be.

    name: the catalogue's short name (``facelens models pull <name>``).
    file_name: the file's name in the models directory (the upstream name).
    size: its length in bytes.
    sha256: its SHA-256, lower-case hex.
    kind: "detector" or "embedder": which engine setting can use it.
    licence: the upstream licence of the weights (SPDX identifier).
    url: where the official copy is downloaded from.
    input_shape: for a model whose input is fixed, its shape (None: any size
        in that place, e.g. a symbolic batch); checked with ONNX Runtime
        before a download is put in place. None: not checked.
    description: one line for ``models list``.
    """

    name: str
    file_name: str
    size: int
    sha256: str
    kind: str
    licence: str
    url: str
    input_shape: tuple[int | None, ...] | None = None
    description: str = ""


SFACE: Final = ModelEntry(
    name="sface",
    file_name="face_recognition_sface_2021dec.onnx",
    size=38_696_353,
    sha256="0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
    kind="embedder",
    licence="Apache-2.0",
    url=_OPENCV_ZOO + "face_recognition_sface/face_recognition_sface_2021dec.onnx",
    input_shape=(None, 3, 112, 112),
    description=(
        "SFace face embedder (OpenCV Zoo, 2021dec): 112x112 aligned face in, 128 numbers out."
    ),
)

YUNET: Final = ModelEntry(
    name="yunet",
    file_name="face_detection_yunet_2023mar.onnx",
    size=232_589,
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    kind="detector",
    licence="MIT",
    url=_OPENCV_ZOO + "face_detection_yunet/face_detection_yunet_2023mar.onnx",
    description="YuNet face detector (OpenCV Zoo, 2023mar): boxes and five landmarks.",
)

CATALOGUE: Final[Mapping[str, ModelEntry]] = MappingProxyType(
    {entry.name: entry for entry in (SFACE, YUNET)}
)
"""Every model facelens knows, by name; read-only (pass another mapping to change it)."""


@dataclass(frozen=True)
class ModelState:
    """What the models directory holds for one entry.

    path: where the file is (or would be).
    present: a file is there.
    verified: it is there and its size and SHA-256 match the entry.
    size: its length in bytes, None when absent.
    partial: bytes of an unfinished download (``<file>.part``) waiting to resume, or 0.
    """

    entry: ModelEntry
    path: Path
    present: bool
    verified: bool
    size: int | None
    partial: int


@dataclass(frozen=True)
class PullResult:
    """What one pull did.

    already_present: a verified file was there; nothing was downloaded.
    resumed_from: bytes of an earlier partial download that were kept (0: from scratch).
    downloaded: bytes received by this pull.
    """

    entry: ModelEntry
    path: Path
    already_present: bool
    resumed_from: int
    downloaded: int


Progress = Callable[[int, int], None]
"""Called with (bytes present, bytes expected) as a download proceeds."""


def models_directory(settings: Settings) -> Path:
    """Where model files live: ``models_dir``, or ``<home>/models`` when it is unset."""
    return settings.models_dir if settings.models_dir is not None else settings.home / "models"


def lookup(name: str, catalogue: Mapping[str, ModelEntry] = CATALOGUE) -> ModelEntry:
    """The entry called ``name``; InvalidParameterException naming the known ones otherwise."""
    try:
        return catalogue[name]
    except KeyError:
        known = ", ".join(sorted(catalogue)) or "none"
        raise InvalidParameterException(f"unknown model {name!r}; known: {known}") from None


def source_url(entry: ModelEntry, url: str | None = None) -> str:
    """Where ``entry`` is downloaded from.

    ``url`` overrides the official location (a mirror, a test server): ending
    in "/" it is a base to which the file name is appended, otherwise it is
    the file's own URL. Only http and https are accepted.
    """
    chosen = entry.url if url is None else (url + entry.file_name if url.endswith("/") else url)
    refusal = InvalidParameterException(
        f"model URL {chosen!r} must be an http:// or https:// URL with a host"
    )
    if any(char.isspace() or not char.isprintable() for char in chosen):
        raise refusal
    try:
        parts = urllib.parse.urlsplit(chosen)
        parts.port  # noqa: B018 - urllib checks the port only when it is read
    except ValueError:
        raise refusal from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refusal
    return chosen


def model_state(entry: ModelEntry, directory: Path) -> ModelState:
    """Whether ``entry``'s file is in ``directory`` and matches its size and hash.

    Reads the whole file: SFace's 38.7 MB hash in about 30 ms from the page cache.
    """
    path = directory / entry.file_name
    part = path.with_name(path.name + PART_SUFFIX)
    partial = part.stat().st_size if part.is_file() else 0
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ModelState(entry, path, present=False, verified=False, size=None, partial=partial)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the model file {path}: {exc}") from exc
    verified = size == entry.size and _file_sha256(path) == entry.sha256
    return ModelState(entry, path, present=True, verified=verified, size=size, partial=partial)


def pull(
    entry: ModelEntry,
    directory: Path,
    *,
    url: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: Progress | None = None,
) -> PullResult:
    """Downloads ``entry`` into ``directory``, verified, resuming an earlier partial download.

    A verified file already there is kept (nothing is fetched). Errors:
    InvalidParameterException for a bad URL; ServiceUnavailableException when
    the server cannot be reached, answers an HTTP error, or the connection
    ends early (the partial file is kept: run again to resume);
    BadDigestException when the bytes are not the entry's (wrong size or
    SHA-256; the partial file is deleted); ConfigurationError when the
    directory cannot be written, or the model's input is not the entry's
    ``input_shape``; ConflictException when another pull of the same file is
    under way.
    """
    source = source_url(entry, url)
    target = directory / entry.file_name
    if model_state(entry, directory).verified:
        return PullResult(entry, target, already_present=True, resumed_from=0, downloaded=0)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(target.with_name(target.name + PART_SUFFIX), os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write to the models directory {directory}: {exc.strerror or exc}"
        ) from exc
    with os.fdopen(fd, "r+b") as part:
        try:
            # Two pulls appending to one .part would interleave their bytes.
            fcntl.flock(part.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictException(
                f"another pull of {entry.file_name} into {directory} is under way"
            ) from None
        # The other pull may have finished while we waited for nothing.
        if model_state(entry, directory).verified:
            return PullResult(entry, target, already_present=True, resumed_from=0, downloaded=0)
        return _Download(entry, source, target, part, timeout_s, progress).run()


class _Download:
    """One pull's state: the open, locked ``.part`` file and the hash of what it holds."""

    def __init__(
        self,
        entry: ModelEntry,
        source: str,
        target: Path,
        part: IO[bytes],
        timeout_s: float,
        progress: Progress | None,
    ) -> None:
        self.entry = entry
        self.source = source
        self.target = target
        self.part_path = target.with_name(target.name + PART_SUFFIX)
        self.part = part
        self.timeout_s = timeout_s
        self.progress = progress
        self.hasher = hashlib.sha256()
        self.offset = 0
        self.received = 0

    def run(self) -> PullResult:
        self._adopt_partial()
        if self.offset < self.entry.size:
            self._fetch()
        self._finish()
        return PullResult(
            self.entry,
            self.target,
            already_present=False,
            # What was not received now came from the earlier partial download
            # (less than it held, when the server made us restart).
            resumed_from=self.entry.size - self.received,
            downloaded=self.received,
        )

    def _adopt_partial(self) -> None:
        """Hashes what an earlier pull left in ``.part``, to continue after it."""
        self.part.seek(0, os.SEEK_END)
        length = self.part.tell()
        if length > self.entry.size:
            # Not a prefix of this model (another version's file?): start over.
            self._restart()
            return
        self.part.seek(0)
        while chunk := self.part.read(_CHUNK):
            self.hasher.update(chunk)
        self.offset = length
        self._report()

    def _restart(self) -> None:
        self.part.seek(0)
        self.part.truncate()
        self.hasher = hashlib.sha256()
        self.offset = 0

    def _fetch(self) -> None:
        response = self._open(ranged=self.offset > 0)
        with response:
            if response.status == 206:
                start, total = _content_range(response.headers.get("Content-Range"))
                if total is not None and total != self.entry.size:
                    self._wrong_bytes(f"the server says the file is {total} bytes")
                if start != self.offset:
                    if self.offset == 0:
                        raise ServiceUnavailableException(
                            f"{self.source} answered part of the file (Content-Range "
                            f"{response.headers.get('Content-Range')!r}) when asked for all of it"
                        )
                    # Not the bytes we asked for: start over, without Range.
                    response.close()
                    self._restart()
                    self._fetch()
                    return
            elif response.status == 200:
                if self.offset > 0:
                    # The server ignored Range and sends the whole file.
                    self._restart()
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) != self.entry.size:
                    self._wrong_bytes(f"the server says the file is {int(length)} bytes")
            else:
                raise ServiceUnavailableException(
                    f"{self.source} answered HTTP {response.status} {response.reason}, "
                    "not the model file"
                )
            self._receive(response)

    def _open(self, *, ranged: bool) -> http.client.HTTPResponse:
        headers = {"User-Agent": f"facelens/{__version__}", "Accept-Encoding": "identity"}
        if ranged:
            headers["Range"] = f"bytes={self.offset}-"
        request = urllib.request.Request(self.source, headers=headers)
        try:
            # urllib follows redirects (GitHub's raw URL to its LFS media host) and keeps Range.
            response: http.client.HTTPResponse = urllib.request.urlopen(
                request, timeout=self.timeout_s
            )
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and ranged:
                # Range not satisfiable: the server's file is shorter than our part.
                self._restart()
                return self._open(ranged=False)
            raise ServiceUnavailableException(
                f"{self.source} answered HTTP {exc.code} {exc.reason}"
            ) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise ServiceUnavailableException(f"cannot download {self.source}: {reason}") from exc
        return response

    def _receive(self, response: http.client.HTTPResponse) -> None:
        try:
            while chunk := response.read(min(_CHUNK, self.entry.size - self.offset + 1)):
                if self.offset + len(chunk) > self.entry.size:
                    self._wrong_bytes(f"the server sent more than {self.entry.size} bytes")
                self.part.write(chunk)
                self.hasher.update(chunk)
                self.offset += len(chunk)
                self.received += len(chunk)
                self._report()
        except (http.client.HTTPException, OSError) as exc:
            self._interrupted(exc)
        finally:
            self.part.flush()
        if self.offset < self.entry.size:
            self._interrupted(None)

    def _interrupted(self, cause: BaseException | None) -> None:
        self.part.flush()
        why = f" ({cause})" if cause is not None else ""
        raise ServiceUnavailableException(
            f"the download of {self.entry.file_name} from {self.source} stopped after "
            f"{self.offset} of {self.entry.size} bytes{why}; run the pull again to resume "
            f"from {self.part_path}"
        ) from cause

    def _finish(self) -> None:
        digest = self.hasher.hexdigest()
        if digest != self.entry.sha256:
            self._wrong_bytes(f"its SHA-256 is {digest}, not {self.entry.sha256}")
        self.part.flush()
        os.fsync(self.part.fileno())
        if self.entry.input_shape is not None:
            problem = _input_shape_problem(self.part_path, self.entry.input_shape)
            if problem is not None:
                self._discard()
                raise ConfigurationError(
                    f"{self.entry.file_name} matches its pinned hash but {problem}: the "
                    "catalogue entry is wrong; the file was not put in place"
                )
        try:
            os.chmod(self.part.fileno(), FILE_MODE)
            os.replace(self.part_path, self.target)
            _fsync_directory(self.target.parent)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot put {self.target} in place: {exc.strerror or exc}"
            ) from exc

    def _wrong_bytes(self, why: str) -> None:
        self._discard()
        raise BadDigestException(
            f"{self.source} is not {self.entry.file_name} ({self.entry.size} bytes, SHA-256 "
            f"{self.entry.sha256}): {why}; the partial download was deleted"
        )

    def _discard(self) -> None:
        self._restart()
        with contextlib.suppress(FileNotFoundError):
            self.part_path.unlink()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.offset, self.entry.size)


_CONTENT_RANGE: Final = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", re.ASCII)


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total length) of a 206's ``Content-Range``; None where it does not say."""
    match = _CONTENT_RANGE.fullmatch(header or "")
    if match is None:
        return None, None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _input_shape_problem(path: Path, expected: tuple[int | None, ...]) -> str | None:
    """Why the ONNX model at ``path`` does not take one input of ``expected`` shape, or None.

    Runs only on bytes whose pinned hash matched, so this guards against a
    wrong catalogue entry, not against a hostile file.
    """
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime's errors derive from Exception only
        return f"ONNX Runtime cannot load it ({exc})"
    inputs = session.get_inputs()
    if len(inputs) != 1:
        return f"it has {len(inputs)} inputs, not one"
    shape = tuple(inputs[0].shape)
    matches = len(shape) == len(expected) and all(
        want is None or got == want for got, want in zip(shape, expected, strict=True)
    )
    if not matches:
        wanted = "x".join("N" if dim is None else str(dim) for dim in expected)
        return f"its input has shape {shape}, not {wanted}"
    return None


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def _fsync_directory(directory: Path) -> None:
    """Makes the rename durable: a crash right after it must not lose the new name."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
