"""The pure logic of bench.compare: rows and ratios, pair selection, option handling.

The benchmark itself is not a test (it measures); these check that what it
writes reads right: the ratio is peer over ours whatever the unit, the
direction of "better" follows the unit, and a quick LFW selection keeps both
kinds of pairs in every fold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bench.compare import parse_args
from bench.compare_lfw import select_pairs
from bench.compare_report import make_row, rates, ratio, single, spread
from bench.compare_shared import random_unit_vectors
from bench.compare_stages import far_allowance, peer_search_bytes

from facelens.evaluation.lfw import Pair


def test_spread_is_median_min_max_rounded() -> None:
    assert spread([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0}
    assert spread([1.23456], digits=2) == {"median": 1.23, "min": 1.23, "max": 1.23}
    with pytest.raises(ValueError, match="no values"):
        spread([])


def test_ratio_is_peer_median_over_ours_and_none_when_missing() -> None:
    assert ratio(single(30.0), single(10.0)) == 3.0
    assert ratio(None, single(10.0)) is None
    assert ratio(single(1.0), None) is None
    assert ratio(single(1.0), single(0.0)) is None


@pytest.mark.parametrize(
    ("unit", "better"),
    [
        ("ms", "lower"),
        ("ms/face", "lower"),
        ("ms/query", "lower"),
        ("s", "lower"),
        ("fps", "higher"),
        ("fraction", "higher"),
    ],
)
def test_row_says_which_direction_is_better(unit: str, better: str) -> None:
    row = make_row("stage", "variant", unit, spread([2.0, 4.0]), spread([6.0]), "n")
    assert row == {
        "stage": "stage",
        "variant": "variant",
        "unit": unit,
        "better": better,
        "ours": {"median": 3.0, "min": 2.0, "max": 4.0},
        "peer": {"median": 6.0, "min": 6.0, "max": 6.0},
        "peer_over_ours": 2.0,
        "notes": "n",
    }


def test_row_without_peer_has_no_ratio() -> None:
    row = make_row("search", "1000000 faces", "ms/query", spread([70.0]), None)
    assert row["peer"] is None
    assert row["peer_over_ours"] is None


def test_rates_divide_counts_by_seconds_per_round() -> None:
    assert rates([24, 24], [2.0, 1.0]) == [12.0, 24.0]


def _pairs(folds: int, per_kind: int) -> list[Pair]:
    out = []
    for fold in range(folds):
        for same in (True, False):
            out += [
                Pair(Path(f"{fold}-{same}-{i}-a"), Path(f"{fold}-{same}-{i}-b"), same, fold)
                for i in range(per_kind)
            ]
    return out


def test_select_pairs_keeps_both_kinds_in_each_chosen_fold() -> None:
    chosen = select_pairs(_pairs(5, 300), folds=2, per_fold=20)
    assert len(chosen) == 80
    for fold in (0, 1):
        in_fold = [p for p in chosen if p.fold == fold]
        assert sum(p.same for p in in_fold) == 20
        assert sum(not p.same for p in in_fold) == 20
    assert len(select_pairs(_pairs(5, 3), folds=5, per_fold=None)) == 30


def test_peer_search_memory_estimate_counts_three_float64_matrices() -> None:
    assert peer_search_bytes(1_000_000) == 3 * 1_000_000 * 128 * 8  # about 3.1 GB
    assert peer_search_bytes(10_000_000) > 4 * 1024**3


def test_random_unit_vectors_are_unit_and_repeatable() -> None:
    first = random_unit_vectors(100, 128, seed=3)
    assert first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(first, random_unit_vectors(100, 128, seed=3))


def test_quick_shrinks_the_run() -> None:
    args = parse_args(["--quick", "--cpu", "0"])
    assert args.rounds <= 3
    assert args.search_sizes == [10_000, 100_000]
    assert args.lfw_folds == 1
    assert args.lfw_pairs_per_fold == 20
    assert parse_args(["--cpu", "0"]).search_sizes == [10_000, 100_000, 1_000_000]


def test_far_allowance_matches_the_lfw_rule() -> None:
    assert far_allowance(1500).startswith("1 false accept")
    assert far_allowance(1200).startswith("1 false accept")
    assert far_allowance(900).startswith("0 false accept")
