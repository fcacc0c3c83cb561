"""Fusing the looks of a visit, offline: which fusion, and which hysteresis, on LFW photos.

A visit (issue 19) is one person in view of one camera; the edge uploads its
first look at once and a few more while it lasts, and the recognizer fuses
them. This study decides, before any of that runs, how to fuse and how
reluctantly to change an answer, from the cached embeddings of the LFW
development photos (``$FACELENS_HOME/cache``, as ``bench.identify`` and
``facelens bench identify`` make them: with the cache in place a run takes
seconds) and the recognizer's own open-set rule, applied offline by its
vectorised twin (:func:`facelens.evaluation.identification.open_set_top`, the
score; the engine's calibration, the expected FPIR; a name when that is at most
``BOUND_MARGIN * max_false_identification_rate``). No profile thresholds and
no negatives take part (none are enrolled here), so the twin is the rule.

**Synthetic visits.** The identities with two or more photos are shuffled
(seeded) and cut into ``--folds`` parts; in each fold one part is the stranger
pool (never enrolled) and the others the enrolled pool, so every identity is a
stranger once and enrolled ``folds - 1`` times. An enrolled identity enrols its
first photo (sorted by name, as ``bench.identify`` with one photo); a visit of
k looks is k of its *other* photos in random order, so a look is never an
enrolment photo. A stranger's visit is k of its photos. Each identity gives up
to ``--visits-per-identity`` distinct ordered draws per k (fewer when it has
too few photos). Gallery sizes: ``100`` (the first 100 of the enrolled pool)
and ``all`` (the whole enrolled pool: the largest the split allows while
leaving strangers with several photos). The stranger visits are the same at
both sizes of one fold.

**What is compared, per visit.**

* ``first_look``: the first look alone, today's single-crop rule.
* ``embedding_mean``: the rule on the unit mean of all k looks' embeddings
  (quality-blind: LFW photos carry no edge quality).
* ``score_mean``: the rule on the mean, over the looks, of each person's
  distance (score-space fusion; the cohorts read the fused distances too).
* ``visit_protocol``: what the recognizer publishes. The first answer is the
  first look's; after each later look the looks so far are fused (either way
  above) and the answer revised under hysteresis (:func:`follow_visit`): an
  unknown (or another name) becomes a name only when the fused probe names
  that person at expected FPIR <= bound * ``revise_factor``; a name is kept
  while the fused probe still names that person at expected FPIR <= bound *
  ``keep_factor``; at most ``max_revisions`` changes. Every ``revise_factor``
  in 1, 0.5, 0.25, 0.1 and ``keep_factor`` in 1, 2, 4 is tried.

**Figures**, counted per visit on its final answer: ``strangers_named``
(FPIR: stranger visits given a name), ``enrolled_wrong`` (enrolled visits
named as somebody else), ``enrolled_unknown`` (left unnamed), FNIR = both over
enrolled visits, ``wrong_names`` = strangers named + enrolled named wrongly;
for the protocol also ``changed`` (final answer differs from the first) and
``revised_more_than_once``. Counts are summed over the folds and over
``--seeds`` (one split per seed: a gallery of 100 drawn by one seed can hold a
face many strangers resemble, so one seed's wrong names swing by 3x;
``per_seed_k2_up`` shows the spread); ``totals`` sums k = 2..6 (k = 1 is the
same for every method).

**The recommendation** (at the top of the JSON): among the protocol's
settings, those with no more wrong names than ``first_look`` at every gallery
size and fewer enrolled unknowns, the one with the fewest enrolled unknowns
(ties: fewest wrong names, then fewest visits changed more than once).

Run from the repository root (FACELENS_HOME holding the identify cache)::

    FACELENS_HOME=/tmp/cal-home python -m bench.visit_fusion [--images DIR]
        [--folds 3] [--visits-per-identity 3] [--max-looks 6] [--seeds 0,1,2]

Writes ``bench/results/visit_fusion.json``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench._common import machine_facts, testdata_dir, write_result
from facelens.config import Settings
from facelens.engine.open_set import BOUND_MARGIN, Calibration, calibration_for
from facelens.engine.registry import build_engine
from facelens.evaluation import identification as ident
from facelens.evaluation.identify_run import (
    embed_folder,
    gallery_scores,
    scan,
    usable_photos,
)

REVISE_FACTORS = (1.0, 0.5, 0.25, 0.1)
"""Shares of the bound a fused probe must reach to put a (new) name on a visit. 0.1 is the
strictest the calibration can tell apart at the default bound (0.5% x 0.1 = 0.05%, its
smallest measured level); it was added because embedding-mean fusion needed more than 0.25."""
KEEP_FACTORS = (1.0, 2.0, 4.0)
"""Multiples of the bound a fused probe may reach and still keep the visit's name."""
MAX_REVISIONS = 3
"""The recognizer's cap on changes per visit (RECOGNIZER's default)."""
FUSIONS = ("embedding_mean", "score_mean")
UNKNOWN = -1

