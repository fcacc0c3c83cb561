"""The DynamoDB profile store without a network: its URL, its items, its page tokens, its errors.

A stand-in client answers like DynamoDB (typed JSON in and out) and records
each request, so the exact PutItem / UpdateItem / Scan arguments, and what
the caller is told, can be checked. The same behaviours on the wire run
against moto in tests/integration/test_dynamodb_profiles.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoRegionError

from facelens.errors import (
    ConfigurationError,
    InvalidParameterException,
    ResourceNotFoundException,
    ServiceUnavailableException,
    StorageError,
)
from facelens.profiles.dynamodb_store import UPDATED_AT, DynamoDBProfileStore
from facelens.profiles.registry import open_profile_store

FACE = "11111111-2222-4333-8444-555555555555"


class FakeDynamoDB:
    """A dict of typed items keyed by ``key``'s string value; ``error``: raised on every call."""

    def __init__(self, key: str = "FaceId", error: Exception | None = None) -> None:
        self.key = key
        self.items: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.error = error
        self.updated: dict[str, Any] = {}
        """What UpdateItem answers with (ALL_NEW)."""

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        self._record("UpdateItem", kwargs)
        return {"Attributes": self.updated}

    def _record(self, operation: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((operation, kwargs))
        if self.error is not None:
            raise self.error

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self._record("PutItem", kwargs)
        self.items[kwargs["Item"][self.key]["S"]] = kwargs["Item"]
        return {}

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        self._record("GetItem", kwargs)
        found = self.items.get(kwargs["Key"][self.key]["S"])
        return {} if found is None else {"Item": found}

    def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        self._record("DeleteItem", kwargs)
        found = self.items.pop(kwargs["Key"][self.key]["S"], None)
        return {} if found is None else {"Attributes": found}

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        """In reverse id order, to show that the store sorts each page itself."""
        self._record("Scan", kwargs)
        ids = sorted(self.items, reverse=True)
        start = kwargs.get("ExclusiveStartKey")
        if start is not None:
            ids = [i for i in ids if i < start[self.key]["S"]]
        page = ids[: kwargs["Limit"]]
        response: dict[str, Any] = {"Items": [self.items[i] for i in page]}
        if len(page) == kwargs["Limit"]:
            response["LastEvaluatedKey"] = {self.key: {"S": page[-1]}}
        return response

    def close(self) -> None:
        pass


def client_error(code: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": f"{code} said no"}}
    return ClientError(response, "GetItem")


@pytest.mark.parametrize(
    ("url", "table", "key", "region", "endpoint_url"),
    [
        ("dynamodb://profiles", "profiles", "FaceId", None, None),
        ("dynamodb://Face_Profiles.v2/", "Face_Profiles.v2", "FaceId", None, None),
        (
            "dynamodb://profiles?region=eu-west-1&endpoint_url=http://127.0.0.1:8000&key=UserId",
            "profiles",
            "UserId",
            "eu-west-1",
            "http://127.0.0.1:8000",
        ),
    ],
)
def test_urls(url: str, table: str, key: str, region: str | None, endpoint_url: str | None) -> None:
    store = open_profile_store(url)
    assert isinstance(store, DynamoDBProfileStore)
    assert (store.table, store.key) == (table, key)
    assert store.aws.options.region == region
    assert store.aws.options.endpoint_url == endpoint_url


@pytest.mark.parametrize(
    "url",
    [
        "dynamodb://",
        "dynamodb://ab",
        "dynamodb://" + "t" * 256,
        "dynamodb://pro files",
        "dynamodb://profiles/more",
        "dynamodb://profiles#x",
        "dynamodb://profiles?tabel=x",
        "dynamodb://profiles?key=",
        "dynamodb://profiles?key=a&key=b",
        "dynamodb://profiles?endpoint_url=ftp://host",
        "dynamodb://profiles?key=_updated_at",
        "dynamodb://profiles:8000",
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_profile_store(url)


def test_put_stores_the_id_under_the_table_key_and_hides_it_again() -> None:
    fake = FakeDynamoDB()
    store = DynamoDBProfileStore("profiles", client=fake)
    put = store.put("obama", {"Name": "Barack", "Score": 9.5, "Terms": [2009, 2013]})
    operation, request = fake.calls[-1]
    assert operation == "PutItem"
    assert request["TableName"] == "profiles"
    assert request["Item"] == {
        "FaceId": {"S": "obama"},
        "UserId": {"S": "obama"},
        "Name": {"S": "Barack"},
        "Score": {"N": "9.5"},
        "Terms": {"L": [{"N": "2009"}, {"N": "2013"}]},
        UPDATED_AT: {"S": put.updated_at.isoformat()},
    }
    got = store.get("obama")
    assert fake.calls[-1][1]["ConsistentRead"] is True
    assert got == put
    assert got.item == {"UserId": "obama", "Name": "Barack", "Score": 9.5, "Terms": [2009, 2013]}


def test_a_face_id_is_its_own_key() -> None:
    fake = FakeDynamoDB()
    store = DynamoDBProfileStore("profiles", client=fake)
    store.put(FACE, {"Name": "Face"})
    assert set(fake.calls[-1][1]["Item"]) == {"FaceId", "Name", UPDATED_AT}
    got = store.get(FACE)
    assert got is not None
    assert got.item == {"FaceId": FACE, "Name": "Face"}


def test_update_is_one_set_expression_with_placeholders() -> None:
    fake = FakeDynamoDB()
    store = DynamoDBProfileStore("profiles", client=fake)
    fake.updated = {"FaceId": {"S": "a b"}, "UserId": {"S": "a b"}, "x.y": {"N": "1"}}
    updated = store.update("a b", {"x.y": 1})
    operation, request = fake.calls[-1]
    assert operation == "UpdateItem"
    assert request["Key"] == {"FaceId": {"S": "a b"}}
    assert request["ReturnValues"] == "ALL_NEW"
    names = request["ExpressionAttributeNames"]
    assert sorted(names.values()) == sorted(["x.y", "UserId", UPDATED_AT])
    assert request["UpdateExpression"].startswith("SET ")
    for placeholder in names:
        assert f"{placeholder} = :v" in request["UpdateExpression"]
    assert updated.item == {"UserId": "a b", "x.y": 1}
    assert updated.updated_at.timestamp() == 0, "an item without _updated_at: the epoch"


def test_pages_are_sorted_and_tokens_carry_the_last_evaluated_key() -> None:
    fake = FakeDynamoDB()
    store = DynamoDBProfileStore("profiles", client=fake)
    for n in range(5):
        store.put(f"user-{n}", {"N": n})
    first = store.list(max_results=2)
    assert fake.calls[-1][1]["Limit"] == 3, "one more than asked, to spot the last page"
    assert fake.calls[-1][1]["ConsistentRead"] is True
    assert [p.profile_id for p in first.profiles] == ["user-3", "user-4"]
    assert first.next_token is not None
    state = json.loads(base64.urlsafe_b64decode(first.next_token))
    assert state == {"c": "dynamodb:profiles", "k": "FaceId", "after": "user-3"}
    second = store.list(max_results=2, next_token=first.next_token)
    assert fake.calls[-1][1]["ExclusiveStartKey"] == {"FaceId": {"S": "user-3"}}
    assert [p.profile_id for p in second.profiles] == ["user-1", "user-2"]
    last = store.list(max_results=2, next_token=second.next_token)
    assert [p.profile_id for p in last.profiles] == ["user-0"]
    assert last.next_token is None


def test_a_page_cut_short_by_dynamodb_still_has_a_token() -> None:
    fake = FakeDynamoDB()
    store = DynamoDBProfileStore("profiles", client=fake)
    store.put("anna", {})
    fake.scan = lambda **kwargs: {  # type: ignore[method-assign]
        "Items": [fake.items["anna"]],
        "LastEvaluatedKey": {"FaceId": {"S": "anna"}},  # the 1 MB limit
    }
    page = store.list(max_results=10)
    assert len(page.profiles) == 1
    assert page.next_token is not None


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        base64.urlsafe_b64encode(b'{"c":"profiles","k":"profile_id","after":"a"}').decode(),
        base64.urlsafe_b64encode(b'{"c":"dynamodb:other","k":"FaceId","after":"a"}').decode(),
        base64.urlsafe_b64encode(b'{"c":"dynamodb:profiles","k":"UserId","after":"a"}').decode(),
    ],
)
def test_foreign_tokens_are_refused(token: str) -> None:
    fake = FakeDynamoDB()
    store = DynamoDBProfileStore("profiles", client=fake)
    with pytest.raises(InvalidParameterException):
        store.list(next_token=token)
    assert fake.calls == []


def test_a_table_without_the_string_key_is_a_storage_error() -> None:
    fake = FakeDynamoDB()
    store = DynamoDBProfileStore("profiles", client=fake)
    fake.items["x"] = {"Id": {"N": "1"}}
    with pytest.raises(StorageError, match="key"):
        store.get("x")


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (client_error("ResourceNotFoundException"), ResourceNotFoundException),
        (client_error("ProvisionedThroughputExceededException"), ServiceUnavailableException),
        (client_error("ThrottlingException"), ServiceUnavailableException),
        (client_error("InternalServerError"), ServiceUnavailableException),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), ServiceUnavailableException),
        (client_error("ValidationException"), InvalidParameterException),
        (client_error("AccessDeniedException"), StorageError),
        (client_error("UnrecognizedClientException"), StorageError),
        (NoRegionError(), ConfigurationError),
    ],
)
def test_errors_are_mapped(error: Exception, raised: type[Exception]) -> None:
    store = DynamoDBProfileStore("profiles", client=FakeDynamoDB(error=error))
    with pytest.raises(raised) as caught:
        store.get("anna")
    assert caught.value.__cause__ is error
    if raised is StorageError:
        assert not isinstance(caught.value, ServiceUnavailableException)


def test_nothing_is_sent_for_items_refused_here() -> None:
    fake = FakeDynamoDB()
    store = DynamoDBProfileStore("profiles", client=fake)
    refused: list[tuple[str, dict[str, Any]]] = [
        ("anna", {"FaceId": FACE}),
        ("anna", {UPDATED_AT: "now"}),
        ("anna", {"Huge": 10**40}),
        ("anna", {"Tiny": 1e-200}),
        ("", {}),
    ]
    for profile_id, attributes in refused:
        with pytest.raises(InvalidParameterException):
            store.put(profile_id, attributes)
    with pytest.raises(InvalidParameterException):
        store.list(max_results=0)
    assert fake.calls == []
