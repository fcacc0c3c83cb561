"""Every file facelens writes in its home is 0600, whatever the umask and the home's mode.

Why: these files hold faces, embeddings, profiles, crops, keys and who was
seen when. A home facelens makes itself is 0700, but a home the user made
beforehand (``mkdir ~/.facelens``, a Docker volume) is usually 0755, and
with the usual umask 022 SQLite files used to be created 0644 there:
readable by every user of the machine. SQLite gives its ``-wal``, ``-shm``
and ``-journal`` files the main file's mode, so they are checked too, while
they exist (stores held open during the walk).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from facelens.api.aws.dynamodb_tables import PAY_PER_REQUEST, TableCatalogue, TableInfo
from facelens.bus.spool import OutgoingMessage, Spool
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from facelens.edge.crops import PendingCrop
from facelens.edge.uploads import CropBuffer
from facelens.history.audit import AuditAction
from facelens.history.sqlite import SqliteAuditLog
from tests.integration.collection_stores.helpers import MODEL, add, unit
from tests.integration.test_cli import facelens, out


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """umask 022, the usual one (files 0644 unless the code asks otherwise); CLI runs
    inherit it."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _modes(top: Path) -> dict[str, int]:
    """Every regular file under ``top`` (relative name: permission bits)."""
    found = {}
    for folder, _, names in os.walk(top):
        for name in names:
            path = Path(folder, name)
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                found[str(path.relative_to(top))] = stat.S_IMODE(mode)
    return found


@pytest.mark.usefixtures("usual_umask")
def test_every_file_in_a_home_made_0755_beforehand_is_0600(
    cli_env: dict[str, str], home: Path, testdata: Path
) -> None:
    home.mkdir(mode=0o755)
    home.chmod(0o755)  # whatever the umask of the test runner
    people = testdata / "people"
    # The CLI as a user runs it: collections, faces, profiles, audit, objects, events,
    # the recognizer's ledger, keys.
    facelens("collections", "create", "--collection-id", "faces", env=cli_env)
    facelens(
        "faces", "index", str(people / "obama/obama_1.jpg"), "--collection-id", "faces", env=cli_env
    )
    facelens("profiles", "put", "obama", "--attr", "Name=Barack Obama", env=cli_env)
    crop = "faces/11_26/10_30/1_0.jpg"
    facelens("objects", "put", str(people / "obama/obama_2.jpg"), crop, env=cli_env)
    assert out(facelens("recognizer", "--drain", env=cli_env))["Identified"] == 1
    facelens("keys", "create", "--name", "dashboard", env=cli_env)
    facelens("keys", "create", "--name", "sdk", "--access-key", env=cli_env)

    # What the CLI does not reach without a broker, a camera or a server, in this process:
    # the MQTT spool, the edge crop buffer, the DynamoDB table catalogue, a saved search index.
    spool = Spool(home / "mqtt-spool-test.db")
    buffer = CropBuffer(home / "edge-crops.db")
    store = SQLiteCollectionStore(
        str(home / "facelens.db"), ann_threshold=100, index_directory=home / "faceindex"
    )
    audit = SqliteAuditLog(home / "audit.db")
    try:
        spool.put(OutgoingMessage("rekognition", b"{}"))
        buffer.put(PendingCrop(crop, b"\xff\xd8", {}))
        audit.record("cli:test", AuditAction.PROFILE_READ, "obama")
        TableCatalogue(home / "dynamodb-tables.db").create(
            TableInfo("Faces", "FaceId", PAY_PER_REQUEST, 0, 0, str(uuid.uuid4()), 0.0)
        )
        store.create_collection("many", face_model_version=MODEL)
        vectors = unit(np.random.default_rng(5), 300)
        add(store, "many", "f", vectors)
        assert store.search_faces("many", vectors[0], limit=1, max_distance=2.0)  # built, saved
        assert list((home / "faceindex").iterdir())

        # The stores are open: their write-ahead logs and shared-memory files exist now.
        modes = _modes(home)
    finally:
        for part in (spool, buffer, store, audit):
            part.close()
    names = set(modes)
    for expected in (
        "facelens.db",
        "audit.db",
        "recognizer.db",
        "events.db",
        "keys.db",
        "mqtt-spool-test.db",
        "edge-crops.db",
        "dynamodb-tables.db",
        "facelens.db-wal",
        "facelens.db-shm",
        "audit.db-wal",
        "mqtt-spool-test.db-wal",
        "edge-crops.db-shm",
    ):
        assert expected in names, f"{expected} was not written; found {sorted(names)}"
    assert any(name.startswith("objects/") for name in names)
    assert any(name.startswith("faceindex/") for name in names)
    readable = {name: oct(mode) for name, mode in modes.items() if mode != 0o600}
    assert not readable, f"not 0600: {readable}"


@pytest.mark.usefixtures("usual_umask")
def test_files_an_earlier_version_left_readable_are_made_0600(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as earlier:
        # As facelens before this fix made it, held open so its -wal and -shm stay.
        earlier.execute("PRAGMA journal_mode=WAL")
        earlier.execute("CREATE TABLE kept (x)")
        sidecars = [Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert [stat.S_IMODE(p.stat().st_mode) for p in (path, *sidecars)] == [0o644] * 3
        log = SqliteAuditLog(path)
        try:
            log.record("cli:test", AuditAction.PROFILE_READ, "obama")
            assert [stat.S_IMODE(p.stat().st_mode) for p in (path, *sidecars)] == [0o600] * 3
        finally:
            log.close()
