"""The open-set calibration of the configured engine: what share of strangers reach a score.

For each gallery size on a log grid (1 to 1000 people), random galleries are drawn from the
identities of an LFW-layout folder (one random photo each enrolled), and photos of people
left out are scored against them as the recognizer's rule scores them
(:func:`facelens.evaluation.identification.open_set_top`, the vectorised twin of
:mod:`facelens.people.matching`). The score each share of strangers reaches (50% down to
0.05%) is one row of :class:`facelens.engine.open_set.Calibration`. Vectors come from
``facelens bench identify``'s cache (the same engine settings embed the same photos once).

Run from the repository root::

    python -m bench.calibrate_open_set [--images DIR] [--seed 0] [--write] [--check]
                                       [--weights]

``--write`` stores the calibration where the engine reads it
(``src/facelens/engine/calibrations/<model version>.json``). ``--check`` splits the
identities in two halves, calibrates on one and measures the FPIR the rule would have on the
other (how well a calibration carries to people it never saw). ``--weights`` reports FNIR at
FPIR 1% for fixed cohort weights per gallery size (how :func:`cohort_weight` was chosen).
Writes bench/results/calibrate_open_set.json.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench._common import REPO_ROOT, machine_facts, testdata_dir, write_result
from facelens.config import Settings
from facelens.engine import open_set
from facelens.engine.registry import build_engine
from facelens.evaluation import identification as ident
from facelens.evaluation.identify_run import (
    embed_folder,
    euclidean,
    gallery_scores,
    scan,
    usable_photos,
)

GALLERY_SIZES = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)
"""Up to 1000 people: LFW's development folder has 2086 identities, and a gallery must leave
enough people out to be its strangers (at 1500 only 586 were left, and the row came out
lower than 1000's: too few distinct strangers). Larger galleries are extrapolated."""
STRANGERS_PER_GALLERY = 600
"""Stranger photos scored against each random gallery (fewer when fewer exist)."""
SCORES_PER_SIZE = 60_000
"""Stranger scores pooled per gallery size: the 0.05% level then rests on 30 of them."""
CALIBRATIONS_DIR = REPO_ROOT / "src" / "facelens" / "engine" / "calibrations"

Vector = npt.NDArray[np.float32]


def stranger_scores(
    vectors: npt.NDArray[np.float32],
    owner: npt.NDArray[np.int64],
    identities: Sequence[int],
    size: int,
    rng: np.random.Generator,
    *,
    photos_each: int = 1,
) -> npt.NDArray[np.float64] | None:
    """Open-set scores of stranger photos against random galleries of ``size`` people drawn
    from ``identities``, pooled to about SCORES_PER_SIZE. Each person enrols one random photo,
    or with ``photos_each`` > 1 up to that many (people with at least 2 only). None when
    ``identities`` has fewer than ``size`` such people."""
    pool = np.asarray(identities)
    photos = {int(i): np.flatnonzero(owner == i) for i in pool}
    candidates = (
        pool if photos_each == 1 else np.array([i for i in pool if len(photos[int(i)]) >= 2])
    )
    if size > len(candidates):
        return None
    names = [str(k) for k in range(size)]
    pooled: list[npt.NDArray[np.float64]] = []
    total = 0
    while total < SCORES_PER_SIZE:
        gallery = rng.choice(candidates, size, replace=False)
        enrolled = [
            [rng.choice(photos[int(g)])]
            if photos_each == 1
            else rng.permutation(photos[int(g)])[:photos_each]
            for g in gallery
        ]
        others = np.flatnonzero(np.isin(owner, pool) & ~np.isin(owner, gallery))
        take = rng.choice(others, min(STRANGERS_PER_GALLERY, len(others)), replace=False)
        kept = {
            name: [vectors[j] for j in mine] for name, mine in zip(names, enrolled, strict=True)
        }
        scored = gallery_scores(vectors[take], kept, names)
        pooled.append(ident.open_set_top(-scored.scores, -scored.people).score)
        total += len(take)
    return np.concatenate(pooled)


SEVERAL = 3
"""Photos a several-photo person enrols in the offset measurement (fewer when they have
fewer; at least 2): what the README recommends."""
OFFSET_LEVELS = (0.05, 0.02, 0.01, 0.005, 0.002, 0.001)
"""The FPIR levels whose threshold shifts make up a size's several-photo offset (median)."""

MATED_PER_SIZE = 3000
"""Mated probes pooled per gallery size and enrol count for the FNIR tables."""


def missed(
    vectors: npt.NDArray[np.float32],
    owner: npt.NDArray[np.int64],
    identities: Sequence[int],
    size: int,
    row: Sequence[float],
    rng: np.random.Generator,
    *,
    enrol: int,
    offset: float,
) -> tuple[float, ...]:
    """FNIR at each threshold of ``row``: galleries of ``size`` people, as many as possible
    of them with ``enrol`` + 1 photos or more (they enrol ``enrol`` and are probed with the
    rest), the others enrolling one photo; a mated probe counts when its own person is the
    nearest and scores at least the threshold (less ``offset`` for people enrolled from
    several photos, as the rule takes it off)."""
    pool = np.asarray(identities)
    photos = {int(i): np.flatnonzero(owner == i) for i in pool}
    probed = np.array([i for i in pool if len(photos[int(i)]) > enrol])
    hits = np.zeros(len(row))
    total = 0
    while total < MATED_PER_SIZE:
        chosen = rng.choice(probed, min(size, len(probed)), replace=False)
        filler = rng.choice(np.setdiff1d(pool, chosen), size - len(chosen), replace=False)
        gallery = np.concatenate([chosen, filler]).astype(np.int64)
        kept: dict[str, list[Vector]] = {}
        probes: list[int] = []
        truth: list[int] = []
        for k, person in enumerate(gallery):
            mine = rng.permutation(photos[int(person)])
            take = enrol if k < len(chosen) else 1
            kept[str(k)] = [vectors[j] for j in mine[:take]]
            if k < len(chosen):
                probes += list(mine[take:])
                truth += [k] * (len(mine) - take)
        scored = gallery_scores(vectors[probes], kept, [str(k) for k in range(len(gallery))])
        offsets = np.array([offset if len(kept[str(k)]) > 1 else 0.0 for k in range(size)])
        top = ident.open_set_top(-scored.scores, -scored.people, offsets)
        right = top.best == np.asarray(truth)
        for j, threshold in enumerate(row):
            hits[j] += int((right & (top.score >= threshold)).sum())
        total += len(probes)
    return tuple(float(1.0 - h / total) for h in hits)


def calibrate(
    vectors: npt.NDArray[np.float32],
    owner: npt.NDArray[np.int64],
    identities: Sequence[int],
    *,
    model_version: str,
    seed: int,
    source: str,
    with_fnir: bool = True,
) -> open_set.Calibration:
    """One row per gallery size: the score each FPIR level of strangers reaches, and (with
    ``with_fnir``) the FNIR there for people enrolled from one photo and from three."""
    rng = np.random.default_rng(seed)
    levels = tuple(open_set.fpir_levels_default())
    sizes = [n for n in GALLERY_SIZES if n < len(identities) - 1]
    rows: list[tuple[float, ...]] = []
    counts: list[int] = []
    one: list[tuple[float, ...]] = []
    several: list[tuple[float, ...]] = []
    offsets: list[float] = []
    for n in sizes:
        scores = stranger_scores(vectors, owner, identities, n, rng)
        assert scores is not None  # sizes stop short of the identities
        row = tuple(
            float(x) for x in np.maximum.accumulate(np.quantile(scores, [1.0 - v for v in levels]))
        )
        rows.append(row)
        counts.append(len(scores))
        if with_fnir:
            template_scores = stranger_scores(
                vectors, owner, identities, n, rng, photos_each=SEVERAL
            )
            if template_scores is None:  # too few several-photo people: the largest's offset
                offsets.append(offsets[-1] if offsets else 0.0)
            else:
                shifted = np.quantile(template_scores, [1.0 - v for v in OFFSET_LEVELS])
                plain = np.quantile(scores, [1.0 - v for v in OFFSET_LEVELS])
                # Clamped at 0 as Calibration.person_offset is: never laxer for them.
                offsets.append(max(0.0, float(np.median(shifted - plain))))
            one.append(missed(vectors, owner, identities, n, row, rng, enrol=1, offset=0.0))
            several.append(
                missed(vectors, owner, identities, n, row, rng, enrol=3, offset=offsets[-1])
            )
    return open_set.Calibration(
        model_version=model_version,
        gallery_sizes=tuple(sizes),
        fpir_levels=levels,
        thresholds=tuple(rows),
        strangers=tuple(counts),
        source=source,
        fnir_one_photo=tuple(one),
        fnir_several_photos=tuple(several),
        several_photos_offset=tuple(offsets),
    )


def check(
    vectors: npt.NDArray[np.float32],
    owner: npt.NDArray[np.int64],
    identities: Sequence[int],
    *,
    model_version: str,
    seed: int,
) -> list[dict[str, Any]]:
    """Calibrate on one half of the identities, measure the FPIR at each target on the other."""
    rng = np.random.default_rng(seed + 1)
    shuffled = rng.permutation(np.asarray(identities))
    half_a, half_b = shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2 :]
    cal = calibrate(
        vectors,
        owner,
        list(half_a),
        model_version=model_version,
        seed=seed,
        source="",
        with_fnir=False,
    )
    out = []
    for n in (10, 100, 500):
        if n >= len(half_b) - 1:
            continue
        scores = stranger_scores(vectors, owner, list(half_b), n, rng)
        assert scores is not None  # n is below half the identities
        for target in (0.01, 0.005, 0.001):
            threshold = cal.threshold(n, target)
            out.append(
                {
                    "gallery_size": n,
                    "target_fpir": target,
                    "measured_fpir_on_unseen_people": float((scores >= threshold).mean()),
                    "strangers": len(scores),
                }
            )
    return out


