"""A throwaway PostgreSQL cluster for the tests, and a fresh database per test.

Why a real server: the PostgreSQL back ends are adapters, and what they must
get right (transactions, locking, type mapping, error codes) only a real
server shows. One cluster per test session (about a second to initdb and
start, with fsync off), one ``CREATE DATABASE`` per test (tens of ms), so
tests never see each other's tables.

The cluster listens on 127.0.0.1 only, on a free port, plus a unix socket
inside its own temporary directory; trust authentication is acceptable there
because nothing off this machine can reach it. We run tests as root in CI,
and PostgreSQL refuses to run as root, so as root the binaries run as the
``postgres`` OS user (``runuser``) on a directory chowned to it. Missing
binaries skip on a laptop and fail when ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers._common import find_binary, free_port, missing

DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT_S = 60
"""pg_ctl waits at most this long for the server to accept connections (it polls)."""
START_ATTEMPTS = 3
"""A free port can be taken by someone else between our probe and the server's bind."""
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",  # a throwaway cluster: durability costs time and buys nothing
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "'32MB'",
}


def _binary(name: str) -> Path | None:
    return find_binary(name, DEBIAN_BIN / name)


class _Cluster:
    """One initdb'd data directory under ``root``, run as ``postgres`` when we are root."""

    def __init__(self, initdb: Path, pg_ctl: Path, root: Path) -> None:
        self.initdb, self.pg_ctl, self.root = initdb, pg_ctl, root
        self.data, self.sockets, self.log = root / "data", root / "sockets", root / "server.log"
        self.as_postgres = os.geteuid() == 0
        self.port = 0

    def run(self, *args: str | Path) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        command = [*prefix, *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )

    def create(self) -> None:
        self.sockets.mkdir()
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        self.run(
            self.initdb, "-D", self.data, "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        """Starts on a free port, trying another if ours was taken meanwhile."""
        conf = self.data / "postgresql.conf"
        base = conf.read_text()
        for attempt in range(START_ATTEMPTS):
            self.port = free_port()
            extra = {
                **SETTINGS,
                "port": str(self.port),
                "unix_socket_directories": f"'{self.sockets}'",
            }
            conf.write_text(base + "".join(f"\n{k} = {v}" for k, v in extra.items()) + "\n")
            try:
                self.run(
                    self.pg_ctl, "-D", self.data, "-l", self.log, "-w",
                    "-t", str(START_TIMEOUT_S), "start",
                )  # fmt: skip
                return
            except RuntimeError:
                if attempt == START_ATTEMPTS - 1:
                    log = self.log.read_text() if self.log.exists() else ""
                    raise RuntimeError(f"PostgreSQL did not start; its log:\n{log}") from None

    def stop(self) -> None:
        self.run(self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A ``postgresql://`` URL of a superuser on a throwaway cluster (database ``postgres``)."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        missing(f"PostgreSQL initdb/pg_ctl not found on PATH or in {DEBIAN_BIN}")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing("running as root, but runuser is missing to run PostgreSQL as postgres")
    root = Path(tempfile.mkdtemp(prefix="facelens-pg-"))  # not under pytest's 0700 tmp dirs
    cluster = _Cluster(initdb, pg_ctl, root)
    try:
        cluster.create()
        cluster.start()
        try:
            yield f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """A URL of a database of its own for one test, dropped afterwards."""
    import psycopg

    name = f"test_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
