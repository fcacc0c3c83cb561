"""The suite's report: every benchmark's JSON folded into rows, a Markdown table and plots.

Each benchmark keeps its own detailed JSON; this module reads them back and
keeps, per figure, one :class:`Row`: what was measured, facelens' figure
(median of several runs, with min and max), the peer's on the same machine
when there is one, and the ratio between them, which is what holds across
machines. Readers per benchmark live in :mod:`bench.report_rows`; the plots
in :mod:`bench.report_plots`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench._common import RESULTS_DIR
from bench.report_rows import READERS, Row
from bench.steps import STEPS, StepRun

PEER = "face_recognition"


@dataclass(frozen=True)
class Report:
    json_path: Path
    markdown_path: Path
    markdown: str
    plots: list[Path] = field(default_factory=list)
    headline_path: Path | None = None
    """The short table (README): the rows in :data:`HEADLINES`."""


def load(name: str) -> dict[str, Any] | None:
    """``bench/results/<name>.json``, or None when it is missing or unreadable."""
    path = RESULTS_DIR / f"{name}.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def collect_rows(documents: dict[str, dict[str, Any]]) -> tuple[list[Row], dict[str, str]]:
    """Rows from every document with a reader; reader failures are reported, not raised."""
    rows: list[Row] = []
    problems: dict[str, str] = {}
    for name, read in READERS.items():
        document = documents.get(name)
        if document is None:
            continue
        try:
            rows.extend(read(document))
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
            problems[name] = f"could not read {name}.json: {type(exc).__name__}: {exc}"
    return rows, problems


def _fmt(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def cell(figure: Any, unit: str) -> str:
    """``median (min-max) unit``; a fraction is shown in percent."""
    if figure is None:
        return "—"
    scale, shown = (100.0, "%") if unit == "fraction" else (1.0, f" {unit}")
    text = _fmt(figure.median * scale)
    if figure.low is not None and figure.high is not None and figure.low != figure.high:
        text += f" ({_fmt(figure.low * scale)}–{_fmt(figure.high * scale)})"
    return text + shown


def comparison(row: Row) -> str:
    """How facelens compares with the peer: "3.2x faster", "+0.6 pp", or blank."""
    if row.ours is None or row.peer is None:
        return ""
    if row.unit == "fraction":
        return f"{(row.ours.median - row.peer.median) * 100:+.1f} pp"
    ratio = row.advantage()
    if ratio is None:
        return ""
    timed = row.unit in ("s", "ms") or row.unit.startswith("ms/")
    word = "faster" if timed else ("more" if row.better == "higher" else "smaller")
    return f"{ratio:.2f}x {word}" if ratio >= 1 else f"{1 / ratio:.2f}x worse"


HEADLINES: tuple[tuple[str, str], ...] = (
    ("decode", "1280x720"),
    ("detect", "(default)"),
    ("embed", "single, OnnxEmbedder flip=True"),
    ("embedding (1 core)", "largest difference"),
    ("search", "1000000 faces"),
    ("search", "1M faces (IvfIndex)"),
    ("search", "1M faces: restart"),
    ("search", "10M faces: resident"),
    ("edge", "peer full frame"),
    ("edge runner (1 core)", "yunet, 640x360"),
    ("lfw", ""),
    ("identify", "x 1 photo(s)"),
    ("recognizer", "events per second"),
    ("memory", "recognizer peak RSS, 1M"),
    ("end to end (facelens up)", "frame to identification"),
    ("end to end (facelens up)", "first answer"),
)
"""(stage, text in the measure) of the rows the README's short table shows."""


def headline(rows: list[Row]) -> list[Row]:
    """The rows a reader of the README needs, in HEADLINES order."""
    return [r for stage, text in HEADLINES for r in rows if r.stage == stage and text in r.measure]