Vector = npt.NDArray[np.float32]
Distances = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Visit:
    """One synthetic visit: whose it is, its gallery index (-1: a stranger to the gallery;
    set per gallery) and its looks (photo paths) in the order the camera saw them."""

    identity: str
    looks: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    """What the rule says about a visit's looks so far, fused: the nearest person (gallery
    index, -1 for an empty gallery) and the share of strangers expected to score as high."""

    best: int
    expected_fpir: float


@dataclass(frozen=True)
class Outcome:
    """A visit's answers under the protocol: the first, the final, and how many changes."""

    first: int
    final: int
    revisions: int


@dataclass(frozen=True)
class Hysteresis:
    """One setting of the visit protocol (module docstring)."""

    fusion: str
    revise_factor: float
    keep_factor: float
    max_revisions: int = MAX_REVISIONS

    @property
    def name(self) -> str:
        return f"{self.fusion}/revise={self.revise_factor:g}/keep={self.keep_factor:g}"


def named(step: Step, bound: float) -> int:
    """The rule's decision: the nearest person when strangers reach the score rarely enough."""
    return step.best if step.best >= 0 and step.expected_fpir <= bound else UNKNOWN


def follow_visit(steps: Sequence[Step], bound: float, setting: Hysteresis) -> Outcome:
    """The recognizer's visit protocol over ``steps`` (one per look, each fusing the looks so
    far): first answer from the first look at ``bound``; then a name is kept while the fused
    probe names that person at ``bound * keep_factor``, and a (new) name given only at
    ``bound * revise_factor``; once ``max_revisions`` changes were made the answer stays."""
    if not steps:
        raise ValueError("a visit has at least one look")
    first = current = named(steps[0], bound)
    revisions = 0
    for step in steps[1:]:
        if revisions >= setting.max_revisions:
            break
        keeps = current >= 0 and step.best == current
        if keeps and step.expected_fpir <= bound * setting.keep_factor:
            continue
        proposed = named(step, bound * setting.revise_factor)
        if proposed == UNKNOWN and current == UNKNOWN:
            continue
        if proposed != current:
            current = proposed
            revisions += 1
    return Outcome(first, current, revisions)


def folds_of(names: Sequence[str], folds: int, seed: int) -> list[list[str]]:
    """``names`` shuffled (seeded) and dealt into ``folds`` parts of near-equal size."""
    if folds < 2:
        raise ValueError("at least two folds: one part strangers, the rest enrolled")
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[int(i)] for i in order]
    return [shuffled[f::folds] for f in range(folds)]


def draw_looks(
    photos: Sequence[str], k: int, count: int, rng: np.random.Generator
) -> list[tuple[str, ...]]:
    """Up to ``count`` distinct ordered draws of ``k`` of ``photos`` (none when too few).
    Order matters (the first look is today's answer), so two orders of one set are two."""
    n = len(photos)
    if n < k:
        return []
    possible = math.perm(n, k)
    if possible <= count:
        return [tuple(p) for p in itertools.permutations(photos, k)]
    seen: set[tuple[str, ...]] = set()
    out: list[tuple[str, ...]] = []
    while len(out) < count:
        pick = tuple(photos[int(i)] for i in rng.permutation(n)[:k])
        if pick not in seen:
            seen.add(pick)
            out.append(pick)
    return out


