"""One answer per visit: the looks fused, and a change made only when it is surer than noise.

A visit is one person continuously in view of one camera; the edge runner
uploads a few looks of it (:mod:`facelens.history.visits`). This module is
the recognizer's decision over them, pure (no store, no engine), so that the
rule can be read and tested on its own:

* **Fusion** (:func:`fuse`): the looks' unit embeddings, each weighted by how
  identifiable the edge judged it (``look-quality``), averaged and
  renormalised: the standard template pooling (what
  :func:`facelens.collection.users.template` does for a user's faces, here
  quality-weighted). The noise of independent looks averages out while
  what they share, the person, stays; a poor look weighs little.
* **The first answer** of a visit is its first look's own answer, exactly as a
  single crop is decided today (same rule, same bound): it is published at
  once, and waiting for more looks is what visits exist to avoid.
* **Revisions** (:func:`revise_by_embedding`): the fused probe is searched at
  the *loose* bound and its identity judged against three bars, all in the
  rule's own terms (the open-set rule's expected FPIR, else similarity):

  - to a name (unknown -> Anna, Anna -> Bob): the fused probe names that
    person (not the one named now) at the *strict* bar, ``revise_factor`` x
    the configured FPIR bound (threshold + ``similarity_margin``);
  - withdrawn (Anna -> unknown): only when the fused probe no longer names
    Anna even at the *loose* bar, ``keep_factor`` x the bound (threshold -
    margin);
  - otherwise the answer stands. The gap between the strict and the loose
    bar is the hysteresis: one noisy look moves the fused probe a little and
    cannot cross both. At most ``max_revisions`` per visit.
* **Finders without embeddings** (AWS Rekognition; :func:`revise_by_scores`):
  in score space: a revision to a name needs a look naming that person at
  threshold + margin; a name is never withdrawn (there is nothing to fuse
  that could say the earlier look was wrong).

Trade-off: the strict bar makes late names rarer than a fresh single crop
would (an enrolled person whose first look was poor needs the fused looks to
be clearly surer), which is the point: a revision overrides what automations
have already acted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facelens.engine.open_set import BOUND_MARGIN
from facelens.engine.types import Embedding
from facelens.history.visits import VisitLook
from facelens.values.identity import Identity

MIN_WEIGHT = 1e-3
"""The least weight a look counts with: a look the edge scored 0 still says something, and
a visit whose looks all scored 0 must not divide by zero."""


@dataclass(frozen=True)
class VisitRules:
    """The rule in force and the visit's bars around it (:class:`facelens.config.recognizer.
    VisitSettings` says why each is what it is).

    max_fpir: the open-set rule's bound (0-1, share of strangers named), None under the
    similarity rule; threshold: the similarity rule's (and Rekognition's) 0-100.
    """

    max_fpir: float | None = 0.01
    threshold: float = 80.0
    revise_factor: float = 0.1
    keep_factor: float = 1.0
    similarity_margin: float = 5.0
    max_revisions: int = 3
    max_looks: int = 8

    @property
    def loose_fpir(self) -> float | None:
        """The open-set bound to search the fused probe at: the loosest bar any decision
        reads (the rule itself aims at BOUND_MARGIN of what it is given)."""
        if self.max_fpir is None:
            return None
        return min(1.0, self.max_fpir * max(self.keep_factor, 1.0, self.revise_factor))

    @property
    def loose_threshold(self) -> float:
        """The similarity to search the fused probe at under the similarity rule."""
        return max(0.0, self.threshold - self.similarity_margin)


@dataclass(frozen=True)
class Standing:
    """A visit's current answer as the decision sees it: who it names (UserId, else FaceId;
    None: unknown) and at which revision (0: the first answer)."""

    person: str | None
    revision: int


@dataclass(frozen=True)
class Change:
    """A revision to make: the visit's answer becomes ``identity`` (None: unknown)."""

    identity: Identity | None


def person_of(identity: Identity | None) -> str | None:
    """Who an identity names: its user, else its face (a face enrolled without a user)."""
    if identity is None:
        return None
    return identity.user_id or identity.face_id


def fuse(looks: Sequence[VisitLook]) -> Embedding | None:
    """The looks' quality-weighted mean unit embedding, renormalised; None when no look has
    an embedding (Rekognition) or they cancel out (a zero mean: no direction to name)."""
    vectors: list[Embedding] = []
    weights: list[float] = []
    for look in looks:
        if look.embedding is None:
            continue
        vector = np.frombuffer(look.embedding, dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        if vector.size == 0 or not np.isfinite(norm) or norm == 0.0:
            continue
        if vectors and vector.shape != vectors[0].shape:
            continue  # another model's look (a reindex mid-visit): not comparable
        vectors.append(vector / norm)
        weights.append(max(MIN_WEIGHT, look.weight))
    if not vectors:
        return None
    mean = np.average(np.stack(vectors), axis=0, weights=np.asarray(weights))
    norm = float(np.linalg.norm(mean))
    if norm < 1e-6:
        return None
    return (mean / norm).astype(np.float32)


def _names_at(
    identity: Identity | None, rules: VisitRules, *, factor: float, points: float
) -> bool:
    """Whether ``identity`` names its person at the bar ``factor`` x the configured FPIR bound
    (open-set rule, when the identity carries an expected FPIR), else at threshold +
    ``points`` similarity."""
    if identity is None:
        return False
    if rules.max_fpir is not None and identity.expected_fpir is not None:
        return identity.expected_fpir <= BOUND_MARGIN * rules.max_fpir * factor
    return identity.similarity >= rules.threshold + points


def names_strictly(identity: Identity | None, rules: VisitRules) -> bool:
    """Named surely enough to revise a visit's answer to this person."""
    return _names_at(identity, rules, factor=rules.revise_factor, points=rules.similarity_margin)


def names_loosely(identity: Identity | None, rules: VisitRules) -> bool:
    """Still named, surely enough to keep a name the visit already has."""
    return _names_at(identity, rules, factor=rules.keep_factor, points=-rules.similarity_margin)


def revise_by_embedding(
    standing: Standing, fused: Identity | None, rules: VisitRules
) -> Change | None:
    """Whether the visit's answer changes, given who its fused probe names when searched at
    the loose bound (``fused``, None: nobody even there); None: the answer stands."""
    if standing.revision >= rules.max_revisions:
        return None
    named = person_of(fused)
    if named is not None and named != standing.person and names_strictly(fused, rules):
        return Change(fused)
    if standing.person is None:
        return None
    if named == standing.person and names_loosely(fused, rules):
        return None
    return Change(None)


def revise_by_scores(standing: Standing, look: Identity | None, rules: VisitRules) -> Change | None:
    """The same for finders without embeddings, from one look's own identity: a revision to
    a name needs this look to name another person at threshold + margin; never withdrawn."""
    if standing.revision >= rules.max_revisions:
        return None
    named = person_of(look)
    if named is None or named == standing.person:
        return None
    if look is not None and look.similarity >= rules.threshold + rules.similarity_margin:
        return Change(look)
    return None
