"""Every SQLite file facelens writes survives several processes opening it new, together.

Why: ``facelens serve`` and ``facelens up``, or two CLI commands started
together on a fresh home, open the same new files at the same moment. The
switch of a new file to WAL needs the file to itself, and a process that
finds another one writing it (mid-switch) is told "database is locked" at
once rather than after the busy timeout, so one of the processes used to
fail (seen in CI as ``test_two_processes_write_one_file``).

Each kind of file is written by ``PROCESSES`` real processes, started
together at a barrier, ``ROUNDS`` times on a fresh file (the race is in the
first open), ``WRITES`` rows each per round, while one CPU-burning process
per core loads the machine. In every other round this process holds the
write lock of the new file for ``HOLD_S`` as they start, as a process
descheduled in the middle of its own switch to WAL does: without that the
race needs two processes on two cores within microseconds of each other, and
was seen in only a few percent of the rounds. Afterwards every file must
hold every row, and no process may have seen an error.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

PROCESSES = 6
ROUNDS = 10
WRITES = 5  # per process and round: ROUNDS * WRITES = 50 writes per process and kind
HOLD_S = 0.05
BARRIER_TIMEOUT_S = 120.0

_log = logging.getLogger(__name__)


def _write_audit(path: Path, worker: int, writes: int) -> None:
    from facelens.history.audit import AuditAction
    from facelens.history.sqlite import SqliteAuditLog

    log = SqliteAuditLog(path)
    try:
        for n in range(writes):
            log.record(f"cli:w{worker}", AuditAction.PROFILE_READ, f"p{worker}-{n}")
    finally:
        log.close()


def _write_ledger(path: Path, worker: int, writes: int) -> None:
    from facelens.history.ledger import Recognition, Status
    from facelens.history.sqlite import SqliteLedger

    ledger = SqliteLedger(path)
    try:
        for n in range(writes):
            recognition = Recognition(
                f"r{worker}-{n}", Status.IDENTIFIED, "t/x", {"n": n}, datetime.now(UTC)
            )
            assert ledger.record(recognition)
    finally:
        ledger.close()


def _write_spool(path: Path, worker: int, writes: int) -> None:
    from facelens.bus.spool import OutgoingMessage, Spool

    spool = Spool(path, max_messages=100_000)
    try:
        for n in range(writes):
            spool.put(OutgoingMessage(f"t/{worker}", f"{n}".encode()))
    finally:
        spool.close()


def _write_outbox(path: Path, worker: int, writes: int) -> None:
    from facelens.bus.outbox import SqliteOutbox
    from facelens.values.events import ObjectCreated

    outbox = SqliteOutbox(path)
    try:
        for n in range(writes):
            now = datetime.now(UTC)
            outbox.send(ObjectCreated("b", f"k{worker}-{n}", 1, "e", f"{n:016x}", now))
    finally:
        outbox.close()


def _write_crops(path: Path, worker: int, writes: int) -> None:
    from facelens.edge.crops import PendingCrop
    from facelens.edge.uploads import CropBuffer

    buffer = CropBuffer(path, max_crops=100_000)
    try:
        for n in range(writes):
            buffer.put(PendingCrop(f"k{worker}-{n}", b"\xff\xd8", {}))
    finally:
        buffer.close()


def _write_keys(path: Path, worker: int, writes: int) -> None:
    from facelens.access.keys import KeyStore, Role

    keys = KeyStore(path)
    try:
        for n in range(writes):
            keys.create_api_key(f"k{worker}-{n}", Role.READ)
    finally:
        keys.close()


def _write_tables(path: Path, worker: int, writes: int) -> None:
    from facelens.api.aws.dynamodb_tables import PAY_PER_REQUEST, TableCatalogue, TableInfo

    catalogue = TableCatalogue(path)
    for n in range(writes):
        name = f"t{worker}-{n}"
        catalogue.create(TableInfo(name, "FaceId", PAY_PER_REQUEST, 0, 0, str(uuid.uuid4()), 0.0))


def _write_facelens_db(path: Path, worker: int, writes: int) -> None:
    """Collections and profiles share ``facelens.db`` (the defaults), opened in either order."""
    from facelens.collection.stores.sqlite import SQLiteCollectionStore
    from facelens.profiles.sqlite_store import SQLiteProfileStore

    def collections() -> None:
        store = SQLiteCollectionStore(str(path), save_indexes=False)
        try:
            store.create_collection(f"c{worker}", face_model_version="test")
            for n in range(writes - 1):
                store.create_user(f"c{worker}", f"u{n}")
        finally:
            store.close()

    def profiles() -> None:
        store = SQLiteProfileStore(str(path))
        try:
            for n in range(writes):
                store.put(f"p{worker}-{n}", {"Name": f"Person {worker}-{n}"})
        finally:
            store.close()

    first, second = (collections, profiles) if worker % 2 else (profiles, collections)
    first()
    second()


_KINDS: dict[str, tuple[Callable[[Path, int, int], None], dict[str, int]]] = {
    # kind: (one process's writes, {table: rows per process and round})
    "audit.db": (_write_audit, {"audit": WRITES}),
    "recognizer.db": (_write_ledger, {"recognitions": WRITES}),
    "mqtt-spool.db": (_write_spool, {"messages": WRITES}),
    "events.db": (_write_outbox, {"outbox": WRITES}),
    "crops.db": (_write_crops, {"crops": WRITES}),
    "keys.db": (_write_keys, {"api_keys": WRITES}),
    "dynamodb-tables.db": (_write_tables, {"dynamodb_tables": WRITES}),
    "facelens.db": (
        _write_facelens_db,
        {"collections": 1, "users": WRITES - 1, "profiles": WRITES},
    ),
}


def _worker(directory: Path, worker: int, barrier: Barrier, results: Any) -> None:
    """Writes every kind, round by round, starting each round with the others; reports
    every failure (and goes on, so the others are not left waiting at the barrier)."""
    failures: list[str] = []
    try:
        for kind, (write, _) in _KINDS.items():
            for round_ in range(ROUNDS):
                barrier.wait(BARRIER_TIMEOUT_S)
                try:
                    write(directory / f"{round_}-{kind}", worker, WRITES)
                except Exception:
                    failures.append(f"{kind} round {round_}: {traceback.format_exc()}")
    except threading.BrokenBarrierError:
        failures.append("the barrier broke: another process did not come")
    results.put((worker, failures))


def _start_rounds(directory: Path, barrier: Barrier) -> None:
    """This process's part in each round: the write lock of every other new file, held
    for ``HOLD_S`` from when the writers start."""
    for kind in _KINDS:
        for round_ in range(ROUNDS):
            if round_ % 2:
                barrier.wait(BARRIER_TIMEOUT_S)
                continue
            holder = sqlite3.connect(directory / f"{round_}-{kind}", isolation_level=None)
            try:
                holder.execute("BEGIN IMMEDIATE")
                barrier.wait(BARRIER_TIMEOUT_S)
                time.sleep(HOLD_S)
                holder.execute("ROLLBACK")
            finally:
                holder.close()


def _burn(stop: Event) -> None:
    while not stop.is_set():
        sum(range(10_000))


def _missing_rows(directory: Path) -> list[str]:
    missing = []
    for kind, (_, tables) in _KINDS.items():
        for round_ in range(ROUNDS):
            with closing(sqlite3.connect(directory / f"{round_}-{kind}")) as conn:
                for table, rows in tables.items():
                    try:
                        (count,) = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
                    except sqlite3.Error as exc:
                        count = repr(exc)
                    if count != rows * PROCESSES:
                        missing.append(
                            f"{kind} round {round_}: {count} of {rows * PROCESSES} {table}"
                        )
    return missing


def test_processes_open_new_files_together(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES + 1)  # the writers and this process
    results = context.Queue()
    stop = context.Event()
    burners = [
        context.Process(target=_burn, args=(stop,), daemon=True) for _ in range(os.cpu_count() or 2)
    ]
    writers = [
        context.Process(target=_worker, args=(tmp_path, w, barrier, results), daemon=True)
        for w in range(PROCESSES)
    ]
    started = time.monotonic()
    try:
        for process in burners + writers:
            process.start()
        _start_rounds(tmp_path, barrier)
        reports = dict(results.get(timeout=BARRIER_TIMEOUT_S) for _ in writers)
    finally:
        stop.set()
        barrier.abort()  # a writer still waiting (this process failed) gives up at once
        for process in burners + writers:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    _log.info("%d fresh files in %.1f s", len(_KINDS) * ROUNDS, time.monotonic() - started)
    failures = [f for _, found in sorted(reports.items()) for f in found]
    kinds = sorted({f.split(" round ")[0] for f in failures})
    assert not failures, f"{len(failures)} failed, in {kinds}; the first:\n{failures[0]}"
    assert not (missing := _missing_rows(tmp_path)), "\n".join(missing)
    assert [w.exitcode for w in writers] == [0] * PROCESSES


def test_opening_a_file_again_keeps_the_locks_of_its_open_connections(tmp_path: Path) -> None:
    """SQLite's locks are POSIX record locks: closing any descriptor of a file drops every
    lock this process holds on it. Opening a second connection must therefore never open
    and close the database or its ``-shm`` file behind SQLite's back: it once did (to set
    modes), and a writer in another process got in beside this process's writer."""
    from facelens.sqlite import SqliteDatabase, connect

    path = tmp_path / "locks.db"
    first = SqliteDatabase(path, schema="CREATE TABLE IF NOT EXISTS t (x INTEGER);", what="db")
    outsider = (
        "import sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], timeout=0.2, isolation_level=None)\n"
        "try:\n"
        "    conn.execute('BEGIN IMMEDIATE')\n"
        "except sqlite3.OperationalError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('got the write lock')\n"
    )
    try:
        with first.transaction() as conn:  # holds the write lock (BEGIN IMMEDIATE)
            conn.execute("INSERT INTO t VALUES (1)")
            second = connect(path, setup=lambda c: c.execute("SELECT COUNT(*) FROM t"))
            second.close()
            done = subprocess.run(
                [sys.executable, "-c", outsider, str(path)],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            assert done.stdout.strip() == "database is locked", done.stdout + done.stderr
    finally:
        first.close()
