"""The frame feed on real sources: a real file, and a real MJPEG camera that goes away and back.

Nothing here asserts speed: waits have deadlines, and the pacing check only
says a realtime file is not read ahead of the wall clock (with slack).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from facelens.edge.capture import FILE_QUEUE_SIZE, FrameFeed
from facelens.edge.sources import FrameSource, OpenCvSource, parse_source
from facelens.edge.types import Frame, SourceEvent, SourceEventKind
from facelens.errors import ResourceNotFoundException
from tests.servers.mjpeg import MjpegCamera

HAMILTON_FRAMES = 275
STREAM_TIMEOUT_S = 2.0
"""The camera source's open/read timeout: short, so a stall would show quickly."""


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def take(feed: FrameFeed, count: int, timeout: float = 10.0) -> list[Frame]:
    """``count`` frames from the feed, failing after ``timeout`` seconds."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"got {len(frames)} of {count} frames in {timeout}s")
        frame = feed.next(0.5)
        if frame is not None:
            frames.append(frame)
    return frames


def kinds(events: list[SourceEvent]) -> list[SourceEventKind]:
    return [event.kind for event in events]


@pytest.fixture
def hamilton(testdata: Path) -> Path:
    return testdata / "video" / "short_hamilton_clip.mp4"


@pytest.fixture
def feeds() -> Iterator[list[FrameFeed]]:
    """Feeds a test starts; all stopped at teardown, even when the test fails."""
    started: list[FrameFeed] = []
    yield started
    for feed in started:
        feed.stop()


def file_feed(path: Path, events: list[SourceEvent], *, realtime: bool = False) -> FrameFeed:
    spec = parse_source(str(path))

    def make() -> FrameSource:
        return OpenCvSource(spec)

    return FrameFeed(make, live=False, realtime=realtime, on_event=events.append)


def camera_feed(
    camera: MjpegCamera,
    events: list[SourceEvent],
    *,
    reconnect_initial_seconds: float = 0.1,
    reconnect_max_seconds: float = 0.5,
) -> FrameFeed:
    spec = parse_source(camera.url)

    def make() -> FrameSource:
        return OpenCvSource(spec, timeout_seconds=STREAM_TIMEOUT_S)

    return FrameFeed(
        make,
        live=True,
        on_event=events.append,
        reconnect_initial_seconds=reconnect_initial_seconds,
        reconnect_max_seconds=reconnect_max_seconds,
    )


def test_a_file_delivers_every_frame_in_order_then_ends(
    hamilton: Path, feeds: list[FrameFeed]
) -> None:
    events: list[SourceEvent] = []
    feed = file_feed(hamilton, events)
    feeds.append(feed)
    info = feed.start()
    assert (info.width, info.height, info.live) == (640, 360, False)
    assert events[0].kind is SourceEventKind.OPENED
    assert events[0].attempt == 0
    assert events[0].info == info

    frames: list[Frame] = []
    deadline = time.monotonic() + 30.0
    while not feed.ended:
        assert time.monotonic() < deadline, f"only {len(frames)} frames in 30 s"
        frame = feed.next(1.0)
        if frame is not None:
            frames.append(frame)

    assert [frame.index for frame in frames] == list(range(HAMILTON_FRAMES))
    media = [frame.media_time for frame in frames]
    assert media[0] == pytest.approx(0.0)
    assert media == sorted(media)
    assert media[-1] == pytest.approx((HAMILTON_FRAMES - 1) / 29.97, abs=0.01)
    assert all(frame.image.shape == (360, 640, 3) for frame in frames)
    assert all(frame.captured_at.tzinfo is not None for frame in frames)
    assert feed.frames_read == HAMILTON_FRAMES
    assert feed.frames_dropped == 0
    assert kinds(events) == [SourceEventKind.OPENED, SourceEventKind.ENDED]
    assert events[1].error is None
    assert not feed.connected

    started = time.monotonic()
    assert feed.next(5.0) is None  # at once: nothing more will come
    assert time.monotonic() - started < 1.0


def test_a_file_reader_waits_for_the_loop(hamilton: Path, feeds: list[FrameFeed]) -> None:
    feed = file_feed(hamilton, [])
    feeds.append(feed)
    feed.start()
    wait_for(lambda: feed.frames_read >= FILE_QUEUE_SIZE, "the queue to fill")
    time.sleep(0.3)  # room for the reader to run ahead, if it wrongly could
    # Queued frames plus the one the reader holds while it waits for room.
    assert feed.frames_read <= FILE_QUEUE_SIZE + 1
    assert feed.frames_dropped == 0
    assert [frame.index for frame in take(feed, 10)] == list(range(10))


def test_a_realtime_file_is_paced_at_its_frame_rate(hamilton: Path, feeds: list[FrameFeed]) -> None:
    feed = file_feed(hamilton, [], realtime=True)
    feeds.append(feed)
    feed.start()
    frames: list[Frame] = []
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        frame = feed.next(0.5)
        if frame is not None:
            frames.append(frame)
    feed.stop()

    assert len(frames) >= 5, "a realtime file must still deliver"
    first = frames[0]
    for frame in frames:
        elapsed = frame.monotonic - first.monotonic
        # Never ahead of the wall clock; behind only by scheduling hiccups.
        assert frame.media_time - first.media_time <= elapsed + 0.05
        assert frame.media_time - first.media_time >= elapsed - 0.3
    assert feed.frames_read < 60, "1 s of a 29.97 fps file, not the whole file at once"
    assert not feed.ended


def test_a_missing_file_fails_in_start(tmp_path: Path) -> None:
    events: list[SourceEvent] = []
    feed = file_feed(tmp_path / "gone.mp4", events)
    with pytest.raises(ResourceNotFoundException):
        feed.start()
    assert events == []
    assert not feed.connected
    feed.stop()  # harmless


def test_a_camera_that_goes_away_is_reconnected(
    mjpeg_camera: MjpegCamera, feeds: list[FrameFeed], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="facelens.edge.capture")
    events: list[SourceEvent] = []
    feed = camera_feed(mjpeg_camera, events)
    feeds.append(feed)
    info = feed.start()
    assert (info.width, info.height, info.live) == (640, 360, True)
    assert "127.0.0.1" in info.description
    before = take(feed, 5)
    assert feed.connected
    assert [frame.media_time for frame in before] == sorted(f.media_time for f in before)

    mjpeg_camera.stop()
    wait_for(lambda: SourceEventKind.LOST in kinds(events), "a LOST event")
    lost = next(event for event in events if event.kind is SourceEventKind.LOST)
    assert lost.error
    assert not feed.connected
    # While it is down, attempts fail (refused) and are logged, with growing waits.
    wait_for(lambda: "attempt 2 failed" in caplog.text, "two failed attempts")
    assert feed.reconnects == 0

    mjpeg_camera.start()  # the same port
    wait_for(lambda: feed.reconnects >= 1, "a reconnection")
    reopened = [e for e in events if e.kind is SourceEventKind.OPENED and e.attempt >= 1]
    assert reopened, kinds(events)
    assert reopened[0].attempt >= 3
    assert reopened[0].info is not None
    assert feed.connected

    after = take(feed, 5)
    assert after[0].index > before[-1].index
    assert after[0].media_time > before[-1].media_time  # one clock across reconnects
    assert kinds(events)[:2] == [SourceEventKind.OPENED, SourceEventKind.LOST]

    feed.stop()
    wait_for(lambda: mjpeg_camera.connections == 0, "the feed to close its connection")
    feed.stop()  # idempotent


def test_a_slow_loop_gets_the_newest_frame(
    mjpeg_camera: MjpegCamera, feeds: list[FrameFeed]
) -> None:
    feed = camera_feed(mjpeg_camera, [])
    feeds.append(feed)
    feed.start()
    first = take(feed, 1)[0]
    wait_for(lambda: feed.frames_read >= first.index + 4, "frames to arrive meanwhile")
    newest = take(feed, 1)[0]
    assert newest.index >= first.index + 3  # the ones in between were replaced
    assert feed.frames_dropped > 0
    assert feed.frames_read > feed.frames_dropped


def test_stop_interrupts_a_backoff_wait(mjpeg_camera: MjpegCamera, feeds: list[FrameFeed]) -> None:
    events: list[SourceEvent] = []
    feed = camera_feed(
        mjpeg_camera, events, reconnect_initial_seconds=60.0, reconnect_max_seconds=60.0
    )
    feeds.append(feed)
    feed.start()
    take(feed, 1)
    mjpeg_camera.stop()
    wait_for(lambda: SourceEventKind.LOST in kinds(events), "a LOST event")

    started = time.monotonic()
    feed.stop(timeout=10.0)
    assert time.monotonic() - started < 5.0, "stop() waited out a 60 s backoff"
    assert feed.next(0.0) is None
    assert kinds(events) == [SourceEventKind.OPENED, SourceEventKind.LOST]