def markdown_table(rows: list[Row]) -> str:
    lines = [
        f"| stage | measure | facelens | {PEER} | facelens vs peer | target | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        target = row.target or ""
        if row.target and row.met is not None:
            target += " ✅" if row.met else " ❌"
        lines.append(
            f"| {row.stage} | {row.measure} | {cell(row.ours, row.unit)} | "
            f"{cell(row.peer, row.unit)} | {comparison(row)} | {target} | {row.note} |"
        )
    return "\n".join(lines)


def render_markdown(
    rows: list[Row], runs: list[dict[str, Any]], problems: dict[str, str], header: dict[str, Any]
) -> str:
    machine = header["machine"]
    parts = [
        "# facelens benchmarks",
        "",
        f"Measured {header['finished_at'][:16].replace('T', ' ')} UTC on {machine['platform']}, "
        f"{machine['cpu_count']} CPUs, Python {machine['python']}"
        + (" — **quick run: figures are not representative**" if header["quick"] else "")
        + f". Suite wall time {header['total_s'] / 60:.1f} min (`python -m bench`).",
        "",
        "Figures are medians of several runs with (min–max); the peer is "
        f"`{PEER}` 1.3.0 on dlib-bin, on the same images and machine. Times are per call "
        "on one core unless the measure says otherwise.",
        "",
        markdown_table(rows),
    ]
    if runs:
        parts += ["", "| step | seconds | status |", "|---|---|---|"]
        for run in runs:
            parts.append(f"| {run['name']} | {run['seconds']:.0f} | {run['status']} |")
    if problems:
        parts += ["", "Missing figures:", ""] + [f"- {text}" for text in problems.values()]
    return "\n".join(parts) + "\n"


def build_report(
    runs: list[StepRun], *, machine: dict[str, Any], total_s: float, quick: bool, finished_at: str
) -> Report:
    """Reads every result document, writes bench.json, bench.md and the plots.

    With no runs (``--report-only``), the last suite run's step times, total,
    machine and date are kept from the previous bench.json, so a rebuilt
    report still says how long the run behind its figures took.
    """
    previous = load("bench") if not runs else None
    if previous is not None:
        machine = previous.get("machine", machine)
        total_s = float(previous.get("total_s", total_s))
        quick = bool(previous.get("quick", quick))
        finished_at = str(previous.get("finished_at", finished_at))
    from bench.report_plots import draw_all

    names = [name for step in STEPS for name in step.results]
    documents = {name: doc for name in names if (doc := load(name)) is not None}
    rows, problems = collect_rows(documents)
    ran = {run.step.name for run in runs}
    for run in runs:
        if run.returncode != 0:
            why = "timed out" if run.returncode is None else f"exited {run.returncode}"
            problems[run.step.name] = f"{run.step.name} {why}; see {run.log}"
    for step in STEPS:
        if step.name not in ran and not any(n in documents for n in step.results):
            problems.setdefault(step.name, f"{step.name}: no result (not run)")
    run_table = [
        {
            "name": run.step.name,
            "module": run.step.module,
            "seconds": round(run.seconds, 1),
            "status": "ok" if run.returncode == 0 else "failed",
            "log": str(run.log),
        }
        for run in runs
    ]
    if previous is not None:
        run_table = list(previous.get("steps", []))
    header = {"machine": machine, "total_s": total_s, "quick": quick, "finished_at": finished_at}
    markdown = render_markdown(rows, run_table, problems, header)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plots = draw_all(documents, rows, RESULTS_DIR / "plots")
    json_path = RESULTS_DIR / "bench.json"
    json_path.write_text(
        json.dumps(
            {
                **header,
                "total_s": round(total_s, 1),
                "steps": run_table,
                "rows": [row.to_json() for row in rows],
                "problems": problems,
                "plots": [str(p) for p in plots],
                "documents": documents,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    markdown_path = RESULTS_DIR / "bench.md"
    markdown_path.write_text(markdown, encoding="utf-8")
    headline_path = RESULTS_DIR / "headline.md"
    headline_path.write_text(markdown_table(headline(rows)) + "\n", encoding="utf-8")
    return Report(json_path, markdown_path, markdown, plots, headline_path)


def publish(report: Report, folder: Path) -> None:
    """Copies the tables and the plots (SVG) into ``folder`` (e.g. docs/benchmarks)."""
    extra = [report.headline_path] if report.headline_path else []
    vectors = [plot.with_suffix(".svg") for plot in report.plots]
    copy_into([report.markdown_path, *extra, *(v for v in vectors if v.is_file())], folder)


def copy_into(paths: list[Path], folder: Path) -> None:
    """Copies files into ``folder`` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        shutil.copy2(path, folder / path.name)


README_START = "<!-- bench:headline:start -->"
README_END = "<!-- bench:headline:end -->"


def update_readme(report: Report, readme: Path) -> bool:
    """Replaces the text between the README's headline markers with the short table.

    Returns False (and changes nothing) when the markers are missing.
    """
    if report.headline_path is None:
        return False
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    table = report.headline_path.read_text(encoding="utf-8")
    updated = text[: start + len(README_START)] + "\n" + table + text[end:]
    readme.write_text(updated, encoding="utf-8")
    return True


__all__ = ["Report", "Row", "asdict", "build_report", "publish", "update_readme"]
