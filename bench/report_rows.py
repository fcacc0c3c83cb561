"""One reader per benchmark document: its headline figures as :class:`Row` objects.

A reader picks what a user compares (per-call time, throughput, accuracy,
memory) and leaves the detail in the document. Targets are the issue's:
1M faces searched in under 5 ms p50, 10M faces in under 10 GB, under 30 ms
per face embedded on one core, "well under a second" end to end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GB = 1e9


@dataclass(frozen=True)
class Figure:
    """A median with the min and max of the runs it is the median of (None: one run)."""

    median: float
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, value: Any) -> Figure | None:
        """From a number, or a dict with median/min/max (or p50_ms/min_ms/max_ms)."""
        if value is None:
            return None
        if isinstance(value, int | float):
            return cls(float(value))
        if "median" in value:
            return cls(float(value["median"]), _opt(value.get("min")), _opt(value.get("max")))
        return cls(float(value["p50_ms"]), _opt(value.get("min_ms")), _opt(value.get("max_ms")))


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Row:
    """One line of the table. ``better`` says which way is good for this unit."""

    stage: str
    measure: str
    unit: str
    ours: Figure | None
    peer: Figure | None = None
    better: str = "lower"
    target: str | None = None
    met: bool | None = None

    def advantage(self) -> float | None:
        """How many times better facelens is (>1: better), from the medians."""
        if self.ours is None or self.peer is None or not self.ours.median or not self.peer.median:
            return None
        if self.better == "lower":
            return self.peer.median / self.ours.median
        return self.ours.median / self.peer.median

    def to_json(self) -> dict[str, Any]:
        def fig(f: Figure | None) -> dict[str, float | None] | None:
            return None if f is None else {"median": f.median, "min": f.low, "max": f.high}

        return {
            "stage": self.stage,
            "measure": self.measure,
            "unit": self.unit,
            "better": self.better,
            "ours": fig(self.ours),
            "peer": fig(self.peer),
            "advantage": self.advantage(),
            "target": self.target,
            "met": self.met,
        }


Reader = Callable[[dict[str, Any]], list[Row]]


def compare_rows(doc: dict[str, Any]) -> list[Row]:
    """bench/compare.py already writes side-by-side rows."""
    rows = []
    for r in doc["rows"]:
        unit = r["unit"]
        better = r.get("better") or ("higher" if unit in ("fraction", "fps", "/s") else "lower")
        rows.append(
            Row(
                stage=r["stage"],
                measure=r["variant"],
                unit=unit,
                ours=Figure.of(r.get("ours")),
                peer=Figure.of(r.get("peer")),
                better=better,
            )
        )
    return rows


def detector_rows(doc: dict[str, Any]) -> list[Row]:
    rows = []
    for name, d in doc["per_detector"].items():
        recall = d["recall_by_face_height_px"]
        smallest = min((int(h) for h, r in recall.items() if r >= 0.9), default=None)
        rows.append(
            Row(
                "detection (edge)",
                f"{name}: time per 640x360 frame",
                "ms",
                Figure.of(d["ms_per_frame"]["640x360"]),
            )
        )
        if smallest is not None:
            rows.append(
                Row(
                    "detection (edge)",
                    f"{name}: smallest face found 90% of the time",
                    "px",
                    Figure(float(smallest)),
                )
            )
    default = doc.get("decision", {}).get("edge_default")
    if default:
        rows.append(
            Row("detection (edge)", f"default when its model is present: {default}", "", None)
        )
    return rows


def throughput_rows(doc: dict[str, Any]) -> list[Row]:
    rows = []
    for run in doc["runs"]:
        rows.append(
            Row(
                "recognizer",
                f"events per second, {run['workers']} worker(s)",
                "events/s",
                Figure(
                    run["events_per_second"],
                    run.get("events_per_second_min"),
                    run.get("events_per_second_max"),
                ),
                better="higher",
            )
        )
    first = doc["runs"][0]
    rows.append(
        Row("recognizer", "time per event (1 worker)", "ms", Figure.of(first["event_total"]))
    )
    rows.append(
        Row(
            "recognizer",
            "own time per event, beyond the engine",
            "ms",
            Figure.of(first["event_own"]),
        )
    )
    return rows


def memory_rows(doc: dict[str, Any]) -> list[Row]:
    faces = doc["faces"]
    label = f"{faces / 1e6:g}M" if faces >= 1e6 else f"{faces:,}"
    return [
        Row(
            "memory",
            f"recognizer peak RSS, {label} faces enrolled",
            "GB",
            Figure(doc["first_start"]["peak_rss_bytes"] / GB),
        ),
        Row(
            "memory",
            f"recognizer restart with {label} faces: wall time",
            "s",
            Figure(doc["restart"]["wall_s"]),
        ),
        Row(
            "memory",
            "recognizer peak RSS, no faces",
            "GB",
            Figure(doc["baseline"]["peak_rss_bytes"] / GB),
        ),
    ]


def edge_rows(doc: dict[str, Any]) -> list[Row]:
    return [
        Row(
            "edge runner (1 core)",
            f"{r['detector']}, {r['size']}: frames per second",
            "fps",
            Figure(r["fps_median"], r.get("fps_min"), r.get("fps_max")),
            better="higher",
            target=">= 25 fps" if r["size"] == "640x360" else None,
            met=r["fps_median"] >= 25 if r["size"] == "640x360" else None,
        )
        for r in doc["throughput"]
    ]


def latency_rows(doc: dict[str, Any]) -> list[Row]:
    rows = []
    for label, result in doc.get("results", {}).items():
        ident = result["identifications"]
        if ident["p50_ms_median_of_runs"] is None:
            continue
        median = ident["p50_ms_median_of_runs"]
        rows.append(
            Row(
                "end to end (facelens up)",
                f"frame to identification on MQTT, p50, {label}",
                "ms",
                Figure(median, ident["p50_ms_min"], ident["p50_ms_max"]),
                target="< 1000 ms",
                met=median < 1000,
            )
        )
        pooled = result["all_outcomes"]["pooled"]
        if pooled.get("n"):
            rows.append(
                Row(
                    "end to end (facelens up)",
                    f"every outcome, p95 (pooled), {label}",
                    "ms",
                    Figure(pooled["p95_ms"]),
                )
            )
    return rows


READERS: dict[str, Reader] = {
    "compare": compare_rows,
    "detectors": detector_rows,
    "edge_fps": edge_rows,
    "recognizer_throughput": throughput_rows,
    "recognizer_memory": memory_rows,
    "up_latency_runs": latency_rows,
}
"""Result name -> reader, in table order."""
