"""Crops on their way to the object store: a bounded buffer on disk and the thread that empties it.

The frame loop hands a crop to :meth:`Uploader.submit`, which only appends
to an in-memory queue and returns: a slow or unreachable store never
stalls the camera. The upload thread writes each crop to the on-disk
buffer first (so a crash or a power cut does not lose it), then uploads the
oldest and deletes it from the buffer once the store has it. While the
store is down it retries with doubling pauses (up to ``retry_max``
seconds), reporting the failure once per outage; the buffer keeps at most
``max_crops``, dropping the OLDEST (and counting them): for a camera cut
off for days the recent faces matter more than old ones, and an unbounded
buffer would fill the disk. What is still buffered at stop waits on disk
for the next start.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facelens.edge.crops import PendingCrop
from facelens.errors import FacelensError, InvalidParameterException, StorageError
from facelens.sqlite import (
    COUNTERS_SCHEMA,
    SqliteDatabase,
    add_to_counter,
    count_rows,
    drop_oldest,
    read_counter,
)
from facelens.storage.protocol import ObjectStore

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS crops (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    body BLOB NOT NULL,
    metadata TEXT NOT NULL
);
"""
_QUEUE_MAX = 256
"""Crops between the frame loop and the disk; only a stalled disk fills it (then crops drop)."""


@dataclass(frozen=True)
class BufferedCrop:
    id: int
    crop: PendingCrop


class CropBuffer:
    """A bounded first-in-first-out queue of crops in one SQLite file; thread-safe."""

    def __init__(self, path: Path, *, max_crops: int = 2000, fsync: bool = False) -> None:
        if max_crops < 1:
            raise InvalidParameterException(f"max_crops must be positive, not {max_crops}")
        self.path = path
        self.max_crops = max_crops
        self._db = SqliteDatabase(
            path, schema=_SCHEMA + COUNTERS_SCHEMA, what="The crop buffer", fsync=fsync
        )

    def put(self, crop: PendingCrop) -> int:
        """Appends ``crop`` (dropping the oldest beyond ``max_crops``); its id."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO crops (key, body, metadata) VALUES (?, ?, ?)",
                (crop.key, crop.body, json.dumps(crop.metadata)),
            )
            excess = drop_oldest(conn, "crops", keep=self.max_crops)
            if excess:
                _log.warning("Crop buffer full (%d): dropped the %d oldest", self.max_crops, excess)
        if cursor.lastrowid is None:
            raise StorageError("The crop buffer did not return an id")
        return int(cursor.lastrowid)

    def oldest(self) -> BufferedCrop | None:
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT id, key, body, metadata FROM crops ORDER BY id LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        try:
            metadata = {str(k): str(v) for k, v in json.loads(row[3]).items()}
        except (ValueError, AttributeError):
            metadata = {}
        return BufferedCrop(int(row[0]), PendingCrop(str(row[1]), bytes(row[2]), metadata))

    def remove(self, crop_id: int) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM crops WHERE id = ?", (crop_id,))

    def count_dropped(self, n: int) -> None:
        with self._db.transaction() as conn:
            add_to_counter(conn, "dropped", n)

    @property
    def dropped(self) -> int:
        """Crops given up over the file's life (buffer full, or refused for good by the store)."""
        with self._db.transaction() as conn:
            return read_counter(conn, "dropped")

    def __len__(self) -> int:
        with self._db.transaction() as conn:
            return count_rows(conn, "crops")

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class Uploaded:
    """A crop now in the store; latency: seconds from its frame's capture (None if unknown)."""

    key: str
    size: int
    latency: float | None


@dataclass(frozen=True)
class UploadFailed:
    """An attempt failed; ``retrying`` False when the store refused the crop for good."""

    key: str
    error: FacelensError
    retrying: bool


@dataclass(frozen=True)
class UploaderStats:
    uploaded: int
    failures: int
    pending: int
    dropped: int
    latency_sum: float
    latency_count: int


