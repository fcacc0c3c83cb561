"""Status messages and rate-bounded labels; names from the recognizer's answers."""

from __future__ import annotations

import pytest

from facelens.bus.publisher import MemoryPublisher
from facelens.edge.names import UNKNOWN, NameBoard, display_name
from facelens.edge.reporting import Reporter, infer_topic
from facelens.edge.types import TrackedFace
from facelens.errors import InvalidParameterException
from facelens.values.boxes import PixelBox

FACE = TrackedFace(3, PixelBox(0, 0, 10, 10), 97.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_topic_and_bad_thing_names() -> None:
    assert infer_topic("things/{thing}/infer", "door") == "things/door/infer"
    for bad in ("", "a/b", "a+", "#"):
        with pytest.raises(InvalidParameterException):
            infer_topic("things/{thing}/infer", bad)


def test_status_messages_carry_thing_status_and_fields() -> None:
    publisher = MemoryPublisher()
    Reporter(publisher, thing="door", topic="t").status("uploaded", key="faces/k.jpg")
    [message] = publisher.messages
    body = message.json()
    assert (message.topic, body["thing"], body["status"], body["key"]) == (
        "t",
        "door",
        "uploaded",
        "faces/k.jpg",
    )
    assert body["at"].endswith("+00:00")


def test_labels_are_rate_bounded_and_skip_empty_frames() -> None:
    publisher, clock = MemoryPublisher(), Clock()
    reporter = Reporter(publisher, thing="door", topic="t", labels_per_second=2.0, clock=clock)
    for step in range(30):  # 3 s at 10 frames per second
        clock.now = step / 10
        reporter.labels([FACE] if step % 2 else [], frame_index=step)
    labels = [m.json() for m in publisher.messages]
    assert len(labels) == 5  # at 0.1, 0.7, 1.3, 1.9 and 2.5 s: never two within 0.5 s
    assert labels[0]["face"] == 0.97
    assert labels[0]["tracks"] == [{"id": 3, "confidence": 0.97}]


def test_names_from_identified_and_unknown_answers() -> None:
    board = NameBoard(max_entries=2)
    board.remember("faces/a.jpg", 1)
    board.remember("faces/b.jpg", 2)
    assert board.apply({"Status": "unknown", "Key": "faces/a.jpg"}) == 1
    assert board.name_of(1) == UNKNOWN
    answer = {"Status": "identified", "Key": "faces/a.jpg", "Name": "Ada", "UserId": "u1"}
    assert board.apply(answer) == 1
    assert board.name_of(1) == "Ada"
    # a later "unknown" (a worse crop) does not undo a name
    board.apply({"Status": "unknown", "Key": "faces/a.jpg"})
    assert board.name_of(1) == "Ada"
    assert board.apply({"Status": "identified", "Key": "faces/other.jpg", "Name": "X"}) is None
    board.remember("faces/c.jpg", 3)  # bounded: the oldest key is forgotten
    assert board.apply({"Status": "identified", "Key": "faces/a.jpg", "Name": "Y"}) is None


@pytest.mark.parametrize(
    ("message", "name"),
    [
        ({"Status": "identified", "UserId": "u1", "FaceId": "f"}, "u1"),
        ({"Status": "identified", "ExternalImageId": "ada.jpg"}, "ada.jpg"),
        ({"Status": "identified", "name": "ada"}, "ada"),
        ({"Status": "error", "Name": "x"}, None),
        ({"Status": "identified"}, None),
    ],
)
def test_display_name(message: dict[str, str], name: str | None) -> None:
    assert display_name(message) == name


def test_a_visit_shows_its_latest_revision_and_ignores_older_ones() -> None:
    board = NameBoard()
    board.remember("faces/a.jpg", 1, "v1")
    board.remember("faces/b.jpg", 1, "v1")  # a later look of the same visit
    first = {"Status": "unknown", "Key": "faces/a.jpg", "VisitId": "v1", "Revision": 0}
    assert board.apply(first) == 1
    assert board.name_of(1) == UNKNOWN
    # Revision 1 answers for a later look (another key): it names the visit's track.
    named = {
        "Status": "identified",
        "Key": "faces/b.jpg",
        "VisitId": "v1",
        "Revision": 1,
        "Name": "Ada",
    }
    assert board.apply(named) == 1
    assert board.name_of(1) == "Ada"
    board.apply(first)  # revision 0 arriving late changes nothing
    assert board.name_of(1) == "Ada"
    # A revision may also take a name back: the recognizer's hysteresis decided.
    board.apply({"Status": "identified", "VisitId": "v1", "Revision": 2, "Name": "Bea"})
    assert board.name_of(1) == "Bea"
    board.apply({"Status": "unknown", "VisitId": "v1", "Revision": 3})
    assert board.name_of(1) == UNKNOWN
    # Another runner's visit, or none at all: nothing to name.
    assert (
        board.apply({"Status": "identified", "VisitId": "v9", "Revision": 0, "Name": "X"}) is None
    )
