"""The frame loop: frames in; detections, tracks, visits' looks, labels and the live view out.

Only CPU work happens on the loop's thread: reading frames (the feed's
thread), uploading (the uploader's), publishing (the MQTT publisher's) and
serving viewers (the view server's) all happen elsewhere and are handed
work through queues that never block the loop. The loop's own cost per
frame is detection plus a few milliseconds (tracking, scoring a candidate
crop, handing the frame to the view).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from facelens.config import EdgeSettings
from facelens.edge.capture import FrameFeed
from facelens.edge.crops import DEFAULT_KEY_TEMPLATE, encode_crop
from facelens.edge.detection import CropCheck, FrameDetector
from facelens.edge.metrics import format_stats
from facelens.edge.names import NameBoard, RecognitionListener
from facelens.edge.picking import ChosenCrop, CropPicker, LookPolicy
from facelens.edge.quality_gate import GateLimits, QualityGate
from facelens.edge.reporting import EdgeStatus
from facelens.edge.server import ViewServer
from facelens.edge.tracking import Tracker
from facelens.edge.types import EdgeStats, Frame, TrackedFace
from facelens.edge.uploads import Uploader
from facelens.edge.view import LiveView
from facelens.errors import FacelensError

_log = logging.getLogger(__name__)

_POLL_S = 0.25
"""How long the loop waits for a frame before re-checking for stop."""


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the CLI's closing output."""

    frames: int
    dropped: int
    tracks: int
    crops: int
    uploaded: int
    pending: int
    buffer_dropped: int
    seconds: float
    fps: float
    """Frames processed per second from the first frame to the last (model loading excluded)."""


@dataclass
class _Counters:
    processed: int = 0
    faces: int = 0
    crops: int = 0
    detect_seconds: float = 0.0
    detect_calls: int = 0
    fps: float = 0.0
    last_tick: float = 0.0
    last_processed: int = 0
    first_frame_at: float = 0.0
    last_frame_at: float = 0.0


