"""Retention: crops (face photos) are deleted once they are older than their class allows.

Why: a crop is biometric data, kept only as long as it serves (the issue's
"7 days and 8 hours"). The recognizer's ledger says what each crop showed:
an identified person's crops go after ``identified_crops_hours``, an unknown
face's (a stranger's) and a dead letter's after ``stranger_crops_hours``.
Crops under the recognizer's prefix that no record names (never recognized,
or recognized by another host with its own ledger) go after the LONGER of
the two: by then they are due whatever they showed.

Strangers themselves (their faces, i.e. embeddings, in ``<collection>.strangers``,
and their sightings) are forgotten once not seen for ``strangers_hours``, through
the same :class:`~facelens.people.forget.Forgetter` as ``facelens forget``, so
nothing of them is left in any file either.

Each run also drops the looks (embeddings) of visits idle for longer than
``visit_look_seconds`` (:meth:`~facelens.history.visits.VisitLedger.drop_idle_looks`):
they serve only the visit in progress; its answer stays, as history.

Each run also drops the ledger's abandoned claims: events a worker claimed
but never recorded an outcome for (it crashed, or gave the event up), whose
lease ended more than :data:`ABANDONED_CLAIM_S` ago; recording is what ends
a claim, so without this their rows would stay forever.

Ages count from the recognition (``recognized_at``), or for a crop without a
record from the object's ``last_modified``. A deleted crop's record stays (the
history), with bucket and key NULL and ``CropDeleted`` in its message, so a
second run finds nothing more to do. A store that is down stops the run; the
rest is found again by the next one (errors are logged, nothing raises from
:class:`RetentionRunner`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from facelens.config import RetentionSettings
from facelens.errors import FacelensError
from facelens.history.audit import RECOGNIZER, AuditAction, AuditLog
from facelens.history.ledger import Recognition, RecognitionLedger, Status, cursor_of
from facelens.history.visits import VisitLedger
from facelens.people.forget import Forgetter
from facelens.people.strangers import StrangerService
from facelens.storage.protocol import ObjectStore

_log = logging.getLogger(__name__)

BATCH = 500
"""Records or objects handled per query or listing page."""
STRANGER_STATUSES = [Status.UNKNOWN, Status.ERROR]
"""Crops kept for ``stranger_crops_hours``: unknown faces and dead letters."""
ABANDONED_CLAIM_S = 86_400.0
"""Seconds (a day) after its lease ended that a claim no outcome ended is dropped.

Why a day: dropping it changes nothing about who may handle the event (a
claim whose lease ended is free to take already), so the age only decides how
long the trace of who took it stays. A day is far beyond any lease (a lease is
the event source's ``events.visibility_timeout``: 30 s by default, at most 12 h
on SQS), so a redelivered event has long been claimed again, and it leaves the
morning after a crash to see which host held what; the table stays the size
of one day's abandoned events."""


class StrangerExpiry(Protocol):
    """Forgets the anonymous persons last seen before a time (:class:`ExpireStrangers`)."""

    def expire(self, cutoff: datetime, *, dry_run: bool) -> list[str]:
        """The stranger ids forgotten (in a dry run: due)."""
        ...


@dataclass(frozen=True)
class RetentionReport:
    """What one run deleted (in a dry run: would delete). ``failed``: crops whose deletion
    failed (the store was down); the next run tries them again."""

    identified: int
    strangers: int
    orphans: int
    failed: int
    dry_run: bool
    keys: tuple[str, ...]
    """The deleted (or due) crops' keys, oldest record first, then the orphans."""
    forgotten_strangers: tuple[str, ...] = ()
    """Anonymous persons forgotten whole (not seen for ``strangers_hours``)."""
    abandoned_claims: int = 0
    """The ledger's claims dropped, abandoned (:data:`ABANDONED_CLAIM_S`)."""
    visit_looks: int = 0
    """Looks (embeddings) of idle visits dropped (``visit_look_seconds``)."""

    @property
    def deleted(self) -> int:
        return self.identified + self.strangers + self.orphans

    def as_json(self) -> dict[str, object]:
        return {
            "DryRun": self.dry_run,
            "IdentifiedCrops": self.identified,
            "StrangerCrops": self.strangers,
            "OrphanCrops": self.orphans,
            "Failed": self.failed,
            "Keys": list(self.keys),
            "ForgottenStrangers": list(self.forgotten_strangers),
            "AbandonedClaims": self.abandoned_claims,
            "VisitLooks": self.visit_looks,
        }


