"""The flat result rows of ``bench.compare``: one row per stage and variant, ours next to the peer.

Why a flat list: every stage has its own detailed section, but a reader (or
``bench/__main__.py``) wants one table: what was measured, in which unit,
our figure, the peer's, and the ratio. The ratio is always the peer's median
divided by ours, whatever the unit, because ratios carry across machines
where absolute figures do not; ``better`` says which direction is good
(``lower`` for durations, ``higher`` for frames per second and accuracy), so
for a duration a ratio above 1 means facelens is faster, for fps or
accuracy a ratio above 1 means the peer is ahead.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Literal

from rich.table import Table

Better = Literal["lower", "higher"]

LOWER_IS_BETTER = frozenset({"ms", "ms/face", "ms/query", "s"})
"""Units of durations; every other unit (fps, fraction, images/s) is better when higher."""


def spread(values: Sequence[float], *, digits: int = 3) -> dict[str, float]:
    """Median, min and max of ``values`` (already in the row's unit), rounded to ``digits``."""
    if not values:
        raise ValueError("no values")
    return {
        "median": round(float(statistics.median(values)), digits),
        "min": round(float(min(values)), digits),
        "max": round(float(max(values)), digits),
    }


def single(value: float, *, digits: int = 4) -> dict[str, float]:
    """A figure measured once (an accuracy, a run's wall time): median = min = max = ``value``."""
    return spread([value], digits=digits)


def ratio(peer: dict[str, float] | None, ours: dict[str, float] | None) -> float | None:
    """Peer median over ours, or None when either is missing or ours is zero."""
    if peer is None or ours is None or ours["median"] == 0:
        return None
    return round(peer["median"] / ours["median"], 3)


def better_for(unit: str) -> Better:
    """Whether a smaller or a larger figure is the good one in ``unit``."""
    return "lower" if unit in LOWER_IS_BETTER else "higher"


def make_row(
    stage: str,
    variant: str,
    unit: str,
    ours: dict[str, float] | None,
    peer: dict[str, float] | None,
    notes: str = "",
) -> dict[str, Any]:
    """One table row; ``ours`` / ``peer`` come from :func:`spread` or :func:`single`."""
    return {
        "stage": stage,
        "variant": variant,
        "unit": unit,
        "better": better_for(unit),
        "ours": ours,
        "peer": peer,
        "peer_over_ours": ratio(peer, ours),
        "notes": notes,
    }


def ms(seconds: Sequence[float]) -> list[float]:
    """Durations in seconds as milliseconds."""
    return [s * 1000.0 for s in seconds]


def rates(counts: Sequence[float], seconds: Sequence[float]) -> list[float]:
    """Per-round rates (e.g. frames per second) from per-round counts and durations."""
    return [c / s for c, s in zip(counts, seconds, strict=True) if s > 0]


def table(rows: Sequence[dict[str, Any]]) -> Table:
    """The rows as a rich table, printed at the end of a run (the JSON holds the same)."""

    def fig(block: dict[str, float] | None) -> str:
        return "-" if block is None else f"{block['median']:g} ({block['min']:g}-{block['max']:g})"

    out = Table(title="facelens vs face_recognition (median (min-max); ratio = peer / ours)")
    for name in ("stage", "variant", "unit", "ours", "peer", "peer/ours"):
        out.add_column(name, justify="right" if name in ("ours", "peer", "peer/ours") else "left")
    for r in rows:
        ratio_text = "-" if r["peer_over_ours"] is None else f"{r['peer_over_ours']:g}"
        out.add_row(
            r["stage"],
            r["variant"],
            f"{r['unit']} ({r['better']})",
            fig(r["ours"]),
            fig(r["peer"]),
            ratio_text,
        )
    return out
