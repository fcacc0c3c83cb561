"""What only the DynamoDB profile store has: its table, its key, its endpoint, its errors.

The behaviours every store shares run in test_profile_stores.py (on moto's
DynamoDB too); here, moto in server mode shows what lands in the table and
how a missing table, a dead endpoint and a bad URL are reported.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from facelens.aws_clients import AwsClientOptions
from facelens.errors import (
    ConfigurationError,
    InvalidParameterException,
    ResourceNotFoundException,
    ServiceUnavailableException,
)
from facelens.profiles.dynamodb_store import CLIENT_OPTIONS, DynamoDBProfileStore
from facelens.profiles.registry import open_profile_store
from tests.servers.moto import REGION

FACE = "11111111-2222-4333-8444-555555555555"


def at(endpoint: str, **limits: Any) -> AwsClientOptions:
    """The store's own client options (its timeouts), pointed at ``endpoint`` in REGION."""
    return replace(CLIENT_OPTIONS, region=REGION, endpoint_url=endpoint, **limits)


def create_table(endpoint: str, *, key: str = "FaceId", sort_key: str | None = None) -> str:
    """A fresh on-demand table keyed by ``key`` (a string) on the moto server; its name."""
    import boto3

    name = f"profiles-{uuid.uuid4().hex[:16]}"
    schema = [{"AttributeName": key, "KeyType": "HASH"}]
    definitions = [{"AttributeName": key, "AttributeType": "S"}]
    if sort_key is not None:
        schema.append({"AttributeName": sort_key, "KeyType": "RANGE"})
        definitions.append({"AttributeName": sort_key, "AttributeType": "S"})
    client = boto3.session.Session().client("dynamodb", endpoint_url=endpoint, region_name=REGION)
    try:
        client.create_table(
            TableName=name,
            KeySchema=schema,
            AttributeDefinitions=definitions,
            BillingMode="PAY_PER_REQUEST",
        )
    finally:
        client.close()
    return name


@pytest.fixture
def dynamodb_table_url(moto_server: str, aws_env: dict[str, str]) -> str:
    """``dynamodb://`` URL of a fresh FaceId-keyed table on the moto server."""
    return f"dynamodb://{create_table(moto_server)}?endpoint_url={moto_server}&region={REGION}"


@pytest.fixture
def raw(moto_server: str, aws_env: dict[str, str]) -> Iterator[Any]:
    """A plain boto3 client, to see the table as other tools see it."""
    import boto3

    client = boto3.session.Session().client(
        "dynamodb", endpoint_url=moto_server, region_name=REGION
    )
    yield client
    client.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_the_table_holds_the_recipes_items(
    moto_server: str, aws_env: dict[str, str], raw: Any
) -> None:
    table = create_table(moto_server)
    store = DynamoDBProfileStore(table, aws=at(moto_server))
    put = store.put(FACE, {"Name": "Barack Obama", "Score": 9.5})
    store.put("obama", {"Name": "Barack Obama"})
    face = raw.get_item(TableName=table, Key={"FaceId": {"S": FACE}})["Item"]
    assert face["FaceId"] == {"S": FACE}
    assert face["Name"] == {"S": "Barack Obama"}
    assert face["Score"] == {"N": "9.5"}
    assert face["_updated_at"] == {"S": put.updated_at.isoformat()}
    user = raw.get_item(TableName=table, Key={"FaceId": {"S": "obama"}})["Item"]
    assert user["UserId"] == {"S": "obama"}, "the item keeps its own key attribute"
    got = store.get("obama")
    assert got is not None
    assert got.item == {"UserId": "obama", "Name": "Barack Obama"}, "the table key is hidden"
    store.close()


def test_items_written_by_other_tools_read_back(
    moto_server: str, aws_env: dict[str, str], raw: Any
) -> None:
    table = create_table(moto_server)
    raw.put_item(
        TableName=table,
        Item={"FaceId": {"S": FACE}, "Name": {"S": "Ann"}, "Tags": {"SS": ["b", "a"]}},
    )
    raw.put_item(TableName=table, Item={"FaceId": {"S": "ann"}, "Age": {"N": "40"}})
    store = open_profile_store(f"dynamodb://{table}?endpoint_url={moto_server}&region={REGION}")
    face = store.get(FACE)
    assert face is not None
    assert face.item == {"FaceId": FACE, "Name": "Ann", "Tags": ["a", "b"]}
    assert face.updated_at.timestamp() == 0, "unknown: the epoch"
    user = store.get("ann")
    assert user is not None
    assert user.item == {"UserId": "ann", "Age": 40}
    store.close()


def test_a_table_keyed_by_another_attribute(
    moto_server: str, aws_env: dict[str, str], raw: Any
) -> None:
    table = create_table(moto_server, key="UserId")
    url = f"dynamodb://{table}?endpoint_url={moto_server}&region={REGION}&key=UserId"
    store = open_profile_store(url)
    store.put(FACE, {"Name": "Face"})
    store.put("zoë", {"FaceId": FACE, "Name": "Zoë"})  # a UserId item may name its face
    stored = raw.get_item(TableName=table, Key={"UserId": {"S": FACE}})["Item"]
    assert stored["FaceId"] == {"S": FACE}
    face = store.get(FACE)
    assert face is not None
    assert face.item == {"FaceId": FACE, "Name": "Face"}
    user = store.get("zoë")
    assert user is not None
    assert user.item == {"UserId": "zoë", "FaceId": FACE, "Name": "Zoë"}
    assert store.delete(FACE) is True
    assert [p.profile_id for p in store.list().profiles] == ["zoë"]
    store.close()


