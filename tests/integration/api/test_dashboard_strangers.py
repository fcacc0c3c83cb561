"""The dashboard's strangers, corrections and thresholds over plain HTTP, on real crops.

A recognizer on the server's own stores (:func:`tests.wired.wired_server`, on the
session's loaded engine) handles crops made from real photos as the edge runner makes them:
Kit Harington and Joe Biden are not enrolled, so they become strangers;
Nicole Kidman is enrolled and Sarah Paulson's look-alike crop is identified
as her at the default threshold 80 (:mod:`tests.integration.people.corrections_helpers`).
Every change goes through the dashboard's forms as a browser posts them.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.collection.analysis import FaceAnalyzer
from facelens.engine.protocol import FaceEngine
from facelens.history.audit import AuditAction
from facelens.history.ledger import Status
from facelens.people.stranger_faces import faces_of
from facelens.people.stranger_model import companion_id
from tests.integration.api.test_dashboard import call, login, multipart, origin, post_form
from tests.integration.people.corrections_helpers import (
    NICOLE,
    enrol_nicole,
    make_crops,
    recognize,
    who,
)
from tests.integration.recognizer.conftest import make_crop
from tests.servers.facelens_api import ApiServer, start_api_server
from tests.wired import wired_server

COLLECTION = "faces"


@pytest.fixture(scope="session")
def crops(engine: FaceEngine, testdata: Path) -> dict[str, bytes]:
    made = make_crops(engine, testdata)
    kit = testdata / "people" / "kit_harington"
    for n in (1, 2, 3):
        made[f"kit_harington_{n}"] = make_crop(engine, kit / f"kit_harington_{n}.jpg")
    return made


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


def editor(server: ApiServer) -> dict[str, str]:
    return {"Cookie": login(server, server.admin_token), **origin(server)}


def follow(server: ApiServer, location: str, headers: dict[str, str]) -> str:
    """The page a post redirected to, as the browser then shows it."""
    reply = call(server, location, headers={"Cookie": headers["Cookie"]})
    assert reply.status == 200, (location, reply.text)
    return reply.text


def query(location: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def actions(server: ApiServer) -> list[tuple[str, str, str]]:
    """(action, actor, target) of the audit log, oldest first."""
    page = server.bundles.history().audit.entries(limit=100)
    return [(e.action, e.actor, e.target) for e in reversed(page.entries)]


def test_strangers_are_shown_merged_split_and_named(
    server: ApiServer, crops: dict[str, bytes]
) -> None:
    c = wired_server(server)
    first = recognize(c, crops["kit_harington_1"])
    second = recognize(c, crops["kit_harington_2"])
    biden = recognize(c, crops["biden_1"])
    kit_id = first.message["StrangerId"]
    biden_id = biden.message["StrangerId"]
    assert second.message["StrangerId"] == kit_id != biden_id

    # Anyone logged in sees them, with crops and counts; only an editor gets the forms.
    reader = {"Cookie": login(server, server.reader_token)}
    listed = call(server, "/ui/strangers", headers=reader)
    assert listed.status == 200
    assert kit_id in listed.text
    assert biden_id in listed.text
    assert f"/ui/crops/{first.key}" in listed.text
    assert "Seen 2 times" in listed.text
    assert "Who is" not in listed.text
    unknown = call(server, "/ui/unknown", headers=reader).text
    assert f'href="/ui/strangers/{kit_id}"' in unknown
    shown = call(server, f"/ui/strangers/{kit_id}", headers=reader).text
    # Each face is shown by its own sighting's crop.
    assert shown.count('class="face-pick__crop"') == 2
    assert f'src="/ui/crops/{second.key}"' in shown
    refused = post_form(
        server,
        f"/ui/strangers/{kit_id}/merge",
        {"other": biden_id},
        headers=reader | origin(server),
    )
    assert refused.status == 403

    # Merge Biden into Kit (wrongly), then split his face off again.
    admin = editor(server)
    assert "Who is" in call(server, "/ui/strangers", headers=admin).text
    merged = post_form(server, f"/ui/strangers/{kit_id}/merge", {"other": biden_id}, headers=admin)
    assert merged.status == 303
    assert f"{biden_id} was merged into {kit_id}" in follow(
        server, merged.headers["Location"], admin
    )
    assert c.people.strangers.get(COLLECTION, kit_id).face_count == 3
    faces = faces_of(c.collections.store, companion_id(COLLECTION), kit_id)
    bidens = [f.face_id for f in faces if f.external_image_id == biden_id]
    nothing = post_form(server, f"/ui/strangers/{kit_id}/split", {}, headers=admin)
    assert "Choose the faces" in query(nothing.headers["Location"])["error"]
    split = post_form(
        server, f"/ui/strangers/{kit_id}/split", {"face_id": bidens[0]}, headers=admin
    )
    assert split.status == 303
    moved = re.fullmatch(r"/ui/strangers/([^?]+)\?.*", split.headers["Location"])
    assert moved is not None
    new_id = moved.group(1)
    assert c.people.strangers.get(COLLECTION, new_id).face_ids == tuple(bidens)
    assert c.people.strangers.get(COLLECTION, kit_id).face_count == 2

    # Name Kit with one form: a person with his faces, identified from then on.
    empty = post_form(server, f"/ui/strangers/{kit_id}/name", {"name": " "}, headers=admin)
    assert empty.headers["Location"].startswith("/ui/strangers?error=")
    named = post_form(
        server, f"/ui/strangers/{kit_id}/name", {"name": "Kit  Harington"}, headers=admin
    )
    assert named.status == 303
    assert named.headers["Location"].startswith("/ui/people/kit-harington?notice=")
    person = follow(server, named.headers["Location"], admin)
    assert "is now Kit Harington (2 faces enrolled)" in person
    profile = c.stores.profiles.get("kit-harington")
    assert profile is not None
    assert profile.attributes["Name"] == "Kit Harington"
    assert who(recognize(c, crops["kit_harington_3"])) == "kit-harington"
    gone = call(server, f"/ui/strangers/{kit_id}", headers=admin)
    assert gone.status == 404

    # Deleting him from his page forgets his sightings as a stranger too.
    deleted = post_form(server, "/ui/people/kit-harington/delete", {}, headers=admin)
    assert (
        "Kit Harington was deleted with 2 faces, 3 crops"
        in query(deleted.headers["Location"])["notice"]
    )
    assert c.stores.history.ledger.strangers_seen([kit_id]) == {}

    # Biden's stranger is forgotten from its own page: faces, sightings and crop go.
    assert "Forget stranger" in call(server, f"/ui/strangers/{new_id}", headers=admin).text
    forgotten = post_form(server, f"/ui/strangers/{new_id}/forget", {}, headers=admin)
    assert forgotten.headers["Location"].startswith("/ui/strangers?notice=")
    assert f"{new_id} was forgotten with 1 crops" in query(forgotten.headers["Location"])["notice"]
    assert c.people.strangers.list(COLLECTION) == []
    assert biden.key is not None
    assert not c.stores.objects.list_objects(c.settings.bucket, prefix=biden.key).objects

    trail = [(a, actor) for a, actor, _ in actions(server) if a != AuditAction.PROFILE_READ.value]
    assert trail == [
        (AuditAction.MERGE_STRANGERS.value, "dashboard:test-admin"),
        (AuditAction.SPLIT_STRANGER.value, "dashboard:test-admin"),
        (AuditAction.NAME_STRANGER.value, "dashboard:test-admin"),
        (AuditAction.FORGET.value, "dashboard:test-admin"),
        (AuditAction.FORGET.value, "dashboard:test-admin"),
    ]


def test_not_this_person_undo_and_the_person_threshold(
    server: ApiServer, crops: dict[str, bytes]
) -> None:
    c = wired_server(server)
    wrong = recognize(c, crops["sarah_paulson_3"])
    assert who(wrong) == NICOLE
    rid = wrong.recognition_id
    admin = editor(server)
    live = call(server, "/ui/", headers=admin).text
    assert f'action="/ui/identifications/{rid}/reject"' in live
    reader = {"Cookie": login(server, server.reader_token)}
    assert "Not this person" not in call(server, "/ui/", headers=reader).text
    refused = post_form(
        server, f"/ui/identifications/{rid}/reject", {}, headers=reader | origin(server)
    )
    assert refused.status == 403

    # Rejected from Nicole's page: back there, with an Undo offered.
    page = f"/ui/people/{NICOLE}"
    rejected = post_form(server, f"/ui/identifications/{rid}/reject", {"next": page}, headers=admin)
    assert rejected.status == 303
    location = rejected.headers["Location"]
    assert location.startswith(page + "?")
    cid = query(location)["undo"]
    assert "not Nicole Kidman" in query(location)["notice"]
    shown = follow(server, location, admin)
    assert shown.count(f'action="/ui/corrections/{cid}/undo"') == 3  # notice, sighting, list
    assert "Not Nicole Kidman" in shown
    assert who(recognize(c, crops["sarah_paulson_3"])) is None
    assert who(recognize(c, crops["nicole_kidman_2"])) == NICOLE

    # Search applies the same rule: the look-alike is listed, but marked, and nobody is named.
    search = search_photo(server, admin, crops["sarah_paulson_3"])
    assert "Nobody: unknown." in search
    assert "corrected: not them" in search

    undone = post_form(server, f"/ui/corrections/{cid}/undo", {"next": page}, headers=admin)
    assert undone.status == 303
    assert "Correction undone" in follow(server, undone.headers["Location"], admin)
    again = post_form(server, f"/ui/corrections/{cid}/undo", {"next": page}, headers=admin)
    assert f"No correction {cid}" in query(again.headers["Location"])["error"]
    assert who(recognize(c, crops["sarah_paulson_3"])) == NICOLE
    # Nothing to undo now, and an undo id that is not a correction id is not put into a form.
    forged = call(server, page + "?notice=x&undo=%22%3E%3Cscript%3E", headers=admin).text
    assert "/ui/corrections/" not in forged
    assert "<script>" not in forged

    # Nicole's own threshold: the look-alike (~92.5) stays below 95.
    assert "80 %" in call(server, page, headers=reader).text
    strict = post_form(server, f"{page}/threshold", {"threshold": "95"}, headers=admin)
    assert "Threshold set to 95 %" in query(strict.headers["Location"])["notice"]
    assert 'id="effective-threshold">95 %' in follow(server, strict.headers["Location"], admin)
    assert c.people.corrections.threshold(NICOLE).override == 95.0
    assert who(recognize(c, crops["sarah_paulson_3"])) is None
    low = post_form(server, f"{page}/threshold", {"threshold": "40"}, headers=admin)
    assert "from 50 to 100" in query(low.headers["Location"])["error"]
    cleared = post_form(server, f"{page}/threshold", {"clear": "1"}, headers=admin)
    assert "global 80 % applies" in query(cleared.headers["Location"])["notice"]
    assert c.people.corrections.threshold(NICOLE).override is None
    nobody = post_form(server, "/ui/people/nobody/threshold", {"threshold": "90"}, headers=admin)
    assert "No user or face nobody" in query(nobody.headers["Location"])["error"]

    trail = [(a, actor) for a, actor, _ in actions(server) if a != AuditAction.PROFILE_READ.value]
    assert trail == [
        (AuditAction.CORRECT.value, "dashboard:test-admin"),
        (AuditAction.UNDO_CORRECTION.value, "dashboard:test-admin"),
        (AuditAction.THRESHOLD.value, "dashboard:test-admin"),
        (AuditAction.THRESHOLD.value, "dashboard:test-admin"),
    ]
    record = c.stores.history.ledger.get(rid)
    assert record is not None
    assert record.status is Status.IDENTIFIED


def search_photo(server: ApiServer, headers: dict[str, str], photo: bytes) -> str:
    body, content_type = multipart({"threshold": "70"}, {"photo": ("probe.jpg", photo)})
    reply = call(
        server,
        "/ui/search",
        method="POST",
        data=body,
        headers=headers | {"Content-Type": content_type},
    )
    assert reply.status == 200, reply.text
    return reply.text
