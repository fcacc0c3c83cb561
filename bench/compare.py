"""facelens side by side with face_recognition 1.3.0, the library most people install today.

Why: "how does it compare with what I use now?" is the first question a
user asks; absolute figures depend on the machine, but the ratio peer/ours
for the same work on the same images on the same core carries across
machines. ``face_recognition`` is a benchmark-only peer (``pip install
--no-deps face_recognition==1.3.0`` on top of the ``dlib-bin`` facelens
already needs); without it, facelens is still measured and the document
says why the peer was skipped.

How: each side runs in its own worker process (``bench.compare_sides``),
both pinned to the same CPU with OpenCV and BLAS on one thread, and the
parent alternates them (ours, peer, ours, peer...) so that load from other
processes falls on both. Every timed figure is the median over ``--rounds``
rounds (with min and max); a round is the mean of enough calls to last
about ``--target-ms``, after one untimed warm-up call.

Stages (``--stages``, all by default):

* ``decode``: JPEG bytes to RGB pixels: facelens' ``decode_image`` (what
  the service runs on every upload: size limits, EXIF orientation) vs
  ``face_recognition.load_image_file``; 640x360 and 1280x720 frames cut
  from a test photo (JPEG quality 90) and two real photos.
* ``detect``: 640x360 and 1280x720 frames: the engine ``build_engine``
  makes with ``hog`` and with ``yunet`` (``engine.detect``: detection,
  landmarks, pose, quality) vs ``face_locations(img)`` (HOG, upsample 1);
  faces found by each.
* ``embed``: align + embed per face of the 8 faces of a group photo, one
  face per call and 8 per call: ``engine.embed`` (the registry's default
  embedder and flip setting, the other flip setting, and dlib's own runtime
  of the same network) vs ``face_encodings(img, known_face_locations=...)``
  at the same boxes.
* ``search``: one query against 10k, 100k and 1M random unit 128-d faces
  (each query a stored face moved by 0.3, a "second photo"):
  ``CollectionIndex.build(...).faces.search``, whichever index it picks for
  the size (limit 10, FaceMatchThreshold 80; its recall@1 is reported) vs
  ``face_distance(known, one)`` over a float64 matrix (exact).
* ``edge``: frames of the Hamilton clip (640x360): face_recognition's
  ``facerec_from_webcam_faster.py`` loop body (quarter-size frame,
  ``face_locations``, ``face_encodings``, ``compare_faces`` against the two
  people in the clip), and the same on full-size frames, vs facelens doing
  the same job (engine detect on the frame, embed each face, search a
  collection of the same two people); faces found and identified by each.
* ``lfw``: verification accuracy and TAR at FAR 0.001 on the LFW
  development pairs, both pipelines through the same
  ``verification_figures`` (``bench.compare_lfw``), 2 worker processes
  each (not pinned), blocks of images interleaved; ``--lfw-folds`` (3 of
  the 5 by default, see :data:`LFW_DEFAULT_FOLDS`).

Run from the repository root::

    python -m bench.compare [--stages decode detect embed search edge lfw] [--quick]
                            [--lfw-folds 5]

Writes bench/results/compare.json: ``rows`` (one flat row per stage and
variant: ours, peer, ``peer_over_ours``) and one detailed section per stage.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bench._common import machine_facts, write_result
from bench.compare_edge import stage_edge
from bench.compare_report import table
from bench.compare_stages import (
    Run,
    embed_variants,
    models_dir,
    stage_decode,
    stage_detect,
    stage_embed,
    stage_lfw,
    stage_search,
)

STAGES = ("decode", "detect", "embed", "search", "edge", "lfw")
PEER_PIP = "pip install --no-deps face_recognition==1.3.0"
LFW_DEFAULT_FOLDS = 3
"""LFW is most of a run's time, nearly all of it the peer's (12-17 images a second on 2
workers against our 60-100). Measured on the 2 shared cores with other work running: the
other stages take about 90 s; a default run took 4.1 minutes with 3 folds (2320 images) and
6.9 with 4 (3074), so all 5 (3811) take 8 or more. The price of 3 folds: 900
different-person pairs, so FAR <= 0.001 allows no false accept and TAR at it is set by the
single closest stranger pair (it moves by several points between fold counts); 4 or 5 folds
(``--lfw-folds``) allow one, as the full protocol does."""


def peer_missing() -> str | None:
    """Why the peer cannot run here, or None when its packages are installed."""
    for module in ("face_recognition", "face_recognition_models", "dlib"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed; install the peer with: {PEER_PIP}"
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast check: fewer rounds, frames, sizes and LFW pairs",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per timed figure (median)")
    parser.add_argument(
        "--target-ms",
        type=float,
        default=200.0,
        help="a round repeats a fast call until it lasts about this long",
    )
    parser.add_argument("--search-sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--edge-frames",
        type=int,
        default=24,
        help="clip frames per edge pass, spread over the clip",
    )
    parser.add_argument("--edge-rounds", type=int, default=3)
    parser.add_argument(
        "--lfw-folds",
        type=int,
        default=LFW_DEFAULT_FOLDS,
        help=f"LFW folds to run (5: all 3000 pairs; default {LFW_DEFAULT_FOLDS})",
    )
    parser.add_argument(
        "--lfw-pairs-per-fold",
        type=int,
        default=None,
        help="only this many same and as many different pairs per fold",
    )
    parser.add_argument("--lfw-workers", type=int, default=2)
    parser.add_argument(
        "--lfw-detector",
        default=None,
        help="our detector on LFW (default: the configured one, 'auto' = YuNet with its model)",
    )
    parser.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="CPU both workers are pinned to (default: the last one allowed)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--name", default="compare", help="result file bench/results/<name>.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = min(args.rounds, 3)
        args.target_ms = min(args.target_ms, 50.0)
        args.search_sizes = [n for n in args.search_sizes if n <= 100_000] or [10_000]
        args.edge_frames = min(args.edge_frames, 6)
        args.edge_rounds = 1
        args.lfw_folds = 1
        args.lfw_pairs_per_fold = min(args.lfw_pairs_per_fold or 20, 20)
    if min(args.rounds, args.edge_frames, args.edge_rounds, args.lfw_folds, args.lfw_workers) < 1:
        parser.error("counts must be at least 1")
    if args.cpu is None:
        args.cpu = max(os.sched_getaffinity(0))
    return args


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bench.compare_sides import SideFailed, SideProcess, SideUnavailable

    args = parse_args(argv)
    # Read by numpy's BLAS when it loads: the workers (spawned below) inherit them.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    machine = machine_facts()
    began = time.perf_counter()
    # rich renders 80 columns into a file or pipe: the final table needs more
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 170)
    from facelens.engine.yunet import find_model

    yunet = find_model(models_dir())
    detectors = ["hog"] + (["yunet"] if yunet else [])
    variants = embed_variants()
    totals = {
        "decode": args.rounds,
        "detect": args.rounds,
        "embed": args.rounds,
        "search": args.rounds * len(args.search_sizes),
        "edge": args.edge_rounds,
        "lfw": 1,
    }
    document: dict[str, Any] = {"machine": machine}
    rows: list[dict[str, Any]] = []
    stage_seconds: dict[str, float] = {}
    peer_skip = peer_missing()
    timed = [s for s in STAGES if s in args.stages and s != "lfw"]

    with Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks = {s: progress.add_task(s, total=totals[s]) for s in STAGES if s in args.stages}

        def advance(stage: str, done: int | None = None, total: int | None = None) -> None:
            if done is None:
                progress.advance(tasks[stage])
            else:
                progress.update(tasks[stage], completed=done, total=total)

        run = Run(args, advance)
        if timed:
            sides: list[Any] = []
            target_s = args.target_ms / 1000.0
            try:
                ours = SideProcess("ours", cpu=args.cpu, models_dir=models_dir(), target_s=target_s)
                sides.append(ours)
                peer = None
                if peer_skip is None:
                    try:
                        peer = SideProcess("peer", cpu=args.cpu, models_dir=None, target_s=target_s)
                        sides.append(peer)
                    except SideUnavailable as exc:
                        peer_skip = f"face_recognition did not start ({exc}); {PEER_PIP}"
                document["ours"] = ours.call("describe", None, None)
                run.default_detector = document["ours"]["detector"]
                if peer is not None:
                    document["peer"] = peer.call("describe")
                stage_fns: dict[str, Callable[[], tuple[list[dict[str, Any]], dict[str, Any]]]] = {
                    "decode": lambda: stage_decode(run, (ours, peer)),
                    "detect": lambda: stage_detect(run, (ours, peer), detectors),
                    "embed": lambda: stage_embed(run, (ours, peer), variants),
                    "search": lambda: stage_search(run, (ours, peer)),
                    "edge": lambda: stage_edge(run, (ours, peer), detectors),
                }
                for stage in timed:
                    start = time.perf_counter()
                    try:
                        stage_rows, document[stage] = stage_fns[stage]()
                        rows += stage_rows
                    except SideFailed as exc:  # one stage's failure leaves the others' figures
                        document[stage] = {"error": str(exc)}
                        console.print(f"[red]{stage} failed[/red]: {exc}")
                    stage_seconds[stage] = round(time.perf_counter() - start, 1)
            finally:
                for side in sides:
                    side.close()
        if "lfw" in args.stages:
            start = time.perf_counter()
            lfw_rows, document["lfw"] = stage_lfw(run, with_peer=peer_skip is None)
            if peer_skip is None and "peer_skipped" in document["lfw"]:
                peer_skip = f"{document['lfw']['peer_skipped']}; {PEER_PIP}"
            rows += lfw_rows
            stage_seconds["lfw"] = round(time.perf_counter() - start, 1)

    if peer_skip is not None:
        document["peer"] = {"skipped": peer_skip}
    if yunet is None:
        document["yunet_note"] = f"no YuNet model in {models_dir()} (FACELENS_MODELS_DIR)"
    document["settings"] = {
        "stages": [s for s in STAGES if s in args.stages],
        "quick": args.quick,
        "rounds": args.rounds,
        "target_ms_per_round": args.target_ms,
        "search_sizes": args.search_sizes,
        "edge_frames": args.edge_frames,
        "edge_rounds": args.edge_rounds,
        "lfw_folds": args.lfw_folds,
        "lfw_folds_default_note": (
            f"default {LFW_DEFAULT_FOLDS} of 5 folds (1800 of 3000 pairs): a default run took "
            "4.1 minutes on 2 shared cores, 6.9 with 4 folds; all 5 take 8 or more. With 900 "
            "different-person pairs TAR at FAR 0.001 allows no false accept: use --lfw-folds "
            "4 or 5 for a steadier TAR"
        ),
        "lfw_pairs_per_fold": args.lfw_pairs_per_fold,
        "lfw_workers": args.lfw_workers,
        "cpu": args.cpu,
        "one_core": (
            "timed stages: ours and peer each in a spawned worker pinned to this CPU "
            "(sched_setaffinity), cv2.setNumThreads(1), OPENBLAS/OMP/MKL_NUM_THREADS=1; "
            "called in turn (ours, peer, ...). LFW: 2 unpinned workers per side"
        ),
        "yunet_model": str(yunet) if yunet else None,
        "testdata": str(run.root),
        "seed": args.seed,
    }
    document["rows"] = rows
    document["stage_seconds"] = stage_seconds
    document["load_average_at_end_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    document["total_run_s"] = round(time.perf_counter() - began, 1)
    write_result(args.name, document)
    console.print(table(rows))
    console.print(f"total {document['total_run_s']} s")


if __name__ == "__main__":
    main()