@dataclass
class _Tally:
    dry_run: bool
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("i", "s", "o", "f", "c", "v"), 0)
    )
    keys: list[str] = field(default_factory=list)
    strangers: list[str] = field(default_factory=list)

    def report(self) -> RetentionReport:
        c = self.counts
        return RetentionReport(
            c["i"],
            c["s"],
            c["o"],
            c["f"],
            self.dry_run,
            tuple(self.keys),
            tuple(self.strangers),
            c["c"],
            c["v"],
        )


class RetentionJob:
    """Deletes the crops that are due, once per :meth:`run_once`.

    ``bucket`` and ``prefix``: where crops without a record are looked for
    (the recognizer's bucket and ``settings.recognizer.prefix``); records name
    their own bucket. ``audit``: where a run that deleted something is recorded
    (action ``retention``, actor ``recognizer``). ``strangers``: forgets anonymous
    persons not seen for ``settings.strangers_hours`` (None: strangers are not expired).
    ``visits``: whose idle visits lose their looks after ``settings.visit_look_seconds``.
    """

    def __init__(
        self,
        *,
        ledger: RecognitionLedger,
        objects: ObjectStore,
        settings: RetentionSettings,
        bucket: str,
        prefix: str,
        audit: AuditLog | None = None,
        strangers: StrangerExpiry | None = None,
        visits: VisitLedger | None = None,
        batch: int = BATCH,
    ) -> None:
        self.ledger = ledger
        self.objects = objects
        self.settings = settings
        self.bucket = bucket
        self.prefix = prefix
        self.audit = audit
        self.strangers = strangers
        self.visits = visits
        self.batch = batch

    def run_once(self, now: datetime | None = None, *, dry_run: bool = False) -> RetentionReport:
        """Deletes every crop due at ``now`` (default: the current time) and drops the
        abandoned claims (timed by the ledger's clock, as their leases are, not by ``now``);
        never raises a back end's error (it is logged, and what is left is due again next
        run)."""
        now = now or datetime.now(UTC)
        s = self.settings
        tally = _Tally(dry_run)
        try:
            # First, as it needs the ledger only: an object store that is down stops the
            # run, and these rows would wait for it.
            tally.counts["c"] = self.ledger.drop_abandoned_claims(
                ABANDONED_CLAIM_S, dry_run=dry_run
            )
            if s.visit_look_seconds is not None and self.visits is not None:
                # Timed by this host's clock, not ``now``: idleness is measured from the
                # visit's latest look, as the recognizer stored it.
                tally.counts["v"] = self.visits.drop_idle_looks(
                    s.visit_look_seconds, dry_run=dry_run
                )
            if s.strangers_hours is not None and self.strangers is not None:
                # First: a forgotten stranger's crops go with them, whatever their age.
                cutoff = now - timedelta(hours=s.strangers_hours)
                tally.strangers.extend(self.strangers.expire(cutoff, dry_run=dry_run))
            if s.identified_crops_hours is not None:
                cutoff = now - timedelta(hours=s.identified_crops_hours)
                self._records(cutoff, [Status.IDENTIFIED], "i", tally)
            if s.stranger_crops_hours is not None:
                cutoff = now - timedelta(hours=s.stranger_crops_hours)
                self._records(cutoff, STRANGER_STATUSES, "s", tally)
            if s.identified_crops_hours is not None and s.stranger_crops_hours is not None:
                longest = max(s.identified_crops_hours, s.stranger_crops_hours)
                self._orphans(now - timedelta(hours=longest), tally)
        except FacelensError as exc:
            _log.error("retention: stopped by %s: %s (retried next run)", exc.code, exc.message)
            tally.counts["f"] += 1
        report = tally.report()
        verb = "would delete" if dry_run else "deleted"
        _log.info(
            "retention: %s %d identified, %d stranger crops (and %d never recognized); "
            "%d strangers forgotten; %d abandoned claims; %d looks of idle visits",
            verb,
            report.identified,
            report.strangers,
            report.orphans,
            len(report.forgotten_strangers),
            report.abandoned_claims,
            report.visit_looks,
        )
        # A dropped claim is the ledger's bookkeeping, no one's data: alone, it is not audited.
        # Nor are a visit's looks dropped alone: the recognizer's working copy of faces
        # already recorded, dropped on every run of a busy camera; counted when audited.
        changed = report.deleted or report.forgotten_strangers
        if self.audit is not None and changed and not dry_run:
            self._record(self.audit, report)
        return report

    def _records(self, cutoff: datetime, statuses: list[Status], kind: str, tally: _Tally) -> None:
        after: tuple[str, str] | None = None
        while True:
            page = self.ledger.crops_older_than(cutoff, statuses, limit=self.batch, after=after)
            for record in page:
                self._delete_crop(record, kind, tally)
            if len(page) < self.batch:
                return
            after = cursor_of(page[-1])

    def _delete_crop(self, record: Recognition, kind: str, tally: _Tally) -> None:
        if record.bucket is None or record.key is None:  # the query asks for crops only
            return
        if not tally.dry_run:
            self.objects.delete_object(record.bucket, record.key)  # a missing key is fine
            self.ledger.mark_crop_deleted(record.recognition_id)
        tally.counts[kind] += 1
        tally.keys.append(record.key)

    def _orphans(self, cutoff: datetime, tally: _Tally) -> None:
        token: str | None = None
        while True:
            page = self.objects.list_objects(
                self.bucket, prefix=self.prefix, max_keys=self.batch, next_token=token
            )
            old = [o.key for o in page.objects if o.last_modified < cutoff]
            known = self.ledger.known_crops(self.bucket, old) if old else set()
            for key in old:
                if key in known:  # a record's crop: its own class decides
                    continue
                if not tally.dry_run:
                    self.objects.delete_object(self.bucket, key)
                tally.counts["o"] += 1
                tally.keys.append(key)
            token = page.next_token
            if token is None:
                return

    def _record(self, audit: AuditLog, report: RetentionReport) -> None:
        details = {
            "IdentifiedCrops": report.identified,
            "StrangerCrops": report.strangers,
            "OrphanCrops": report.orphans,
            "ForgottenStrangers": len(report.forgotten_strangers),
            "VisitLooks": report.visit_looks,
        }
        try:
            audit.record(RECOGNIZER.label, AuditAction.RETENTION, self.bucket, details=details)
        except FacelensError as exc:  # the deletions happened; the log says what failed
            _log.error("retention: not audited: %s", exc.message)


