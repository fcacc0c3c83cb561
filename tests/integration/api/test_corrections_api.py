"""Corrections and per-person thresholds over real HTTP: roles, bodies, errors, the audit trail.

A recognizer on the server's own stores (:func:`tests.wired.wired_server`) identifies
the crops; the look-alike pair is the one of
:mod:`tests.integration.people.corrections_helpers`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.collection.analysis import FaceAnalyzer
from facelens.engine.protocol import FaceEngine
from tests.integration.api.test_rest import call
from tests.integration.people.corrections_helpers import (
    NICOLE,
    enrol_nicole,
    make_crops,
    recognize,
    who,
)
from tests.servers.facelens_api import ApiServer, start_api_server
from tests.wired import wired_server


@pytest.fixture(scope="session")
def crops(engine: FaceEngine, testdata: Path) -> dict[str, bytes]:
    return make_crops(engine, testdata)


@pytest.fixture
def server(engine: FaceEngine, testdata: Path, tmp_path: Path) -> Iterator[ApiServer]:
    """A server on the session's loaded engine; Nicole enrolled."""
    started = start_api_server(tmp_path / "home", analyzer=FaceAnalyzer(engine))
    enrol_nicole(wired_server(started), testdata)
    try:
        yield started
    finally:
        started.server.stop()
        started.stack.close()


def test_reject_list_and_undo_over_http(server: ApiServer, crops: dict[str, bytes]) -> None:
    c = wired_server(server)
    wrong = recognize(c, crops["sarah_paulson_3"])
    assert who(wrong) == NICOLE
    path = f"/identifications/{wrong.recognition_id}/reject"
    call(server, "POST", path, token=server.reader_token, expect=403)
    correction = call(server, "POST", path, expect=201)["Correction"]
    assert correction["PersonId"] == NICOLE
    assert correction["Actor"] == "api-key:test-admin"
    assert who(recognize(c, crops["sarah_paulson_3"])) is None
    assert who(recognize(c, crops["nicole_kidman_2"])) == NICOLE

    listed = call(server, "GET", "/corrections", token=server.reader_token)["Corrections"]
    assert [(x["CorrectionId"], x["RecognitionId"]) for x in listed] == [
        (correction["CorrectionId"], wrong.recognition_id)
    ]
    assert call(server, "GET", "/corrections", params={"person": "bob"}) == {"Corrections": []}

    cid = correction["CorrectionId"]
    call(server, "DELETE", f"/corrections/{cid}", token=server.reader_token, expect=403)
    assert call(server, "DELETE", f"/corrections/{cid}")["Correction"]["Undone"] is True
    missing = call(server, "DELETE", f"/corrections/{cid}", expect=404)
    assert missing["__type"] == "ResourceNotFoundException"
    assert who(recognize(c, crops["sarah_paulson_3"])) == NICOLE

    # An unknown face: the person must be named in the body.
    stranger = recognize(c, crops["biden_1"])
    rejecting = f"/identifications/{stranger.recognition_id}/reject"
    assert call(server, "POST", rejecting, expect=400)["__type"] == "InvalidParameterException"
    named = call(server, "POST", rejecting, json={"PersonId": NICOLE}, expect=201)
    assert named["Correction"]["PersonId"] == NICOLE
    call(server, "POST", f"/identifications/{uuid.uuid4()}/reject", expect=404)

    trail = [
        (e["Action"], e["Actor"])
        for e in call(server, "GET", "/audit", params={"target": NICOLE})["Entries"]
    ]
    newest_first = ["correct", "undo-correction", "correct"]
    assert trail == [(action, "api-key:test-admin") for action in newest_first]


def test_thresholds_over_http(server: ApiServer, crops: dict[str, bytes]) -> None:
    c = wired_server(server)
    path = f"/profiles/{NICOLE}/threshold"
    assert call(server, "GET", path, token=server.reader_token) == {
        "PersonId": NICOLE,
        "FaceMatchThreshold": None,
        "EffectiveThreshold": 80.0,
    }
    body = {"FaceMatchThreshold": 95}
    call(server, "PUT", path, json=body, token=server.reader_token, expect=403)
    assert call(server, "PUT", path, json=body)["EffectiveThreshold"] == 95
    assert call(server, "GET", f"/profiles/{NICOLE}")["Item"]["FaceMatchThreshold"] == 95
    assert who(recognize(c, crops["sarah_paulson_3"])) is None
    assert who(recognize(c, crops["nicole_kidman_2"])) == NICOLE

    too_low = call(server, "PUT", path, json={"FaceMatchThreshold": 20}, expect=400)
    assert too_low["__type"] == "InvalidParameterException"
    call(server, "PUT", path, json={"FaceMatchThreshold": 120}, expect=400)
    call(server, "PUT", "/profiles/nobody/threshold", json=body, expect=404)
    call(server, "DELETE", path, token=server.reader_token, expect=403)
    assert call(server, "DELETE", path)["FaceMatchThreshold"] is None
    assert "FaceMatchThreshold" not in call(server, "GET", f"/profiles/{NICOLE}")["Item"]
    assert who(recognize(c, crops["sarah_paulson_3"])) == NICOLE
