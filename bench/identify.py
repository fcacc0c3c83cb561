"""Open-set identification (1:N), facelens beside the face_recognition recipe, on LFW photos.

facelens' side is exactly ``facelens bench identify``
(:func:`facelens.evaluation.identify_run.run_identify`: the protocol of
:mod:`facelens.evaluation.identification`, decided by the recognizer's own
rule). Its vectors share the CLI's cache (``$FACELENS_HOME/cache/``, keyed by
each photo's path, size and modification time and by the engine settings), so
after either has run once a run takes seconds.

The peer is face_recognition 1.3.0 used as its README's recipe: every
enrolment photo's encoding is a known face, and a probe gets the name of the
closest known face when its ``face_distance`` is at most the tolerance 0.6
(``compare_faces``' default), else "unknown". Its faces are found as in
``bench.compare_lfw`` (HOG, upsample 1, the face nearest the centre,
``face_encodings`` at that box), on ``--workers`` processes; its vectors are
cached in ``bench/results/cache/`` (stored as float32: distances move by under 1e-6). Its
"at the rule" figures are that recipe's; its threshold-free figures come
from its distances (score = minus the distance to an identity's nearest
known face). Each side applies the protocol to the photos where it found a
face, with the same seed, so both draw their galleries from the same order
of identities; the counts say how many each left out. Without
face_recognition installed the peer is reported as absent, not failed.

Run from the repository root::

    python -m bench.identify [--images DIR] [--gallery-sizes 10,100,all]
                             [--enrol-photos 1,3] [--seed 0] [--workers 2] [--no-peer]
                             [--quick]

Writes bench/results/identify.json: ``ours`` (the CLI's document), ``peer``
(figures per gallery, or ``absent``: why), and ``rows``: one flat row per
side, gallery size and enrol count (rank-1, FNIR at FPIR 1% and 0.1%, FNIR
and FPIR at each side's rule).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import multiprocessing
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench._common import RESULTS_DIR, machine_facts, testdata_dir, write_result
from facelens.config import Settings
from facelens.evaluation import identification as ident
from facelens.evaluation.identify_run import (
    euclidean,
    load_cache,
    run_identify,
    save_cache,
    scan,
    usable_photos,
)
from facelens.wiring.evaluation import open_recognizer_rule

PEER_TOLERANCE = 0.6
"""face_recognition's default ``compare_faces`` tolerance: its documented operating point."""
PEER_PIP = "pip install --no-deps face_recognition==1.3.0"
PEER_CACHE = "identify-peer-face_recognition-1.3.0-hog-central.npz"
CACHE_DIR = RESULTS_DIR / "cache"

Vector = npt.NDArray[np.float32]