def test_attributes_the_table_key_or_the_timestamp_would_clobber_are_refused(
    dynamodb_table_url: str,
) -> None:
    store = open_profile_store(dynamodb_table_url)
    with pytest.raises(InvalidParameterException, match="FaceId"):
        store.put("obama", {"FaceId": FACE})
    with pytest.raises(InvalidParameterException, match="_updated_at"):
        store.update("obama", {"_updated_at": "yesterday"})
    assert store.get("obama") is None
    store.close()


def test_numbers_dynamodb_cannot_hold_are_invalid_parameters(dynamodb_table_url: str) -> None:
    store = open_profile_store(dynamodb_table_url)
    with pytest.raises(InvalidParameterException):
        store.put("anna", {"Huge": 10**40})
    with pytest.raises(InvalidParameterException):
        store.update("anna", {"Huge": 1e300})
    store.close()


def test_page_tokens_are_opaque_and_bound_to_the_table(
    moto_server: str, aws_env: dict[str, str]
) -> None:
    first = DynamoDBProfileStore(create_table(moto_server), aws=at(moto_server))
    other = DynamoDBProfileStore(create_table(moto_server), aws=at(moto_server))
    for i in range(3):
        first.put(f"user-{i}", {"N": i})
    page = first.list(max_results=2)
    assert page.next_token is not None
    assert "user-" not in page.next_token
    rest = first.list(max_results=2, next_token=page.next_token)
    assert len(page.profiles) + len(rest.profiles) == 3
    assert rest.next_token is None, "a page that ends the table has no token"
    with pytest.raises(InvalidParameterException):
        other.list(next_token=page.next_token)
    first.close()
    other.close()


def test_a_missing_table_is_resource_not_found(moto_server: str, aws_env: dict[str, str]) -> None:
    store = DynamoDBProfileStore("no-such-table", aws=at(moto_server))
    calls: list[Callable[[], object]] = [
        lambda: store.get("anna"),
        lambda: store.put("anna", {}),
        lambda: store.update("anna", {"A": 1}),
        lambda: store.delete("anna"),
        lambda: store.list(),
    ]
    for call in calls:
        with pytest.raises(ResourceNotFoundException, match="no-such-table"):
            call()
    store.close()


def test_a_table_with_a_sort_key_is_refused(moto_server: str, aws_env: dict[str, str]) -> None:
    table = create_table(moto_server, sort_key="Version")
    store = DynamoDBProfileStore(table, aws=at(moto_server))
    with pytest.raises(InvalidParameterException):
        store.get("anna")
    store.close()


def test_the_wrong_key_name_is_reported(moto_server: str, aws_env: dict[str, str]) -> None:
    table = create_table(moto_server, key="UserId")
    store = DynamoDBProfileStore(table, aws=at(moto_server))  # key FaceId
    with pytest.raises(InvalidParameterException, match=table):
        store.get("anna")
    with pytest.raises(InvalidParameterException, match=table):
        store.put(FACE, {})
    store.close()


def test_an_unreachable_endpoint_is_service_unavailable_quickly(aws_env: dict[str, str]) -> None:
    store = DynamoDBProfileStore(
        "profiles",
        aws=at(
            f"http://127.0.0.1:{_closed_port()}",
            connect_timeout=0.5,
            read_timeout=1,
            max_attempts=2,
        ),
    )
    started = time.monotonic()
    for call in (lambda: store.get("anna"), lambda: store.put("anna", {}), store.list):
        with pytest.raises(ServiceUnavailableException) as raised:
            call()
        assert raised.value.code == "ServiceUnavailableException"
    assert time.monotonic() - started < 15
    store.close()


def test_an_endpoint_that_never_answers_is_service_unavailable(aws_env: dict[str, str]) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts; nobody answers
        store = DynamoDBProfileStore(
            "profiles",
            aws=at(f"http://127.0.0.1:{silent.getsockname()[1]}", read_timeout=0.5, max_attempts=1),
        )
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableException):
            store.get("anna")
        assert time.monotonic() - started < 5
        store.close()


def test_opening_needs_no_network(aws_env: dict[str, str]) -> None:
    store = open_profile_store("dynamodb://profiles?endpoint_url=http://127.0.0.1:1")
    assert isinstance(store, DynamoDBProfileStore)
    store.close()


@pytest.mark.parametrize(
    "url",
    [
        "dynamodb://",
        "dynamodb://ab",
        "dynamodb://bad table",
        "dynamodb://profiles/extra",
        "dynamodb://profiles?table=other",
        "dynamodb://profiles?region=",
        "dynamodb://profiles?region=a&region=b",
        "dynamodb://profiles?endpoint_url=localhost:8000",
        "dynamodb://profiles?key=_updated_at",
        "dynamodb://user:pw@profiles",
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_profile_store(url)
