"""Strangers end to end: real photos, the real recognizer, real stores, MQTT, CLI and REST.

Three people who are not enrolled (Kit Harington, Alex Lacamoire and CompreFace's
person A, 3 + 3 + 4 photos from ``<testdata>/people``) arrive as crops, made as
the edge runner makes them, in a mixed order. Obama and Brad Pitt are enrolled
(the recognizer conftest's ``enroll``), so the recognizer has people to tell
them from. The strangers must come out as exactly three anonymous persons.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.models import QualityFilter
from facelens.collection.service import CollectionService
from facelens.engine.protocol import FaceEngine
from facelens.history.ledger import Status
from facelens.people.stranger_model import companion_id
from facelens.people.strangers import StrangerService
from tests.integration.recognizer.conftest import (
    COLLECTION,
    OpenPipeline,
    Pipeline,
    make_crop,
    open_pipeline,  # noqa: F401 (a fixture)
    open_recognizer_process,
)
from tests.integration.test_cli import error, facelens, out
from tests.servers.facelens_api import ApiServer, start_api_server
from tests.servers.mosquitto import MosquittoBroker, Subscriber
from tests.wired import Wired

PEOPLE = ("kit_harington", "alex_lacamoire", "compreface_person_a")
Crops = dict[str, list[bytes]]


@pytest.fixture(scope="session")
def people_crops(engine: FaceEngine, testdata: Path) -> Crops:
    """Each person's crops, one per photo, in file order."""
    root = testdata / "people"
    return {
        person: [make_crop(engine, photo) for photo in sorted((root / person).iterdir())]
        for person in PEOPLE
    }


@pytest.fixture(scope="session")
def people_embeddings(engine: FaceEngine, people_crops: Crops) -> dict[str, list[np.ndarray]]:
    """The embeddings the recognizer makes of those crops."""
    analyzer = FaceAnalyzer(engine)
    return {
        person: [analyzer.probe(c, QualityFilter.NONE).embedding for c in crops]
        for person, crops in people_crops.items()
    }


def mixed(crops: Crops, *, hold_back: str | None = None) -> list[tuple[str, bytes]]:
    """Every crop, people interleaved in a fixed shuffled order (less ``hold_back``'s last)."""
    items = [
        (person, crop)
        for person, person_crops in crops.items()
        for crop in (person_crops[:-1] if person == hold_back else person_crops)
    ]
    random.Random(9).shuffle(items)
    return items


def recognize(p: Pipeline, items: list[tuple[str, bytes]]) -> dict[str, str]:
    """Puts the crops one by one, each recognized before the next; key -> person."""
    keys = {}
    for person, crop in items:
        before = p.wired.stores.history.ledger.count()
        keys[p.put_crop(crop, camera="porch")] = person
        deadline = time.monotonic() + 30
        while p.wired.stores.history.ledger.count() == before and time.monotonic() < deadline:
            time.sleep(0.05)
    return keys


def test_three_unenrolled_people_become_three_strangers_and_naming_one_identifies_it(
    open_pipeline: OpenPipeline,  # noqa: F811
    mqtt_broker: MosquittoBroker,
    people_crops: Crops,
) -> None:
    p = open_pipeline(mqtt_broker.url)
    p.wired.recognizer.recognizer.prepare()
    p.start_worker()
    items = mixed(people_crops, hold_back="kit_harington")
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        keys = recognize(p, items)
        seen = sub.wait_until(
            lambda ms: sum(m.topic == "rekognition/unknown" for m in ms) >= len(items), timeout=30
        )
    unknown = [json.loads(m.payload) for m in seen if m.topic == "rekognition/unknown"]
    assert len(unknown) == len(items)
    ids: dict[str, set[str]] = {}
    for message in unknown:
        ids.setdefault(keys[message["Key"]], set()).add(message["StrangerId"])
    assert all(len(v) == 1 for v in ids.values()), ids  # one stranger per person
    assert len({next(iter(v)) for v in ids.values()}) == 3  # three strangers, not one
    # Sightings count up per stranger; FirstSeen stays the first sighting's time.
    by_stranger: dict[str, list[dict[str, Any]]] = {}
    for message in unknown:
        by_stranger.setdefault(message["StrangerId"], []).append(message)
    for messages in by_stranger.values():
        assert [m["StrangerSightings"] for m in messages] == list(range(1, len(messages) + 1))
        assert {m["FirstSeen"] for m in messages} == {messages[0]["RecognizedAt"]}

    strangers = {s.stranger_id: s for s in p.wired.people.strangers.list(COLLECTION)}
    assert set(strangers) == set(by_stranger)
    for sid, stranger in strangers.items():
        assert stranger.face_count == stranger.sightings == len(by_stranger[sid])
        assert stranger.best_crops
        assert all(keys[c.key] == keys[by_stranger[sid][0]["Key"]] for c in stranger.best_crops)

    kit = next(iter(ids["kit_harington"]))
    named = p.wired.people.strangers.name(
        COLLECTION, kit, "kit", profile={"Name": "Kit Harington", "Role": "Actor"}
    )
    assert named.created
    assert len(named.face_ids) == 2
    assert kit not in {s.stranger_id for s in p.wired.people.strangers.list(COLLECTION)}
    with Subscriber(mqtt_broker, "rekognition/#") as sub:
        key = p.put_crop(people_crops["kit_harington"][-1], camera="porch")
        seen = sub.wait_until(lambda ms: any(m.topic == "rekognition" for m in ms), timeout=30)
    (message,) = [json.loads(m.payload) for m in seen if m.topic == "rekognition"]
    assert message["Key"] == key
    assert message["Status"] == "identified"
    assert message["UserId"] == "kit"
    assert message["Name"] == "Kit Harington"