def peer_missing() -> str | None:
    """Why the peer cannot run here, or None when its packages are installed."""
    for module in ("face_recognition", "face_recognition_models", "dlib"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed; install the peer with: {PEER_PIP}"
    return None


def peer_figures(
    photos: Mapping[str, Sequence[str]],
    encodings: Mapping[str, Vector],
    *,
    size: str,
    enrol_photos: int,
    seed: int,
    tolerance: float = PEER_TOLERANCE,
) -> dict[str, Any]:
    """The recipe on one gallery: known faces = the enrolment photos' encodings, each probe
    named after the nearest known face within ``tolerance``."""
    split = ident.split(photos, size=size, enrol_photos=enrol_photos, seed=seed)
    known: list[Vector] = []
    owners: list[int] = []
    for i, name in enumerate(split.identities):
        for photo in split.gallery[name]:
            known.append(encodings[photo])
            owners.append(i)
    dim = len(next(iter(encodings.values()))) if encodings else 0
    probes = np.array([encodings[p] for p, _ in split.probes], np.float64).reshape(-1, dim)
    faces = np.array(known, np.float64).reshape(-1, dim)
    distances = euclidean(probes, faces)
    nearest = ident.nearest_within(distances, tolerance)
    owner = np.asarray(owners, dtype=np.int64)
    decisions = np.where(nearest >= 0, owner[np.maximum(nearest, 0)], -1).astype(np.int64)
    scores = ident.identity_scores(distances, owners, len(split.identities))
    figures = ident.figures(scores, split.truth(), decisions)
    return {
        "gallery_size_requested": size,
        "gallery_size": len(split.identities),
        "enrol_photos": enrol_photos,
        "enrolled_faces": len(known),
        "figures": dataclasses.asdict(figures),
        "threshold_distance": [
            None if a.threshold is None else -a.threshold for a in figures.threshold_free
        ],
    }


def _peer_encodings(paths: Sequence[Path], workers: int) -> tuple[dict[Path, Vector | None], int]:
    """The peer's encoding of each photo's central face (None: none found), from its cache
    where the photo is unchanged; returns them and how many were computed now."""
    from bench.compare_lfw import _chunks, _peer_embed, _peer_init

    where = CACHE_DIR / PEER_CACHE
    cached = load_cache(where)
    stamps = {p: (str(p.absolute()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths}
    out: dict[Path, Vector | None] = {p: cached[s] for p, s in stamps.items() if s in cached}
    todo = [p for p in paths if p not in out]
    if todo:
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_peer_init,
        ) as pool:
            parts = _chunks(todo)
            for part, found in zip(parts, pool.map(_peer_embed, parts), strict=True):
                for path, hit in zip(part, found, strict=True):
                    out[path] = None if hit is None else hit[0].astype(np.float32)
        save_cache(where, cached | {stamps[p]: out[p] for p in todo})
    return out, len(todo)


def run_peer(
    images: Path, *, sizes: Sequence[str], counts: Sequence[int], seed: int, workers: int
) -> dict[str, Any]:
    started = time.perf_counter()
    found = scan(images)
    paths = [p for ps in found.values() for p in ps]
    vectors, embedded = _peer_encodings(paths, workers)
    photos = usable_photos(found, vectors)
    encodings = {str(p): v for p, v in vectors.items() if v is not None}
    results = [
        peer_figures(photos, encodings, size=size, enrol_photos=k, seed=seed)
        for k in counts
        for size in sizes
    ]
    return {
        "recipe": f"nearest known face if face_distance <= {PEER_TOLERANCE}",
        "counts": {
            "images": len(paths),
            "images_without_face": sum(1 for v in vectors.values() if v is None),
            "enrolable_identities": len(ident.enrolable(photos)),
        },
        "embedded": embedded,
        "cache_hits": len(paths) - embedded,
        "results": results,
        "seconds": round(time.perf_counter() - started, 2),
    }


def rows(side: str, results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per gallery: what the README's table shows."""
    out = []
    for r in results:
        f = r["figures"]
        at = {a["fpir_target"]: a["fnir"] for a in f["threshold_free"]}
        out.append(
            {
                "side": side,
                "gallery_size": r["gallery_size"],
                "enrol_photos": r["enrol_photos"],
                "mated_probes": f["mated_probes"],
                "non_mated_probes": f["non_mated_probes"],
                "rank1": f["rank1"],
                "fnir_at_fpir_1e-2": at.get(0.01),
                "fnir_at_fpir_1e-3": at.get(0.001),
                "fnir_at_rule": f["at_rule"]["fnir"],
                "fpir_at_rule": f["at_rule"]["fpir"],
            }
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=None, help="default: <testdata>/lfw/images")
    parser.add_argument(
        "--quick", action="store_true", help="the 59 people photos, galleries of 5 and all"
    )
    parser.add_argument("--gallery-sizes", default="10,100,all")
    parser.add_argument("--enrol-photos", default="1,3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-peer", action="store_true", help="facelens only")
    args = parser.parse_args(argv)
    if args.images is None:
        args.images = testdata_dir() / ("people" if args.quick else "lfw/images")
    sizes = ident.parse_sizes("5,all" if args.quick else args.gallery_sizes)
    counts = ident.parse_counts(args.enrol_photos, "--enrol-photos")
    machine = machine_facts()
    settings = Settings(workers=args.workers)
    ours = run_identify(
        args.images,
        settings,
        sizes=sizes,
        enrol_counts=counts,
        seed=args.seed,
        cache_dir=settings.home / "cache",
        open_rule=open_recognizer_rule,
    )
    document: dict[str, Any] = {"machine": machine, "ours": dataclasses.asdict(ours)}
    table = rows("facelens", document["ours"]["results"])
    missing = "not asked for (--no-peer)" if args.no_peer else peer_missing()
    if missing is None:
        peer = run_peer(
            args.images, sizes=sizes, counts=counts, seed=args.seed, workers=args.workers
        )
        document["peer"] = peer
        table += rows("face_recognition", peer["results"])
    else:
        document["peer"] = {"absent": missing}
    document["rows"] = table
    write_result("identify", document)


if __name__ == "__main__":
    main()
