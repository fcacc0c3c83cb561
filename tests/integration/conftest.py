"""The real dlib engine, loaded once per session, and services on a throwaway SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from facelens.collection.analysis import FaceAnalyzer, ImageLimits
from facelens.collection.service import CollectionService
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from facelens.collection.users import UserService
from facelens.config import Settings
from facelens.engine.protocol import FaceEngine
from facelens.engine.registry import build_engine


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> FaceEngine:
    # A real home: the default (onnx) embedder caches its converted model in <home>/models.
    home = tmp_path_factory.mktemp("engine-home")
    built = build_engine(Settings(home=home, models_dir=None))
    built.prepare()
    return built


@dataclass
class Services:
    collections: CollectionService
    users: UserService
    store: SQLiteCollectionStore
    path: Path


def open_services(engine: FaceEngine, path: Path, *, limits: ImageLimits | None = None) -> Services:
    store = SQLiteCollectionStore(str(path))
    analyzer = FaceAnalyzer(engine, limits=limits)
    collections = CollectionService(analyzer, store)
    return Services(collections, UserService(collections, analyzer, store), store, path)


@pytest.fixture
def services(engine: FaceEngine, tmp_path: Path) -> Iterator[Services]:
    opened = open_services(engine, tmp_path / "facelens.db")
    yield opened
    opened.store.close()
