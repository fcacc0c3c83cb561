"""The open-set rule on real collections: what it names, how sure it says it is, and that the
benchmark's vectorised twin (``open_set_top``) decides exactly as the recognizer does.

Vectors are synthetic but shaped like faces in dlib's space: people sit about 0.6 apart
(LFW's different-people distances are 0.45-0.7), a person's other photos about 0.25 from
their enrolment photo (same-person pairs: 0.2-0.38).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facelens.config import Settings
from facelens.engine import open_set
from facelens.engine.registry import build_engine
from facelens.evaluation import identification as ident
from facelens.evaluation.identify_run import RecognizerRule, gallery_scores, gallery_settings
from facelens.people.matching import MatchPolicy, OpenSetRule, summarise
from facelens.wiring.evaluation import open_recognizer_rule

DIM = 128
Vector = npt.NDArray[np.float32]


def unit(v: npt.NDArray[np.float64]) -> Vector:
    out: Vector = (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)
    return out


def people(rng: np.random.Generator, n: int) -> Vector:
    """n unit vectors about 0.6 apart (a shared centre plus spread, as faces are)."""
    centre = rng.normal(size=DIM)
    centre /= np.linalg.norm(centre)
    return unit(centre + 0.45 * rng.normal(size=(n, DIM)) / np.sqrt(DIM))


def at_distance(rng: np.random.Generator, v: Vector, distance: float) -> Vector:
    """A unit vector exactly ``distance`` from unit vector ``v``."""
    noise = rng.normal(size=DIM)
    noise -= noise.dot(v) * v
    noise /= np.linalg.norm(noise)
    cos = 1.0 - distance**2 / 2.0
    return unit(cos * v.astype(np.float64) + np.sqrt(1.0 - cos**2) * noise)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path)


@contextmanager
def opened_rule(settings: Settings, home: Path) -> Iterator[RecognizerRule]:
    """The recognizer's rule on a fresh gallery under ``home``, as bench identify opens it."""
    with ExitStack() as stack:
        yield open_recognizer_rule(gallery_settings(settings, home), stack)


@contextmanager
def enrolled(settings: Settings, home: Path, gallery: Vector) -> Iterator[RecognizerRule]:
    with opened_rule(settings, home) as rule:
        rule.enrol(
            [f"p{i}" for i in range(len(gallery))], {f"p{i}": [g] for i, g in enumerate(gallery)}
        )
        yield rule


def policy_of(rule: RecognizerRule) -> MatchPolicy:
    policy = rule.finder.policy
    assert policy is not None
    return policy