@dataclass
class Tally:
    """Counts for one method on one set of visits (mutable while counting; then asdict)."""

    stranger_visits: int = 0
    strangers_named: int = 0
    enrolled_visits: int = 0
    enrolled_right: int = 0
    enrolled_wrong: int = 0
    enrolled_unknown: int = 0
    changed: int = 0
    revised_more_than_once: int = 0

    def count(self, truth: int, final: int, outcome: Outcome | None = None) -> None:
        if truth < 0:
            self.stranger_visits += 1
            self.strangers_named += final >= 0
        else:
            self.enrolled_visits += 1
            if final == truth:
                self.enrolled_right += 1
            elif final >= 0:
                self.enrolled_wrong += 1
            else:
                self.enrolled_unknown += 1
        if outcome is not None:
            self.changed += outcome.final != outcome.first
            self.revised_more_than_once += outcome.revisions > 1

    def add(self, other: Tally) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    @property
    def wrong_names(self) -> int:
        return self.strangers_named + self.enrolled_wrong

    def report(self, protocol: bool) -> dict[str, Any]:
        def rate(a: int, b: int) -> float | None:
            return round(a / b, 5) if b else None

        out: dict[str, Any] = asdict(self)
        if not protocol:
            del out["changed"], out["revised_more_than_once"]
        out["wrong_names"] = self.wrong_names
        out["fpir"] = rate(self.strangers_named, self.stranger_visits)
        out["fnir"] = rate(self.enrolled_wrong + self.enrolled_unknown, self.enrolled_visits)
        out["enrolled_wrong_rate"] = rate(self.enrolled_wrong, self.enrolled_visits)
        out["enrolled_unknown_rate"] = rate(self.enrolled_unknown, self.enrolled_visits)
        if protocol:
            out["changed_rate"] = rate(self.changed, self.stranger_visits + self.enrolled_visits)
        return out


@dataclass
class Counts:
    """Per method name, per k: the tallies (summed over folds)."""

    by_k: dict[str, dict[int, Tally]] = field(default_factory=dict)

    def tally(self, method: str, k: int) -> Tally:
        return self.by_k.setdefault(method, {}).setdefault(k, Tally())

    def add(self, other: Counts) -> None:
        for method, by_k in other.by_k.items():
            for k, tally in by_k.items():
                self.tally(method, k).add(tally)

    def total(self, method: str, ks: Iterable[int]) -> Tally:
        out = Tally()
        for k in ks:
            out.add(self.by_k.get(method, {}).get(k, Tally()))
        return out


class Gallery:
    """One gallery's offline rule: distances to its persons, the open-set score, expected FPIR."""

    def __init__(
        self,
        identities: Sequence[str],
        enrol: Mapping[str, Vector],
        calibration: Calibration,
    ) -> None:
        self.identities = tuple(identities)
        self.index = {name: i for i, name in enumerate(self.identities)}
        self.size = len(self.identities)
        self.calibration = calibration
        kept = {name: [enrol[name]] for name in self.identities}
        dim = len(next(iter(enrol.values())))
        # One call for the persons' own distances (the cohort of the person named).
        self._kept = kept
        self._people = -gallery_scores(np.zeros((0, dim), np.float32), kept, identities).people
        self._offsets = np.array([calibration.person_offset(self.size, 1)] * self.size)

    def distances(self, probes: npt.NDArray[np.float32]) -> Distances:
        """Probes x persons: the distance to the nearer of each person's template and face."""
        return np.asarray(-gallery_scores(probes, self._kept, self.identities).scores)

    def steps(self, distances: Distances) -> list[Step]:
        """The rule's view of each row of ``distances`` (probes x persons)."""
        top = ident.open_set_top(distances, self._people, self._offsets)
        return [
            Step(int(b), self.calibration.expected_fpir(float(s), self.size))
            for b, s in zip(top.best, top.score, strict=True)
        ]