class ExpireStrangers:
    """:class:`StrangerExpiry` over the strangers of one collection and the forgetter.

    A stranger with no sighting in this host's ledger (seen only by another host)
    is left to the host that saw them."""

    def __init__(
        self, strangers: StrangerService, forgetter: Forgetter, collection_id: str
    ) -> None:
        self.strangers = strangers
        self.forgetter = forgetter
        self.collection_id = collection_id

    def expire(self, cutoff: datetime, *, dry_run: bool) -> list[str]:
        due = [
            s.stranger_id
            for s in self.strangers.list(self.collection_id)
            if s.last_seen is not None and s.last_seen < cutoff
        ]
        if not dry_run:
            for stranger_id in due:
                self.forgetter.forget(
                    stranger_id, collection_id=self.collection_id, actor=RECOGNIZER
                )
        return due


class RetentionRunner:
    """Runs a job now and then every ``interval_seconds`` on a daemon thread until stopped.

    Whatever a run raises is logged and the next run comes as planned: a
    background job must not end the process it serves.
    """

    def __init__(
        self,
        job: RetentionJob,
        interval_seconds: float,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.job = job
        self.interval_seconds = interval_seconds
        self.runs = 0
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="facelens-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ends the loop; a run in progress finishes its current crop first."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.job.run_once(self._clock())
            except Exception:  # a bug, not a back end's error (those are handled in run_once)
                _log.exception("retention: the run failed; trying again next interval")
            self.runs += 1
            self._stop.wait(self.interval_seconds)


def start_retention(job: RetentionJob, settings: RetentionSettings) -> RetentionRunner | None:
    """A started runner for ``job`` when ``settings`` delete anything, else None."""
    if not settings.enabled:
        return None
    runner = RetentionRunner(job, settings.interval_seconds)
    runner.start()
    return runner
