"""Faces and walks shared by the collection store tests of every back end.

Why a module (not the conftest): the SQLite-only unit tests, the tests run
on every back end and a spawned worker process all import these by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from facelens.collection.models import NewFace
from facelens.collection.stores.postgres import PostgresCollectionStore
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from facelens.values.boxes import BoundingBox

AnyStore: TypeAlias = SQLiteCollectionStore | PostgresCollectionStore
"""The concrete stores (not the Protocol): tests look at their ``_indexes`` white box."""
Connect: TypeAlias = Callable[[], AnyStore]
"""Opens one more store instance on the test's database (a restart, another worker)."""

DIM = 128
MODEL = "test-model-1"
BOX = BoundingBox(width=0.25, height=0.5, left=0.125, top=0.0625)


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    vectors: npt.NDArray[np.float32] = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def new_face(face_id: str, vector: npt.NDArray[np.float32], image_id: str = "img") -> NewFace:
    return NewFace(face_id, image_id, f"ext-{face_id}", BOX, 99.5, vector)


def add(
    store: AnyStore, collection_id: str, prefix: str, vectors: npt.NDArray[np.float32]
) -> list[str]:
    ids = [f"{prefix}{i:04d}" for i in range(len(vectors))]
    store.add_faces(collection_id, [new_face(f, v) for f, v in zip(ids, vectors, strict=True)])
    return ids


def walk_faces(store: AnyStore, collection_id: str, max_results: int) -> list[str]:
    seen: list[str] = []
    token: str | None = None
    while True:
        page = store.list_faces(collection_id, max_results=max_results, next_token=token)
        assert len(page.faces) <= max_results
        seen += [f.face_id for f in page.faces]
        token = page.next_token
        if token is None:
            return seen
