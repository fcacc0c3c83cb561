"""Hostile input over real HTTP gets a 4xx with an AWS-style code, never a 500.

Each test sends to a real server (``api_server``: uvicorn on loopback, keys
issued, SQLite stores in a private home) what once answered 500 or killed a
stream: JSON nested far deeper than any request needs, page tokens that
decode to numbers or times out of range, profiles nested hundreds of levels
deep (which were stored, and then broke every listing), and a live feed
asked to start at year 1. AWS JSON requests are signed with botocore's own
SigV4 signer, as an SDK would sign them.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.integration.api.test_dashboard import post_form
from tests.servers.facelens_api import ApiServer

DYNAMODB = ("DynamoDB_20120810.", "dynamodb", "application/x-amz-json-1.0")
REKOGNITION = ("RekognitionService.", "rekognition", "application/x-amz-json-1.1")
TABLE = "faces"


def signed(server: ApiServer, service: tuple[str, str, str], operation: str, body: bytes) -> Any:
    """POST / signed for ``service``: (status, parsed JSON answer)."""
    prefix, signing_name, content_type = service
    headers = {"X-Amz-Target": prefix + operation, "Content-Type": content_type}
    request = AWSRequest(method="POST", url=server.url + "/", data=body, headers=headers)
    credentials = Credentials(server.access_key_id, server.secret_access_key)
    SigV4Auth(credentials, signing_name, server.region).add_auth(request)
    response = requests.post(
        server.url + "/", data=body, headers=dict(request.headers.items()), timeout=30
    )
    return response.status_code, response.json()


def rest(
    server: ApiServer, method: str, path: str, *, json_body: bool = False, **kwargs: Any
) -> requests.Response:
    """A REST call as admin; ``json_body``: ``data`` is JSON text, sent as such."""
    headers = server.headers()
    if json_body:
        headers["Content-Type"] = "application/json"
    return requests.request(
        method, f"{server.url}/api/v1{path}", headers=headers, timeout=30, **kwargs
    )


def token(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


def nested(levels: int) -> Any:
    """A value ``levels`` maps deep: ``{"a": {"a": ... "leaf" ...}}``."""
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


def typed_nested(levels: int) -> bytes:
    """DynamoDB typed JSON for ``nested(levels)``, as text (json.dumps would recurse)."""
    return b'{"M":{"a":' * levels + b'{"S":"leaf"}' + b"}}" * levels


def create_table(server: ApiServer) -> None:
    body = {
        "TableName": TABLE,
        "KeySchema": [{"AttributeName": "FaceId", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "FaceId", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    status, answer = signed(server, DYNAMODB, "CreateTable", json.dumps(body).encode())
    assert status == 200, answer


def put_item(server: ApiServer, profile_id: str, deep: bytes) -> Any:
    body = (
        b'{"TableName":"'
        + TABLE.encode()
        + b'","Item":{"FaceId":{"S":"'
        + profile_id.encode()
        + b'"},"Name":{"S":"Ada"},"deep":'
        + deep
        + b"}}"
    )
    return signed(server, DYNAMODB, "PutItem", body)


# -- JSON nested deeper than a request needs --


@pytest.mark.parametrize(
    ("service", "operation"),
    [(DYNAMODB, "ListTables"), (REKOGNITION, "ListCollections"), (DYNAMODB, "PutItem")],
)
def test_a_deeply_nested_aws_body_is_a_serialization_error(
    api_server: ApiServer, service: tuple[str, str, str], operation: str
) -> None:
    status, answer = signed(api_server, service, operation, b"[" * 100_000)
    assert status == 400
    assert answer["__type"].endswith("SerializationException")
    assert "nest" in answer["message"]
    # Deep but well-formed (it parses: 500 levels are under Python's recursion limit).
    status, answer = signed(
        api_server, service, operation, b'{"x":' + b"[" * 500 + b"]" * 500 + b"}"
    )
    assert status == 400
    assert answer["__type"].endswith("SerializationException")
    status, answer = signed(api_server, DYNAMODB, "ListTables", b"{}")
    assert status == 200, answer  # the server is fine afterwards


# -- page tokens --


@pytest.mark.parametrize(
    "bad",
    [
        "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ==",  # "999999999999999999999": past SQLite's INTEGER
        base64.urlsafe_b64encode(b"-5").decode(),
        base64.urlsafe_b64encode("١٢".encode()).decode(),  # digits int() would take
        base64.urlsafe_b64encode(b"9" * 5000).decode(),  # past int()'s 4300 digits
    ],
)
def test_an_audit_token_out_of_range_is_invalid(api_server: ApiServer, bad: str) -> None:
    response = rest(api_server, "GET", "/audit", params={"next_token": bad})
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == "InvalidParameterException"


DEEP_TOKEN = base64.urlsafe_b64encode(b"[" * 5000).decode()


@pytest.mark.parametrize(
    "path",
    [
        "/collections",
        "/collections/c1/faces",
        "/collections/c1/users",
        "/profiles",
        "/identifications",
        "/identifications/unknown",
    ],
)
def test_a_token_of_deep_json_is_invalid(api_server: ApiServer, path: str) -> None:
    assert rest(api_server, "POST", "/collections", json={"CollectionId": "c1"}).ok
    response = rest(api_server, "GET", path, params={"next_token": DEEP_TOKEN})
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == "InvalidParameterException"


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "not a time"]
)
def test_an_identifications_token_with_a_time_out_of_range_is_invalid(
    api_server: ApiServer, at: str
) -> None:
    response = rest(api_server, "GET", "/identifications", params={"next_token": token([at, "r"])})
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == "InvalidParameterException"


@pytest.mark.parametrize(
    "since", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00"]
)
def test_audit_since_at_the_ends_of_time_answers(api_server: ApiServer, since: str) -> None:
    response = rest(api_server, "GET", "/audit", params={"since": since})
    assert response.status_code == 200, response.text


def test_rekognition_tokens_of_deep_json_are_invalid(api_server: ApiServer) -> None:
    assert signed(api_server, REKOGNITION, "CreateCollection", b'{"CollectionId":"c1"}')[0] == 200
    for operation, extra in [("ListCollections", ""), ("ListFaces", '"CollectionId":"c1",')]:
        body = f'{{{extra}"NextToken":"{DEEP_TOKEN}"}}'.encode()
        status, answer = signed(api_server, REKOGNITION, operation, body)
        assert (status, answer["__type"]) == (400, "InvalidParameterException"), answer


def test_a_number_too_large_for_a_float_is_invalid(api_server: ApiServer) -> None:
    body = (
        b'{"CollectionId":"c1","FaceId":"00000000-0000-0000-0000-000000000000",'
        b'"FaceMatchThreshold":1' + b"0" * 400 + b"}"
    )
    status, answer = signed(api_server, REKOGNITION, "SearchFaces", body)
    assert (status, answer["__type"]) == (400, "InvalidParameterException"), answer


def test_a_capacity_sqlite_cannot_hold_is_a_validation_error(api_server: ApiServer) -> None:
    body = {
        "TableName": "big",
        "KeySchema": [{"AttributeName": "FaceId", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "FaceId", "AttributeType": "S"}],
        "ProvisionedThroughput": {"ReadCapacityUnits": 10**30, "WriteCapacityUnits": 1},
    }
    status, answer = signed(api_server, DYNAMODB, "CreateTable", json.dumps(body).encode())
    assert status == 400
    assert answer["__type"].endswith("#ValidationException"), answer
    status, answer = signed(api_server, DYNAMODB, "DescribeTable", b'{"TableName":"big"}')
    assert answer["__type"].endswith("#ResourceNotFoundException"), answer


# -- profiles nested too deep --


def test_a_profile_nested_too_deep_is_refused_and_not_stored(api_server: ApiServer) -> None:
    # (Nested values stay out of assert statements: pytest's report of a failed assert
    # recurses into them.)
    too_deep = {"Name": "Ada", "deep": nested(300)}
    response = rest(api_server, "PUT", "/profiles/p1", json=too_deep)
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == "InvalidParameterException"
    assert "32" in response.json()["message"]
    assert rest(api_server, "GET", "/profiles/p1").status_code == 404
    unparsable = rest(
        api_server, "PUT", "/profiles/p1", data=b'{"a": ' + b"[" * 100_000, json_body=True
    )
    assert unparsable.status_code == 400, unparsable.text
    listed = rest(api_server, "GET", "/profiles")
    assert listed.status_code == 200, listed.text
    assert listed.json()["Items"] == []
    # DynamoDB's own limit: 32 levels (31 maps in an attribute) are fine, 33 are not;
    # a merge is held to it too.
    deepest, over = {"deep": nested(31)}, {"deep": nested(32)}
    assert rest(api_server, "PUT", "/profiles/p1", json=deepest).status_code == 200
    assert rest(api_server, "PUT", "/profiles/p2", json=over).status_code == 400
    merged = rest(api_server, "PATCH", "/profiles/p1", json=over)
    assert merged.status_code == 400, merged.text
    items = rest(api_server, "GET", "/profiles").json()["Items"]
    same = items == [{"UserId": "p1", **deepest}]
    assert same


@pytest.mark.parametrize("body", [b'{"Name": "\\ud800"}', b'{"\\udc00": "x"}'])
def test_a_profile_with_a_lone_surrogate_is_refused(api_server: ApiServer, body: bytes) -> None:
    """A string JSON escapes can hold but UTF-8 cannot: stored, no store could encode it."""
    for method in ("PUT", "PATCH"):
        response = rest(api_server, method, "/profiles/p1", data=body, json_body=True)
        assert response.status_code == 400, response.text
        assert response.json()["__type"] == "InvalidParameterException"
    assert rest(api_server, "GET", "/profiles/p1").status_code == 404
    emoji = rest(
        api_server, "PUT", "/profiles/p1", data=b'{"Name": "\\ud83d\\ude00"}', json_body=True
    )
    assert emoji.status_code == 200, emoji.text
    assert rest(api_server, "GET", "/profiles/p1").json()["Item"]["Name"] == "\U0001f600"


def test_a_dynamodb_item_with_a_lone_surrogate_is_a_serialization_error(
    api_server: ApiServer,
) -> None:
    create_table(api_server)
    status, answer = put_item(api_server, "s1", b'{"S": "\\ud800"}')
    assert status == 400
    assert answer["__type"].endswith("#SerializationException"), answer
    status, answer = signed(
        api_server, DYNAMODB, "GetItem", b'{"TableName":"faces","Key":{"FaceId":{"S":"\\udfff"}}}'
    )
    assert status == 400
    assert answer["__type"].endswith("#SerializationException"), answer
    status, answer = put_item(api_server, "s2", b'{"S": "\\ud83d\\ude00"}')
    assert status == 200, answer


def test_a_dynamodb_item_nested_too_deep_is_a_validation_error(api_server: ApiServer) -> None:
    create_table(api_server)
    status, answer = put_item(api_server, "d1", typed_nested(32))
    assert status == 400
    assert answer["__type"].endswith("#ValidationException"), answer
    status, answer = put_item(api_server, "d2", typed_nested(300))  # deeper than a body may be
    assert status == 400
    assert answer["__type"].endswith("#SerializationException"), answer
    status, answer = put_item(api_server, "d3", typed_nested(31))
    assert status == 200, answer
    status, answer = signed(api_server, DYNAMODB, "Scan", b'{"TableName":"faces"}')
    assert status == 200, answer
    assert [item["FaceId"]["S"] for item in answer["Items"]] == ["d3"]


def test_a_profile_stored_too_deep_before_the_limit_does_not_break_reading(
    api_server: ApiServer,
) -> None:
    """Profiles stored before the limit existed (here: written into the store's SQLite file
    as an older facelens did) are served without what is nested too deep, never a 500."""
    assert rest(api_server, "PUT", "/profiles/fine", json={"Name": "Grace"}).status_code == 200
    database = api_server.bundles.settings.profile_store_url().removeprefix("sqlite://")
    legacy = {
        "old": {"UserId": "old", "Name": "Ada", "deep": nested(300)},
        "older": '{"UserId": "older", "deep": ' + "[" * 5000 + "]" * 5000 + "}",
    }
    with sqlite3.connect(database) as conn:
        for profile_id, item in legacy.items():
            text = item if isinstance(item, str) else json.dumps(item)
            conn.execute(
                "INSERT INTO profiles VALUES (?, ?, ?)",
                (profile_id, text, "2024-01-01T00:00:00+00:00"),
            )
    listed = rest(api_server, "GET", "/profiles")
    assert listed.status_code == 200, listed.text
    assert listed.json()["Items"] == [
        {"UserId": "fine", "Name": "Grace"},
        {"UserId": "old", "Name": "Ada"},
        {"UserId": "older"},
    ]
    one = rest(api_server, "GET", "/profiles/old")
    assert one.status_code == 200, one.text
    assert one.json()["Item"] == {"UserId": "old", "Name": "Ada"}
    create_table(api_server)
    status, answer = signed(api_server, DYNAMODB, "Scan", b'{"TableName":"faces"}')
    assert status == 200, answer
    assert answer["Count"] == 3
    # Putting it again (or deleting it) repairs it.
    assert rest(api_server, "PATCH", "/profiles/old", json={"Bio": "x"}).status_code == 200
    assert rest(api_server, "DELETE", "/profiles/older").status_code == 204


# -- the live feed's start --


def open_feed(server: ApiServer, query: str, headers: dict[str, str] | None = None) -> Any:
    """(status, JSON error) of ``/ui/feed``; a stream that starts is closed unread."""
    request = urllib.request.Request(
        f"{server.url}/ui/feed?{query}", headers={**server.headers(), **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as stream:
            return stream.status, None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    "after",
    ["0001-01-01T00:00:00", "9999-12-31T23:59:59-01:00", "yesterday", "2024-13-01T00:00:00"],
)
def test_a_feed_start_out_of_range_or_not_a_time_is_a_validation_error(
    api_server: ApiServer, after: str
) -> None:
    status, answer = open_feed(api_server, urllib.parse.urlencode({"after": after}))
    assert status == 400
    assert answer["__type"] == "ValidationException"
    assert "after" in answer["message"]


def test_a_bad_last_event_id_is_a_validation_error(api_server: ApiServer) -> None:
    status, answer = open_feed(api_server, "", headers={"Last-Event-ID": "0001-01-01T00:00:00"})
    assert status == 400
    assert answer["__type"] == "ValidationException"
    assert open_feed(api_server, "after=2024-05-01T10:00:00Z")[0] == 200


# -- dashboard forms --


def test_a_profile_form_with_a_non_ascii_digit_is_not_a_500(api_server: ApiServer) -> None:
    collection = api_server.bundles.settings.recognizer.collection_id
    assert rest(api_server, "POST", "/collections", json={"CollectionId": collection}).ok
    created = rest(api_server, "POST", f"/collections/{collection}/users", json={"UserId": "ada"})
    assert created.ok, created.text
    for remove in ("²", "9" * 10):
        reply = post_form(
            api_server,
            "/ui/people/ada/profile",
            {"field_name": "Name", "field_value": "Ada", "remove": remove},
            headers={**api_server.headers(), "Origin": api_server.url},
        )
        assert reply.status == 303, reply.text
