"""The pure parts of ``bench.visit_fusion``: the visit protocol's hysteresis, the draws, the
fusion and the counting, on numbers that are easy to read off."""

from __future__ import annotations

import numpy as np
import pytest
from bench.visit_fusion import (
    Hysteresis,
    Outcome,
    Step,
    Tally,
    choose,
    draw_looks,
    folds_of,
    follow_visit,
    named,
    unit_mean,
)

BOUND = 0.005
STRICT = Hysteresis("embedding_mean", revise_factor=0.5, keep_factor=4.0, max_revisions=3)


def test_the_first_answer_is_the_first_look_at_the_bound() -> None:
    assert named(Step(2, 0.005), BOUND) == 2
    assert named(Step(2, 0.006), BOUND) == -1
    assert named(Step(-1, 0.0), BOUND) == -1  # an empty gallery names nobody
    assert follow_visit([Step(2, 0.004)], BOUND, STRICT) == Outcome(2, 2, 0)


def test_an_unknown_becomes_a_name_only_at_the_stricter_revise_level() -> None:
    # 0.003 passes the bound (0.005) but not bound * 0.5 (0.0025): still unknown.
    steps = [Step(1, 0.2), Step(1, 0.003), Step(1, 0.002)]
    assert follow_visit(steps[:2], BOUND, STRICT) == Outcome(-1, -1, 0)
    assert follow_visit(steps, BOUND, STRICT) == Outcome(-1, 1, 1)


def test_a_name_is_kept_within_the_keep_level_and_withdrawn_beyond_it() -> None:
    kept = [Step(1, 0.001), Step(1, 0.019)]  # 0.019 <= 0.005 * 4
    assert follow_visit(kept, BOUND, STRICT) == Outcome(1, 1, 0)
    withdrawn = [Step(1, 0.001), Step(1, 0.03)]
    assert follow_visit(withdrawn, BOUND, STRICT) == Outcome(1, -1, 1)
    # Someone else nearest: the name goes, to them only at the revise level.
    other_weak = [Step(1, 0.001), Step(2, 0.004)]
    assert follow_visit(other_weak, BOUND, STRICT) == Outcome(1, -1, 1)
    other_sure = [Step(1, 0.001), Step(2, 0.001)]
    assert follow_visit(other_sure, BOUND, STRICT) == Outcome(1, 2, 1)


def test_changes_stop_at_max_revisions() -> None:
    flapping = [Step(1, 0.001), Step(2, 0.001), Step(1, 0.001), Step(2, 0.001), Step(1, 0.001)]
    once = Hysteresis("embedding_mean", 0.5, 4.0, max_revisions=1)
    assert follow_visit(flapping, BOUND, once) == Outcome(1, 2, 1)
    assert follow_visit(flapping, BOUND, STRICT) == Outcome(1, 2, 3)
    with pytest.raises(ValueError, match="at least one look"):
        follow_visit([], BOUND, STRICT)


def test_draws_are_distinct_ordered_and_never_more_than_possible() -> None:
    rng = np.random.default_rng(0)
    assert draw_looks(["a"], 2, 3, rng) == []
    assert sorted(draw_looks(["a", "b"], 2, 5, rng)) == [("a", "b"), ("b", "a")]
    many = draw_looks([str(i) for i in range(10)], 3, 4, rng)
    assert len(many) == 4
    assert len(set(many)) == 4
    assert all(len(set(d)) == 3 for d in many)


def test_folds_deal_every_name_once() -> None:
    names = [f"p{i}" for i in range(10)]
    parts = folds_of(names, 3, seed=0)
    assert sorted(n for part in parts for n in part) == sorted(names)
    assert [len(p) for p in parts] == [4, 3, 3]
    with pytest.raises(ValueError, match="at least two folds"):
        folds_of(names, 1, seed=0)


def test_the_embedding_fusion_is_the_renormalised_mean() -> None:
    looks = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    fused = unit_mean(looks)
    assert fused == pytest.approx([2**-0.5, 2**-0.5])


def test_the_tally_counts_strangers_wrong_names_and_unknowns() -> None:
    t = Tally()
    t.count(-1, 3)  # a stranger named
    t.count(-1, -1)
    t.count(0, 0)
    t.count(0, 1, Outcome(first=-1, final=1, revisions=2))  # named wrongly, after two changes
    t.count(1, -1)
    r = t.report(protocol=True)
    assert (r["strangers_named"], r["enrolled_wrong"], r["enrolled_unknown"]) == (1, 1, 1)
    assert r["wrong_names"] == 2
    assert r["fpir"] == 0.5
    assert r["fnir"] == pytest.approx(2 / 3, abs=1e-5)
    assert (r["changed"], r["revised_more_than_once"]) == (1, 1)


def test_the_recommendation_keeps_wrong_names_at_or_below_the_first_look() -> None:
    safe = Hysteresis("score_mean", 1.0, 4.0)
    bold = Hysteresis("embedding_mean", 1.0, 4.0)

    def row(wrong: int, unknown: int) -> dict[str, int]:
        return {"wrong_names": wrong, "enrolled_unknown": unknown, "revised_more_than_once": 0}

    totals = {
        "100": {"first_look": row(5, 100), safe.name: row(5, 80), bold.name: row(6, 10)},
        "all": {"first_look": row(9, 300), safe.name: row(2, 200), bold.name: row(9, 50)},
    }
    chosen = choose(totals, [bold, safe])
    assert chosen["setting"] == safe.name
    assert "100: 6 wrong names > 5" in chosen["rejected"][bold.name]
