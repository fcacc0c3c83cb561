"""The identification protocol and metrics on small hand-made inputs whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facelens.errors import InvalidParameterException
from facelens.evaluation import identification as ident


def scores_of(rows: list[list[float]]) -> ident.Scores:
    return np.array(rows, dtype=np.float64)


def labels(values: list[int]) -> ident.Labels:
    return np.array(values, dtype=np.int64)


# Gallery of 2 identities; 4 mated probes (two of A=0, two of B=1), 4 non-mated.
SCORES = scores_of(
    [
        [0.9, 0.1],  # A, top A 0.9
        [0.3, 0.6],  # A, top B: a rank-1 miss
        [0.2, 0.8],  # B, top B 0.8
        [0.1, 0.5],  # B, top B 0.5
        [0.7, 0.2],  # stranger, top 0.7
        [0.4, 0.3],  # stranger, top 0.4
        [0.2, 0.55],  # stranger, top 0.55
        [0.1, 0.0],  # stranger, top 0.1
    ]
)
TRUTH = labels([0, 0, 1, 1, -1, -1, -1, -1])


def test_rank1_counts_the_top_identity_whatever_its_score() -> None:
    result = ident.figures(SCORES, TRUTH)
    assert result.mated_probes == 4
    assert result.non_mated_probes == 4
    assert result.rank1 == pytest.approx(3 / 4)
    assert result.at_rule is None


def test_fnir_at_fpir_sets_the_threshold_from_the_strangers_top_scores() -> None:
    # FPIR 25%: one of four strangers may be named: threshold = the 2nd highest stranger
    # top score (0.55), names are given strictly above it: probes 0 (0.9) and 2 (0.8) are
    # named correctly, probe 3 (0.5) falls below, probe 1's top is the wrong person.
    # FPIR 0: threshold = the highest stranger score (0.7): the same two hits.
    result = ident.figures(SCORES, TRUTH, targets=(0.25, 0.0))
    quarter, zero = result.threshold_free
    assert quarter.threshold == pytest.approx(0.55)
    assert quarter.fpir == pytest.approx(1 / 4)
    assert quarter.fnir == pytest.approx(2 / 4)
    assert zero.threshold == pytest.approx(0.7)
    assert zero.fpir == 0.0
    assert zero.fnir == pytest.approx(2 / 4)


def test_fpir_of_1_percent_with_fewer_than_100_strangers_names_none() -> None:
    # floor(0.01 * 4) = 0 strangers allowed: the threshold is the highest stranger score
    (at,) = ident.figures(SCORES, TRUTH, targets=(0.01,)).threshold_free
    assert at.threshold == pytest.approx(0.7)
    assert at.fpir == 0.0


def test_the_threshold_lets_exactly_the_allowed_share_through_on_many_strangers() -> None:
    rng = np.random.default_rng(1)
    strangers = rng.random((1000, 3))
    truth = np.full(1000, -1, dtype=np.int64)
    (at,) = ident.figures(strangers, truth, targets=(0.01,)).threshold_free
    assert at.fpir == pytest.approx(0.01)
    assert at.fnir is None  # no mated probes: undefined, not zero


def test_the_rule_figures_count_wrong_names_and_unknowns_as_misses() -> None:
    decisions = labels([0, 1, -1, 1, 0, -1, -1, 1])
    rule = ident.figures(SCORES, TRUTH, decisions).at_rule
    assert rule is not None
    assert rule.fnir == pytest.approx(2 / 4)  # probe 1 named B (wrong), probe 2 unknown
    assert rule.mated_wrong_name == pytest.approx(1 / 4)
    assert rule.mated_unknown == pytest.approx(1 / 4)
    assert rule.fpir == pytest.approx(2 / 4)  # strangers 4 and 7 were named


def test_no_non_mated_probes_leaves_fpir_undefined() -> None:
    result = ident.figures(SCORES[:4], TRUTH[:4], labels([0, 0, 1, 1]))
    assert result.threshold_free[0].threshold is None
    assert result.threshold_free[0].fnir is None
    assert result.at_rule is not None
    assert result.at_rule.fpir is None
    assert result.at_rule.fnir == 0.0


def test_an_empty_gallery_names_nobody() -> None:
    result = ident.figures(np.zeros((2, 0)), labels([-1, -1]), labels([-1, -1]))
    assert result.rank1 is None
    assert result.threshold_free[0].fpir == 0.0
    assert result.at_rule is not None
    assert result.at_rule.fpir == 0.0


def test_face_recognition_recipe_names_the_nearest_within_its_tolerance() -> None:
    distances = np.array([[0.3, 0.5], [0.7, 0.65], [0.6, 0.2]])
    assert ident.nearest_within(distances, 0.6).tolist() == [0, -1, 1]


def test_identity_scores_take_the_nearest_face_an_identity_owns() -> None:
    distances = np.array([[0.5, 0.3, 0.9], [0.2, 0.8, 0.4]])
    scores = ident.identity_scores(distances, [0, 0, 1], 3)
    assert scores[:, :2].tolist() == [[-0.3, -0.9], [-0.2, -0.4]]
    assert math.isinf(scores[0, 2])  # an identity without faces is never the best


PHOTOS = {
    "solo": ["solo/1.jpg"],
    "pair": ["pair/2.jpg", "pair/1.jpg"],
    "four": ["four/1.jpg", "four/2.jpg", "four/3.jpg", "four/4.jpg"],
    "three": ["three/1.jpg", "three/2.jpg", "three/3.jpg"],
}


def test_split_enrols_the_first_photo_and_probes_the_rest() -> None:
    s = ident.split(PHOTOS, size=ident.ALL, enrol_photos=1, seed=0)
    assert s.identities == ("four", "pair", "three")
    assert s.gallery == {
        "four": ("four/1.jpg",),
        "pair": ("pair/1.jpg",),
        "three": ("three/1.jpg",),
    }
    assert ("solo/1.jpg", "solo") in s.probes
    assert len(s.probes) == 1 + 1 + 3 + 2
    truth = s.truth()
    assert sorted(truth.tolist()) == [-1, 0, 0, 0, 1, 2, 2]


def test_enrol_three_only_where_a_probe_is_left() -> None:
    s = ident.split(PHOTOS, size=ident.ALL, enrol_photos=3, seed=0)
    assert s.gallery["four"] == ("four/1.jpg", "four/2.jpg", "four/3.jpg")
    assert s.gallery["three"] == ("three/1.jpg",)  # 3 photos: one enrolled, two probes
    assert [p for p, who in s.probes if who == "four"] == ["four/4.jpg"]


def test_a_smaller_gallery_makes_left_out_identities_strangers() -> None:
    full = ident.split(PHOTOS, size=ident.ALL, enrol_photos=1, seed=3)
    small = ident.split(PHOTOS, size="1", enrol_photos=1, seed=3)
    assert len(small.identities) == 1
    assert small.identities[0] == ident.gallery_order(PHOTOS, 3)[0]
    assert small.probes == full.probes  # same probe photos, only their status differs
    truth = small.truth()
    mated = {who for (_, who), t in zip(small.probes, truth, strict=True) if t >= 0}
    assert mated == set(small.identities)
    assert int((truth < 0).sum()) == len(small.probes) - sum(
        1 for _, who in small.probes if who in small.identities
    )


def test_galleries_are_nested_and_seeded() -> None:
    many = {f"p{i:02d}": [f"p{i:02d}/a.jpg", f"p{i:02d}/b.jpg"] for i in range(30)}
    g5 = ident.split(many, size="5", enrol_photos=1, seed=7).identities
    g10 = ident.split(many, size="10", enrol_photos=1, seed=7).identities
    assert set(g5) <= set(g10)
    assert ident.split(many, size="5", enrol_photos=1, seed=7).identities == g5
    assert ident.split(many, size="5", enrol_photos=1, seed=8).identities != g5
    assert len(ident.split(many, size="99", enrol_photos=1, seed=7).identities) == 30


@pytest.mark.parametrize("text", ["", "0", "ten", "10,-1", "1.5"])
def test_bad_gallery_sizes_are_refused(text: str) -> None:
    with pytest.raises(InvalidParameterException):
        ident.parse_sizes(text)


def test_gallery_sizes_parse() -> None:
    assert ident.parse_sizes("10, 100,ALL,10") == ["10", "100", "all"]
    assert ident.parse_counts("1,3", "--enrol-photos") == [1, 3]
    with pytest.raises(InvalidParameterException):
        ident.parse_counts("0", "--enrol-photos")
