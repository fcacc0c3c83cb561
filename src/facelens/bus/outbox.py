"""The local event queue: a SQLite outbox that is both the store's sink and the workers' source.

Why SQLite: one host needs no broker, and the outbox survives restarts.
Delivery is at least once with leases, as SQS does it: ``receive`` leases
rows for ``visibility_timeout`` seconds; ``ack`` deletes them; a row whose
worker died becomes visible again when its lease runs out. A restarted
worker (same ``worker_id``) takes back its own leases at once, so an event
whose processing died is redone right after the restart rather than after
the timeout. Rows hold the event in S3's own JSON, so what a worker reads is
what S3 or MinIO would have sent.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from facelens.bus.delivery import Delivery
from facelens.errors import InvalidEventException
from facelens.sqlite import SqliteDatabase
from facelens.storage.events import parse_message, to_s3_event
from facelens.values.events import ObjectCreated

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    visible_at REAL NOT NULL,
    owner TEXT
);
CREATE INDEX IF NOT EXISTS outbox_visible ON outbox (visible_at, id);
"""

_POLL_SECONDS = 0.05
"""How often ``receive`` looks for rows written by other processes (in-process writers wake it)."""


class SqliteOutbox:
    """:class:`~facelens.storage.notifications.EventSink` and ``EventSource`` on one SQLite file.

    ``visibility_timeout``: seconds a received event stays leased (longer than
    the slowest event). ``retry_delay``: seconds before a released event is
    visible again, so a store that is down is not hammered.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        worker_id: str = "worker",
        visibility_timeout: float = 30.0,
        retry_delay: float = 2.0,
    ) -> None:
        self._worker_id = worker_id
        self._visibility = visibility_timeout
        self._retry_delay = retry_delay
        self._db = SqliteDatabase(path, schema=_SCHEMA, what="The event outbox")
        self._wake = threading.Condition()
        self._reclaimed = False

    # -- sink --
    def send(self, event: ObjectCreated) -> None:
        body = json.dumps(to_s3_event([event]), separators=(",", ":"))
        now = time.time()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO outbox (body, enqueued_at, visible_at) VALUES (?, ?, ?)",
                (body, now, now),
            )
        with self._wake:
            self._wake.notify_all()

    # -- source --
    def receive(self, *, max_events: int = 10, wait_seconds: float = 1.0) -> list[Delivery]:
        deadline = time.monotonic() + wait_seconds
        while True:
            rows = self._lease(max(1, max_events))  # SQLite's LIMIT -1 would mean "all"
            if rows:
                return [_delivery(row_id, body, attempts) for row_id, body, attempts in rows]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            with self._wake:
                self._wake.wait(min(remaining, _POLL_SECONDS))

    def ack(self, delivery: Delivery) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM outbox WHERE id = ?", (int(delivery.delivery_id),))

    def release(self, delivery: Delivery) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET visible_at = ?, owner = NULL WHERE id = ?",
                (time.time() + self._retry_delay, int(delivery.delivery_id)),
            )

    def pending(self) -> int:
        """Events not yet acknowledged (leased or waiting)."""
        with self._db.transaction() as conn:
            row = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    def _lease(self, limit: int) -> list[tuple[int, str, int]]:
        now = time.time()
        with self._db.transaction() as conn:
            if not self._reclaimed:
                # This worker's first receive: whatever its id still holds, it held when it
                # died (a live worker of the same id would be a misconfiguration). Redo it now.
                conn.execute(
                    "UPDATE outbox SET visible_at = 0, owner = NULL WHERE owner = ?",
                    (self._worker_id,),
                )
                self._reclaimed = True
            rows = conn.execute(
                "SELECT id, body, attempts FROM outbox WHERE visible_at <= ? ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE outbox SET visible_at = ?, owner = ?, attempts = attempts + 1 WHERE id = ?",
                [(now + self._visibility, self._worker_id, row[0]) for row in rows],
            )
        return [(row[0], row[1], row[2] + 1) for row in rows]


def _delivery(row_id: int, body: str, attempts: int) -> Delivery:
    raw = body.encode()
    try:
        events = parse_message(raw)
    except InvalidEventException as exc:
        return Delivery(str(row_id), (), raw, attempts, error=exc.message)
    return Delivery(str(row_id), events, raw, attempts)
