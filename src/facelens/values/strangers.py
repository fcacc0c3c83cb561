"""What became of an unknown face: the anonymous person (stranger) it was grouped into.

The stranger service (:mod:`facelens.people.strangers`) makes it; the recognizer
puts it in the unknown face's message, so an automation can tell "the same
stranger came back".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class StrangerMatch:
    """What ``observe`` made of one unknown face.

    stranger_id: the anonymous person it joined (or started, ``new``); similarity: to
    that stranger's template before the face joined (None when new); sightings: how
    often the stranger was seen, this sighting included (from the recognizer's ledger;
    without one, the faces kept); first_seen: the first sighting's time (UTC);
    face_id: the face stored in the companion collection for this sighting."""

    stranger_id: str
    new: bool
    sightings: int
    first_seen: datetime
    face_id: str
    similarity: float | None = None
