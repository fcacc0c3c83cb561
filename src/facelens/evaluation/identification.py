"""Open-set identification (1:N), measured the way the recognizer is used: protocol and metrics.

The recognizer compares a face with everyone enrolled and names one person
or nobody, so what matters is not 1:1 verification's per-pair error but:

* **FPIR** (false-positive identification rate): the share of *non-mated*
  probes (faces of people who are not enrolled) that get a name.
* **FNIR** (false-negative identification rate): the share of *mated* probes
  (other photos of enrolled people) that are not given their own name: named
  as somebody else, or left unknown.
* **rank-1**: the share of mated probes whose best-scoring enrolled identity
  is their own, whatever the score.

Protocol (FRVT-style; :func:`split`): photos are grouped by identity (LFW
layout: one folder per person). Each identity with two or more usable photos
(a face was found) is *enrolable*: it enrols its first photo (sorted by file
name), or, with ``enrol_photos`` = k > 1, its first k photos when it has at
least k + 1 photos (otherwise one, so every enrolable identity keeps a
probe); its other photos are its mated probes. Photos of identities with a
single usable photo are never enrolled: non-mated probes.

A gallery of N < all identities takes the first N of one seeded permutation
of the enrolable identities (so the gallery of 10 lies inside the gallery of
100). The enrolable identities left out of it are strangers to it: their
probes join the non-mated probes (their enrolment photos are not used). The
probe photos are therefore the same at every gallery size for one
``enrol_photos``; only whether each is mated changes.

Metrics (:func:`figures`) take a score matrix (probes x gallery identities,
higher means more alike: facelens passes minus the Euclidean distance of the
best of a person's template and faces), each probe's true gallery index (-1
for non-mated) and, optionally, the decisions of a rule (the index named, -1
for unknown). Threshold-free figures put the threshold where the non-mated
probes' top scores allow at most the target FPIR; the figures "at the rule"
count what the rule actually decided. Everything here is pure and works on
numpy arrays, so a new decision rule is measured by handing in its decisions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facelens.engine.open_set import COHORT_SIZE, open_set_score
from facelens.errors import InvalidParameterException

FPIR_TARGETS: tuple[float, ...] = (0.01, 0.001)
"""The FPIRs at which FNIR is reported threshold-free: 1% and 0.1% of strangers named."""

ALL = "all"
"""The gallery size meaning every enrolable identity."""

Scores = npt.NDArray[np.float64]
"""Probes x gallery identities; higher is more alike."""
Labels = npt.NDArray[np.int64]
"""Per probe: a gallery index (its own identity, or the one a rule named) or -1 (none)."""


@dataclass(frozen=True)
class Split:
    """One gallery and its probes. ``gallery``: identity -> the photos it enrols (gallery order
    is the order of ``identities``); ``probes``: (photo, identity) in a stable order, the
    identity being the probe's own; ``mated``: per probe, whether its identity is enrolled."""

    identities: tuple[str, ...]
    gallery: Mapping[str, tuple[str, ...]]
    probes: tuple[tuple[str, str], ...]
    enrol_photos: int
    requested_size: str

    def truth(self) -> Labels:
        """Each probe's gallery index, -1 when its identity is not enrolled."""
        index = {name: i for i, name in enumerate(self.identities)}
        return np.array([index.get(who, -1) for _, who in self.probes], dtype=np.int64)


def parse_sizes(text: str) -> list[str]:
    """``10,100,all`` -> ["10", "100", "all"]; InvalidParameterException when malformed."""
    sizes: list[str] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if part == ALL:
            sizes.append(ALL)
            continue
        if not part.isdigit() or int(part) < 1:
            raise InvalidParameterException(
                f"gallery size {part!r}: expected a whole number of identities (1 or more) or 'all'"
            )
        sizes.append(str(int(part)))
    if not sizes:
        raise InvalidParameterException("no gallery size given (e.g. 10,100,all)")
    return list(dict.fromkeys(sizes))


def parse_counts(text: str, what: str) -> list[int]:
    """``1,3`` -> [1, 3]: photos enrolled per identity; InvalidParameterException when malformed."""
    counts: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part.isdigit() or not 1 <= int(part) <= 100:
            raise InvalidParameterException(f"{what} {part!r}: expected a whole number 1-100")
        counts.append(int(part))
    if not counts:
        raise InvalidParameterException(f"no {what} given (e.g. 1,3)")
    return list(dict.fromkeys(counts))


