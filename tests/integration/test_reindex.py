"""`facelens collections reindex`: a collection moves to a new engine from its faces' sources.

Real photos, the session's dlib engine and an ArcFace-style engine on a tiny
ONNX model built here (tests/unit/engine/test_arcface.py's ``project_model``:
real ONNX Runtime, fixed random weights). A collection with its companions
(strangers, negative examples) goes to ArcFace and back; faces without a
source are refused, then dropped on request; the sources go when a person
is forgotten; and the command runs end to end as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.models import NewFace, QualityFilter
from facelens.collection.reindex import plan_reindex, reindex
from facelens.collection.service import CollectionService
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from facelens.collection.users import UserService
from facelens.config import Settings
from facelens.engine.protocol import FaceEngine
from facelens.engine.registry import build_engine
from facelens.errors import ConflictException, InvalidParameterException
from facelens.history.audit import Actor
from facelens.people.strangers import StrangerService
from tests.integration.people.test_forget import open_home
from tests.integration.recognizer.conftest import COLLECTION, enroll
from tests.unit.engine.test_arcface import project_model

FACES = "faces"
STRANGERS = f"{FACES}.strangers"
REJECTED = f"{FACES}.rejected"


@pytest.fixture
def arcface_model(tmp_path: Path) -> Path:
    return project_model(tmp_path / "tiny.onnx", dim=32)


@pytest.fixture
def arcface(arcface_model: Path, tmp_path: Path) -> FaceEngine:
    settings = Settings(
        home=tmp_path / "arc-home",
        models_dir=None,
        embedder="arcface",
        arcface_model=str(arcface_model),
        detector="hog",
    )
    engine = build_engine(settings)
    engine.prepare()
    return engine


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteCollectionStore]:
    s = SQLiteCollectionStore(str(tmp_path / "facelens.db"))
    yield s
    s.close()


def photo(testdata: Path, name: str) -> bytes:
    person = name.rsplit("_", 1)[0]
    return (testdata / "people" / person / name).read_bytes()


def index(service: CollectionService, collection: str, image: bytes) -> str:
    return service.index_faces(collection, image, max_faces=1).face_records[0].face.face_id


def test_a_collection_and_its_companions_go_to_arcface_and_back(
    engine: FaceEngine, arcface: FaceEngine, store: SQLiteCollectionStore, testdata: Path
) -> None:
    dlib = CollectionService(FaceAnalyzer(engine), store)
    dlib_users = UserService(dlib, dlib.analyzer, store)
    dlib.create_collection(FACES)
    obama = [index(dlib, FACES, photo(testdata, f"obama_{n}.jpg")) for n in (1, 2)]
    dlib_users.create_user(FACES, "obama")
    dlib_users.associate_faces(FACES, "obama", obama)
    biden = index(dlib, FACES, photo(testdata, "biden_1.jpg"))
    # a stranger, as the recognizer would record one (its crop's face, with its source)
    brad = dlib.analyzer.probe(
        photo(testdata, "brad_pitt_1.jpg"), QualityFilter.NONE, with_source=True
    )
    strangers = StrangerService(store)
    stranger = strangers.observe(FACES, brad.embedding, source=brad.source).stranger_id
    # a negative example, as a correction stores one
    negative = dlib.analyzer.probe(
        photo(testdata, "biden_2.jpg"), QualityFilter.NONE, with_source=True
    )
    dlib.create_collection(REJECTED)
    store.add_faces(
        REJECTED,
        [
            NewFace(
                "neg",
                "neg",
                "obama",
                negative.detail.bounding_box,
                99.0,
                negative.embedding,
                source=negative.source,
            )
        ],
    )
    before = {
        FACES: store.get_embeddings(FACES, [*obama, biden]),
        REJECTED: store.get_embeddings(REJECTED, ["neg"]),
    }

    arc = CollectionService(FaceAnalyzer(arcface), store)
    plan = plan_reindex(arc, [FACES, STRANGERS, REJECTED])
    assert [(c.collection_id, len(c.sourced), len(c.unsourced)) for c in plan.todo] == [
        (FACES, 3, 0),
        (STRANGERS, 1, 0),
        (REJECTED, 1, 0),
    ]
    told: list[int] = []
    result = reindex(arc, plan, progress=told.append)

    assert sum(told) == 5
    assert [(c.collection_id, c.reindexed, c.dropped) for c in result.reindexed] == [
        (FACES, 3, ()),
        (STRANGERS, 1, ()),
        (REJECTED, 1, ()),
    ]
    for collection in (FACES, STRANGERS, REJECTED):
        assert store.describe_collection(collection).face_model_version == arcface.model_version
    # searches work with the new engine: faces, users (templates) and strangers
    again = arc.search_faces_by_image(FACES, photo(testdata, "biden_1.jpg"), face_match_threshold=0)
    assert again.face_matches[0].face.face_id == biden
    assert again.face_matches[0].similarity > 99
    arc_users = UserService(arc, arc.analyzer, store)
    found = arc_users.search_users_by_image(
        FACES, photo(testdata, "obama_1.jpg"), user_match_threshold=0
    )
    assert found.user_matches[0].user.user_id == "obama"
    brad_arc = arc.analyzer.probe(
        photo(testdata, "brad_pitt_1.jpg"), QualityFilter.NONE, with_source=True
    )
    joined = StrangerService(store).observe(FACES, brad_arc.embedding, source=brad_arc.source)
    assert (joined.stranger_id, joined.new) == (stranger, False)
    # a process still on the old engine (its check cached) cannot add a face of it now
    with pytest.raises(InvalidParameterException, match="do not compare"):
        dlib.index_faces(FACES, photo(testdata, "obama_3.jpg"))
    assert store.describe_collection(FACES).face_count == 3
    # nothing to do a second time
    assert plan_reindex(arc, [FACES, STRANGERS]).todo == ()

    back = CollectionService(FaceAnalyzer(engine), store)
    done = reindex(back, plan_reindex(back, [FACES, STRANGERS, REJECTED]))
    assert {c.collection_id for c in done.reindexed} == {FACES, STRANGERS, REJECTED}
    for collection, vectors in before.items():
        now = store.get_embeddings(collection, list(vectors))
        for face_id, vector in vectors.items():
            # the crop is a JPEG at 256 px: 0.05 on average, far below a person's 0.2-0.4
            assert float(np.linalg.norm(now[face_id] - vector)) < 0.15
    dlib_users = UserService(back, back.analyzer, store)
    found = dlib_users.search_users_by_image(FACES, photo(testdata, "obama_3.jpg"))
    assert [m.user.user_id for m in found.user_matches] == ["obama"]


def test_faces_without_a_source_are_refused_then_dropped(
    engine: FaceEngine, arcface: FaceEngine, store: SQLiteCollectionStore, testdata: Path
) -> None:
    dlib = CollectionService(FaceAnalyzer(engine), store)
    old = CollectionService(FaceAnalyzer(engine, keep_sources=False), store)  # before sources
    users = UserService(dlib, dlib.analyzer, store)
    dlib.create_collection(FACES)
    unsourced = index(old, FACES, photo(testdata, "obama_1.jpg"))
    sourced = index(dlib, FACES, photo(testdata, "obama_2.jpg"))
    loose = index(old, FACES, photo(testdata, "biden_1.jpg"))
    users.create_user(FACES, "obama")
    users.associate_faces(FACES, "obama", [unsourced, sourced])
    vectors = store.get_embeddings(FACES, [unsourced, sourced, loose])

    arc = CollectionService(FaceAnalyzer(arcface), store)
    plan = plan_reindex(arc, [FACES])
    with pytest.raises(InvalidParameterException) as refused:
        reindex(arc, plan)
    message = refused.value.message
    assert "2 of 3 face(s), of users obama (1), and 1 face(s) of no user" in message
    assert "--drop-unsourced" in message
    # nothing changed
    assert store.describe_collection(FACES).face_model_version == engine.model_version
    now = store.get_embeddings(FACES, list(vectors))
    assert all(np.array_equal(now[i], vectors[i]) for i in vectors)

    result = reindex(arc, plan, drop_unsourced=True)
    [done] = result.reindexed
    assert (done.reindexed, sorted(done.dropped), done.dropped_users) == (
        1,
        sorted([unsourced, loose]),
        ("obama",),
    )
    info = store.describe_collection(FACES)
    assert (info.face_model_version, info.face_count) == (arcface.model_version, 1)
    assert store.get_user(FACES, "obama").face_count == 1


def test_a_face_added_meanwhile_fails_the_swap(
    engine: FaceEngine, arcface: FaceEngine, store: SQLiteCollectionStore, testdata: Path
) -> None:
    dlib = CollectionService(FaceAnalyzer(engine), store)
    dlib.create_collection(FACES)
    first = index(dlib, FACES, photo(testdata, "obama_1.jpg"))
    arc = CollectionService(FaceAnalyzer(arcface), store)
    plan = plan_reindex(arc, [FACES])
    index(dlib, FACES, photo(testdata, "biden_1.jpg"))  # between the plan and the swap
    with pytest.raises(ConflictException, match="run the reindex again"):
        reindex(arc, plan)
    assert store.describe_collection(FACES).face_model_version == engine.model_version
    assert store.get_embeddings(FACES, [first])[first].shape == (128,)
    result = reindex(arc, plan_reindex(arc, [FACES]))
    assert result.reindexed[0].reindexed == 2


def test_forgetting_a_person_deletes_their_sources_from_every_file(
    engine: FaceEngine, testdata: Path, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        home = open_home(engine, testdata, tmp_path / "home", stack)
        c = home.c
        store = c.collections.store
        enroll(c, testdata)
        faces = [f.face_id for f in store.list_faces(COLLECTION, max_results=10).faces]
        sources = store.get_sources(COLLECTION, faces)
        assert len(sources) == 2  # obama's face and brad's
        obama = store.list_faces(COLLECTION, max_results=10, user_id="obama").faces[0].face_id
        # 40 bytes of each crop's compressed pixels (the headers are alike in every JPEG)
        theirs = sources[obama].jpeg[-200:-160]
        others = sources[next(f for f in faces if f != obama)].jpeg[-200:-160]
        assert home.holding({"obama's crop": theirs})

        c.people.forgetter.forget("obama", actor=Actor("cli", "test"))

        assert store.get_sources(COLLECTION, faces).keys() == {f for f in faces if f != obama}
        assert home.holding({"obama's crop": theirs}) == []
        assert home.holding({"brad's crop": others})


# -- the command --


def facelens(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facelens", *args],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,  # a script: no question asked
        capture_output=True,
        text=True,
        timeout=300,
    )


def out(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_the_command_end_to_end(
    engine: FaceEngine,
    arcface_model: Path,
    cli_env: dict[str, str],
    home: Path,
    testdata: Path,
) -> None:
    home.mkdir(parents=True)
    store = SQLiteCollectionStore(str(home / "facelens.db"))
    dlib = CollectionService(FaceAnalyzer(engine), store)
    users = UserService(dlib, dlib.analyzer, store)
    dlib.create_collection(FACES)
    old = index(
        CollectionService(FaceAnalyzer(engine, keep_sources=False), store),
        FACES,
        photo(testdata, "obama_1.jpg"),
    )
    kept = index(dlib, FACES, photo(testdata, "obama_2.jpg"))
    biden = index(dlib, FACES, photo(testdata, "biden_1.jpg"))
    users.create_user(FACES, "obama")
    users.associate_faces(FACES, "obama", [old, kept])
    store.close()
    env = {
        **cli_env,
        "FACELENS_EMBEDDER": "arcface",
        "FACELENS_ARCFACE_MODEL": str(arcface_model),
        "FACELENS_DETECTOR": "hog",
    }

    refused = facelens("collections", "reindex", FACES, env=env)
    assert refused.returncode == 254, refused.stderr
    error = json.loads(refused.stderr.strip().splitlines()[-1])["Error"]
    assert error["Code"] == "InvalidParameterException"
    assert "users obama (1)" in error["Message"]

    done = out(facelens("collections", "reindex", FACES, "--drop-unsourced", "--yes", env=env))
    [collection] = done["Collections"]
    assert collection["CollectionId"] == FACES
    assert collection["PreviousFaceModelVersion"] == engine.model_version
    assert (collection["ReindexedFaces"], collection["DroppedFaces"]) == (2, [old])
    assert collection["UsersLosingFaces"] == ["obama"]
    new_version = done["FaceModelVersion"]
    assert new_version.startswith("arcface")

    described = out(facelens("collections", "describe", "--collection-id", FACES, env=env))
    assert (described["FaceModelVersion"], described["FaceCount"]) == (new_version, 2)
    found = out(
        facelens(
            "faces", "search", f"fileb://{testdata / 'people/biden/biden_1.jpg'}",
            "--collection-id", FACES, "--face-match-threshold", "0", env=env,
        )
    )  # fmt: skip
    assert found["FaceMatches"][0]["Face"]["FaceId"] == biden

    again = out(facelens("collections", "reindex", FACES, env=env))
    assert again["Collections"] == []
    assert "already at" in again["Message"]
