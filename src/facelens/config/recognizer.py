"""``Settings.recognizer`` (``FACELENS_RECOGNIZER__*``): what is searched, and how a face is
named."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from facelens.config.section import Section


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
