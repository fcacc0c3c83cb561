"""The worker loop: take deliveries from an event source, hand each event to the recognizer, ack.

Acknowledging only after the recognizer has published and recorded is what
makes delivery at least once end to end. A back end that is down
(``StorageError``) releases the delivery for a later retry; a delivery that
keeps failing ``max_attempts`` times, or fails in a way nobody planned for,
becomes a dead letter so one poisoned message cannot stall the queue. The
loop itself never dies of an event.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from facelens.bus.delivery import Delivery, EventSource
from facelens.errors import StorageError
from facelens.recognizer.service import Outcome, Recognizer

_log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    events: int = 0
    identified: int = 0
    unknown: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    unchanged: int = 0
    """Looks of a visit that changed its answer in nothing: recorded, not published (and
    not counted as identified or unknown, which count published answers)."""
    skipped: int = 0
    retried: int = 0
    outcomes: list[Outcome] = field(default_factory=list, repr=False)


class RecognizerWorker:
    """Runs one recognizer over one event source.

    max_attempts: deliveries of one message before it is dead-lettered.
    keep_outcomes: keep every Outcome in ``stats.outcomes`` (benchmarks).
    """

    def __init__(
        self,
        source: EventSource,
        recognizer: Recognizer,
        *,
        batch_size: int = 10,
        wait_seconds: float = 0.5,
        max_attempts: int = 5,
        keep_outcomes: bool = False,
    ) -> None:
        self.source = source
        self.recognizer = recognizer
        self._batch = batch_size
        self._wait = wait_seconds
        self._max_attempts = max_attempts
        self._keep = keep_outcomes
        self.stats = WorkerStats()

    def run(self, stop: threading.Event) -> None:
        """Works until ``stop`` is set; the delivery in hand is finished first."""
        while not stop.is_set():
            self.run_once()

    def run_once(self) -> int:
        """Handles one batch (possibly empty); returns how many deliveries it took."""
        try:
            deliveries = self.source.receive(max_events=self._batch, wait_seconds=self._wait)
        except StorageError as exc:
            _log.warning("event source unavailable: %s", exc.message)
            threading.Event().wait(self._wait)
            return 0
        for delivery in deliveries:
            self._handle(delivery)
        return len(deliveries)

    def _handle(self, delivery: Delivery) -> None:
        if delivery.error is not None:
            self._dead_letter(delivery, delivery.error)
            return
        try:
            for event in delivery.events:
                if not self.recognizer.wants(event):
                    self.stats.skipped += 1
                    continue
                self._count(self.recognizer.handle(event))
        except StorageError as exc:
            if delivery.attempt >= self._max_attempts:
                reason = f"gave up after {delivery.attempt} attempts: {exc.message}"
                self._dead_letter(delivery, reason, code=exc.code)
                return
            _log.warning("retrying later (attempt %d): %s", delivery.attempt, exc.message)
            self.stats.retried += 1
            self.source.release(delivery)
            return
        except Exception as exc:  # an unplanned failure must not stop the worker
            _log.exception("event failed unexpectedly; dead-lettered")
            self._dead_letter(delivery, f"{type(exc).__name__}: {exc}", code="InternalServerError")
            return
        self.source.ack(delivery)

    def _count(self, outcome: Outcome) -> None:
        self.stats.events += 1
        if self._keep:
            self.stats.outcomes.append(outcome)
        if outcome.duplicate:
            self.stats.duplicates += 1
            return
        if not outcome.published:
            self.stats.unchanged += 1
            return
        status = outcome.recognition.status.value
        if status == "identified":
            self.stats.identified += 1
        elif status == "unknown":
            self.stats.unknown += 1
        else:
            self.stats.dead_letters += 1

    def _dead_letter(
        self, delivery: Delivery, reason: str, *, code: str = "InvalidEventException"
    ) -> None:
        try:
            self.recognizer.reject(delivery.raw, reason, code=code)
        except StorageError as exc:
            _log.warning("could not record dead letter, will retry: %s", exc.message)
            self.source.release(delivery)
            return
        self.stats.dead_letters += 1
        self.source.ack(delivery)
