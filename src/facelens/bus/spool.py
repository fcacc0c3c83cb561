"""A durable, bounded first-in-first-out queue of outgoing MQTT messages on SQLite.

The publisher writes every message here first and sends it from here, so a
message survives a broker outage and a process restart (an edge device on a
flaky link, a power cycle). The queue is bounded: when it is full the OLDEST
messages are dropped and counted. That is a deliberate trade-off for a
camera that may be cut off for days: recent identifications are worth more
than old ones, and an unbounded queue would fill the disk and stop
everything else. ``dropped`` tells how many were given up, over the life of
the file.

Ids come from ``AUTOINCREMENT`` so they only ever grow, even after the
newest rows were deleted: id order is enqueue order, across restarts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from facelens.errors import InvalidParameterException, StorageError
from facelens.sqlite import (
    COUNTERS_SCHEMA,
    SqliteDatabase,
    add_to_counter,
    count_rows,
    drop_oldest,
    read_counter,
)

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    enqueued_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to publish. ``enqueued_at`` is Unix time in seconds (0 = stamp on put)."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    enqueued_at: float = 0.0

    def __post_init__(self) -> None:
        # What MQTT forbids in a topic name would be refused (or get us disconnected) on
        # every send attempt; better refused here, where the caller can be told.
        if (
            not self.topic
            or any(c in self.topic for c in "+#\x00")
            or len(self.topic.encode()) > 65535
        ):
            raise InvalidParameterException(f"Not a topic to publish to: {self.topic[:100]!r}")
        if self.qos not in (0, 1, 2):
            raise InvalidParameterException(f"QoS must be 0, 1 or 2, not {self.qos}")


@dataclass(frozen=True)
class SpooledMessage:
    """A message in the spool, with the id that :meth:`Spool.remove` takes."""

    id: int
    message: OutgoingMessage


class Spool:
    """The queue on one SQLite file; safe to share between threads.

    ``fsync`` (``synchronous=FULL``) makes a ``put`` survive power loss as
    well as a crash, at one disk flush per message (milliseconds on an SD
    card); without it a crash of the process still loses nothing, a power
    cut may lose the last few puts.
    """

    def __init__(self, path: Path, *, max_messages: int = 100_000, fsync: bool = True) -> None:
        if max_messages < 1:
            raise InvalidParameterException(f"max_messages must be positive, not {max_messages}")
        self._path = path
        self._max = max_messages
        self._db = SqliteDatabase(
            path, schema=_SCHEMA + COUNTERS_SCHEMA, what="The MQTT spool", fsync=fsync
        )

    @property
    def path(self) -> Path:
        return self._path

    @property
    def max_messages(self) -> int:
        return self._max

    def put(self, message: OutgoingMessage) -> int:
        """Append ``message`` (dropping the oldest if full) and return its id once it is on disk."""
        enqueued_at = message.enqueued_at or time.time()
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO messages (topic, payload, qos, retain, enqueued_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (message.topic, message.payload, message.qos, int(message.retain), enqueued_at),
            )
            new_id = cursor.lastrowid
            drop_oldest(conn, "messages", keep=self._max)
        if new_id is None:
            raise StorageError("The MQTT spool did not return an id for the new message")
        return int(new_id)

    def peek(self, n: int) -> list[SpooledMessage]:
        """The oldest ``n`` messages, oldest first, left in place.

        A row that is not a valid message (written by something else, or an
        older version) could never be sent and would block everything behind
        it: it is deleted, logged and counted in ``dropped``.
        """
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, topic, payload, qos, retain, enqueued_at FROM messages"
                " ORDER BY id LIMIT ?",
                (max(n, 0),),
            ).fetchall()
            found: list[SpooledMessage] = []
            for row in rows:
                try:
                    message = OutgoingMessage(row[1], bytes(row[2]), row[3], bool(row[4]), row[5])
                except (InvalidParameterException, TypeError, ValueError) as exc:
                    _log.error("Dropping unreadable spool row %s: %s", row[0], exc)
                    conn.execute("DELETE FROM messages WHERE id = ?", (row[0],))
                    add_to_counter(conn, "dropped", 1)
                    continue
                found.append(SpooledMessage(row[0], message))
        return found

    def remove(self, ids: Iterable[int]) -> None:
        """Forget messages that were sent; ids already gone (dropped, removed) are ignored."""
        chosen = [(message_id,) for message_id in ids]
        if not chosen:
            return
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM messages WHERE id = ?", chosen)

    @property
    def dropped(self) -> int:
        """Messages dropped (the spool was full, or a row was unreadable) over the file's life."""
        with self._db.transaction() as conn:
            return read_counter(conn, "dropped")

    def __len__(self) -> int:
        with self._db.transaction() as conn:
            return count_rows(conn, "messages")

    def close(self) -> None:
        self._db.close()
