"""One SQLite file shared by threads (and processes): the pattern every embedded store uses.

The outbox, the MQTT spool, the profile store and the recognizer's ledger
each keep a small table in SQLite. They share the same needs: connect on
first use (nothing at construction), WAL so readers never wait for the
writer, ``BEGIN IMMEDIATE`` so two processes cannot interleave a
read-then-write, one lock per connection for threads, and every
``sqlite3.Error`` reported as a ``StorageError`` naming the file.

Deleted rows are overwritten with zeros (``secure_delete``) rather than left
in free pages: these files hold identifications, profiles and messages that
name people, and a forgotten person must not be readable from them; after a
deletion that matters, :meth:`SqliteDatabase.checkpoint` also empties the
write-ahead log, which still holds the pages as they were before.

:func:`connect` is the one way facelens opens a SQLite file (the collection
store and the DynamoDB table catalogue use it too). It does two things
every store needs on first open:

* The file is created 0600 (its folder 0700) before SQLite opens it: SQLite
  gives its ``-wal``, ``-shm`` and ``-journal`` files the main file's
  permissions, and these files hold embeddings, profiles and history, so
  none may be readable by other users even in a home someone made 0755.
* The first statements (WAL switch, schema) are retried while another
  process holds a lock SQLite will not wait for. Switching a new file to WAL
  rewrites its header, which needs the file to itself; a process that read
  the header while another was switching must then upgrade its read lock to
  a write lock, and SQLite refuses such an upgrade at once with "database is
  locked" instead of calling the busy handler (waiting could deadlock two
  upgraders). So several processes opening a new file together (``facelens
  serve`` beside ``facelens up``) made all but one fail. A retry on a fresh
  connection sees the switch done. (A statement that writes from outside a
  transaction, as each ``CREATE TABLE IF NOT EXISTS`` of a schema does, waits
  for its lock, so the retry is rarely needed past the switch; but it covers
  every first statement, whatever the reason SQLite gives up at once.)
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from facelens.errors import StorageError

BUSY_TIMEOUT_S = 30.0
"""Seconds a connection waits for another process's lock (SQLite's busy timeout); also how
long :func:`connect` keeps retrying the first statements that SQLite does not wait in."""
FILE_MODE = 0o600
"""Every SQLite file facelens writes (and, through SQLite, its -wal, -shm and -journal)."""
DIRECTORY_MODE = 0o700
"""A folder :func:`connect` has to make for its file."""
SIDECARS = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database, named by suffix."""
_FIRST_RETRY_S = 0.002
_MAX_RETRY_S = 0.1


def connect(
    target: Path | str,
    *,
    setup: Callable[[sqlite3.Connection], object],
    uri: bool = False,
    make_folder: bool = True,
) -> sqlite3.Connection:
    """An autocommit connection to ``target`` (a path, ``":memory:"``, or a ``file:`` URI
    with ``uri``), the file created private first (its folder too, with ``make_folder``),
    ``setup`` run on it.

    ``setup`` (pragmas, schema) must be safe to run again: while it fails with
    SQLITE_BUSY or SQLITE_LOCKED, the connection is closed and a new one tries
    again, backing off from 2 ms to 100 ms with jitter, for up to
    :data:`BUSY_TIMEOUT_S` (see the module's docstring for why).
    Any other error, or the last one, is raised; the connection is then closed.
    """
    file = database_file(str(target), uri=uri)
    if file is not None:
        create_private(file, make_folder=make_folder)
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = _FIRST_RETRY_S
    while True:
        conn = sqlite3.connect(
            target,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,  # autocommit: callers issue BEGIN/COMMIT themselves
            check_same_thread=False,  # callers serialise use with a lock of their own
            uri=uri,
        )
        try:
            setup(conn)
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if not is_busy(exc) or time.monotonic() + delay > deadline:
                raise
        except BaseException:
            conn.close()
            raise
        time.sleep(delay * random.uniform(0.5, 1.5))  # jitter: the others are retrying too
        delay = min(delay * 2, _MAX_RETRY_S)


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (SQLITE_BUSY) or "database table is
    locked" (SQLITE_LOCKED), with any extended code: another connection holds a lock, so
    trying again later may succeed."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # raised by the sqlite3 module itself, not by SQLite
        return False
    return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def database_file(target: str, *, uri: bool = False) -> Path | None:
    """The file ``target`` opens, or None where it opens none (in memory, a temporary
    database, a read-only URI: nothing to create)."""
    if target in ("", ":memory:"):
        return None
    if not (uri and target.startswith("file:")):
        return Path(target)
    parsed = urlparse(target)
    mode = parse_qs(parsed.query).get("mode", [""])[-1]
    path = unquote(parsed.path)
    if mode in ("memory", "ro") or path in ("", ":memory:"):
        return None
    return Path(path)