class EdgeRunner:
    """One camera's runner. ``run()`` blocks until the source ends or ``stop()`` is called.

    max_frames: stop after this many frames (benchmarks, tests); None runs on.
    flush_seconds: at stop, how long buffered crops may take to reach the store
    before they are left on disk for the next start.
    """

    def __init__(
        self,
        *,
        thing: str,
        settings: EdgeSettings,
        feed: FrameFeed,
        detector: FrameDetector,
        check: CropCheck | None,
        uploader: Uploader,
        status: EdgeStatus,
        names: NameBoard,
        listener: RecognitionListener | None = None,
        view: LiveView | None = None,
        server: ViewServer | None = None,
        mqtt_connected: Callable[[], bool | None] = lambda: None,
        max_frames: int | None = None,
        key_template: str = DEFAULT_KEY_TEMPLATE,
        flush_seconds: float = 10.0,
    ) -> None:
        self.thing = thing
        self.settings = settings
        self.feed = feed
        self.detector = detector
        self.check = check
        self.uploader = uploader
        self.status = status
        self.reporter = status.reporter
        self.names = names
        self.listener = listener
        self.view = view
        self.server = server
        self._mqtt_connected = mqtt_connected
        self._max_frames = max_frames
        self._key_template = key_template
        self._flush_seconds = flush_seconds
        self.tracker = Tracker(
            iou_threshold=settings.iou_threshold, timeout=settings.track_timeout_seconds
        )
        self.picker = CropPicker(
            gate=QualityGate(GateLimits.from_settings(settings), confirm=check),
            policy=LookPolicy(
                max_looks=settings.max_looks,
                min_look_seconds=settings.min_look_seconds,
                better_by=settings.better_look_margin,
                new_pose_degrees=settings.new_pose_degrees,
                reupload_seconds=settings.reupload_seconds,
            ),
            margin=settings.margin,
        )
        self._stop = threading.Event()
        self._counters = _Counters()
        self._started = time.monotonic()

    # -- control --
    def stop(self) -> None:
        """Asks the loop to finish (safe from a signal handler or another thread)."""
        self._stop.set()

    # -- the run --
    def run(self) -> RunSummary:
        self._started = time.monotonic()
        self._counters.last_tick = self._started
        self.reporter.status("started", detector=self.detector.detector.name)
        try:
            if self.listener is not None:
                self.listener.start()
            if self.server is not None:
                self.server.start()
                _log.info("Live view on %s/stream.mjpg", self.server.url)
            # The source is opened first: a mistyped URL or path is reported in a second,
            # not after the models have loaded (seconds). Reading starts once they have.
            self.feed.open()
            began = time.perf_counter()
            self.detector.prepare()
            if self.check is not None:
                self.check.prepare()
            self.reporter.status(
                "model loaded",
                detector=self.detector.detector.name,
                seconds=round(time.perf_counter() - began, 3),
            )
            self.uploader.start()
            self.feed.start()
            self._loop()
        except FacelensError as exc:
            self.reporter.status("failed", error={"Code": exc.code, "Message": exc.message})
            raise
        finally:
            self._shutdown()
        return self.summary()

    def _loop(self) -> None:
        stats_every = self.settings.stats_seconds
        next_stats = time.monotonic() + stats_every
        while not self._stop.is_set():
            if self.status.source_lost.is_set():
                self.status.source_lost.clear()
                self.picker.end(self.tracker.end_all())
            frame = self.feed.next(_POLL_S)
            if frame is not None:
                self.process(frame)
                if self._max_frames is not None and self._counters.processed >= self._max_frames:
                    break
            elif self.feed.ended:
                break
            now = time.monotonic()
            if now >= next_stats:
                self._tick(now)
                next_stats = now + stats_every
        self.picker.end(self.tracker.end_all())

    def process(self, frame: Frame) -> list[TrackedFace]:
        """One frame through detection, tracking and crop picking; the faces it shows."""
        found = self.detector.detect(frame.image)
        c = self._counters
        c.last_frame_at = time.monotonic()
        if c.processed == 0:
            c.first_frame_at = c.last_frame_at
        c.processed += 1
        c.faces += len(found.faces)
        c.detect_seconds += found.seconds
        c.detect_calls += 1
        update = self.tracker.update(found.faces, frame.media_time, frame.image)
        self.picker.end(update.ended)
        for assignment in update.assignments:
            # A look that passes is sent in the frame it is seen: the first answer's latency
            # is this frame's detection plus the upload, not a waiting window.
            self._submit(self.picker.observe(frame, assignment.track_id, assignment.face))
        faces = [
            TrackedFace(
                a.track_id, a.face.box, a.face.confidence, name=self.names.name_of(a.track_id)
            )
            for a in update.assignments
        ]
        if self.view is not None:
            self.view.publish(frame, faces)
        self.reporter.labels(faces, frame_index=frame.index)
        return faces

    def _submit(self, crops: list[ChosenCrop]) -> None:
        for crop in crops:
            try:
                pending = encode_crop(
                    crop,
                    thing=self.thing,
                    index=self._counters.crops,
                    template=self._key_template,
                    quality=self.settings.jpeg_quality,
                )
            except FacelensError as exc:
                _log.error("Could not encode the crop of track %d: %s", crop.track_id, exc)
                continue
            self._counters.crops += 1
            self.names.remember(pending.key, crop.track_id, crop.visit_id)
            self.uploader.submit(pending)

    def _tick(self, now: float) -> None:
        c = self._counters
        elapsed = now - c.last_tick
        if elapsed > 0:
            c.fps = (c.processed - c.last_processed) / elapsed
        c.last_tick, c.last_processed = now, c.processed
        _log.info("%s", format_stats(self.stats()))

    def _shutdown(self) -> None:
        self.feed.stop()
        self.uploader.stop(flush_timeout=self._flush_seconds)
        summary = self.summary()
        self.reporter.status(
            "stopped",
            frames=summary.frames,
            crops=summary.crops,
            uploaded=summary.uploaded,
            pending=summary.pending,
        )
        if self.view is not None:
            self.view.close()
        if self.server is not None:
            self.server.stop()
        if self.listener is not None:
            self.listener.stop()

    # -- figures --
    def stats(self) -> EdgeStats:
        c = self._counters
        up = self.uploader.stats
        now = time.monotonic()
        fps = c.fps
        if fps == 0.0 and now > c.last_tick and c.processed:
            fps = (c.processed - c.last_processed) / (now - c.last_tick)
        return EdgeStats(
            thing=self.thing,
            uptime_seconds=now - self._started,
            frames_read=self.feed.frames_read,
            frames_processed=c.processed,
            frames_dropped=self.feed.frames_dropped,
            fps=fps,
            detect_seconds_sum=c.detect_seconds,
            detect_count=c.detect_calls,
            faces_detected=c.faces,
            tracks_started=self.tracker.started,
            active_tracks=self.tracker.active,
            crops_queued=c.crops,
            crops_uploaded=up.uploaded,
            upload_failures=up.failures,
            buffer_depth=up.pending,
            buffer_dropped=up.dropped,
            crop_latency_seconds_sum=up.latency_sum,
            crop_latency_count=up.latency_count,
            source_connected=self.feed.connected,
            source_reconnects=self.feed.reconnects,
            mqtt_connected=self._mqtt_connected(),
            viewers=self.view.viewers if self.view is not None else 0,
            # A copy made in one step under the GIL: the frame loop adds to the counter.
            looks_refused={str(reason): n for reason, n in dict(self.picker.gate.refused).items()},
        )

    def summary(self) -> RunSummary:
        s = self.stats()
        c = self._counters
        span = c.last_frame_at - c.first_frame_at
        return RunSummary(
            frames=s.frames_processed,
            dropped=s.frames_dropped,
            tracks=s.tracks_started,
            crops=s.crops_queued,
            uploaded=s.crops_uploaded,
            pending=s.buffer_depth,
            buffer_dropped=s.buffer_dropped,
            seconds=s.uptime_seconds,
            fps=(c.processed - 1) / span if c.processed > 1 and span > 0 else 0.0,
        )
