"""The audit log over real HTTP: who enrolled, changed and read what, through each entry point.

A real server (``api_server``) with an admin key, a read-only key and a
SigV4 access key; enrolments run the real face engine on the test photos.
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

from facelens.history.audit import pseudonym
from tests.integration.api.test_dashboard import call as page_call
from tests.integration.api.test_dashboard import login
from tests.servers.facelens_api import ApiServer

COLLECTION = "audited"


def photo(testdata: Path, person: str, n: int = 0) -> bytes:
    return sorted((testdata / "people" / person).glob("*.jpg"))[n].read_bytes()


def rest(
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
        f"{server.url}/api/v1{path}",
        headers=server.headers(token=token),
        timeout=120,
        **kwargs,
    )
    assert response.status_code == expect, response.text
    return response.json() if response.content else None


def audit(server: ApiServer, **query: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = rest(server, "GET", "/audit", params=query)["Entries"]
    return entries


def enrol(server: ApiServer, testdata: Path, person: str) -> str:
    indexed = rest(
        server,
        "POST",
        f"/collections/{COLLECTION}/faces",
        files={"image": (f"{person}.jpg", photo(testdata, person), "image/jpeg")},
        data={"ExternalImageId": person},
        expect=201,
    )
    face_id: str = indexed["FaceRecords"][0]["Face"]["FaceId"]
    return face_id


def client(server: ApiServer, service: str) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=server.url,
        region_name=server.region,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.mark.slow
def test_rest_enrolment_and_reads_name_their_key(api_server: ApiServer, testdata: Path) -> None:
    rest(api_server, "POST", "/collections", json={"CollectionId": COLLECTION}, expect=201)
    face_id = enrol(api_server, testdata, "obama")
    rest(api_server, "PUT", f"/profiles/{face_id}", json={"Name": "Barack Obama"})
    rest(api_server, "GET", f"/profiles/{face_id}", token=api_server.reader_token)

    (enrolment,) = audit(api_server, action="enrol")
    assert enrolment["Actor"] == "api-key:test-admin"
    assert enrolment["Target"] == face_id
    assert enrolment["CollectionId"] == COLLECTION
    assert enrolment["Details"]["FaceIds"] == [face_id]
    (read,) = audit(api_server, action="profile-read")
    assert read["Actor"] == "api-key:test-reader"
    assert read["Target"] == face_id
    (written,) = audit(api_server, action="profile-write")
    assert written["Actor"] == "api-key:test-admin"
    assert written["Details"]["Attributes"] == ["Name"]

    # Filters and pages; newest first.
    assert [e["Action"] for e in audit(api_server, target=face_id)] == [
        "profile-read",
        "profile-write",
        "enrol",
    ]
    assert audit(api_server, actor="api-key:test-reader") == [read]
    assert audit(api_server, since=(datetime.now(UTC) + timedelta(hours=1)).isoformat()) == []
    first = rest(api_server, "GET", "/audit", params={"max_results": 2})
    assert len(first["Entries"]) == 2
    rest_of = rest(
        api_server, "GET", "/audit", params={"max_results": 2, "next_token": first["NextToken"]}
    )
    assert "NextToken" not in rest_of
    ids = [e["EntryId"] for e in first["Entries"] + rest_of["Entries"]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 3


def test_only_admins_read_the_audit_log(api_server: ApiServer) -> None:
    refused = rest(api_server, "GET", "/audit", token=api_server.reader_token, expect=403)
    assert refused["__type"] == "AccessDeniedException"
    unauthenticated = requests.get(f"{api_server.url}/api/v1/audit", timeout=10)
    assert unauthenticated.status_code == 401
    bad = rest(api_server, "GET", "/audit", params={"next_token": "%%%"}, expect=400)
    assert bad["__type"] == "InvalidParameterException"
    assert rest(api_server, "GET", "/audit", params={"action": "look"}, expect=400)


@pytest.mark.slow
def test_sdk_calls_name_the_access_key(api_server: ApiServer, testdata: Path) -> None:
    rekognition = client(api_server, "rekognition")
    rekognition.create_collection(CollectionId=COLLECTION)
    indexed = rekognition.index_faces(
        CollectionId=COLLECTION,
        Image={"Bytes": photo(testdata, "biden")},
        ExternalImageId="biden",
        MaxFaces=1,
    )
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    rekognition.search_faces(CollectionId=COLLECTION, FaceId=face_id)  # a search: not recorded

    dynamodb = client(api_server, "dynamodb")
    dynamodb.create_table(
        TableName="people",
        KeySchema=[{"AttributeName": "FaceId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "FaceId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    key = {"FaceId": {"S": face_id}}
    dynamodb.put_item(TableName="people", Item={**key, "Name": {"S": "Joe Biden"}})
    assert dynamodb.get_item(TableName="people", Key=key)["Item"]["Name"] == {"S": "Joe Biden"}
    dynamodb.scan(TableName="people")
    dynamodb.scan(TableName="people", Select="COUNT")  # no profile read: not recorded
    dynamodb.delete_item(TableName="people", Key=key)

    entries = audit(api_server, actor="access-key:test-sdk")
    assert [(e["Action"], e["Target"]) for e in reversed(entries)] == [
        ("enrol", face_id),
        ("profile-write", face_id),
        ("profile-read", face_id),
        ("profile-read", "*"),
        ("profile-delete", face_id),
    ]
    assert entries[-1]["Details"] == {
        "FaceIds": [face_id],
        "Via": "IndexFaces",
        "ExternalImageId": "biden",
    }
    assert entries[1]["Details"] == {"Table": "people", "Via": "Scan", "ProfileIds": [face_id]}
    assert entries[2]["Details"]["Found"] is True


@pytest.mark.slow
def test_forgetting_a_person_leaves_only_a_pseudonym(api_server: ApiServer, testdata: Path) -> None:
    rest(api_server, "POST", "/collections", json={"CollectionId": COLLECTION}, expect=201)
    face_id = enrol(api_server, testdata, "obama")
    rest(
        api_server,
        "POST",
        f"/collections/{COLLECTION}/users",
        json={"UserId": "barack"},
        expect=201,
    )
    rest(
        api_server,
        "POST",
        f"/collections/{COLLECTION}/users/barack/faces",
        json={"FaceIds": [face_id]},
    )
    rest(api_server, "PUT", "/profiles/barack", json={"Name": "Barack Obama"})
    assert len(audit(api_server, target="barack")) == 3

    rest(api_server, "DELETE", f"/collections/{COLLECTION}/users/barack", params={"forget": "true"})

    assert audit(api_server, target="barack") == []
    assert audit(api_server, target=face_id) == []
    (forgot,) = audit(api_server, action="forget")
    assert forgot["Target"] == pseudonym("barack")
    assert forgot["Actor"] == "api-key:test-admin"
    assert forgot["Details"]["Faces"] == 1
    everything = str(audit(api_server))
    assert "barack" not in everything
    assert face_id not in everything
    # Accountability stays: who did what is still there, under the pseudonyms.
    assert [e["Action"] for e in audit(api_server, target=pseudonym("barack"))] == [
        "forget",
        "profile-write",
        "enrol",
        "create-user",
    ]


@pytest.mark.slow
def test_the_dashboard_names_the_logged_in_key(api_server: ApiServer, testdata: Path) -> None:
    rest(api_server, "POST", "/collections", json={"CollectionId": "faces"}, expect=201)
    indexed = rest(
        api_server,
        "POST",
        "/collections/faces/faces",
        files={"image": ("a.jpg", photo(testdata, "obama"), "image/jpeg")},
        expect=201,
    )
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    rest(api_server, "POST", "/collections/faces/users", json={"UserId": "barack"}, expect=201)
    rest(api_server, "POST", "/collections/faces/users/barack/faces", json={"FaceIds": [face_id]})
    rest(api_server, "PUT", "/profiles/barack", json={"Name": "Barack Obama"})

    session = login(api_server, api_server.reader_token)
    page = page_call(
        api_server, "/ui/people/" + urllib.parse.quote("barack"), headers={"Cookie": session}
    )
    assert page.status == 200, page.text
    (read,) = audit(api_server, action="profile-read")
    assert read["Actor"] == "dashboard:test-reader"
    assert read["Target"] == "barack"


def test_rest_create_user_is_recorded(api_server: ApiServer) -> None:
    rest(api_server, "POST", "/collections", json={"CollectionId": COLLECTION}, expect=201)
    rest(
        api_server,
        "POST",
        f"/collections/{COLLECTION}/users",
        json={"UserId": "barack"},
        expect=201,
    )
    (created,) = audit(api_server, action="create-user")
    assert (created["Actor"], created["Target"]) == ("api-key:test-admin", "barack")
    assert created["CollectionId"] == COLLECTION


@pytest.mark.slow
def test_sdk_user_changes_and_old_items_are_recorded(api_server: ApiServer, testdata: Path) -> None:
    rekognition = client(api_server, "rekognition")
    rekognition.create_collection(CollectionId=COLLECTION)
    indexed = rekognition.index_faces(
        CollectionId=COLLECTION, Image={"Bytes": photo(testdata, "biden")}, MaxFaces=1
    )
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    rekognition.create_user(CollectionId=COLLECTION, UserId="joe")
    rekognition.associate_faces(CollectionId=COLLECTION, UserId="joe", FaceIds=[face_id])
    rekognition.disassociate_faces(CollectionId=COLLECTION, UserId="joe", FaceIds=[face_id])

    dynamodb = client(api_server, "dynamodb")
    dynamodb.create_table(
        TableName="people",
        KeySchema=[{"AttributeName": "FaceId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "FaceId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    key = {"FaceId": {"S": face_id}}
    dynamodb.put_item(TableName="people", Item={**key, "Name": {"S": "Joe"}})
    replaced = dynamodb.put_item(
        TableName="people", Item={**key, "Name": {"S": "Joe Biden"}}, ReturnValues="ALL_OLD"
    )
    assert replaced["Attributes"]["Name"] == {"S": "Joe"}
    deleted = dynamodb.delete_item(TableName="people", Key=key, ReturnValues="ALL_OLD")
    assert deleted["Attributes"]["Name"] == {"S": "Joe Biden"}

    entries = audit(api_server, actor="access-key:test-sdk")
    assert [(e["Action"], e["Target"]) for e in reversed(entries)] == [
        ("enrol", face_id),
        ("create-user", "joe"),
        ("enrol", "joe"),
        ("disassociate", "joe"),
        ("profile-write", face_id),
        ("profile-write", face_id),
        ("profile-read", face_id),  # the old item PutItem handed back
        ("profile-delete", face_id),
        ("profile-read", face_id),  # the item DeleteItem handed back
    ]
    assert entries[5]["Details"] == {"Via": "DisassociateFaces", "FaceIds": [face_id]}
    assert entries[2]["Details"] == {"Table": "people", "Via": "PutItem"}
    assert entries[0]["Details"] == {"Table": "people", "Via": "DeleteItem"}


def test_the_dashboards_lists_of_names_are_one_read_each(api_server: ApiServer) -> None:
    rest(api_server, "POST", "/collections", json={"CollectionId": "faces"}, expect=201)
    for user in ("barack", "joe"):
        rest(api_server, "POST", "/collections/faces/users", json={"UserId": user}, expect=201)
    rest(api_server, "PUT", "/profiles/barack", json={"Name": "Barack Obama"})

    session = login(api_server, api_server.reader_token)
    page = page_call(api_server, "/ui/people", headers={"Cookie": session})
    assert page.status == 200, page.text
    assert "Barack Obama" in page.text
    # The names to pick from, for an unknown face and for a stranger.
    for path in ("/ui/unknown", "/ui/strangers"):
        page = page_call(api_server, path, headers={"Cookie": session})
        assert page.status == 200, page.text

    reads = audit(api_server, action="profile-read")
    assert [(e["Actor"], e["Target"], e["Details"]) for e in reversed(reads)] == [
        ("dashboard:test-reader", "*", {"Via": f"dashboard {name}", "ProfileIds": ["barack"]})
        for name in ("people", "unknown", "strangers")
    ]
