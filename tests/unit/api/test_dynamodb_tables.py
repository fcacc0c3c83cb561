"""The DynamoDB endpoint's table catalogue and CreateTable's rules, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from facelens.api.aws.dynamodb import error_type
from facelens.api.aws.dynamodb_tables import (
    TableCatalogue,
    describe,
    table_from_request,
    table_name,
)
from facelens.errors import (
    InvalidSignatureException,
    ResourceInUseException,
    ResourceNotFoundException,
    ValidationException,
)


def request(key: str = "FaceId", **changes: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "TableName": "facerecognition",
        "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
        "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 2},
    }
    params.update(changes)
    return params


@pytest.fixture
def catalogue(tmp_path: Path) -> TableCatalogue:
    return TableCatalogue(tmp_path / "home" / "dynamodb-tables.db")


def test_create_get_list_delete(catalogue: TableCatalogue, tmp_path: Path) -> None:
    table = catalogue.create(table_from_request(request(), now=1_700_000_000.1234))
    assert table.created_at == 1_700_000_000.123
    assert catalogue.get("facerecognition") == table
    assert catalogue.require("facerecognition") == table
    # Another catalogue on the same file (another process, a restart) sees it.
    assert TableCatalogue(catalogue.path).get("facerecognition") == table

    with pytest.raises(ResourceInUseException):
        catalogue.create(table_from_request(request()))
    for name in ("people", "zeta", "alpha"):
        catalogue.create(table_from_request(request(TableName=name)))
    assert catalogue.names() == (["alpha", "facerecognition", "people", "zeta"], False)
    assert catalogue.names(limit=2) == (["alpha", "facerecognition"], True)
    assert catalogue.names(after="facerecognition", limit=2) == (["people", "zeta"], False)

    assert catalogue.delete("people").name == "people"
    assert catalogue.get("people") is None
    with pytest.raises(ResourceNotFoundException, match="Requested resource not found"):
        catalogue.delete("people")
    with pytest.raises(ResourceNotFoundException, match="Requested resource not found"):
        catalogue.require("missing")


@pytest.mark.parametrize("name", ["ab", "x" * 256, "has space", "slash/es", "", None, 7])
def test_table_names(name: Any) -> None:
    with pytest.raises(ValidationException, match="tableName"):
        table_name(name)


def test_table_name_edges() -> None:
    assert table_name("a.b") == "a.b"
    assert table_name("A_b-9." + "x" * 249) == "A_b-9." + "x" * 249


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {
                "KeySchema": [
                    {"AttributeName": "FaceId", "KeyType": "HASH"},
                    {"AttributeName": "When", "KeyType": "RANGE"},
                ]
            },
            "RANGE keys are not supported",
        ),
        ({"KeySchema": [{"AttributeName": "FaceId", "KeyType": "RANGE"}]}, "exactly one key"),
        ({"KeySchema": []}, "exactly one key"),
        ({"KeySchema": None}, "exactly one key"),
        (
            {"AttributeDefinitions": [{"AttributeName": "FaceId", "AttributeType": "N"}]},
            "AttributeType S",
        ),
        (
            {
                "AttributeDefinitions": [
                    {"AttributeName": "FaceId", "AttributeType": "S"},
                    {"AttributeName": "Name", "AttributeType": "S"},
                ]
            },
            "does not exactly match",
        ),
        (
            {"AttributeDefinitions": [{"AttributeName": "Other", "AttributeType": "S"}]},
            "does not exactly match",
        ),
        ({"ProvisionedThroughput": None}, "must both be specified"),
        ({"ProvisionedThroughput": {"ReadCapacityUnits": 1}}, "must both be specified"),
        (
            {"ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 1}},
            "must both be specified",
        ),
        ({"BillingMode": "PAY_PER_REQUEST"}, "Neither ReadCapacityUnits"),
        ({"BillingMode": "FREE"}, "BillingMode"),
        ({"GlobalSecondaryIndexes": [{"IndexName": "byName"}]}, "not supported"),
    ],
)
def test_create_table_refusals(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationException, match=match):
        table_from_request(request(**changes))


def test_descriptions() -> None:
    provisioned = table_from_request(request(), now=1_700_000_000.0)
    shape = describe(provisioned, region="eu-west-1", item_count=3, size_bytes=120)
    assert shape["TableArn"] == "arn:aws:dynamodb:eu-west-1:000000000000:table/facerecognition"
    assert shape["KeySchema"] == [{"AttributeName": "FaceId", "KeyType": "HASH"}]
    assert shape["AttributeDefinitions"] == [{"AttributeName": "FaceId", "AttributeType": "S"}]
    assert (shape["TableStatus"], shape["ItemCount"], shape["TableSizeBytes"]) == ("ACTIVE", 3, 120)
    assert shape["CreationDateTime"] == 1_700_000_000.0
    assert shape["ProvisionedThroughput"] == {
        "NumberOfDecreasesToday": 0,
        "ReadCapacityUnits": 5,
        "WriteCapacityUnits": 2,
    }
    assert "BillingModeSummary" not in shape

    on_demand = table_from_request(
        request(BillingMode="PAY_PER_REQUEST", ProvisionedThroughput=None), now=1.5
    )
    shape = describe(on_demand, region="us-east-1", item_count=0, size_bytes=0, status="DELETING")
    assert shape["BillingModeSummary"] == {
        "BillingMode": "PAY_PER_REQUEST",
        "LastUpdateToPayPerRequestDateTime": 1.5,
    }
    assert shape["ProvisionedThroughput"]["ReadCapacityUnits"] == 0
    assert shape["TableStatus"] == "DELETING"


def test_error_types_are_namespaced_as_dynamodb_sends_them() -> None:
    assert (
        error_type(ResourceNotFoundException("x"))
        == "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"
    )
    assert (
        error_type(ResourceInUseException("x"))
        == "com.amazonaws.dynamodb.v20120810#ResourceInUseException"
    )
    assert error_type(ValidationException("x")) == "com.amazon.coral.validate#ValidationException"
    assert (
        error_type(InvalidSignatureException("x"))
        == "com.amazon.coral.service#InvalidSignatureException"
    )
