"""Fuzz: the DynamoDB endpoint, ``POST /`` with ``X-Amz-Target: DynamoDB_20120810.*``."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from facelens.api.aws import dynamodb
from tests.fuzz.aws_params import numbers, params_body, targets
from tests.fuzz.calls import Signer, signed_admin_call, signed_call
from tests.fuzz.conftest import Run
from tests.fuzz.harness import Fuzzer
from tests.fuzz.strategies import (
    JSON_SCALARS,
    LONE,
    both_encodings,
    dumps,
    json_values,
    mostly,
    text,
)
from tests.fuzz.wire import Call, wire
from tests.fuzz.world import TABLE, Credentials, World


def typed_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """DynamoDB's typed attribute values, right and wrong."""
    numbers = st.sampled_from(
        ["1", "-0", "1e400", "1E-400", "NaN", "Infinity", "0x10", "", " 1", "1" * 50, "9" * 39]
    ) | st.integers().map(str)
    scalars = st.one_of(
        st.builds(lambda t: {"S": t}, text()),
        st.builds(lambda n: {"N": n}, numbers | JSON_SCALARS),
        st.builds(lambda b: {"B": b}, st.sampled_from(["", "!!", "YQ==", "YQ", "===="]) | text()),
        st.builds(lambda b: {"BOOL": b}, st.booleans() | JSON_SCALARS),
        st.builds(lambda b: {"NULL": b}, st.booleans() | JSON_SCALARS),
        st.builds(lambda s: {"SS": s}, st.lists(text(), max_size=3) | JSON_SCALARS),
        st.builds(lambda s: {"NS": s}, st.lists(numbers, max_size=3) | JSON_SCALARS),
        st.builds(lambda s: {"BS": s}, st.lists(st.just("YQ=="), max_size=2) | JSON_SCALARS),
        st.sampled_from([{}, {"S": "a", "N": "1"}, {"X": 1}, {"S": None}]),
        JSON_SCALARS,
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.builds(lambda items: {"L": items}, st.lists(inner, max_size=3)),
            st.builds(lambda m: {"M": m}, st.dictionaries(text(max_size=10), inner, max_size=3)),
        ),
        max_leaves=max_leaves,
    )


def dynamodb_params(world: World) -> dict[str, st.SearchStrategy[Any]]:
    tables = mostly(st.just(TABLE), st.sampled_from(["other", "", "a" * 300]) | text())
    key_names = st.sampled_from(["UserId", "UserId", "FaceId", "id"]) | text(max_size=10)
    ids = mostly(st.sampled_from(world.ids), text())
    key = st.one_of(
        st.builds(lambda n, v: {n: {"S": v}}, key_names, ids),
        st.dictionaries(key_names, typed_values(4), max_size=2),
        JSON_SCALARS,
    )
    item = st.one_of(
        st.builds(
            lambda v, rest: {"UserId": {"S": v}, **rest},
            ids,
            st.dictionaries(text(max_size=10), typed_values(), max_size=4),
        ),
        st.dictionaries(key_names | text(max_size=10), typed_values(), max_size=4),
        JSON_SCALARS,
    )
    schema = st.one_of(
        st.builds(
            lambda n, t: [{"AttributeName": n, "KeyType": t}],
            key_names,
            st.sampled_from(["HASH", "RANGE", ""]),
        ),
        json_values(keys=["AttributeName", "KeyType"], max_leaves=4),
    )
    definitions = st.one_of(
        st.builds(
            lambda n, t: [{"AttributeName": n, "AttributeType": t}],
            key_names,
            st.sampled_from(["S", "N", "B", "X"]),
        ),
        json_values(keys=["AttributeName", "AttributeType"], max_leaves=4),
    )
    return {
        "TableName": tables,
        "Key": key,
        "Item": item,
        "ExclusiveStartKey": key,
        "ExclusiveStartTableName": tables,
        "Limit": numbers(),
        "Select": st.sampled_from(["ALL_ATTRIBUTES", "COUNT", "SPECIFIC_ATTRIBUTES", ""]),
        "ReturnValues": st.sampled_from(["NONE", "ALL_OLD", "ALL_NEW", ""]),
        "KeySchema": schema,
        "AttributeDefinitions": definitions,
        "BillingMode": st.sampled_from(["PAY_PER_REQUEST", "PROVISIONED", ""]) | JSON_SCALARS,
        "ProvisionedThroughput": json_values(
            keys=["ReadCapacityUnits", "WriteCapacityUnits"], max_leaves=4
        ),
        "ConsistentRead": st.booleans() | JSON_SCALARS,
        "FilterExpression": text(),
        "ProjectionExpression": text(),
        "ConditionExpression": text(),
    }


DYNAMODB_NAMES: dict[str, list[str]] = {
    "CreateTable": [
        "TableName",
        "KeySchema",
        "AttributeDefinitions",
        "BillingMode",
        "ProvisionedThroughput",
    ],
    "DescribeTable": ["TableName"],
    "DeleteTable": ["TableName"],
    "ListTables": ["Limit", "ExclusiveStartTableName"],
    "PutItem": ["TableName", "Item", "ReturnValues", "ConditionExpression"],
    "GetItem": ["TableName", "Key", "ConsistentRead", "ProjectionExpression"],
    "DeleteItem": ["TableName", "Key", "ReturnValues"],
    "Scan": ["TableName", "Limit", "Select", "ExclusiveStartKey", "FilterExpression"],
}


