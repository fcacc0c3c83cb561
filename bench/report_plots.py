"""The suite's plots (matplotlib, Agg: no display needed), each drawn only when its data is there.

Each is written as PNG and as SVG; the published copy (``--publish``) is the
SVG, a small text file that diffs in git where a PNG is an opaque blob.

- ``stages.png``: time per call for every stage measured against the peer,
  facelens and face_recognition side by side (log scale), with the ratio.
- ``search.png``: search latency against collection size (log-log), with
  the 5 ms target at 1M.
- ``detection_recall.png``: the edge detectors' recall by face height.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report_rows import Row

OURS_COLOUR = "#1f77b4"
PEER_COLOUR = "#ff7f0e"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> None:
    """The figure as PNG at ``path`` and as SVG beside it (text, for a README in git)."""
    fig.savefig(path, dpi=110)
    fig.savefig(path.with_suffix(".svg"), metadata={"Date": None})


def stages(rows: list[Row], path: Path) -> Path | None:
    """Horizontal bars: facelens vs the peer for every timed row that has both."""
    pairs = [
        r
        for r in rows
        if (r.unit == "ms" or r.unit.startswith("ms/"))
        and r.ours is not None
        and r.peer is not None
    ]
    if not pairs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(pairs) + 1.5))
    labels = [f"{r.stage}: {r.measure}" for r in pairs]
    y = range(len(pairs))
    ours = [r.ours.median for r in pairs if r.ours is not None]
    peer = [r.peer.median for r in pairs if r.peer is not None]
    ax.barh([i + 0.2 for i in y], ours, height=0.4, color=OURS_COLOUR, label="facelens")
    ax.barh([i - 0.2 for i in y], peer, height=0.4, color=PEER_COLOUR, label="face_recognition")
    for i, row in enumerate(pairs):
        ratio = row.advantage()
        if ratio is not None:
            ax.text(max(ours[i], peer[i]) * 1.15, i, f"{ratio:.1f}x", va="center", fontsize=8)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(right=max(ours + peer) * 6)  # room for the ratio labels
    ax.set_xlabel("milliseconds per call (median; log scale)")
    ax.set_title("facelens vs face_recognition, same machine, same images")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return path


def search(documents: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Search p50 by collection size: facelens (search_scale) and the peer's scan (compare)."""
    ours = search_points(documents.get("search_scale"))
    peer = peer_search_points(documents.get("compare"))
    if not ours and not peer:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if ours:
        ax.plot(*zip(*ours, strict=True), "o-", color=OURS_COLOUR, label="facelens")
    if peer:
        ax.plot(*zip(*peer, strict=True), "s--", color=PEER_COLOUR, label="face_recognition")
    ax.axhline(5.0, color="grey", linestyle=":", linewidth=1)
    ax.text(1.2e4, 5.4, "5 ms target (1M)", color="grey", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("faces in the collection")
    ax.set_ylabel("ms per search (p50)")
    ax.set_title("Searching one face against a collection")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return path


def search_points(doc: dict[str, Any] | None) -> list[tuple[float, float]]:
    """(faces, p50 ms) from search_scale's ``rows`` section, when it has one."""
    if not doc:
        return []
    points = []
    for entry in doc.get("summary", []):
        p50 = entry.get("search_p50_ms")
        if p50 is not None:
            points.append(
                (float(entry["faces"]), float(p50["median"] if isinstance(p50, dict) else p50))
            )
    return sorted(points)


def peer_search_points(doc: dict[str, Any] | None) -> list[tuple[float, float]]:
    """(faces, p50 ms) of the peer's scan from compare's search rows."""
    if not doc:
        return []
    points = []
    for row in doc.get("rows", []):
        words = str(row.get("variant", "")).split()
        if row.get("stage") == "search" and row.get("peer") and words and words[0].isdigit():
            points.append((float(words[0]), float(row["peer"]["median"])))
    return sorted(points)


def detection_recall(doc: dict[str, Any] | None, path: Path) -> Path | None:
    if not doc:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for name, d in doc["per_detector"].items():
        recall = sorted((int(h), r) for h, r in d["recall_by_face_height_px"].items())
        ax.plot([h for h, _ in recall], [r * 100 for _, r in recall], "o-", label=name)
    ax.set_xscale("log")
    heights = sorted(
        {int(h) for d in doc["per_detector"].values() for h in d["recall_by_face_height_px"]}
    )
    ax.set_xticks(heights, [str(h) for h in heights])
    ax.minorticks_off()
    ax.set_xlabel("face height in a 640x360 frame (pixels)")
    ax.set_ylabel("recall (%)")
    ax.set_ylim(-2, 102)
    ax.set_title("Edge detectors: faces found by size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return path


def draw_all(documents: dict[str, dict[str, Any]], rows: list[Row], folder: Path) -> list[Path]:
    """Every plot whose data is present, as PNG files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = [
        stages(rows, folder / "stages.png"),
        search(documents, folder / "search.png"),
        detection_recall(documents.get("detectors"), folder / "detection_recall.png"),
    ]
    return [p for p in drawn if p is not None]