def test_merge_and_split_through_the_recognizer(
    open_pipeline: OpenPipeline,  # noqa: F811
    people_crops: Crops,
) -> None:
    p = open_pipeline(None)
    p.wired.recognizer.recognizer.prepare()
    p.start_worker()
    crops = {k: people_crops[k] for k in ("alex_lacamoire", "compreface_person_a")}
    recognize(p, mixed(crops))
    service = p.wired.people.strangers
    alex_id, a_id = (
        next(s for s in service.list(COLLECTION) if s.face_count == n).stranger_id for n in (3, 4)
    )
    alex_faces = service.get(COLLECTION, alex_id).face_ids

    merged = service.merge(COLLECTION, a_id, alex_id)
    assert (merged.face_count, merged.sightings, merged.merged) == (7, 7, (alex_id,))
    assert [s.stranger_id for s in service.list(COLLECTION)] == [a_id]

    new_id = service.split(COLLECTION, a_id, alex_faces)
    assert new_id not in (alex_id, a_id)  # ids are never given out twice
    assert set(service.get(COLLECTION, new_id).face_ids) == set(alex_faces)
    assert service.get(COLLECTION, a_id).face_count == 4
    # Alex comes back: he joins the split-off stranger, not the one he was wrongly merged into.
    recognize(p, [("alex_lacamoire", people_crops["alex_lacamoire"][0])])
    (last,) = p.wired.stores.history.ledger.recent(limit=1, status=Status.UNKNOWN)
    assert last.message["StrangerId"] == new_id


def seed_strangers(
    collections: CollectionService,
    strangers: StrangerService,
    embeddings: dict[str, list[np.ndarray]],
) -> None:
    """Two strangers (Kit: 3 faces, Alex: 3), as the recognizer would have made them."""
    collections.create_collection(COLLECTION)
    for person in ("kit_harington", "alex_lacamoire"):
        for vector in embeddings[person]:
            strangers.observe(COLLECTION, vector)


@pytest.fixture
def cli_components(
    engine: FaceEngine, cli_env: dict[str, str], people_embeddings: dict[str, list[np.ndarray]]
) -> Iterator[Wired]:
    with ExitStack() as stack:
        home = Path(cli_env["FACELENS_HOME"])
        wired = open_recognizer_process(engine, home, stack, mqtt_url=None)
        seed_strangers(wired.collections.collections, wired.people.strangers, people_embeddings)
        yield wired


