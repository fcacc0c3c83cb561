"""Open-set identification: how likely a stranger is to score this high against this gallery.

The recognizer compares a face with *everyone* enrolled. A threshold set for
one comparison (FaceMatchThreshold 80: about 1 false match in 1000 pairs of
strangers) lets more strangers through the more people are enrolled: each
enrolled person is one more chance. So the rule here is stated the way a user
experiences it, as a **false-positive identification rate** (FPIR: the share
of people who are *not* enrolled that get a name), for the gallery's actual
size, and it holds as people are enrolled or forgotten.

Two parts:

* **The score** (:func:`open_set_score`). For small galleries it is minus the
  distance to the nearest person. For larger ones it also looks at the
  neighbourhood (cohort score normalisation, "S-norm"): how far the probe is
  from the next :data:`COHORT_SIZE` nearest people, and how far the candidate
  person is from their own nearest others. A face that is close to everybody
  (a blurred or small face, a common look) or a person who resembles many
  others then needs to be closer to count. Its weight grows with the gallery
  (:func:`cohort_weight`) because with few people the cohort is a handful of
  random strangers and only adds noise. Measured (``bench/calibrate_open_set.py``
  on the LFW development images, random galleries, FNIR at FPIR 1%): with 746
  people it cuts missed identifications by a quarter (from 31% to 23% with the
  default two-view embedding); with 10 or 30 people it would cost 2-10 points,
  hence little or no weight there.
* **The calibration** (:class:`Calibration`, one per embedding model): for a
  grid of gallery sizes, the score that a given share of strangers reaches,
  found by enrolling random galleries of LFW development identities and
  scoring photos of people left out. :meth:`Calibration.expected_fpir` reads
  it back for any score and size (interpolated in log size, and in log rate);
  :meth:`Calibration.threshold` gives the score a rule needs.

The files live in ``facelens/engine/calibrations/<model version>.json``,
written by ``python -m bench.calibrate_open_set`` and read on first use (never
at import). A model without one (an ArcFace-style file facelens has never
measured) has no calibration: callers say so instead of guessing.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from facelens.errors import ConfigurationError

__all__ = [
    "BOUND_MARGIN",
    "COHORT_SIZE",
    "Calibration",
    "calibration_for",
    "cohort_weight",
    "open_set_score",
]

COHORT_SIZE = 3
"""Nearest other people whose mean distance describes a neighbourhood. 3 measured best
(10 was 1-2 points worse with 746 people): the nearest few are the ones a stranger is
confused with; farther ones describe the gallery, not the probe."""

BOUND_MARGIN = 0.5
"""The rule aims at this share of the FPIR bound it is given. The calibration is measured on
about 2000 LFW identities: a 1% rate measured on ~1300 strangers is uncertain by +-0.3%, and
a camera's population is not LFW's. Aiming at half the bound keeps such errors inside it,
for a few points of FNIR (the README's identification table shows both)."""

_CALIBRATION_FORMAT = 1


def cohort_weight(gallery_size: int) -> float:
    """How much the neighbourhood counts, 0-1: 0 up to 10 people, 1 from 1000.

    0.5 per decade of gallery size above 10 (0.24 at 30, 0.5 at 100, 0.94 at 746). On random
    enrol-one galleries of LFW development identities (``bench/calibrate_open_set.py
    --weights``, FNIR at FPIR 1%), the best fixed weight was 0 for 10 and 30 people, 0.25-0.5
    for 100, 0.5-0.75 for 300 and 0.75-1 for 746: weight hurts small galleries, helps large.
    """
    if gallery_size <= 10:
        return 0.0
    return min(1.0, 0.5 * math.log10(gallery_size / 10.0))


def open_set_score(
    distance: float,
    *,
    probe_cohort: float | None,
    person_cohort: float | None,
    gallery_size: int,
) -> float:
    """Higher means more surely this person; comparable only within one gallery size.

    distance: Euclidean distance (0-2) from the probe to the candidate person (the nearer
    of their template and faces). probe_cohort: mean distance from the probe to its
    :data:`COHORT_SIZE` nearest *other* people; person_cohort: mean distance from the
    candidate's template to its nearest other people. Either may be None (too few people):
    the other stands in for it, and with neither the score is minus the distance.
    """
    weight = cohort_weight(gallery_size)
    cohorts = [c for c in (probe_cohort, person_cohort) if c is not None]
    if weight == 0.0 or not cohorts:
        return -distance
    return weight * sum(cohorts) / len(cohorts) - distance


@dataclass(frozen=True)
class Calibration:
    """For each gallery size, the score reached by each share of strangers.

    gallery_sizes: ascending, people enrolled. fpir_levels: descending shares of
    strangers (0-1). thresholds[i][j]: the score that a share fpir_levels[j] of strangers
    reach or exceed against a gallery of gallery_sizes[i] people (so ascending in j).
    strangers[i]: how many stranger scores the row was measured on. source: how and on
    what it was measured, for reports.
    """

    model_version: str
    gallery_sizes: tuple[int, ...]
    fpir_levels: tuple[float, ...]
    thresholds: tuple[tuple[float, ...], ...]
    strangers: tuple[int, ...]
    source: str
    fnir_one_photo: tuple[tuple[float, ...], ...] = ()
    """[size][level]: the share of enrolled people's other photos not given their name when
    each person enrolled one photo, at that size and FPIR level (empty: not measured)."""
    fnir_several_photos: tuple[tuple[float, ...], ...] = ()
    """The same when each person enrolled three photos (empty: not measured)."""
    several_photos_offset: tuple[float, ...] = ()
    """[size]: how much higher strangers score against a person enrolled from several photos
    than against a one-photo person (empty: not measured, taken as 0). A person's template
    (the mean of their faces) lies nearer the middle of face space than any one photo, so
    strangers come closer to it: without this, galleries of three-photo people named 1.4%
    of strangers where the bound allowed 0.5% (LFW development images, 10 people)."""

    def __post_init__(self) -> None:
        sizes, levels = self.gallery_sizes, self.fpir_levels
        if len(sizes) < 2 or list(sizes) != sorted(set(sizes)) or sizes[0] < 1:
            raise ConfigurationError("calibration: gallery sizes must ascend from 1 or more")
        if len(levels) < 2 or list(levels) != sorted(set(levels), reverse=True):
            raise ConfigurationError("calibration: FPIR levels must descend")
        if not all(0.0 < v < 1.0 for v in levels):
            raise ConfigurationError("calibration: FPIR levels must lie between 0 and 1")
        if len(self.thresholds) != len(sizes) or any(
            len(r) != len(levels) for r in self.thresholds
        ):
            raise ConfigurationError("calibration: one threshold per size and level")
        for row in self.thresholds:
            if any(b < a for a, b in itertools.pairwise(row)):
                raise ConfigurationError("calibration: thresholds must ascend as FPIR falls")
        for table in (self.fnir_one_photo, self.fnir_several_photos):
            if table and (len(table) != len(sizes) or any(len(r) != len(levels) for r in table)):
                raise ConfigurationError("calibration: one FNIR per size and level")
        if self.several_photos_offset and len(self.several_photos_offset) != len(sizes):
            raise ConfigurationError("calibration: one several-photo offset per size")

    @property
    def largest_measured(self) -> int:
        """Beyond this gallery size the figures are extrapolated (linearly in log size)."""
        return self.gallery_sizes[-1]

    def person_offset(self, gallery_size: int, faces: int) -> float:
        """What a person enrolled from ``faces`` photos has taken off their score, so that
        one threshold bounds strangers whatever people enrolled (0 for one photo)."""
        if faces <= 1 or not self.several_photos_offset:
            return 0.0
        offsets = tuple((v,) for v in self.several_photos_offset)
        # Never negative: at 500 people and more the person's cohort term already makes up for
        # a template (the measured offsets fall to about 0, within their noise), and a
        # several-photo person must never be easier for a stranger to pass as than another.
        return max(0.0, _in_log_size(self.gallery_sizes, offsets, gallery_size)[0])

    def row(self, gallery_size: int) -> tuple[float, ...]:
        """The thresholds at ``gallery_size``, interpolated linearly in log size between the
        measured sizes (and extrapolated from the last two beyond the largest)."""
        return _in_log_size(self.gallery_sizes, self.thresholds, gallery_size)

    def threshold(self, gallery_size: int, fpir: float) -> float:
        """The score a probe needs so that at most ``fpir`` of strangers reach it, at this size.

        Between calibrated levels, log(fpir) is interpolated linearly; a rate below the
        smallest level is refused (nothing measured says where that threshold lies).
        """
        return _at_rate(self.fpir_levels, self.row(gallery_size), fpir)

    def expected_fpir(self, score: float, gallery_size: int) -> float:
        """The share of strangers (0-1) expected to score at least ``score`` against a gallery
        of ``gallery_size`` people: how sure a name given at this score is.

        Above the strictest calibrated level it is that level (at most that often; nothing
        rarer was measured); below the loosest level it is the loosest level's rate or more,
        reported as that rate.
        """
        row, levels = self.row(gallery_size), self.fpir_levels
        if score <= row[0]:
            return levels[0]
        if score >= row[-1]:
            return levels[-1]
        j = next(k for k in range(1, len(row)) if row[k] >= score)
        span = row[j] - row[j - 1]
        t = 0.0 if span <= 0 else (score - row[j - 1]) / span
        return math.exp(
            math.log(levels[j - 1]) + t * (math.log(levels[j]) - math.log(levels[j - 1]))
        )

    def expected_fnir(
        self, gallery_size: int, fpir: float, *, several_photos: bool
    ) -> float | None:
        """The share of enrolled people's photos expected to go unnamed at this size and FPIR
        level, for people enrolled from one photo or from several (None: not measured).
        Interpolated as :meth:`threshold` is, in log size and log rate."""
        table = self.fnir_several_photos if several_photos else self.fnir_one_photo
        if not table:
            return None
        # The FNIR rows ascend as FPIR falls (stricter, more missed), like thresholds do;
        # sorted, a row's noise cannot make a stricter level miss fewer.
        rows = tuple(tuple(sorted(row)) for row in table)
        at_size = _in_log_size(self.gallery_sizes, rows, gallery_size)
        return min(1.0, max(0.0, _at_rate(self.fpir_levels, at_size, fpir)))

    def to_json(self) -> dict[str, object]:
        return {
            "format": _CALIBRATION_FORMAT,
            "model_version": self.model_version,
            "gallery_sizes": list(self.gallery_sizes),
            "fpir_levels": list(self.fpir_levels),
            "thresholds": [list(r) for r in self.thresholds],
            "strangers": list(self.strangers),
            "source": self.source,
            "fnir_one_photo": [list(r) for r in self.fnir_one_photo],
            "fnir_several_photos": [list(r) for r in self.fnir_several_photos],
            "several_photos_offset": list(self.several_photos_offset),
        }

    @classmethod
    def from_json(cls, data: object) -> Calibration:
        if not isinstance(data, dict) or data.get("format") != _CALIBRATION_FORMAT:
            raise ConfigurationError("calibration file: unknown format")
        try:
            return cls(
                model_version=str(data["model_version"]),
                gallery_sizes=tuple(int(n) for n in data["gallery_sizes"]),
                fpir_levels=tuple(float(v) for v in data["fpir_levels"]),
                thresholds=tuple(tuple(float(v) for v in r) for r in data["thresholds"]),
                strangers=tuple(int(n) for n in data["strangers"]),
                source=str(data["source"]),
                fnir_one_photo=tuple(
                    tuple(float(v) for v in r) for r in data.get("fnir_one_photo", ())
                ),
                fnir_several_photos=tuple(
                    tuple(float(v) for v in r) for r in data.get("fnir_several_photos", ())
                ),
                several_photos_offset=tuple(
                    float(v) for v in data.get("several_photos_offset", ())
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"calibration file: {exc}") from exc


def _in_log_size(
    sizes: Sequence[int], rows: Sequence[tuple[float, ...]], gallery_size: int
) -> tuple[float, ...]:
    """The row at ``gallery_size`` of a table measured at ``sizes`` (ascending): interpolated
    linearly in log size between them, extrapolated from the last two beyond the largest, the
    first row below the smallest. Thresholds, offsets and FNIR tables all read this way."""
    n = max(1, gallery_size)
    if n <= sizes[0]:
        return rows[0]
    i = bisect_left(sizes, n)
    if i < len(sizes) and sizes[i] == n:
        return rows[i]
    lo = min(i, len(sizes) - 1) - 1
    hi = lo + 1
    t = (math.log(n) - math.log(sizes[lo])) / (math.log(sizes[hi]) - math.log(sizes[lo]))
    return tuple(a + t * (b - a) for a, b in zip(rows[lo], rows[hi], strict=True))


def _at_rate(levels: Sequence[float], row: Sequence[float], fpir: float) -> float:
    """The value of ``row`` (one per descending FPIR level) at ``fpir``, log(fpir) interpolated
    linearly between levels. A rate below the smallest level is refused: nothing measured
    says where it lies."""
    if not levels[-1] <= fpir < 1.0:
        raise ConfigurationError(
            f"FPIR {fpir:g} is outside the calibrated range {levels[-1]:g}-{levels[0]:g}"
        )
    if fpir >= levels[0]:
        return row[0]
    j = next(k for k in range(1, len(levels)) if levels[k] <= fpir)
    t = (math.log(levels[j - 1]) - math.log(fpir)) / (math.log(levels[j - 1]) - math.log(levels[j]))
    return row[j - 1] + t * (row[j] - row[j - 1])


def calibration_file_name(model_version: str) -> str:
    """The file a model version's calibration is kept in (``/`` and ``:`` made safe)."""
    safe = "".join(c if c.isalnum() or c in "+-._" else "_" for c in model_version)
    return f"{safe}.json"


@functools.cache
def calibration_for(model_version: str) -> Calibration | None:
    """The shipped calibration of ``model_version``, or None when it was never measured."""
    resource = resources.files("facelens.engine").joinpath(
        "calibrations", calibration_file_name(model_version)
    )
    if not resource.is_file():
        return None
    calibration = Calibration.from_json(json.loads(resource.read_text(encoding="utf-8")))
    if calibration.model_version != model_version:
        raise ConfigurationError(
            f"calibration file for {model_version} describes {calibration.model_version}"
        )
    return calibration


def fpir_levels_default() -> Sequence[float]:
    """The shares of strangers a calibration records: 50% down to 0.05%."""
    return (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005)
