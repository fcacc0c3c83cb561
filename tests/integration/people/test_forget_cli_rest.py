"""`facelens forget`, `facelens retention run` and ``DELETE /api/v1/people/{person}`` as users
call them: a real process with JSON out, a real HTTP server with its keys."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from facelens.collection.analysis import FaceAnalyzer
from facelens.engine.protocol import FaceEngine
from facelens.history.ledger import Recognition, Status
from tests.integration.recognizer.conftest import COLLECTION, enroll, open_recognizer_process
from tests.integration.test_cli import error, facelens, out
from tests.servers.facelens_api import ApiServer, start_api_server
from tests.wired import Wired, wired_server

BUCKET = "facelens"


def sighting(c: Wired, rid: str, status: Status, hours_ago: float, **message: str) -> str:
    """A ledger record with its crop in the store, ``hours_ago`` old."""
    key = f"faces/{rid}.jpg"
    c.stores.objects.put_object(BUCKET, key, b"\xff\xd8 crop of " + rid.encode())
    body = {"RecognitionId": rid, "Status": status.value, "Key": key, **message}
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    c.stores.history.ledger.record(Recognition(rid, status, "rekognition", body, at, BUCKET, key))
    return key


def test_forget_and_retention_commands(
    engine: FaceEngine, testdata: Path, home: Path, cli_env: dict[str, str]
) -> None:
    with ExitStack() as stack:
        c = open_recognizer_process(engine, home, stack, mqtt_url=None)
        faces = enroll(c, testdata)
        brad_crop = sighting(c, "seen-brad", Status.IDENTIFIED, 1, FaceId=faces["brad"])
        old_unknown = sighting(c, "seen-unknown", Status.UNKNOWN, 20)

    forgotten = out(facelens("forget", faces["brad"], "--yes", env=cli_env))
    assert forgotten["Kind"] == "face"
    assert forgotten["DeletedFaces"] == [faces["brad"]]
    assert forgotten["DeletedProfiles"] == [faces["brad"]]
    assert forgotten["DeletedCrops"] == [brad_crop]
    assert forgotten["DeletedRecords"] == 1
    assert forgotten["Purged"] is True
    missing = error(facelens("forget", faces["brad"], "--yes", env=cli_env, check=False))
    assert missing["Code"] == "ResourceNotFoundException"

    due = out(facelens("retention", "run", "--dry-run", env=cli_env))
    assert due == {
        "DryRun": True,
        "IdentifiedCrops": 0,
        "StrangerCrops": 1,
        "OrphanCrops": 0,
        "Failed": 0,
        "Keys": [old_unknown],
        "ForgottenStrangers": [],
        "AbandonedClaims": 0,
        "VisitLooks": 0,
    }
    done = out(facelens("retention", "run", env=cli_env))
    assert (done["DryRun"], done["StrangerCrops"], done["Keys"]) == (False, 1, [old_unknown])
    head = error(facelens("objects", "head", old_unknown, env=cli_env, check=False))
    assert head["Code"] == "NoSuchKey"
    assert out(facelens("retention", "run", env=cli_env))["Keys"] == []


def call(
    server: ApiServer, method: str, path: str, *, token: str | None = None
) -> requests.Response:
    return requests.request(
        method, f"{server.url}/api/v1{path}", headers=server.headers(token=token), timeout=60
    )


@pytest.fixture
def api_server(engine: FaceEngine, tmp_path: Path) -> Iterator[ApiServer]:
    """The shared fixture's server, on the session's engine rather than a second load."""
    started = start_api_server(tmp_path / "home", analyzer=FaceAnalyzer(engine))
    try:
        yield started
    finally:
        started.server.stop()
        started.stack.close()


def test_delete_people_endpoint(testdata: Path, api_server: ApiServer) -> None:
    c = wired_server(api_server)
    faces = enroll(c, testdata)
    crop = sighting(c, "seen-obama", Status.IDENTIFIED, 1, UserId="obama", FaceId=faces["obama"])

    refused = call(api_server, "DELETE", "/people/obama", token=api_server.reader_token)
    assert refused.status_code == 403
    response = call(api_server, "DELETE", f"/people/obama?collection_id={COLLECTION}")
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["Kind"], report["DeletedUser"]) == ("user", "obama")
    assert report["DeletedFaces"] == [faces["obama"]]
    assert report["DeletedCrops"] == [crop]
    assert report["DeletedProfiles"] == ["obama"]
    face = call(api_server, "DELETE", f"/people/{faces['brad']}").json()
    assert face["Kind"] == "face"
    gone = call(api_server, "DELETE", "/people/obama")
    assert gone.status_code == 404
    assert "ResourceNotFoundException" in gone.text
    entries = c.stores.history.audit.entries(action="forget").entries
    assert len(entries) == 2
    assert all(e.target.startswith("forgotten:") for e in entries)
    assert all(e.actor == "api-key:test-admin" for e in entries)
