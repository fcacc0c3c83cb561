"""The edge runner's numbers, for Prometheus (``/metrics``) and for the log.

Both render one :class:`~facelens.edge.types.EdgeStats` snapshot; the runner
owns the counting. Each scrape builds a fresh ``CollectorRegistry`` around a
collector that reads only that snapshot, so nothing is registered globally
(prometheus_client's default ``REGISTRY`` is never touched) and two runners
in one process cannot collide. Every metric is labelled with the thing's name
so several cameras can share one Prometheus job.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from facelens.edge.types import EdgeStats

PREFIX = "facelens_edge_"
LABELS = ("thing",)

# (EdgeStats field = metric name without prefix, help text with units);
# prometheus_client appends _total to counter names.
_COUNTERS: tuple[tuple[str, str], ...] = (
    ("frames_read", "Frames read from the source since start (frames)."),
    ("frames_processed", "Frames that went through face detection (frames)."),
    ("frames_dropped", "Frames skipped because the frame loop was behind (frames)."),
    ("faces_detected", "Face detections over all processed frames (faces)."),
    ("tracks_started", "Face tracks started, roughly people coming into view (tracks)."),
    ("crops_queued", "Face crops handed to the upload buffer (crops)."),
    ("crops_uploaded", "Face crops stored in the object store (crops)."),
    ("upload_failures", "Failed crop upload attempts; each is retried later (attempts)."),
    ("buffer_dropped", "Crops dropped, oldest first, because the upload buffer was full (crops)."),
    ("source_reconnects", "Times the source was reopened after being lost (reconnects)."),
)

_GAUGES: tuple[tuple[str, str], ...] = (
    ("fps", "Frames processed per second over the last stats interval (frames/s)."),
    ("active_tracks", "Faces being tracked now (tracks)."),
    ("buffer_depth", "Crops waiting in the upload buffer now (crops)."),
    ("viewers", "Live view clients streaming now (clients)."),
    ("uptime_seconds", "Time since the runner started (seconds)."),
)


class EdgeCollector(Collector):
    """Yields the metric families of one stats snapshot."""

    def __init__(self, stats: EdgeStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        labels = [stats.thing]
        for name, help_text in _COUNTERS:
            counter = CounterMetricFamily(PREFIX + name, help_text, labels=LABELS)
            counter.add_metric(labels, float(getattr(stats, name)))
            yield counter
        for name, help_text in _GAUGES:
            yield _gauge(name, help_text, labels, float(getattr(stats, name)))
        yield _gauge(
            "source_connected",
            "1 when the source is open and delivering frames, else 0 (boolean).",
            labels,
            1.0 if stats.source_connected else 0.0,
        )
        if stats.mqtt_connected is not None:
            yield _gauge(
                "mqtt_connected",
                "1 when connected to the MQTT broker, else 0 (boolean).",
                labels,
                1.0 if stats.mqtt_connected else 0.0,
            )
        detect = SummaryMetricFamily(
            PREFIX + "detect_seconds",
            "Face detection time per processed frame (seconds).",
            labels=LABELS,
        )
        detect.add_metric(labels, stats.detect_count, stats.detect_seconds_sum)
        yield detect
        latency = SummaryMetricFamily(
            PREFIX + "crop_latency_seconds",
            "From a frame's capture to its face crop being in the object store (seconds).",
            labels=LABELS,
        )
        latency.add_metric(labels, stats.crop_latency_count, stats.crop_latency_seconds_sum)
        yield latency
        refused = CounterMetricFamily(
            PREFIX + "looks_refused",
            "Looks the quality gate kept on the camera, by reason (looks): cut by the frame's "
            "edge, small, turned, tilted, blurred, or no face found by the recognizer's detector.",
            labels=[*LABELS, "reason"],
        )
        for reason, count in sorted(stats.looks_refused.items()):
            refused.add_metric([*labels, reason], float(count))
        yield refused


def _gauge(name: str, help_text: str, labels: list[str], value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(PREFIX + name, help_text, labels=LABELS)
    gauge.add_metric(labels, value)
    return gauge


def render_prometheus(stats: EdgeStats) -> bytes:
    """``stats`` in Prometheus' text exposition format (serve as ``CONTENT_TYPE_LATEST``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdgeCollector(stats))
    return generate_latest(registry)


def format_stats(stats: EdgeStats) -> str:
    """One compact log line, e.g.
    ``fps 9.8 | detect 12.3 ms | frames 1200 read, 4 dropped | tracks 2 | crops 10 up, 0 queued
    | looks refused 31 | buffer 0 (0 dropped) | upload failures 0 | viewers 1 | source up
    | mqtt up``.

    detect is the mean detection time since start (``-`` before the first);
    mqtt is left out when the runner has no MQTT connection at all.
    """
    if stats.detect_count > 0:
        detect = f"{1000.0 * stats.detect_seconds_sum / stats.detect_count:.1f} ms"
    else:
        detect = "-"
    parts = [
        f"fps {stats.fps:.1f}",
        f"detect {detect}",
        f"frames {stats.frames_read} read, {stats.frames_dropped} dropped",
        f"tracks {stats.active_tracks}",
        f"crops {stats.crops_uploaded} up, {stats.crops_queued} queued",
        f"looks refused {sum(stats.looks_refused.values())}",
        f"buffer {stats.buffer_depth} ({stats.buffer_dropped} dropped)",
        f"upload failures {stats.upload_failures}",
        f"viewers {stats.viewers}",
        f"source {'up' if stats.source_connected else 'down'}",
    ]
    if stats.mqtt_connected is not None:
        parts.append(f"mqtt {'up' if stats.mqtt_connected else 'down'}")
    return " | ".join(parts)