@st.composite
def dynamodb_calls(draw: st.DrawFn, fuzz: Fuzzer, creds: Credentials, world: World) -> Call:
    target = draw(targets(dynamodb.TARGET_PREFIX, sorted(dynamodb.OPERATIONS)))
    names = DYNAMODB_NAMES.get(target.removeprefix(dynamodb.TARGET_PREFIX), ["TableName"])
    body = draw(params_body(dynamodb_params(world), names))
    content_type = draw(st.sampled_from([dynamodb.CONTENT_TYPE, dynamodb.CONTENT_TYPE, ""]))
    headers = {"X-Amz-Target": wire(target), "Content-Type": content_type}
    signer = Signer(creds, dynamodb.SIGNING_NAME, fuzz.url)
    return draw(
        signed_call(
            surface="dynamodb",
            route=f"POST / {target[:60]}",
            signer=signer,
            target="/",
            body=body,
            headers=headers,
            host=fuzz.host_header,
        )
    )


def _dynamodb(fuzz: Fuzzer, creds: Credentials, operation: str, body: bytes) -> Call:
    headers = {
        "X-Amz-Target": dynamodb.TARGET_PREFIX + operation,
        "Content-Type": dynamodb.CONTENT_TYPE,
    }
    return signed_admin_call(fuzz, creds, "dynamodb", dynamodb.SIGNING_NAME, body, headers=headers)


def typed_nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"S": "leaf"}
    for _ in range(depth):
        value = {"M": {"a": value}}
    return value


def surrogate_sweep(fuzz: Fuzzer, creds: Credentials) -> list[Call]:
    """Every operation once with its strings lone surrogates (escaped and raw bytes), on
    the table that exists: whatever reaches a store unvalidated shows as a 500."""
    key = {"UserId": {"S": LONE}}
    documents: dict[str, dict[str, Any]] = {
        "CreateTable": {
            "TableName": "surrogate",
            "KeySchema": [{"AttributeName": LONE, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": LONE, "AttributeType": "S"}],
            "BillingMode": LONE,
        },
        "DescribeTable": {"TableName": LONE},
        "DeleteTable": {"TableName": LONE},
        "ListTables": {"ExclusiveStartTableName": LONE},
        "PutItem": {"TableName": TABLE, "Item": {**key, LONE: {"S": LONE}}, "ReturnValues": LONE},
        "GetItem": {"TableName": TABLE, "Key": key},
        "DeleteItem": {"TableName": TABLE, "Key": key, "ReturnValues": "ALL_OLD"},
        "Scan": {"TableName": TABLE, "ExclusiveStartKey": key, "Select": LONE},
    }
    return [
        _dynamodb(fuzz, creds, operation, body)
        for operation, document in documents.items()
        for body in both_encodings(document)
    ]


def dynamodb_classics(fuzz: Fuzzer, creds: Credentials) -> list[Call]:
    """Inputs that broke (or nearly broke) the endpoint once: sent first, every run."""
    deep = {"UserId": {"S": "deep-item"}, "x": typed_nested(300)}
    lone = "\ud800"  # a lone surrogate: valid JSON (as an escape), not encodable as UTF-8
    lone_key = [{"AttributeName": lone, "KeyType": "HASH"}]
    raw = b'{"TableName": "rawsurrogate", "KeySchema": [{"AttributeName": "\xed\xa0\x80", '
    raw += b'"KeyType": "HASH"}], "AttributeDefinitions": [{"AttributeName": "\xed\xa0\x80", '
    raw += b'"AttributeType": "S"}]}'  # the same, as the raw bytes json.loads also decodes
    return [
        _dynamodb(fuzz, creds, "Scan", b"[" * 100_000),
        _dynamodb(
            fuzz,
            creds,
            "CreateTable",
            dumps(
                {
                    "TableName": "surrogates",
                    "KeySchema": lone_key,
                    "AttributeDefinitions": [{"AttributeName": lone, "AttributeType": "S"}],
                }
            ),
        ),
        _dynamodb(fuzz, creds, "CreateTable", raw),
        _dynamodb(fuzz, creds, "PutItem", dumps({"TableName": TABLE, "Item": {lone: {"S": lone}}})),
        _dynamodb(
            fuzz,
            creds,
            "PutItem",
            dumps({"TableName": TABLE, "Item": {"UserId": {"S": "nul"}, "x": {"S": "a\x00b"}}}),
        ),
        _dynamodb(
            fuzz, creds, "GetItem", dumps({"TableName": TABLE, "Key": {"UserId": {"S": lone}}})
        ),
        _dynamodb(fuzz, creds, "PutItem", dumps({"TableName": TABLE, "Item": deep})),
        _dynamodb(
            fuzz,
            creds,
            "GetItem",
            dumps({"TableName": TABLE, "Key": {"UserId": {"S": "deep-item"}}}),
        ),
        _dynamodb(fuzz, creds, "Scan", dumps({"TableName": TABLE})),
        _dynamodb(
            fuzz,
            creds,
            "PutItem",
            dumps({"TableName": TABLE, "Item": {"UserId": {"S": "n"}, "n": {"N": "1e400"}}}),
        ),
        _dynamodb(
            fuzz,
            creds,
            "PutItem",
            dumps(
                {
                    "TableName": TABLE,
                    "Item": {"UserId": {"S": "n"}, "n": {"NS": ["NaN", "Infinity"]}},
                }
            ),
        ),
        _dynamodb(fuzz, creds, "Scan", dumps({"TableName": TABLE, "Limit": 2**63})),
        _dynamodb(
            fuzz,
            creds,
            "Scan",
            dumps({"TableName": TABLE, "ExclusiveStartKey": {"UserId": {"S": "\udfff"}}}),
        ),
    ]


def test_dynamodb(run_fuzz: Run, fuzz: Fuzzer, credentials: Credentials, world: World) -> None:
    calls = dynamodb_calls(fuzz, credentials, world)
    classics = dynamodb_classics(fuzz, credentials) + surrogate_sweep(fuzz, credentials)
    run_fuzz("dynamodb", calls, 100, classics)
