"""The AWS Lambda entry point: ``facelens.aws.handler.handler``.

S3 (directly, or through SQS or SNS) invokes it with ObjectCreated events
for crops; it runs them through the same worker and recognizer as
``facelens recognizer`` (:class:`~facelens.recognizer.worker.RecognizerWorker`),
so what it publishes, dead-letters and retries is the same on AWS as on the
user's own hardware. Every record of a batch is handled, not only the first.

What Lambda is told, so nothing is lost:

* SQS batches: the failed records come back as ``batchItemFailures`` (the
  function's event source mapping needs ``ReportBatchItemFailures``), so
  only they are retried; the worker dead-letters a record after
  ``max_attempts`` receives.
* S3 or SNS invoking directly (asynchronously): if any record failed for a
  reason that may pass (a back end down, throttled), the invocation raises
  and Lambda retries it (twice, then the function's dead-letter queue).
  Records already done are recognised by their RecognitionId in the ledger
  and not published twice by a warm container; a fresh container publishes
  them again under the same RecognitionId (at least once, as everywhere).

Visits (looks of one person the edge marked with one ``visit-id``) are
fused and revised as everywhere, through the visit ledger of the container's
history: SQLite under ``FACELENS_HOME`` (``/tmp``), one per container, unless
``FACELENS_COLLECTIONS_URL`` is PostgreSQL. So, on SQLite, looks of one visit
that Lambda hands to two containers fuse only within each: each container
publishes a first answer (Revision 0) of its own for the visit. One answer
per visit across containers needs the shared database (PostgreSQL), or a
concurrency of one. With ``rekognition://`` there are no embeddings to fuse:
later looks revise to a name in score space only, never withdraw one.

Settings come from ``FACELENS_*`` environment variables, read once per
container on the first invocation (``deploy/aws/template.yaml`` sets them):
on AWS typically ``FACELENS_COLLECTIONS_URL=rekognition://``,
``FACELENS_PROFILES_URL=dynamodb://<table>``, ``FACELENS_OBJECTS_URL=s3://``,
``FACELENS_MQTT__URL=iotdata://<endpoint>`` and ``FACELENS_HOME=/tmp/facelens``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from facelens.aws.lambda_events import EventKind, LambdaEventSource
from facelens.config import Settings
from facelens.errors import ServiceUnavailableException
from facelens.recognizer.worker import RecognizerWorker
from facelens.wiring.bus import open_publication
from facelens.wiring.people import people_of
from facelens.wiring.process import process_role
from facelens.wiring.recognizer import RecognizerParts, open_recognizer
from facelens.wiring.stores import open_stores

_log = logging.getLogger(__name__)

NOTIFY_FLUSH_SECONDS = 10.0
"""Longest wait for queued notifications (apprise, SNS) before the invocation returns."""

MAX_SQS_ATTEMPTS = 5
"""Receives of one SQS message before the worker dead-letters it (as ``facelens recognizer``)."""


@dataclass
class LambdaRecognizer:
    """The recognizer of one Lambda container, built on its first invocation and reused."""

    parts: RecognizerParts

    def __post_init__(self) -> None:
        self._prepared = False

    def handle(self, event: Any) -> dict[str, Any]:
        """Handles every record of ``event``; raises to have Lambda retry the invocation."""
        recognizer = self.parts.recognizer
        if not self._prepared:
            recognizer.prepare()
            self._prepared = True
        source = LambdaEventSource(event)
        worker = RecognizerWorker(
            source, recognizer, batch_size=max(1, source.size), max_attempts=MAX_SQS_ATTEMPTS
        )
        worker.run_once()
        if self.parts.notifier is not None:
            # Lambda freezes the container when the handler returns: send alerts first.
            self.parts.notifier.flush(NOTIFY_FLUSH_SECONDS)
        stats = worker.stats
        summary: dict[str, Any] = {
            "records": source.size,
            "events": stats.events,
            "identified": stats.identified,
            "unknown": stats.unknown,
            "deadLetters": stats.dead_letters,
            "duplicates": stats.duplicates,
            "unchanged": stats.unchanged,
            "skipped": stats.skipped,
            "retried": len(source.released),
        }
        _log.info("invocation done: %s", summary)
        if source.kind is EventKind.SQS:
            summary["batchItemFailures"] = [
                {"itemIdentifier": delivery.delivery_id} for delivery in source.released
            ]
        elif source.released:
            raise ServiceUnavailableException(
                f"{len(source.released)} of {source.size} records failed for a reason that may "
                "pass; the invocation will be retried"
            )
        return summary


def open_lambda_recognizer(settings: Settings, stack: ExitStack) -> LambdaRecognizer:
    """The container's recognizer, its parts opened on ``stack`` (publication first, so it
    is closed last), in the process role ``lambda``."""
    publication = open_publication(settings, stack, process_role(settings, "lambda"))
    stores = open_stores(settings, stack)
    parts = open_recognizer(settings, stack, stores, people_of(settings, stores), publication)
    return LambdaRecognizer(parts)


@dataclass(frozen=True)
class _Container:
    recognizer: LambdaRecognizer
    stack: ExitStack


_lock = threading.Lock()
_current: _Container | None = None


def handler(event: Any, context: Any = None, *, settings: Callable[[], Settings] = Settings) -> Any:
    """Lambda's entry point. ``settings`` builds the settings on a container's first call
    (tests pass their own; Lambda does not)."""
    global _current
    with _lock:
        if _current is None:
            logging.getLogger("facelens").setLevel(logging.INFO)
            with ExitStack() as stack:  # closed here only if opening fails
                recognizer = open_lambda_recognizer(settings(), stack)
                _current = _Container(recognizer, stack.pop_all())
        current = _current
    return current.recognizer.handle(event)


def reset() -> None:
    """Forgets the container's recognizer, closing it (tests; a new configuration)."""
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None:
        current.stack.close()