def enrolable(photos: Mapping[str, Sequence[str]]) -> list[str]:
    """Identities with two or more usable photos, sorted by name."""
    return sorted(name for name, ps in photos.items() if len(ps) >= 2)


def gallery_order(photos: Mapping[str, Sequence[str]], seed: int) -> list[str]:
    """The enrolable identities in the seeded random order galleries are drawn in."""
    names = enrolable(photos)
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[int(i)] for i in order]


def split(photos: Mapping[str, Sequence[str]], *, size: str, enrol_photos: int, seed: int) -> Split:
    """The gallery of ``size`` identities (a number, or "all") and its probes (module docstring).

    ``photos``: identity -> its usable photos (any order; sorted here). A size larger than
    the enrolable identities is all of them (``Split.identities`` says how many it got).
    """
    if enrol_photos < 1:
        raise InvalidParameterException("enrol_photos must be 1 or more")
    ordered = {name: tuple(sorted(ps)) for name, ps in photos.items()}
    order = gallery_order(ordered, seed)
    chosen = order if size == ALL else order[: int(size)]
    chosen_set = set(chosen)
    gallery: dict[str, tuple[str, ...]] = {}
    probes: list[tuple[str, str]] = []
    for name in sorted(ordered):
        own = ordered[name]
        if len(own) < 2:
            probes += [(p, name) for p in own]
            continue
        k = enrol_photos if len(own) >= enrol_photos + 1 else 1
        if name in chosen_set:
            gallery[name] = own[:k]
        probes += [(p, name) for p in own[k:]]
    identities = tuple(sorted(chosen))
    return Split(identities, {n: gallery[n] for n in identities}, tuple(probes), enrol_photos, size)


@dataclass(frozen=True)
class AtFpir:
    """FNIR where the threshold lets at most ``fpir_target`` of the non-mated probes through.

    threshold: in score units (a probe is named when its top score is above it; None when
    there are no non-mated probes); fpir: the FPIR actually reached (ties can make it lower).
    """

    fpir_target: float
    threshold: float | None
    fpir: float | None
    fnir: float | None


@dataclass(frozen=True)
class AtRule:
    """What a rule decided. fnir: mated probes not given their own name (wrong_name: named as
    somebody else, unknown: given no name); fpir: non-mated probes given any name."""

    fnir: float | None
    fpir: float | None
    mated_wrong_name: float | None
    mated_unknown: float | None


@dataclass(frozen=True)
class Figures:
    """rank1: mated probes whose top-scoring identity is their own (None without mated
    probes); threshold_free: FNIR at each FPIR target; at_rule: None when no rule was given."""

    mated_probes: int
    non_mated_probes: int
    rank1: float | None
    threshold_free: tuple[AtFpir, ...]
    at_rule: AtRule | None


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def top(scores: Scores) -> tuple[Labels, npt.NDArray[np.float64]]:
    """Each probe's best gallery index and score (-1 and -inf for an empty gallery)."""
    if scores.shape[1] == 0:
        n = scores.shape[0]
        return np.full(n, -1, dtype=np.int64), np.full(n, -math.inf)
    best = np.argmax(scores, axis=1).astype(np.int64)
    return best, scores[np.arange(scores.shape[0]), best]


def threshold_at_fpir(non_mated_top: npt.NDArray[np.float64], target: float) -> float | None:
    """The lowest threshold (probes named when their top score is strictly above it) that names
    at most ``target`` of the non-mated probes; None when there are none."""
    if len(non_mated_top) == 0:
        return None
    descending = np.sort(non_mated_top)[::-1]
    allowed = math.floor(target * len(descending) + 1e-9)  # strangers we may name
    if allowed >= len(descending):
        return -math.inf
    return float(descending[allowed])


