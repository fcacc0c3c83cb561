"""``Settings.recognizer`` (``FACELENS_RECOGNIZER__*``): what is searched, and how a face is
named."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from facelens.config.section import Section


class VisitSettings(Section):
    """How the looks of one visit (one person continuously in view of one camera) are fused
    into one answer, and how sure a change must be before the answer is revised.

    The defaults are a starting point: ``bench/`` measures fusion and these factors offline
    on LFW identities and end to end through ``facelens up``, and they may move with it.
    """

    max_looks: int = Field(
        default=8,
        ge=1,
        le=100,
        description=(
            "Looks of a visit fused into its answer: the heaviest (best look quality) this "
            "many. A template's noise falls as 1/sqrt(n), so past a handful a look adds "
            "little, while each one is an embedding kept until the visit goes idle."
        ),
    )
    revise_factor: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description=(
            "Open-set rule: a visit's answer is revised to a (different) name only when the "
            "fused looks name that person at max_false_identification_rate times this. Much "
            "stricter than the first answer's bound, by measurement: the rule is calibrated "
            "on single photos, and an averaged probe is nearer to everyone, so strangers "
            "reach a fused score 2x (two looks) to 3-5x (four or more) more often than the "
            "calibration says; 0.1 is what brings wrong names back to no more than one "
            "crop's (bench/visit_fusion.py: 0.5 gave 2-2.4x as many). Lower: fewer, surer "
            "revisions."
        ),
    )
    keep_factor: float = Field(
        default=1.0,
        ge=1,
        le=100,
        description=(
            "Open-set rule: a name already given is withdrawn (the visit becomes unknown) only "
            "when the fused looks no longer name that person even at "
            "max_false_identification_rate times this. The gap between revise_factor and "
            "this is the hysteresis that keeps one noisy look from flipping an answer back "
            "and forth. 1 (withdraw as soon as the fused looks fail the first answer's own "
            "bound) named fewer strangers than 2 or 4 on the development identities (24 "
            "against 33 and more, gallery ~500) for 2% more enrolled visits left unknown."
        ),
    )
    similarity_margin: float = Field(
        default=5.0,
        ge=0,
        le=50,
        description=(
            "Similarity rule (and AWS Rekognition): the same hysteresis in similarity points "
            "(0-100): a revision to a name needs face_match_threshold plus this, a name is "
            "withdrawn only below face_match_threshold minus this (Rekognition: never "
            "withdrawn, it hands out no embeddings to fuse)."
        ),
    )
    max_revisions: int = Field(
        default=3,
        ge=0,
        le=100,
        description=(
            "Revisions at most per visit after its first answer: a visit whose looks keep "
            "disagreeing stops changing its answer (and alerting) rather than flapping. "
            "0: the first answer is final."
        ),
    )


class RecognizerSettings(Section):
    """What the recognizer searches and where it publishes."""

    collection_id: str = Field(default="faces", description="Collection searched.")
    prefix: str = Field(default="faces/", description="Only keys starting with this are crops.")
    suffix: str = Field(default=".jpg", description="Only keys ending with this are crops.")
    topic: str = Field(
        default="rekognition",
        description="MQTT topic of identifications; '<topic>/unknown' and '<topic>/errors' too.",
    )
    face_match_threshold: float = Field(
        default=80.0,
        ge=0,
        le=100,
        description=(
            "Similarity 0-100 a face (or a user's template) must reach to count as a match "
            "under rule 'similarity' (and on AWS Rekognition); higher means fewer false matches "
            "and more unknowns. The 'open-set' rule does not use it."
        ),
    )
    max_faces: int = Field(
        default=5, ge=1, le=4096, description="Candidate faces considered per search."
    )
    rule: Literal["open-set", "similarity"] = Field(
        default="open-set",
        description=(
            "How a face gets a name. 'open-set': only when at most "
            "max_false_identification_rate of strangers would score as high against the "
            "collection's current number of people (holds as people are enrolled or "
            "forgotten; needs an engine facelens has calibrated, else 'similarity' decides). "
            "'similarity': the best person at face_match_threshold, Rekognition's 1:1 meaning, "
            "which names more strangers the more people are enrolled."
        ),
    )
    max_false_identification_rate: float = Field(
        default=0.01,
        ge=0.001,
        le=0.5,
        description=(
            "Open-set rule: the share of strangers (people not enrolled, 0.001-0.5) that may be "
            "given a name. The rule aims at half of it, to leave room for a population unlike "
            "the one it was calibrated on. Lower: fewer wrong names, more people left unknown."
        ),
    )
    worker_id: str = Field(
        default="recognizer-1",
        min_length=1,
        description=(
            "Stable name of this worker: a restarted worker reclaims the events it held, and "
            "its MQTT session resumes under it."
        ),
    )
    strangers: bool = Field(
        default=True,
        description=(
            "Group unknown faces into anonymous persons ('stranger-<n>', kept in the companion "
            "collection '<collection_id>.strangers'); unknown messages then carry StrangerId, "
            "StrangerSightings and FirstSeen. Needs facelens' engine (not rekognition://)."
        ),
    )
    stranger_threshold: float = Field(
        default=95.0,
        ge=0,
        le=100,
        description=(
            "Similarity 0-100 an unknown face needs to a stranger's faces (RMS distance) to "
            "join that stranger. Lower merges different people into one stranger, higher "
            "splits one person into several; 95 was best on LFW (bench/strangers_lfw.py)."
        ),
    )
    visits: VisitSettings = Field(
        default_factory=VisitSettings,
        description=(
            "Visits: crops carrying a visit id (the edge runner's looks of one person) are "
            "fused into one answer per visit, published first at once and again only when it "
            "changes (FACELENS_RECOGNIZER__VISITS__<FIELD>)."
        ),
    )
