"""What only the PostgreSQL collection store has: URLs, an unreachable or restarted server,
its schema version, its column types, and the real engine on top of it.

The contract both back ends share is in test_contract.py and test_coherence.py.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.service import CollectionService
from facelens.collection.stores.postgres import SCHEMA_VERSION, PostgresCollectionStore
from facelens.collection.stores.registry import open_store
from facelens.engine.protocol import FaceEngine
from facelens.errors import ServiceUnavailableException, StorageError
from tests.integration.collection_stores.helpers import MODEL, add, new_face, unit, walk_faces


@pytest.fixture
def store(postgres_db: str) -> Iterator[PostgresCollectionStore]:
    s = PostgresCollectionStore(postgres_db)
    s.create_collection("c", face_model_version=MODEL)
    yield s
    s.close()


def raw(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_by_url(postgres_db: str, scheme: str) -> None:
    url = scheme + postgres_db.removeprefix("postgresql")
    store = open_store(url)
    assert isinstance(store, PostgresCollectionStore)
    store.create_collection("c", face_model_version=MODEL)
    assert store.describe_collection("c").face_count == 0
    store.close()
    with psycopg.connect(postgres_db) as conn:
        version = conn.execute("SELECT version FROM facelens_collection_schema").fetchall()
    assert version == [(SCHEMA_VERSION,)]


def test_an_unreachable_server_is_service_unavailable() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = open_store(f"postgresql://facelens:secret@127.0.0.1:{port}/faces")  # no connection yet
    with pytest.raises(ServiceUnavailableException) as caught:
        store.describe_collection("c")
    assert isinstance(caught.value, StorageError)
    assert caught.value.code == "ServiceUnavailableException"
    assert "secret" not in caught.value.message
    store.close()


def test_a_connection_lost_while_idle_is_replaced(
    postgres_db: str, store: PostgresCollectionStore
) -> None:
    """A server restart or failover between two calls costs nothing but a reconnect."""
    with psycopg.connect(postgres_db, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"  # waits, up to 10 s
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert killed == [(True,)]
    assert store.describe_collection("c").face_count == 0


def test_a_newer_schema_is_refused(postgres_db: str, store: PostgresCollectionStore) -> None:
    raw(postgres_db, f"UPDATE facelens_collection_schema SET version = {SCHEMA_VERSION + 1}")
    newer = PostgresCollectionStore(postgres_db)
    with pytest.raises(StorageError, match="newer"):
        newer.describe_collection("c")
    newer.close()


@pytest.mark.parametrize(
    "corruption",
    [
        "UPDATE facelens_faces SET embedding_dim = 64 WHERE face_id = 'f0013'",  # foreign
        "UPDATE facelens_faces SET embedding = substring(embedding FROM 1 FOR 508)"
        " WHERE face_id = 'f0013'",  # truncated
        "UPDATE facelens_faces SET embedding_dim = 0",
    ],
)
def test_corrupt_embeddings_are_refused_on_rebuild(
    postgres_db: str,
    store: PostgresCollectionStore,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
    corruption: str,
) -> None:
    monkeypatch.setattr("facelens.collection.stores.sql.READ_ROWS", 4)  # f0013: a late read
    vectors = unit(rng, 20)
    add(store, "c", "f", vectors)
    raw(postgres_db, corruption)
    with pytest.raises(StorageError, match="recorded dimension"):
        store.search_faces("c", vectors[0], limit=1, max_distance=2.0)
    with pytest.raises(StorageError, match="recorded dimension"):
        store.get_embeddings("c", ["f0013"])
    raw(postgres_db, "DELETE FROM facelens_faces WHERE face_id = 'f0013'")
    raw(postgres_db, "UPDATE facelens_faces SET embedding_dim = 128")  # the rest is sound again
    hit = store.search_faces("c", vectors[0], limit=1, max_distance=2.0)[0]
    assert hit.face.face_id == "f0000"


def test_ids_sort_by_code_point_in_a_database_of_another_locale(
    postgres_url: str, rng: np.random.Generator
) -> None:
    """Production databases are rarely created with locale C; pages must not care."""
    name = f"icu_{uuid.uuid4().hex}"
    try:
        raw(
            postgres_url,
            f'CREATE DATABASE "{name}" TEMPLATE template0'
            " LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'",
        )
    except psycopg.Error as exc:
        pytest.skip(f"this PostgreSQL has no ICU collations: {exc}")
    store = PostgresCollectionStore(postgres_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        names = ["b", "B", "_a", "a", "Z", "é", "e"]  # en-US: _a a b B e é Z; bytes: B Z _a a b e é
        for collection_id in names:
            store.create_collection(collection_id, face_model_version=MODEL)
        assert store.list_collections(max_results=100).collection_ids == sorted(names)
        faces = [new_face(f, v) for f, v in zip(names, unit(rng, len(names)), strict=True)]
        store.add_faces("b", faces)
        assert walk_faces(store, "b", 2) == sorted(names)
    finally:
        store.close()
        raw(postgres_url, f'DROP DATABASE "{name}" WITH (FORCE)')


def test_real_photos_index_and_search_on_postgres(
    engine: FaceEngine, testdata: Path, postgres_db: str
) -> None:
    """CollectionService on the real engine, with PostgreSQL underneath, then after a restart."""
    store = PostgresCollectionStore(postgres_db)
    service = CollectionService(FaceAnalyzer(engine), store)
    service.create_collection("people")
    enrolled = {
        person: service.index_faces(
            "people", (testdata / f"people/{person}/{person}_1.jpg").read_bytes(),
            external_image_id=person,
        ).face_records[0].face.face_id
        for person in ("obama", "biden")
    }  # fmt: skip
    probe = (testdata / "people/obama/obama_2.jpg").read_bytes()
    matches = service.search_faces_by_image("people", probe).face_matches
    assert [m.face.face_id for m in matches] == [enrolled["obama"]]
    assert matches[0].similarity >= 80
    assert matches[0].face.external_image_id == "obama"
    store.close()

    reopened = PostgresCollectionStore(postgres_db)
    again = CollectionService(FaceAnalyzer(engine), reopened)
    assert again.describe_collection("people").face_count == 2
    assert [m.face.face_id for m in again.search_faces_by_image("people", probe).face_matches] == [
        enrolled["obama"]
    ]
    reopened.close()