def unit_mean(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The quality-blind embedding fusion: the mean of the looks, renormalised to unit length."""
    mean = vectors.astype(np.float64).mean(axis=0)
    norm = max(float(np.linalg.norm(mean)), 1e-12)
    out: npt.NDArray[np.float32] = (mean / norm).astype(np.float32)
    return out


def prefix_probes(
    visits: Sequence[Visit],
    vectors: Mapping[str, Vector],
    single: Mapping[str, int],
    single_distances: Distances,
    gallery: Gallery,
) -> dict[str, list[list[Step]]]:
    """Per fusion, per visit, the rule's :class:`Step` after each look (fusing looks 1..i)."""
    fused: list[Vector] = []
    score_rows: list[npt.NDArray[np.float64]] = []
    for visit in visits:
        rows = single_distances[[single[p] for p in visit.looks]]
        stack = np.stack([vectors[p] for p in visit.looks])
        for i in range(1, len(visit.looks) + 1):
            fused.append(unit_mean(stack[:i]))
            score_rows.append(rows[:i].mean(axis=0))
    dim = single_distances.shape[1]
    by_fusion = {
        "embedding_mean": gallery.steps(gallery.distances(np.stack(fused))) if fused else [],
        "score_mean": gallery.steps(np.stack(score_rows).reshape(-1, dim)) if score_rows else [],
    }
    out: dict[str, list[list[Step]]] = {name: [] for name in FUSIONS}
    for name, flat in by_fusion.items():
        at = 0
        for visit in visits:
            out[name].append(flat[at : at + len(visit.looks)])
            at += len(visit.looks)
    return out


def settings_grid() -> list[Hysteresis]:
    return [
        Hysteresis(fusion, r, k) for fusion in FUSIONS for r in REVISE_FACTORS for k in KEEP_FACTORS
    ]


def measure_gallery(
    visits_by_k: Mapping[int, Sequence[Visit]],
    gallery: Gallery,
    vectors: Mapping[str, Vector],
    bound: float,
    counts: Counts,
) -> None:
    """Adds one gallery's visits, every method and protocol setting, to ``counts``."""
    photos = sorted({p for visits in visits_by_k.values() for v in visits for p in v.looks})
    single = {p: i for i, p in enumerate(photos)}
    single_distances = gallery.distances(np.stack([vectors[p] for p in photos]))
    grid = settings_grid()
    for k, visits in visits_by_k.items():
        steps = prefix_probes(visits, vectors, single, single_distances, gallery)
        for i, visit in enumerate(visits):
            truth = gallery.index.get(visit.identity, UNKNOWN)
            counts.tally("first_look", k).count(truth, named(steps["embedding_mean"][i][0], bound))
            for fusion in FUSIONS:
                counts.tally(fusion, k).count(truth, named(steps[fusion][i][-1], bound))
            for setting in grid:
                outcome = follow_visit(steps[setting.fusion][i], bound, setting)
                counts.tally(setting.name, k).count(truth, outcome.final, outcome)


def draw_fold_visits(
    photos: Mapping[str, Sequence[str]],
    enrolled_pool: Sequence[str],
    strangers: Sequence[str],
    *,
    max_looks: int,
    per_identity: int,
    seed: int,
) -> dict[int, list[Visit]]:
    """Per k: visits of every enrolled-pool identity (looks from its photos after the first,
    its enrolment photo) and of every stranger (any of its photos)."""
    rng = np.random.default_rng(seed)
    out: dict[int, list[Visit]] = {}
    for k in range(1, max_looks + 1):
        visits: list[Visit] = []
        for name in enrolled_pool:
            looks = sorted(photos[name])[1:]
            visits += [Visit(name, d) for d in draw_looks(looks, k, per_identity, rng)]
        for name in strangers:
            visits += [
                Visit(name, d) for d in draw_looks(sorted(photos[name]), k, per_identity, rng)
            ]
        out[k] = visits
    return out


def choose(
    reports: Mapping[str, Mapping[str, Mapping[str, Any]]], settings: Sequence[Hysteresis]
) -> dict[str, Any]:
    """The recommendation (module docstring) from each size's totals (method -> report)."""
    feasible: list[tuple[tuple[int, int, int], Hysteresis]] = []
    rejected: dict[str, str] = {}
    for setting in settings:
        why = []
        unknown = wrong = twice = 0
        for size, totals in reports.items():
            base, mine = totals["first_look"], totals[setting.name]
            if mine["wrong_names"] > base["wrong_names"]:
                why.append(f"{size}: {mine['wrong_names']} wrong names > {base['wrong_names']}")
            if mine["enrolled_unknown"] >= base["enrolled_unknown"]:
                why.append(f"{size}: no fewer unknowns")
            unknown += mine["enrolled_unknown"]
            wrong += mine["wrong_names"]
            twice += mine["revised_more_than_once"]
        if why:
            rejected[setting.name] = "; ".join(why)
        else:
            feasible.append(((unknown, wrong, twice), setting))
    if not feasible:
        return {"setting": None, "why": "no setting met the constraint", "rejected": rejected}
    feasible.sort(key=lambda item: item[0])
    (unknown, wrong, twice), best = feasible[0]
    return {
        "fusion": best.fusion,
        "revise_factor": best.revise_factor,
        "keep_factor": best.keep_factor,
        "max_revisions": best.max_revisions,
        "setting": best.name,
        "why": "fewest enrolled unknowns (summed over gallery sizes, k = 2..6) among the "
        "settings with no more wrong names than the first look alone at every gallery size "
        f"and fewer unknowns: {unknown} unknowns, {wrong} wrong names, {twice} visits "
        "revised more than once",
        "feasible_in_order": [
            {
                "setting": s.name,
                "enrolled_unknown": u,
                "wrong_names": w,
                "revised_more_than_once": t,
            }
            for (u, w, t), s in feasible
        ],
        "rejected": rejected,
    }


def run(
    images: Path,
    settings: Settings,
    *,
    folds: int,
    per_identity: int,
    max_looks: int,
    seeds: Sequence[int],
    small_gallery: int = 100,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    started = time.perf_counter()
    found = scan(images)
    paths = [p for ps in found.values() for p in ps]
    embedded = embed_folder(paths, settings, settings.home / "cache")
    photos = usable_photos(found, embedded.vectors)
    vectors = {str(p): v for p, v in embedded.vectors.items() if v is not None}
    model_version = build_engine(settings).model_version
    calibration = calibration_for(model_version)
    if calibration is None:
        raise SystemExit(f"no open-set calibration for {model_version}: nothing to apply")
    bound = BOUND_MARGIN * settings.recognizer.max_false_identification_rate
    multi = ident.enrolable(photos)
    sizes = (str(small_gallery), ident.ALL)
    counts = {size: Counts() for size in sizes}
    per_seed: dict[int, dict[str, Counts]] = {}
    gallery_sizes: dict[str, list[int]] = {size: [] for size in sizes}
    for seed in seeds:
        per_seed[seed] = {size: Counts() for size in sizes}
        parts = folds_of(multi, folds, seed)
        for f, strangers in enumerate(parts):
            pool = [n for g, part in enumerate(parts) if g != f for n in part]
            visits = draw_fold_visits(
                photos,
                pool,
                strangers,
                max_looks=max_looks,
                per_identity=per_identity,
                seed=seed * 1000 + f,
            )
            for size in sizes:
                chosen = pool if size == ident.ALL else pool[: int(size)]
                chosen_set = set(chosen)
                gallery = Gallery(
                    sorted(chosen), {n: vectors[sorted(photos[n])[0]] for n in chosen}, calibration
                )
                gallery_sizes[size].append(gallery.size)
                # The enrolled pool's identities left out of a small gallery are neither
                # enrolled nor in the stranger pool: left out, so both sizes share strangers.
                kept = {
                    k: [v for v in vs if v.identity in chosen_set or v.identity in strangers]
                    for k, vs in visits.items()
                }
                measure_gallery(kept, gallery, vectors, bound, per_seed[seed][size])
                progress(f"seed {seed}, fold {f + 1}/{folds}, gallery {size}: done")
        for size in sizes:
            counts[size].add(per_seed[seed][size])
    methods = ["first_look", *FUSIONS]
    grid = settings_grid()
    ks = range(1, max_looks + 1)
    later = range(2, max_looks + 1)
    by_size: dict[str, Any] = {}
    totals: dict[str, dict[str, dict[str, Any]]] = {}
    for size in sizes:
        c = counts[size]
        totals[size] = {m: c.total(m, later).report(False) for m in methods}
        totals[size] |= {s.name: c.total(s.name, later).report(True) for s in grid}
        by_size[size] = {
            "gallery_size_per_fold": gallery_sizes[size],
            "totals_k2_up": totals[size],
            "by_looks": {
                str(k): {m: c.tally(m, k).report(False) for m in methods}
                | {s.name: c.tally(s.name, k).report(True) for s in grid}
                for k in ks
            },
        }
    recommendation = choose(totals, grid)
    recognizer_default = Hysteresis("embedding_mean", 0.5, 4.0)
    shown = ["first_look", *FUSIONS, recognizer_default.name]
    if recommendation.get("setting"):
        shown.append(str(recommendation["setting"]))
    spread = {
        str(seed): {
            size: {
                name: {
                    "wrong_names": (t := c[size].total(name, later)).wrong_names,
                    "enrolled_unknown": t.enrolled_unknown,
                }
                for name in dict.fromkeys(shown)
            }
            for size in sizes
        }
        for seed, c in per_seed.items()
    }
    return {
        "recommendation": recommendation,
        "recognizer_default": {
            "setting": recognizer_default.name,
            "totals_k2_up": {size: totals[size][recognizer_default.name] for size in sizes},
            "first_look_totals_k2_up": {size: totals[size]["first_look"] for size in sizes},
        },
        "summary": {
            size: {
                name: {
                    key: totals[size][name][key]
                    for key in (
                        "wrong_names",
                        "strangers_named",
                        "enrolled_wrong",
                        "enrolled_unknown",
                        "fnir",
                        "fpir",
                    )
                }
                for name in totals[size]
            }
            for size in sizes
        },
        "per_seed_k2_up": spread,
        "protocol": {
            "images": str(images),
            "folds": folds,
            "visits_per_identity": per_identity,
            "max_looks": max_looks,
            "seeds": list(seeds),
            "identities_with_several_photos": len(multi),
            "enrol_photos": 1,
            "bound": bound,
            "bound_is": "BOUND_MARGIN * recognizer.max_false_identification_rate",
            "max_revisions": MAX_REVISIONS,
            "model_version": model_version,
            "rule": "facelens.evaluation.identification.open_set_top + Calibration.expected_fpir",
        },
        "by_gallery_size": by_size,
        "seconds": round(time.perf_counter() - started, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=None, help="default: <testdata>/lfw/images")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--visits-per-identity", type=int, default=3)
    parser.add_argument("--max-looks", type=int, default=6)
    parser.add_argument("--small-gallery", type=int, default=100)
    parser.add_argument(
        "--seeds", default="0,1,2", help="one split per seed; the counts are summed over them"
    )
    args = parser.parse_args(argv)
    images = args.images or testdata_dir() / "lfw" / "images"
    document = run(
        images,
        Settings(),
        folds=args.folds,
        per_identity=args.visits_per_identity,
        max_looks=args.max_looks,
        seeds=[int(x) for x in args.seeds.split(",")],
        small_gallery=args.small_gallery,
    )
    document["machine"] = machine_facts()
    write_result("visit_fusion", document)


if __name__ == "__main__":
    main()