def create_private(path: Path, *, make_folder: bool = True) -> None:
    """Creates ``path`` (mode :data:`FILE_MODE`; with ``make_folder`` its folder too, mode
    :data:`DIRECTORY_MODE`) if it is not there, and takes group and other access away from
    it and its SQLite sidecars where an earlier facelens left that (it created them with
    the umask's mode, usually 0644).

    Never by opening a file that may already be open: SQLite's locks are POSIX
    record locks, and closing *any* descriptor of a file drops every lock this
    process holds on it, so opening and closing the ``-shm`` file while another
    connection of this process is writing let a second writer in (seen: a
    correction undone in one process, unseen by the recognizer in another).
    Modes are changed by path, and a new file is made under a temporary name and
    linked into place, so no descriptor of the database is ever closed here.

    A file of another owner is left as it is (only its owner may change its mode).
    StorageError where the file can be neither found nor created.
    """
    try:
        if make_folder:
            path.parent.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
        if not os.path.lexists(path):
            _create_by_link(path)
    except OSError as exc:
        raise StorageError(f"Cannot create the SQLite file {path}: {exc.strerror}") from exc
    real = os.path.realpath(path)  # SQLite keeps the sidecars beside the file a link names
    for name in (real, *(f"{real}{suffix}" for suffix in SIDECARS)):
        _make_private(name)


def _create_by_link(path: Path) -> None:
    """An empty ``path`` of mode :data:`FILE_MODE`, unless another thread or process made it
    first. The descriptor that creates it belongs to a temporary name and is closed
    before the file has its real one, so it holds no lock anybody could lose."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # made by another opener meanwhile: theirs is as good
    except OSError:
        # A file system without hard links (vfat, some network mounts): create in place;
        # nothing can have the file open yet unless another opener races us here.
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
    finally:
        with suppress(OSError):
            os.unlink(temporary)


def _make_private(name: str) -> None:
    """Group and other access taken from ``name`` by path, where we own it and it has
    some; a missing file (most sidecars) or a file system without modes is left alone."""
    with suppress(OSError):
        stat = os.stat(name)
        if stat.st_mode & 0o077 and stat.st_uid == os.geteuid():
            os.chmod(name, stat.st_mode & 0o700)


class SqliteDatabase:
    """A lazily opened SQLite connection with ``schema`` applied once.

    ``what`` names the store in error messages ("the event outbox").
    ``fsync``: ``synchronous=FULL`` (a commit survives power loss) rather than
    NORMAL (survives a process crash, may lose the last commits on power loss).
    """

    def __init__(self, path: Path | str, *, schema: str, what: str, fsync: bool = False) -> None:
        self.path = str(path)
        self._schema = schema
        self._what = what
        self._fsync = fsync
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock; a nested call joins the outer one."""
        with self._lock:
            try:
                conn = self._connect()
                if conn.in_transaction:
                    yield conn
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            except sqlite3.Error as exc:
                raise StorageError(f"{self._what} {self.path} failed: {exc}") from exc

    def checkpoint(self) -> bool:
        """Copies the write-ahead log into the file and truncates it to zero bytes, so pages
        as they were before a deletion are nowhere in the files. False when another
        connection's open read kept part of the log (it stays until a later checkpoint)."""
        with self._lock:
            try:
                busy, _, _ = self._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"Checkpointing {self._what} {self.path} failed: {exc}") from exc
        return not busy

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    raise StorageError(f"Closing {self._what} {self.path} failed: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError(f"{self._what} {self.path} is closed")
        if self._conn is None:
            self._conn = connect(self.path, setup=self._setup)
        return self._conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'NORMAL'}")
        conn.execute("PRAGMA secure_delete=ON")
        # Each statement in a transaction of its own (executescript would COMMIT one begun
        # before it): the schema is idempotent, so one cut short by a retry, or run by two
        # processes at once, does no harm; a file whose tables exist is left as it is.
        conn.executescript(self._schema)


COUNTERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('dropped', 0);
"""
"""A ``counters`` table with a ``dropped`` row, for the bounded queues (spool, crop buffer)."""


def add_to_counter(conn: sqlite3.Connection, name: str, amount: int) -> None:
    conn.execute("UPDATE counters SET value = value + ? WHERE name = ?", (amount, name))


def read_counter(conn: sqlite3.Connection, name: str) -> int:
    (value,) = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return int(value)


# ``table`` below is always one of our own constant names, never input: formatting it in is safe.


def count_rows(conn: sqlite3.Connection, table: str) -> int:
    (count,) = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return int(count)


def drop_oldest(conn: sqlite3.Connection, table: str, *, keep: int) -> int:
    """Deletes the lowest-id rows of ``table`` beyond ``keep`` and counts them in ``dropped``;
    how many went. Ids must grow with age (``AUTOINCREMENT``)."""
    excess = count_rows(conn, table) - keep
    if excess <= 0:
        return 0
    conn.execute(
        f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT ?)",
        (excess,),
    )
    add_to_counter(conn, "dropped", excess)
    return excess
