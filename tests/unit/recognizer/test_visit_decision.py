"""The per-visit decision (:mod:`facelens.recognizer.visits`): fusion and hysteresis.

Pure functions on small vectors and identities: what the recognizer does with
the looks of one visit, stated as the promises the issue makes (a good look
outweighs a bad one; one noisy look does not flip a name; a name is withdrawn
only past the loose bar; a visit stops changing after max_revisions).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from facelens.engine.open_set import BOUND_MARGIN
from facelens.history.visits import VisitLook
from facelens.recognizer.visits import (
    Change,
    Standing,
    VisitRules,
    fuse,
    person_of,
    revise_by_embedding,
    revise_by_scores,
)
from facelens.values.identity import Identity

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES = VisitRules(max_fpir=0.01, threshold=80.0, revise_factor=0.5, keep_factor=4.0)
"""Bars far apart, so each test can place a look clearly between or beyond them."""
BOUND = BOUND_MARGIN * 0.01
"""The expected FPIR the first answer (today's single crop) must reach."""


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def look(vector: np.ndarray | None, weight: float = 1.0, rid: str = "r") -> VisitLook:
    embedding = None if vector is None else vector.astype(np.float32).tobytes()
    return VisitLook(rid, "v1", T0, weight=weight, embedding=embedding)


def named(person: str, fpir: float | None, similarity: float = 90.0) -> Identity:
    return Identity(similarity=similarity, user_id=person, expected_fpir=fpir, gallery_size=10)


# -- fusion --


def test_a_good_look_outweighs_a_poor_one_and_the_result_is_a_unit_vector() -> None:
    anna = unit(1, 0, 0)
    poor = unit(0, 1, 0)
    fused = fuse([look(anna, 0.9, "a"), look(poor, 0.1, "b")])
    assert fused is not None
    assert fused.dtype == np.float32
    assert np.linalg.norm(fused) == pytest.approx(1.0, abs=1e-6)
    # 0.9 a + 0.1 p, renormalised: cosines 0.9 / sqrt(0.82) to Anna, 0.1 / sqrt(0.82) to p.
    assert float(fused @ anna) == pytest.approx(0.9 / np.sqrt(0.82), abs=1e-5)
    assert float(fused @ poor) == pytest.approx(0.1 / np.sqrt(0.82), abs=1e-5)


def test_equal_looks_average_their_noise_out() -> None:
    rng = np.random.default_rng(7)
    person = unit(*rng.normal(size=128))
    looks = [look(unit(*(person + rng.normal(scale=0.08, size=128))), rid=str(i)) for i in range(8)]
    alone = [float(np.frombuffer(lk.embedding or b"", dtype=np.float32) @ person) for lk in looks]
    fused = fuse(looks)
    assert fused is not None
    assert float(fused @ person) > max(alone)


def test_looks_without_embeddings_fuse_to_nothing_and_weight_zero_still_counts() -> None:
    assert fuse([look(None), look(None, rid="b")]) is None
    assert fuse([]) is None
    fused = fuse([look(unit(1, 0), 0.0, "a")])
    assert fused is not None
    assert float(fused @ unit(1, 0)) == pytest.approx(1.0)
    # Opposite looks cancel: no direction to name anyone by.
    assert fuse([look(unit(1, 0), rid="a"), look(unit(-1, 0), rid="b")]) is None


def test_a_look_of_another_models_length_is_left_out() -> None:
    fused = fuse([look(unit(1, 0, 0), rid="a"), look(unit(0, 1), rid="b")])
    assert fused is not None
    assert fused.shape == (3,)


# -- hysteresis (open-set rule: expected FPIR) --


def test_unknown_is_revised_to_a_name_only_at_the_strict_bar() -> None:
    unknown = Standing(None, 0)
    strict = BOUND * RULES.revise_factor
    assert revise_by_embedding(unknown, named("anna", strict * 0.9), RULES) == Change(
        named("anna", strict * 0.9)
    )
    # Named as today's single crop would (within the bound), but not surely enough to
    # overrule what was already published.
    assert revise_by_embedding(unknown, named("anna", BOUND * 0.9), RULES) is None
    assert revise_by_embedding(unknown, None, RULES) is None


def test_a_name_is_kept_while_the_fused_looks_name_them_at_the_loose_bar() -> None:
    anna = Standing("anna", 0)
    loose = BOUND * RULES.keep_factor
    # A noisy look pushes the fused probe past the first answer's bound: the name stays.
    assert revise_by_embedding(anna, named("anna", BOUND * 2), RULES) is None
    assert revise_by_embedding(anna, named("anna", loose), RULES) is None
    # Past even the loose bar, or nobody near: withdrawn.
    assert revise_by_embedding(anna, named("anna", loose * 1.1), RULES) == Change(None)
    assert revise_by_embedding(anna, None, RULES) == Change(None)


def test_a_name_changes_to_another_person_only_at_the_strict_bar() -> None:
    anna = Standing("anna", 0)
    strict = BOUND * RULES.revise_factor
    bob = named("bob", strict)
    assert revise_by_embedding(anna, bob, RULES) == Change(bob)
    # Bob nearest, but not surely: Anna is no longer named at all, so she is withdrawn
    # (unknown), not replaced by a doubtful Bob.
    assert revise_by_embedding(anna, named("bob", BOUND), RULES) == Change(None)
    # The same person again is never a revision, however sure.
    assert revise_by_embedding(anna, named("anna", strict / 10), RULES) is None


def test_one_noisy_look_among_good_ones_does_not_flip_a_name() -> None:
    """Anna's good looks and one look that alone is nearer Bob: the fused probe still
    names Anna, so the answer stands."""
    rng = np.random.default_rng(3)
    anna, bob = unit(*rng.normal(size=64)), unit(*rng.normal(size=64))
    noisy = unit(*(0.45 * anna + 0.55 * bob))
    assert float(noisy @ bob) > float(noisy @ anna)
    looks = [look(anna, 0.8, "a"), look(anna, 0.7, "b"), look(noisy, 0.9, "c")]
    fused = fuse(looks)
    assert fused is not None
    assert float(fused @ anna) > float(fused @ bob)


def test_a_visit_stops_changing_after_max_revisions() -> None:
    rules = VisitRules(max_fpir=0.01, max_revisions=2)
    sure_bob = named("bob", 1e-6)
    assert revise_by_embedding(Standing("anna", 1), sure_bob, rules) == Change(sure_bob)
    assert revise_by_embedding(Standing("anna", 2), sure_bob, rules) is None
    assert revise_by_embedding(Standing("anna", 2), None, rules) is None
    assert revise_by_embedding(Standing(None, 0), sure_bob, VisitRules(max_revisions=0)) is None


# -- the similarity rule and finders without embeddings --


def test_the_similarity_rule_uses_margins_in_similarity_points() -> None:
    rules = VisitRules(max_fpir=None, threshold=80.0, similarity_margin=5.0)
    assert revise_by_embedding(Standing(None, 0), named("anna", None, 84.0), rules) is None
    assert revise_by_embedding(Standing(None, 0), named("anna", None, 85.0), rules) is not None
    assert revise_by_embedding(Standing("anna", 0), named("anna", None, 75.0), rules) is None
    withdrawn = revise_by_embedding(Standing("anna", 0), named("anna", None, 74.9), rules)
    assert withdrawn == Change(None)


def test_an_identity_without_expected_fpir_falls_back_to_similarity() -> None:
    """An uncalibrated engine decides by similarity even where the open-set rule is set."""
    assert revise_by_embedding(Standing(None, 0), named("anna", None, 86.0), RULES) is not None
    assert revise_by_embedding(Standing(None, 0), named("anna", None, 82.0), RULES) is None


def test_scores_revise_to_a_sure_name_and_never_withdraw() -> None:
    rules = VisitRules(max_fpir=None, threshold=80.0, similarity_margin=5.0)
    assert revise_by_scores(Standing(None, 0), named("anna", None, 84.0), rules) is None
    assert revise_by_scores(Standing(None, 0), named("anna", None, 85.0), rules) is not None
    assert revise_by_scores(Standing("anna", 0), None, rules) is None
    assert revise_by_scores(Standing("anna", 0), named("anna", None, 99.0), rules) is None
    assert revise_by_scores(Standing("anna", 0), named("bob", None, 90.0), rules) is not None
    assert revise_by_scores(Standing("anna", 3), named("bob", None, 99.0), rules) is None


def test_a_person_is_their_user_else_their_face() -> None:
    assert person_of(Identity(similarity=90, user_id="u", face_id="f")) == "u"
    assert person_of(Identity(similarity=90, face_id="f")) == "f"
    assert person_of(None) is None


def test_the_loose_search_reaches_the_loosest_bar() -> None:
    assert RULES.loose_fpir == pytest.approx(0.04)
    assert VisitRules(max_fpir=None).loose_fpir is None
    assert RULES.loose_threshold == 75.0
