"""Recognizers on one ledger, on each adapter: the same event is published once, and a claim
left by a worker that died does not lose it. (The same across real processes and hosts:
tests/integration/history/test_two_hosts.py.)"""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime

from facelens.bus.publisher import MemoryPublisher
from facelens.history.ledger import RecognitionLedger
from facelens.profiles.registry import open_profile_store
from facelens.recognizer import messages
from facelens.recognizer.finders import Sighting
from facelens.recognizer.service import Outcome, Recognizer, RecognizerOptions
from facelens.storage.memory import MemoryObjectStore
from facelens.values.boxes import BoundingBox
from facelens.values.events import ObjectCreated
from tests.integration.history.conftest import OpenLedger

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
KEY = "faces/1.jpg"


class _GatedFinder:
    """Sees an unknown face, after ``gate`` opens; ``entered`` says a find began."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls = 0

    def prepare(self) -> None:
        pass

    def find(self, image: bytes) -> Sighting:
        self.calls += 1
        self.entered.set()
        assert self.gate.wait(10)
        return Sighting(BoundingBox(0.5, 0.5, 0.25, 0.25), None)


def _host(
    ledger: RecognitionLedger, objects: MemoryObjectStore, worker_id: str, lease_s: float = 30.0
) -> tuple[Recognizer, _GatedFinder, MemoryPublisher]:
    finder, publisher = _GatedFinder(), MemoryPublisher()
    recognizer = Recognizer(
        objects=objects,
        finder=finder,
        profiles=open_profile_store("memory://"),
        ledger=ledger,
        publisher=publisher,
        options=RecognizerOptions(worker_id=worker_id, claim_seconds=lease_s),
    )
    return recognizer, finder, publisher


def _event(objects: MemoryObjectStore) -> ObjectCreated:
    objects.create_bucket("crops")
    info = objects.put_object("crops", KEY, b"jpeg")
    return ObjectCreated("crops", KEY, 4, info.etag, "0000000000000001", T0)


def test_an_event_given_to_two_hosts_is_published_by_one(open_ledger_on: OpenLedger) -> None:
    objects = MemoryObjectStore()
    event = _event(objects)
    a, a_finder, a_published = _host(open_ledger_on(), objects, "host-a")
    b, b_finder, b_published = _host(open_ledger_on(), objects, "host-b")
    outcomes: dict[str, Outcome] = {}
    first = threading.Thread(target=lambda: outcomes.update(a=a.handle(event)))
    first.start()
    assert a_finder.entered.wait(10)  # a holds the claim and is finding the face
    second = threading.Thread(target=lambda: outcomes.update(b=b.handle(event)))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # b waits for a's outcome rather than doing the event too
    a_finder.gate.set()
    first.join(10)
    second.join(10)
    assert not outcomes["a"].duplicate
    assert outcomes["b"].duplicate
    assert outcomes["b"].recognition == outcomes["a"].recognition
    assert b_finder.calls == 0
    assert [json.loads(m.payload)["Key"] for m in a_published.messages] == [KEY]
    assert b_published.messages == []


def test_a_claim_whose_worker_died_is_taken_over_when_its_lease_ends(
    open_ledger_on: OpenLedger,
) -> None:
    objects = MemoryObjectStore()
    event = _event(objects)
    # A worker on another host claimed the event, then died before publishing.
    rid = messages.recognition_id(event)
    assert open_ledger_on().claim(rid, "recognizer-1@elsewhere", lease_seconds=0.5)
    b, b_finder, b_published = _host(open_ledger_on(), objects, "host-b")
    b_finder.gate.set()
    outcome = b.handle(event)  # waits out the lease, then does the event itself
    assert not outcome.duplicate
    assert [json.loads(m.payload)["Key"] for m in b_published.messages] == [KEY]


def test_a_restarted_worker_takes_back_its_own_claim_at_once(open_ledger_on: OpenLedger) -> None:
    objects = MemoryObjectStore()
    event = _event(objects)
    rid = messages.recognition_id(event)
    # A claim is held as "<worker id>@<host name>"; this one's holder died holding it.
    owner = f"host-a@{socket.gethostname()}"
    assert open_ledger_on().claim(rid, owner, lease_seconds=3600)
    after, finder, published = _host(open_ledger_on(), objects, "host-a", lease_s=3600)
    finder.gate.set()
    assert not after.handle(event).duplicate
    assert len(published.messages) == 1