class Uploader:
    """Empties a :class:`CropBuffer` into ``bucket`` of ``store`` on its own thread.

    on_uploaded / on_failed are called from the upload thread; they must be quick.
    """

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        buffer: CropBuffer,
        *,
        on_uploaded: Callable[[Uploaded], None] | None = None,
        on_failed: Callable[[UploadFailed], None] | None = None,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        self._store = store
        self._bucket = bucket
        self._buffer = buffer
        self._on_uploaded = on_uploaded
        self._on_failed = on_failed
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._queue: queue.Queue[PendingCrop] = queue.Queue(maxsize=_QUEUE_MAX)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._latencies: dict[str, float] = {}  # key -> captured_monotonic, this run's crops
        self._uploaded = 0
        self._failures = 0
        self._lost_in_memory = 0
        self._latency_sum = 0.0
        self._latency_count = 0
        self._pending_on_disk = 0  # read from the buffer at start()

    def start(self) -> None:
        if self._thread is not None:
            return
        pending = len(self._buffer)
        if pending:
            _log.info("%d crop(s) left by an earlier run wait in %s", pending, self._buffer.path)
        with self._lock:
            self._pending_on_disk = pending
        self._thread = threading.Thread(target=self._run, name="facelens-uploader", daemon=True)
        self._thread.start()

    def submit(self, crop: PendingCrop) -> bool:
        """Queues ``crop`` for the disk and the store; never blocks. False if it was dropped
        because the disk has stalled for long enough to fill the in-memory queue."""
        try:
            self._queue.put_nowait(crop)
        except queue.Full:
            with self._lock:
                self._lost_in_memory += 1
            _log.error("Upload queue full (the disk is stalled?): dropped crop %s", crop.key)
            return False
        self._wake.set()
        return True

    @property
    def stats(self) -> UploaderStats:
        with self._lock:
            return UploaderStats(
                uploaded=self._uploaded,
                failures=self._failures,
                pending=self._pending_on_disk + self._queue.qsize(),
                dropped=self._buffer.dropped + self._lost_in_memory,
                latency_sum=self._latency_sum,
                latency_count=self._latency_count,
            )

    def flush(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for every crop to be in the store; whether they are."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats.pending == 0:
                return True
            self._wake.set()
            time.sleep(0.05)
        return self.stats.pending == 0

    def stop(self, *, flush_timeout: float = 5.0) -> None:
        """Uploads what it can within ``flush_timeout`` seconds; the rest stays on disk."""
        if self._thread is None:
            return
        self.flush(flush_timeout)
        self._stopping.set()
        self._wake.set()
        self._thread.join(max(flush_timeout, 1.0) + 5.0)
        self._thread = None
        self._spill()  # whatever is still in memory goes to disk for the next start

    # -- the upload thread --
    def _run(self) -> None:
        pause = self._retry_initial
        failing = False
        while not self._stopping.is_set():
            self._spill()
            item = self._oldest()
            if item is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            outcome = self._upload(item, report=not failing)
            if outcome is None:  # the store is away: wait, then try the same crop again
                failing = True
                self._wake.clear()
                self._stopping.wait(pause)
                pause = min(pause * 2, self._retry_max)
                continue
            if failing:
                _log.info(
                    "The object store is back: uploading %d buffered crop(s)", len(self._buffer)
                )
            failing = False
            pause = self._retry_initial

    def _spill(self) -> None:
        """Moves queued crops to the disk buffer."""
        while True:
            try:
                crop = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                self._buffer.put(crop)
            except StorageError:
                with self._lock:
                    self._lost_in_memory += 1
                _log.exception("Could not buffer crop %s on disk: dropped", crop.key)
                continue
            with self._lock:
                if crop.captured_monotonic is not None:
                    self._latencies[crop.key] = crop.captured_monotonic
                    if len(self._latencies) > self._buffer.max_crops + _QUEUE_MAX:
                        # keys of crops the full buffer dropped never come back: forget the oldest
                        del self._latencies[next(iter(self._latencies))]
                self._pending_on_disk = len(self._buffer)

    def _oldest(self) -> BufferedCrop | None:
        try:
            return self._buffer.oldest()
        except StorageError:
            _log.exception("Could not read the crop buffer")
            self._stopping.wait(self._retry_initial)
            return None

    def _upload(self, item: BufferedCrop, *, report: bool) -> bool | None:
        """True: stored; False: refused for good (dropped); None: try again later."""
        crop = item.crop
        try:
            self._store.put_object(
                self._bucket,
                crop.key,
                crop.body,
                content_type="image/jpeg",
                metadata=crop.metadata,
            )
        except InvalidParameterException as exc:  # a key or metadata the store will never take
            _log.error("The object store refused crop %s for good: %s", crop.key, exc)
            self._finish(item, stored=False)
            self._notify_failed(UploadFailed(crop.key, exc, retrying=False))
            return False
        except FacelensError as exc:
            with self._lock:
                self._failures += 1
            if report:
                _log.warning("Upload of %s failed (%s); retrying", crop.key, exc.message)
                self._notify_failed(UploadFailed(crop.key, exc, retrying=True))
            return None
        self._finish(item, stored=True)
        return True

    def _finish(self, item: BufferedCrop, *, stored: bool) -> None:
        try:
            self._buffer.remove(item.id)
        except StorageError:
            _log.exception("Could not remove crop %s from the buffer", item.crop.key)
        if not stored:
            self._buffer.count_dropped(1)
        now = time.monotonic()
        with self._lock:
            captured = self._latencies.pop(item.crop.key, None)
            latency = None if captured is None else now - captured
            if stored:
                self._uploaded += 1
                if latency is not None:
                    self._latency_sum += latency
                    self._latency_count += 1
            self._pending_on_disk = len(self._buffer)
        if stored and self._on_uploaded is not None:
            self._on_uploaded(Uploaded(item.crop.key, len(item.crop.body), latency))

    def _notify_failed(self, failure: UploadFailed) -> None:
        if self._on_failed is not None:
            self._on_failed(failure)
