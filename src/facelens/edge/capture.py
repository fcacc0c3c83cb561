"""A background reader that turns a source into Frames, so the frame loop never waits on I/O.

Why a thread: reading a network camera blocks for as long as the network
does (up to the source's read timeout), and reopening a lost camera can take
minutes of backoff. The frame loop must keep running meanwhile (serving the
live view, publishing status, draining uploads), so a daemon thread reads
and reconnects, and the loop only takes what is there with
:meth:`FrameFeed.next`.

Delivery policy, the main trade-off:

* a file (without ``realtime``) goes through a small bounded queue
  (:data:`FILE_QUEUE_SIZE`) and the reader blocks when it is full: no frame
  is ever dropped and the file is processed as fast as the loop goes, which
  is what a batch run over a recording wants;
* a live source (and a file with ``realtime=True``, paced at its own frame
  rate to behave like a camera) goes through a mailbox of one: if the loop
  has not taken the previous frame when a new one arrives, the old one is
  replaced and counted in ``frames_dropped``. A slow loop then always works
  on the newest frame instead of falling ever further behind.

A live source whose ``read()`` returns None (it stalled past its timeout or
the connection died) is reported LOST, closed, and reopened with
exponential backoff; a file whose ``read()`` returns None has ENDED.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from facelens.edge.sources import FrameSource
from facelens.edge.types import BGRImage, Frame, SourceEvent, SourceEventKind, SourceInfo
from facelens.errors import FacelensError, InvalidParameterException

logger = logging.getLogger(__name__)

FILE_QUEUE_SIZE = 4
"""Frames a file reader may be ahead of the loop (a few MB at 1080p; decoding overlaps work)."""

NO_FRAME = "no frame: the stream ended, failed, or stalled past its read timeout"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FrameFeed:
    """Frames from one source, read in a daemon thread; see the module docstring for policy.

    open_source: makes a new, unopened source (called again on every
    reconnection). live: the source is a camera or stream (mailbox, drops,
    reconnects) rather than a file (EOF ends the feed). realtime: pace a
    file at its frame rate, as if it were a camera. on_event: called with
    every OPENED / LOST / ENDED, from the reader thread (from the caller's
    for the first OPENED); it must be quick and not raise. Backoff between
    reconnection attempts starts at ``reconnect_initial_seconds`` and doubles
    up to ``reconnect_max_seconds``. clock: monotonic seconds; wall_clock:
    aware UTC datetimes (both injectable for tests).
    """

    def __init__(
        self,
        open_source: Callable[[], FrameSource],
        *,
        live: bool,
        realtime: bool = False,
        on_event: Callable[[SourceEvent], None] | None = None,
        reconnect_initial_seconds: float = 0.5,
        reconnect_max_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not reconnect_initial_seconds > 0:
            raise InvalidParameterException("reconnect_initial_seconds must be > 0")
        if not reconnect_max_seconds >= reconnect_initial_seconds:
            raise InvalidParameterException(
                "reconnect_max_seconds must be >= reconnect_initial_seconds"
            )
        self._open_source = open_source
        self._live = live
        self._realtime = realtime and not live  # a live source is real time already
        self._mailbox = live or realtime
        self._on_event = on_event
        self._initial = reconnect_initial_seconds
        self._max = reconnect_max_seconds
        self._clock = clock
        self._wall_clock = wall_clock

        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._buffer: deque[Frame] = deque()
        self._thread: threading.Thread | None = None
        self._source: FrameSource | None = None
        self._info: SourceInfo | None = None
        self._started = False
        self._source_ended = False
        self._connected = False
        self._frames_read = 0
        self._frames_dropped = 0
        self._reconnects = 0
        self._first_clock: float | None = None
        self._first_media: float | None = None

    # ---- the loop's side -------------------------------------------------------------

    def open(self) -> SourceInfo:
        """Open the source here (its error raises here), without reading yet.

        Separate from :meth:`start` so a caller can check the source before a
        slow preparation (loading models) and start reading after it: a
        realtime file's clock and a live source's mailbox start with the reader.
        """
        with self._cond:
            if self._started:
                raise FacelensError("this FrameFeed has already been started")
            if self._info is not None:
                return self._info
        source = self._open_source()
        try:
            info = source.open()
        except BaseException:
            _close(source)
            raise
        with self._cond:
            self._source = source
            self._info = info
            self._connected = True
        self._emit(SourceEvent(SourceEventKind.OPENED, info.description, attempt=0, info=info))
        return info

    def start(self) -> SourceInfo:
        """Open the source if :meth:`open` was not called, and start the reader thread."""
        info = self.open()
        with self._cond:
            if self._started:
                raise FacelensError("this FrameFeed has already been started")
            self._started = True
            source = self._source
        if source is None:  # pragma: no cover - open() set it
            raise FacelensError("the source is not open")
        thread = threading.Thread(
            target=self._run, args=(source,), name=f"frame-feed {info.description}", daemon=True
        )
        self._thread = thread
        thread.start()
        return info

    def next(self, timeout: float) -> Frame | None:
        """The next frame to process, or None if none arrived within ``timeout`` seconds.

        Returns None at once when the file has ended and every frame was
        taken, or after ``stop()``.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while not self._buffer:
                if self._source_ended or self._stop.is_set():
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._stop.is_set():
                return None
            frame = self._buffer.popleft()
            self._cond.notify_all()  # a file reader may be waiting for room
            return frame

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading (interrupting a backoff wait or a full queue) and close the source.

        Waits up to ``timeout`` seconds for the reader; one stuck in a
        blocking read (at most the source's read timeout) closes the source
        itself when the read returns. Idempotent.
        """
        with self._cond:
            self._stop.set()
            self._buffer.clear()
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning(
                    "frame reader still blocked after %.1fs; it closes the source when it returns",
                    timeout,
                )

    @property
    def frames_read(self) -> int:
        with self._cond:
            return self._frames_read

    @property
    def frames_dropped(self) -> int:
        """Frames replaced in the mailbox before the loop took them (live / realtime only)."""
        with self._cond:
            return self._frames_dropped

    @property
    def reconnects(self) -> int:
        """Successful reopenings after the source was lost."""
        with self._cond:
            return self._reconnects

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._connected

    @property
    def ended(self) -> bool:
        """The source has ended (file EOF, or a file that failed) and every frame was taken."""
        with self._cond:
            return self._source_ended and not self._buffer

    @property
    def info(self) -> SourceInfo | None:
        """What the source said about itself at its latest (re)opening; None before start."""
        with self._cond:
            return self._info

    # ---- the reader thread -----------------------------------------------------------

    def _run(self, source: FrameSource) -> None:
        current: FrameSource | None = source
        try:
            while current is not None and not self._stop.is_set():
                error: str | None = None
                try:
                    image = current.read()
                except Exception as exc:  # a bad frame or a broken source: it failed
                    image, error = None, str(exc) or type(exc).__name__
                if self._stop.is_set():
                    break
                if image is not None:
                    self._deliver(image, current)
                elif self._live:
                    current = self._reconnect(current, error or NO_FRAME)
                else:
                    self._end(current, error)
                    current = None
        except Exception as exc:  # a bug of ours or of a callback: end rather than hang the loop
            logger.exception("frame reader failed")
            if current is not None:
                self._end(current, f"frame reader failed: {exc}")
                current = None
        finally:
            with self._cond:
                leftover, self._source = self._source, None
                self._connected = False
                self._cond.notify_all()
            if leftover is not None:
                _close(leftover)

    def _deliver(self, image: BGRImage, source: FrameSource) -> None:
        now = self._clock()
        with self._cond:
            index = self._frames_read
            self._frames_read += 1
            if self._first_clock is None:
                self._first_clock = now
            first_clock = self._first_clock
            fps = self._info.fps if self._info is not None else 0.0
        if self._live:
            media = now - first_clock
        else:
            position = source.position_seconds()
            if position is not None:
                media = position
            elif fps > 0:
                media = index / fps
            else:
                media = now - first_clock
        if self._first_media is None:
            self._first_media = media
        if self._realtime:
            # Sleep until the frame is due: first frame's time + media seconds since it.
            due = first_clock + (media - self._first_media)
            wait = due - self._clock()
            if wait > 0 and self._stop.wait(wait):
                return
        frame = Frame(
            image=image,
            index=index,
            media_time=media,
            captured_at=self._wall_clock(),
            monotonic=self._clock(),
        )
        with self._cond:
            if self._mailbox:
                if self._buffer:
                    self._buffer.popleft()
                    self._frames_dropped += 1
            else:
                while len(self._buffer) >= FILE_QUEUE_SIZE and not self._stop.is_set():
                    self._cond.wait()
            if self._stop.is_set():
                return
            self._buffer.append(frame)
            self._cond.notify_all()

    def _end(self, source: FrameSource, error: str | None) -> None:
        description = self._description(source)
        with self._cond:
            self._source = None
            self._connected = False
        _close(source)
        if error is None:
            logger.info("%s ended after %d frames", description, self.frames_read)
        else:
            logger.warning("%s ended: %s", description, error)
        self._emit(SourceEvent(SourceEventKind.ENDED, description, error=error))
        with self._cond:
            self._source_ended = True  # after the event: a loop that sees ended has it
            self._cond.notify_all()

    def _reconnect(self, lost: FrameSource, error: str) -> FrameSource | None:
        """Close ``lost`` and reopen with backoff; None when stopped meanwhile."""
        description = self._description(lost)
        with self._cond:
            self._source = None
            self._connected = False
        _close(lost)
        logger.warning("%s lost: %s", description, error)
        self._emit(SourceEvent(SourceEventKind.LOST, description, error=error))
        delay = self._initial
        attempt = 0
        while not self._stop.wait(delay):  # the wait is what stop() interrupts
            attempt += 1
            source: FrameSource | None = None
            try:
                source = self._open_source()
                info = source.open()
            except Exception as exc:
                if source is not None:
                    _close(source)
                delay = min(delay * 2, self._max)
                logger.warning(
                    "reopening %s, attempt %d failed: %s (next in %.1fs)",
                    description,
                    attempt,
                    exc,
                    delay,
                )
                continue
            with self._cond:
                if self._stop.is_set():
                    stopped = True
                else:
                    stopped = False
                    self._source = source
                    self._info = info
                    self._connected = True
                    self._reconnects += 1
            if stopped:
                _close(source)
                return None
            logger.info("%s reopened after %d attempt(s)", info.description, attempt)
            self._emit(
                SourceEvent(SourceEventKind.OPENED, info.description, attempt=attempt, info=info)
            )
            return source
        return None

    def _description(self, source: FrameSource) -> str:
        with self._cond:
            info = self._info
        return info.description if info is not None else source.spec.describe()

    def _emit(self, event: SourceEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            logger.exception("source event callback failed on %s", event.kind)


def _close(source: FrameSource) -> None:
    try:
        source.close()
    except Exception as exc:
        logger.warning("closing %s failed: %s", source.spec.describe(), exc)
