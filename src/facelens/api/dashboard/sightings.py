"""What the dashboard shows of a recognition: a sighting, its crop, its correction.

A ledger record becomes a :class:`Sighting` (who, how sure, when, where its
crop is shown from) for the feed, a person's and a stranger's pages; a crop
is shown only from where the recognizer keeps its crops (:class:`CropPlace`),
through the dashboard's own crop route.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import quote

from facelens.api.parts import CropPlace
from facelens.history.ledger import Recognition, RecognitionLedger, Status
from facelens.people.corrections import Correction, CorrectionService, correction_id


@dataclass(frozen=True)
class Sighting:
    """One ledger record as a feed entry. similarity: 0-100; crop_url None when not ours."""

    recognition_id: str
    status: str
    name: str
    similarity: float | None
    camera: str | None
    seen_at: datetime
    crop_url: str | None
    user_id: str | None
    face_id: str | None
    stranger_id: str | None = None
    rejected: str | None = None
    """The correction id in force that says this identification was wrong (None: none)."""
    expected_fpir: float | None = None
    """How sure the name was: the share of strangers (0-1) expected to score as high."""
    visit_id: str | None = None
    """The visit this answer is for (None: a crop of no visit, its own row)."""
    revision: int = 0
    """The visit's revision this answer made (0: its first answer)."""
    looks: int | None = None
    """Looks fused into this answer (None: the message does not say)."""

    @property
    def row_id(self) -> str:
        """The feed row it fills: one per visit, so a revision replaces its visit's row."""
        return f"v-{self.visit_id}" if self.visit_id else f"s-{self.recognition_id}"

    @property
    def person_id(self) -> str | None:
        """Whom an identification named (UserId, else FaceId): what "not this person" rejects."""
        return (self.user_id or self.face_id) if self.status == Status.IDENTIFIED.value else None

    @property
    def correction_id(self) -> str | None:
        """The id rejecting this identification would give its correction."""
        person = self.person_id
        return None if person is None else correction_id(self.recognition_id, person)

    @property
    def seen_iso(self) -> str:
        return self.seen_at.astimezone(UTC).isoformat()

    @property
    def seen_text(self) -> str:
        """UTC fallback; the page script shows local time."""
        return self.seen_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def sighting(record: Recognition, crops: CropPlace) -> Sighting:
    """What a page shows of one ledger record."""
    message = record.message
    name = message.get("Name") or message.get("ExternalImageId") or message.get("UserId")
    if record.status is not Status.IDENTIFIED or not name:
        name = "Unknown" if record.status is not Status.ERROR else "Error"
    similarity = message.get("Similarity")
    return Sighting(
        recognition_id=record.recognition_id,
        status=record.status.value,
        name=str(name),
        similarity=float(similarity) if isinstance(similarity, int | float) else None,
        camera=_text_or_none(message.get("Camera")),
        seen_at=record.recognized_at,
        crop_url=crop_url(crops, record.bucket, record.key),
        user_id=_text_or_none(message.get("UserId")),
        face_id=_text_or_none(message.get("FaceId")),
        stranger_id=_text_or_none(message.get("StrangerId")),
        expected_fpir=float(fpir)
        if isinstance(fpir := message.get("ExpectedFPIR"), int | float)
        else None,
        visit_id=_text_or_none(message.get("VisitId")),
        revision=revision if isinstance(revision := message.get("Revision"), int) else 0,
        looks=looks if isinstance(looks := message.get("Looks"), int) else None,
    )


def published(record: Recognition) -> bool:
    """Whether the record's message was published: a visit's look that changed nothing is
    recorded (``"Published": false``) but is no new answer, so no feed shows it."""
    return record.message.get("Published") is not False


def one_per_visit(records: list[Recognition]) -> list[Recognition]:
    """``records`` (newest first) with only the newest published answer of each visit: the
    feed's rows, one per visit (records of no visit each keep their own)."""
    seen: set[str] = set()
    rows = []
    for record in records:
        visit = record.message.get("VisitId")
        if not published(record) or (isinstance(visit, str) and visit in seen):
            continue
        if isinstance(visit, str):
            seen.add(visit)
        rows.append(record)
    return rows


def crop_url(crops: CropPlace, bucket: str | None, key: str | None) -> str | None:
    """The dashboard's URL of a crop (:func:`facelens.api.dashboard.feed.crop`), None when
    the object is not one of the recognizer's crops (another bucket or prefix)."""
    if bucket == crops.bucket and key and key.startswith(crops.prefix):
        return "/ui/crops/" + quote(key, safe="/")
    return None


def sightings(crops: CropPlace, records: list[Recognition]) -> list[Sighting]:
    return [sighting(r, crops) for r in records]


def with_corrections(corrections: CorrectionService, shown: list[Sighting]) -> list[Sighting]:
    """The sightings, each identification marked with its correction when one is in force
    (one listing of the corrections, not one lookup per sighting). Blocking."""
    if not any(s.person_id for s in shown):
        return shown
    in_force = {c.correction_id for c in corrections.list()}
    return [
        replace(s, rejected=s.correction_id) if s.correction_id in in_force else s for s in shown
    ]


def _text_or_none(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class CorrectionRow:
    """A correction as a person's page lists it; crop_url: the rejected crop while kept."""

    correction: Correction
    crop_url: str | None

    @property
    def created_iso(self) -> str:
        return self.correction.created_at.astimezone(UTC).isoformat()

    @property
    def created_text(self) -> str:
        return self.correction.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def corrections_of(
    corrections: CorrectionService,
    ledger: RecognitionLedger,
    crops: CropPlace,
    person_id: str,
) -> list[CorrectionRow]:
    """The person's corrections in force, newest first, with their crops. Blocking."""
    rows = []
    for correction in corrections.list(person=person_id):
        record = ledger.get(correction.recognition_id) if correction.recognition_id else None
        url = None if record is None else crop_url(crops, record.bucket, record.key)
        rows.append(CorrectionRow(correction, url))
    return rows