def weights(
    vectors: npt.NDArray[np.float32],
    owner: npt.NDArray[np.int64],
    photos: Mapping[str, Sequence[int]],
    *,
    seed: int,
) -> list[dict[str, Any]]:
    """FNIR at FPIR 1% with fixed cohort weights, random enrol-one galleries of enrolable
    identities (mated probes: their other photos), per size: what cohort_weight follows."""
    rng = np.random.default_rng(seed + 2)
    enrolable = [i for i, name in enumerate(photos) if len(photos[name]) >= 2]
    out = []
    for n in (10, 30, 100, 300, len(enrolable)):
        reps = max(1, min(20, 3000 // n))
        fnir: dict[float, list[float]] = {}
        for _ in range(reps):
            gallery = rng.choice(enrolable, min(n, len(enrolable)), replace=False)
            position = {int(g): k for k, g in enumerate(gallery)}
            enrolled = np.array([np.flatnonzero(owner == g)[0] for g in gallery])
            probes = np.setdiff1d(np.arange(len(owner)), enrolled)
            truth = np.array([position.get(int(o), -1) for o in owner[probes]])
            g = vectors[enrolled]
            d, gg = euclidean(vectors[probes], g), euclidean(g, g)
            order = np.argsort(d, axis=1)
            best = order[:, 0]
            d1 = d[np.arange(len(d)), best]
            probe_cohort = np.take_along_axis(d, order[:, 1 : open_set.COHORT_SIZE + 1], 1)
            own = np.sort(gg + np.diag(np.full(len(g), math.inf)), 1)[:, : open_set.COHORT_SIZE]
            cohort = (probe_cohort.mean(1) + own[best].mean(1)) / 2
            mated = truth >= 0
            for w in (0.0, 0.25, 0.5, 0.75, 1.0):
                s = w * cohort - d1
                threshold = ident.threshold_at_fpir(s[~mated], 0.01)
                named = s > (threshold if threshold is not None else math.inf)
                hits = (mated & (best == truth) & named).sum()
                fnir.setdefault(w, []).append(1.0 - hits / mated.sum())
        out.append(
            {
                "gallery_size": int(min(n, len(enrolable))),
                "repetitions": reps,
                "cohort_weight_in_use": open_set.cohort_weight(min(n, len(enrolable))),
                "fnir_at_fpir_1pct_by_weight": {str(w): float(np.mean(v)) for w, v in fnir.items()},
            }
        )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=testdata_dir() / "lfw" / "images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="store it where the engine reads it")
    parser.add_argument("--check", action="store_true", help="calibrate on half, test on half")
    parser.add_argument("--weights", action="store_true", help="FNIR per fixed cohort weight")
    args = parser.parse_args(argv)
    settings = Settings()
    started = time.perf_counter()
    found = scan(args.images)
    paths = [p for ps in found.values() for p in ps]
    embedded = embed_folder(paths, settings, settings.home / "cache")
    photos = usable_photos(found, embedded.vectors)
    names = list(photos)
    flat = [(i, p) for i, name in enumerate(names) for p in photos[name]]
    vectors = np.array([embedded.vectors[Path(p)] for _, p in flat], dtype=np.float32)
    owner = np.array([i for i, _ in flat], dtype=np.int64)
    index_of: dict[str, list[int]] = {}
    for k, (i, _) in enumerate(flat):
        index_of.setdefault(names[i], []).append(k)
    model_version = build_engine(settings).model_version
    source = (
        f"bench/calibrate_open_set.py on {len(names)} identities / {len(flat)} photos of "
        f"{args.images.name} (seed {args.seed}); detector {settings.detector}, "
        f"views {getattr(settings, 'embed_views', 'five')}"
    )
    calibration = calibrate(
        vectors,
        owner,
        list(range(len(names))),
        model_version=model_version,
        seed=args.seed,
        source=source,
    )
    document: dict[str, Any] = {
        "benchmark": "calibrate_open_set",
        "machine": machine_facts(),
        "calibration": calibration.to_json(),
    }
    if args.write:
        CALIBRATIONS_DIR.mkdir(exist_ok=True)
        target = CALIBRATIONS_DIR / open_set.calibration_file_name(model_version)
        import json

        target.write_text(json.dumps(calibration.to_json(), indent=1) + "\n", encoding="utf-8")
        document["written"] = str(target.relative_to(REPO_ROOT))
    if args.check:
        document["check"] = check(
            vectors, owner, list(range(len(names))), model_version=model_version, seed=args.seed
        )
    if args.weights:
        document["weights"] = weights(vectors, owner, index_of, seed=args.seed)
    document["seconds"] = round(time.perf_counter() - started, 1)
    print(write_result("calibrate_open_set", document))


if __name__ == "__main__":
    main()