def test_a_close_photo_is_named_with_how_sure_and_a_stranger_is_not(
    settings: Settings, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    gallery = people(rng, 30)
    with enrolled(settings, tmp_path / "h", gallery) as rule:
        identity = rule.finder.search(at_distance(rng, gallery[7], 0.2))
        assert identity is not None
        assert identity.user_id is not None
        assert identity.user_id.startswith("p7-")
        assert identity.gallery_size == 30
        assert identity.expected_fpir is not None
        assert 0 < identity.expected_fpir <= open_set.BOUND_MARGIN * 0.01
        stranger = people(rng, 1)[0]
        assert rule.finder.search(stranger) is None


def test_with_one_person_the_bound_sits_where_the_calibration_puts_it(
    settings: Settings, tmp_path: Path
) -> None:
    rng = np.random.default_rng(2)
    gallery = people(rng, 1)
    with enrolled(settings, tmp_path / "h", gallery) as rule:
        policy = policy_of(rule)
        calibration = policy.calibration()
        assert calibration is not None
        limit = -calibration.threshold(1, open_set.BOUND_MARGIN * 0.01)  # a distance
        assert rule.finder.search(at_distance(rng, gallery[0], limit - 0.01)) is not None
        assert rule.finder.search(at_distance(rng, gallery[0], limit + 0.01)) is None


def test_a_bigger_gallery_asks_more_of_the_same_photo(settings: Settings, tmp_path: Path) -> None:
    """The same distance to the same person: named among 2 people, not among 10 (each
    enrolled person is one more chance for a stranger)."""
    rng = np.random.default_rng(3)
    gallery = people(rng, 10)
    calibration = open_set.calibration_for(build_engine(settings).model_version)
    assert calibration is not None
    bound = open_set.BOUND_MARGIN * 0.01
    distance = -(calibration.threshold(2, bound) + calibration.threshold(10, bound)) / 2
    probe = at_distance(rng, gallery[0], distance)
    with enrolled(settings, tmp_path / "two", gallery[:2]) as small:
        assert small.finder.search(probe) is not None
    with enrolled(settings, tmp_path / "ten", gallery) as large:
        assert large.finder.search(probe) is None


@pytest.mark.parametrize("several", [False, True], ids=["one photo each", "some with three"])
def test_the_benchmark_twin_decides_as_the_recognizer_does(
    settings: Settings, tmp_path: Path, several: bool
) -> None:
    """open_set_top (what bench identify and the calibration score with) against
    MatchPolicy.identify_open_set, probe by probe, in a gallery where the cohort counts;
    with some people enrolled from three photos, their offset is taken off on both sides."""
    rng = np.random.default_rng(4)
    n = 40
    gallery = people(rng, n)
    enrolled_photos = {
        f"p{i}": [g, at_distance(rng, g, 0.2), at_distance(rng, g, 0.2)]
        if several and i % 3 == 0
        else [g]
        for i, g in enumerate(gallery)
    }
    probes = np.stack(
        [at_distance(rng, gallery[i % n], d) for i, d in enumerate(np.linspace(0.15, 0.5, 60))]
        + list(people(rng, 20))
    )
    with opened_rule(settings, tmp_path / "h") as rule:
        kept = rule.enrol(list(enrolled_photos), enrolled_photos)
        assert sum(len(v) for v in kept.values()) == sum(len(v) for v in enrolled_photos.values())
        policy = policy_of(rule)
        calibration = policy.calibration()
        assert calibration is not None
        names = list(enrolled_photos)
        offsets = np.array([calibration.person_offset(n, len(kept[name])) for name in names])
        assert (offsets > 0).any() == several
        scored = gallery_scores(probes, kept, names)
        twin = ident.open_set_top(-scored.scores, -scored.people, offsets)
        threshold = calibration.threshold(n, open_set.BOUND_MARGIN * 0.01)
        named_by_twin = [
            int(b) if s >= threshold else -1 for b, s in zip(twin.best, twin.score, strict=True)
        ]
        named_by_rule = [rule.decide(p) for p in probes]
        assert named_by_rule == named_by_twin
        assert any(x >= 0 for x in named_by_rule)
        assert any(x < 0 for x in named_by_rule)


def test_without_a_calibration_the_similarity_rule_decides(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    gallery = people(rng, 3)
    monkeypatch.setattr(open_set, "calibration_for", lambda version: None)
    with enrolled(settings, tmp_path / "h", gallery) as rule:
        identity = rule.finder.search(at_distance(rng, gallery[1], 0.2))
        assert identity is not None
        assert identity.expected_fpir is None
        summary = summarise(policy_of(rule), rule.collection_id, OpenSetRule())
        assert summary.rule == "similarity"
        assert not summary.calibrated


def test_the_summary_counts_people_and_those_with_one_photo(
    settings: Settings, tmp_path: Path
) -> None:
    rng = np.random.default_rng(6)
    gallery = people(rng, 5)
    with opened_rule(settings, tmp_path / "h") as rule:
        photos = {f"p{i}": [g] for i, g in enumerate(gallery)}
        photos["p0"] = [gallery[0], at_distance(rng, gallery[0], 0.2)]
        rule.enrol(list(photos), photos)
        summary = summarise(policy_of(rule), rule.collection_id, OpenSetRule(0.01, 5))
        assert summary.gallery_size == 5
        assert summary.one_photo_people == 4
        assert len(summary.one_photo_user_ids) == 4
        assert summary.rule == "open-set"
        assert summary.calibrated
        assert summary.expected_fpir == pytest.approx(open_set.BOUND_MARGIN * 0.01)
        assert summary.expected_fnir is not None
        assert 0 < summary.expected_fnir < 1
