"""``Settings.retention`` (``FACELENS_RETENTION__*``): how long crops, strangers and visits'
looks are kept."""

from __future__ import annotations

from pydantic import Field

from facelens.config.section import Section


class RetentionSettings(Section):
    """How long crops (face photos in the object store) are kept before the retention job
    deletes them. None keeps them forever.

    The defaults keep biometric data no longer than its use needs (data minimisation):
    a week of identified crops covers "who was at the door last week?" and checking a
    match; strangers' crops are for naming them the same day, and a stranger not seen
    for a month is forgotten altogether (nobody named them; their faces served only to
    recognise a return). Enrolled people's embeddings, profiles and the ledger's
    records stay (``facelens forget`` erases a person).
    """

    identified_crops_hours: float | None = Field(
        default=168.0,
        gt=0,
        description=(
            "Hours a crop of an identified person is kept, counted from its recognition "
            "(default 168: one week). None: forever."
        ),
    )
    stranger_crops_hours: float | None = Field(
        default=8.0,
        gt=0,
        description=(
            "Hours a crop of an unknown face (a stranger) is kept, and a dead letter's crop "
            "(default 8: the same working day). None: forever. Crops with no record at all "
            "(never recognized) go after the longer of the two times."
        ),
    )
    strangers_hours: float | None = Field(
        default=720.0,
        gt=0,
        description=(
            "Hours after its last sighting an anonymous person is forgotten entirely: its "
            "faces (embeddings), sightings and crops (default 720: 30 days; a stranger who "
            "comes back within it keeps their id). None: kept until named or forgotten."
        ),
    )
    visit_look_seconds: float | None = Field(
        default=600.0,
        gt=0,
        description=(
            "Seconds a visit may stay idle (no new look, no new answer) before its looks are "
            "dropped: the embeddings of one person's faces that the recognizer fuses into the "
            "visit's answer (default 600: ten minutes, far longer than anyone stands at a "
            "camera, so a visit that goes on is never cut short). They serve only the visit "
            "in progress, and an embedding is biometric data: kept no longer than that use "
            "needs. The visit's answer stays, as history, as the recognition records do. "
            "Dropped up to interval_seconds late. None: kept until forgotten."
        ),
    )
    interval_seconds: float = Field(
        default=600.0,
        ge=1,
        description=(
            "Seconds between two runs of the retention job in `facelens recognizer` and "
            "`facelens up` (default 600: a crop outlives its time by at most ten minutes)."
        ),
    )

    @property
    def enabled(self) -> bool:
        """Whether anything is ever deleted (at least one time is set)."""
        return any(
            hours is not None
            for hours in (
                self.identified_crops_hours,
                self.stranger_crops_hours,
                self.strangers_hours,
                self.visit_look_seconds,
            )
        )