def figures(
    scores: Scores,
    truth: Labels,
    decisions: Labels | None = None,
    *,
    targets: Sequence[float] = FPIR_TARGETS,
    ranked: OpenSetTop | None = None,
) -> Figures:
    """rank-1, FNIR at each FPIR target (threshold-free) and FNIR/FPIR of ``decisions``.

    ranked: each probe's best identity and the score a rule thresholds (the open-set score);
    by default the best column of ``scores`` and its score.
    """
    if scores.ndim != 2 or scores.shape[0] != len(truth):
        raise ValueError("scores must be probes x gallery, one row per truth label")
    mated = truth >= 0
    best, best_score = (ranked.best, ranked.score) if ranked is not None else top(scores)
    n_mated, n_non = int(mated.sum()), int((~mated).sum())
    correct_top = mated & (best == truth)
    at: list[AtFpir] = []
    for target in targets:
        threshold = threshold_at_fpir(best_score[~mated], target)
        if threshold is None:
            at.append(AtFpir(target, None, None, None))
            continue
        named = best_score > threshold
        hits = int((correct_top & named).sum())
        at.append(
            AtFpir(
                target,
                threshold,
                _rate(int((named & ~mated).sum()), n_non),
                _rate(n_mated - hits, n_mated),
            )
        )
    rule = None
    if decisions is not None:
        if len(decisions) != len(truth):
            raise ValueError("one decision per probe")
        own = mated & (decisions == truth)
        wrong = mated & (decisions >= 0) & (decisions != truth)
        rule = AtRule(
            fnir=_rate(n_mated - int(own.sum()), n_mated),
            fpir=_rate(int(((decisions >= 0) & ~mated).sum()), n_non),
            mated_wrong_name=_rate(int(wrong.sum()), n_mated),
            mated_unknown=_rate(int((mated & (decisions < 0)).sum()), n_mated),
        )
    return Figures(n_mated, n_non, _rate(int(correct_top.sum()), n_mated), tuple(at), rule)


def nearest_within(distances: npt.NDArray[np.float64], tolerance: float) -> Labels:
    """face_recognition's recipe as a rule: per probe (row), the column of the smallest
    distance when it is at most ``tolerance``, else -1 (unknown)."""
    if distances.shape[1] == 0:
        return np.full(distances.shape[0], -1, dtype=np.int64)
    best = np.argmin(distances, axis=1).astype(np.int64)
    close = distances[np.arange(distances.shape[0]), best] <= tolerance
    return np.where(close, best, -1).astype(np.int64)


def identity_scores(
    distances: npt.NDArray[np.float64], owners: Sequence[int], identities: int
) -> Scores:
    """Probes x identities scores from probes x gallery *faces* distances: minus the smallest
    distance to any face (or template) an identity owns (``owners``: each column's identity)."""
    out = np.full((distances.shape[0], identities), -math.inf)
    owner = np.asarray(owners, dtype=np.int64)
    for i in range(identities):
        columns = owner == i
        if columns.any():
            out[:, i] = -distances[:, columns].min(axis=1)
    return out


@dataclass(frozen=True)
class OpenSetTop:
    """Per probe: the nearest person (gallery index), the distance to them, and the open-set
    score of :func:`facelens.engine.open_set.open_set_score` the recognizer's rule computes."""

    best: Labels
    distance: npt.NDArray[np.float64]
    score: npt.NDArray[np.float64]


def open_set_top(
    distances: npt.NDArray[np.float64],
    person_distances: npt.NDArray[np.float64],
    person_offsets: npt.NDArray[np.float64] | None = None,
) -> OpenSetTop:
    """What the recognizer's rule computes for every probe at once (its vectorised twin).

    distances: probes x persons, each the distance to the nearer of the person's template and
    faces. person_distances: persons x persons, from each person's template to the nearer of
    the other's template and faces (the diagonal is ignored). The probe's cohort is its next
    :data:`~facelens.engine.open_set.COHORT_SIZE` nearest persons, the person's its own nearest
    others; the gallery size is the number of persons. person_offsets: what each person has
    taken off their score (:meth:`~facelens.engine.open_set.Calibration.person_offset`: people
    enrolled from several photos). ``tests/unit/people/test_open_set_rule.py`` checks this
    against the rule itself.
    """
    probes, persons = distances.shape
    if persons == 0:
        empty = np.full(probes, math.inf)
        return OpenSetTop(np.full(probes, -1, dtype=np.int64), empty, -empty)
    order = np.argsort(distances, axis=1)
    best = order[:, 0].astype(np.int64)
    nearest = np.take_along_axis(distances, order[:, : COHORT_SIZE + 1], axis=1)
    others = person_distances + np.diag(np.full(persons, math.inf))
    own = np.sort(others, axis=1)[:, :COHORT_SIZE]
    scores = np.empty(probes)
    for i in range(probes):
        probe_cohort = nearest[i, 1:]
        person_cohort = own[best[i]][np.isfinite(own[best[i]])]
        scores[i] = open_set_score(
            float(nearest[i, 0]),
            probe_cohort=float(probe_cohort.mean()) if len(probe_cohort) else None,
            person_cohort=float(person_cohort.mean()) if len(person_cohort) else None,
            gallery_size=persons,
        )
        if person_offsets is not None:
            scores[i] -= person_offsets[best[i]]
    return OpenSetTop(best, nearest[:, 0].astype(np.float64), scores)