def test_cli(cli_env: dict[str, str], cli_components: Wired) -> None:
    listed = out(facelens("strangers", "list", env=cli_env))["Strangers"]
    assert [(s["StrangerId"], s["FaceCount"]) for s in listed] == [
        ("stranger-1", 3),
        ("stranger-2", 3),
    ]
    shown = out(facelens("strangers", "show", "stranger-1", env=cli_env))["Stranger"]
    assert shown == listed[0]
    missing = facelens("strangers", "show", "stranger-9", env=cli_env, check=False)
    assert error(missing)["Code"] == "ResourceNotFoundException"

    merged = out(facelens("strangers", "merge", "stranger-1", "stranger-2", env=cli_env))
    assert merged["Stranger"]["FaceCount"] == 6
    assert merged["Stranger"]["MergedStrangerIds"] == ["stranger-2"]
    alex = [f for f in merged["Stranger"]["FaceIds"] if f not in shown["FaceIds"]]
    split = out(
        facelens("strangers", "split", "stranger-1", "--face-ids", ",".join(alex), env=cli_env)
    )
    assert split["StrangerId"] == "stranger-3"
    assert sorted(split["Stranger"]["FaceIds"]) == sorted(alex)
    assert split["From"]["FaceCount"] == 3

    named = out(
        facelens(
            "strangers", "name", "stranger-3", "--user-id", "alex", "--name", "Alex L.",
            "--profile", '{"Role": "Music director"}', env=cli_env,
        )
    )  # fmt: skip
    assert named["UserId"] == "alex"
    assert named["UserCreated"] is True
    assert len(named["FaceIds"]) == 3
    assert named["Profile"] == {"Name": "Alex L.", "Role": "Music director"}
    again = facelens(
        "strangers", "name", "stranger-1", "--user-id", "alex", env=cli_env, check=False
    )
    assert error(again)["Code"] == "ConflictException"
    profile = out(facelens("profiles", "get", "alex", env=cli_env))
    assert "Alex L." in json.dumps(profile)
    audit = out(facelens("audit", "--action", "name-stranger", env=cli_env))
    assert len(audit["Entries"]) == 1


@pytest.fixture
def rest_server(
    engine: FaceEngine, tmp_path: Path, people_embeddings: dict[str, list[np.ndarray]]
) -> Iterator[ApiServer]:
    # The session's loaded engine, rather than the server loading dlib's models again.
    server = start_api_server(tmp_path / "home", analyzer=FaceAnalyzer(engine))
    try:
        b = server.bundles
        seed_strangers(b.collections().collections, b.people().strangers, people_embeddings)
        yield server
    finally:
        server.server.stop()
        server.stack.close()


def api(
    server: ApiServer,
    method: str,
    path: str,
    *,
    token: str | None = None,
    expect: int = 200,
    **kwargs: Any,
) -> Any:
    response = requests.request(
        method,
        f"{server.url}/api/v1/collections/{COLLECTION}/strangers{path}",
        headers=server.headers(token=token),
        timeout=60,
        **kwargs,
    )
    assert response.status_code == expect, response.text
    return response.json()


def test_rest(rest_server: ApiServer) -> None:
    s = rest_server
    listed = api(s, "GET", "", token=s.reader_token)["Strangers"]
    assert [x["StrangerId"] for x in listed] == ["stranger-1", "stranger-2"]
    assert api(s, "GET", "/stranger-2", token=s.reader_token)["Stranger"] == listed[1]
    assert api(s, "GET", "/stranger-9", expect=404)["__type"] == "ResourceNotFoundException"
    api(s, "POST", "/stranger-1/merge", token=s.reader_token, json={"Other": "x"}, expect=403)

    merged = api(s, "POST", "/stranger-1/merge", json={"Other": "stranger-2"})["Stranger"]
    assert merged["FaceCount"] == 6
    split = api(s, "POST", "/stranger-1/split", json={"FaceIds": listed[1]["FaceIds"]}, expect=201)
    assert split["StrangerId"] == "stranger-3"
    bad = api(s, "POST", "/stranger-1/split", json={"FaceIds": ["nope"]}, expect=400)
    assert bad["__type"] == "InvalidParameterException"

    body = {"UserId": "kit", "Profile": {"Name": "Kit Harington"}}
    named = api(s, "POST", "/stranger-1/name", json=body)
    assert (named["UserId"], named["UserCreated"], len(named["FaceIds"])) == ("kit", True, 3)
    assert s.bundles.collections().store.get_user(COLLECTION, "kit").face_count == 3
    assert s.bundles.profiles().get("kit") is not None
    conflict = api(s, "POST", "/stranger-3/name", json={"UserId": "kit"}, expect=409)
    assert conflict["__type"] == "ConflictException"
    # stranger-3 is the split-off other person: not added to Kit, whatever Extend says.
    refused = api(s, "POST", "/stranger-3/name", json={"UserId": "kit", "Extend": True}, expect=400)
    assert "does not look like kit" in refused["message"]
    other = api(s, "POST", "/stranger-3/name", json={"UserId": "alex"})
    assert other["UserCreated"] is True
    assert api(s, "GET", "")["Strangers"] == []
    assert (
        s.bundles.collections().store.describe_collection(companion_id(COLLECTION)).face_count == 0
    )
