"""Fuzz: the AWS JSON endpoints on ``POST /``: Rekognition and DynamoDB, signed with SigV4.

Each case is one operation (a real one most of the time, else a wrong
target) with parameters under their real names holding plausible or hostile
values, or a body that is not a JSON object at all, signed by botocore's own
SigV4 signer with a valid admin or read-only key, or signed wrongly
(:data:`tests.fuzz.calls.SIGV4_KINDS`).
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

from facelens.api import dynamodb, rekognition
from facelens.api.rekognition_ops import ATTRIBUTES, OPERATIONS
from tests.fuzz.calls import Signer, signed_admin_call, signed_call
from tests.fuzz.conftest import Run
from tests.fuzz.harness import Call, Fuzzer, wire
from tests.fuzz.strategies import (
    HUGE_INTS,
    JSON_SCALARS,
    base64_images,
    dumps,
    json_values,
    mostly,
    png,
    raw_bodies,
    text,
    token_values,
)
from tests.fuzz.world import COLLECTION, CROP_KEY, TABLE, Credentials, World


def _numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(-2, 5000),
        st.sampled_from([*HUGE_INTS, 0.5, float("nan"), float("inf"), "10", True]),
        JSON_SCALARS,
    )


@st.composite
def rekognition_images(draw: st.DrawFn, world: World, bucket: str) -> Any:
    choice = draw(st.integers(0, 6))
    if choice <= 2:
        return {"Bytes": draw(base64_images(world.photos))}
    if choice == 3:
        s3 = {
            "Bucket": draw(st.sampled_from([bucket, "nope", "", "../x"]) | text()),
            "Name": draw(st.sampled_from([CROP_KEY, "faces/../../etc/passwd", "", "x"]) | text()),
        }
        if draw(st.integers(0, 4)) == 0:
            s3["Version"] = draw(text())
        return {"S3Object": s3}
    if choice == 4:
        return {"Bytes": draw(base64_images(world.photos)), "S3Object": {"Bucket": bucket}}
    if choice == 5:
        return {}
    return draw(json_values(keys=["Bytes", "S3Object", "Bucket", "Name"]))


def rekognition_params(world: World, bucket: str) -> dict[str, st.SearchStrategy[Any]]:
    ids = mostly(st.sampled_from(world.ids), text())
    images = rekognition_images(world, bucket)
    attributes = st.lists(st.sampled_from(sorted(ATTRIBUTES)) | text(max_size=8), max_size=4)
    return {
        "CollectionId": ids,
        "FaceId": ids,
        "UserId": ids,
        "FaceIds": st.lists(ids, max_size=5) | st.lists(st.just(world.ids[2]), max_size=5000),
        "ExternalImageId": text(),
        "MaxFaces": _numbers(),
        "MaxResults": _numbers(),
        "MaxUsers": _numbers(),
        "NextToken": token_values(),
        "FaceMatchThreshold": _numbers(),
        "UserMatchThreshold": _numbers(),
        "SimilarityThreshold": _numbers(),
        "QualityFilter": st.sampled_from(["AUTO", "NONE", "LOW", "MEDIUM", "HIGH", ""]) | text(),
        "DetectionAttributes": attributes | JSON_SCALARS,
        "Attributes": attributes | JSON_SCALARS,
        "Image": images,
        "SourceImage": images,
        "TargetImage": images,
    }


@st.composite
def params_body(
    draw: st.DrawFn, params: dict[str, st.SearchStrategy[Any]], names: list[str]
) -> bytes:
    """A JSON object naming some of ``names`` (the operation's) and now and then others."""
    if draw(st.integers(0, 8)) == 0:
        return draw(raw_bodies())
    document: dict[str, Any] = {}
    for name in names:
        if draw(st.integers(0, 4)) > 0:
            document[name] = draw(params[name]) if draw(st.integers(0, 4)) else draw(json_values())
    if draw(st.integers(0, 5)) == 0:
        document[draw(st.sampled_from(sorted(params)) | text())] = draw(json_values())
    return dumps(document, ascii_only=draw(st.booleans()))


REKOGNITION_NAMES: dict[str, list[str]] = {
    "CreateCollection": ["CollectionId"],
    "DescribeCollection": ["CollectionId"],
    "ListCollections": ["MaxResults", "NextToken"],
    "DeleteCollection": ["CollectionId"],
    "IndexFaces": [
        "CollectionId",
        "Image",
        "ExternalImageId",
        "MaxFaces",
        "QualityFilter",
        "DetectionAttributes",
    ],
    "SearchFacesByImage": [
        "CollectionId",
        "Image",
        "MaxFaces",
        "FaceMatchThreshold",
        "QualityFilter",
    ],
    "SearchFaces": ["CollectionId", "FaceId", "MaxFaces", "FaceMatchThreshold"],
    "ListFaces": ["CollectionId", "MaxResults", "NextToken", "UserId", "FaceIds"],
    "DeleteFaces": ["CollectionId", "FaceIds"],
    "DetectFaces": ["Image", "Attributes"],
    "CompareFaces": ["SourceImage", "TargetImage", "SimilarityThreshold", "QualityFilter"],
    "CreateUser": ["CollectionId", "UserId"],
    "DeleteUser": ["CollectionId", "UserId"],
    "ListUsers": ["CollectionId", "MaxResults", "NextToken"],
    "AssociateFaces": ["CollectionId", "UserId", "FaceIds", "UserMatchThreshold"],
    "DisassociateFaces": ["CollectionId", "UserId", "FaceIds"],
    "SearchUsersByImage": [
        "CollectionId",
        "Image",
        "MaxUsers",
        "UserMatchThreshold",
        "QualityFilter",
    ],
    "SearchUsers": ["CollectionId", "UserId", "FaceId", "MaxUsers", "UserMatchThreshold"],
}


def _targets(prefix: str, operations: list[str]) -> st.SearchStrategy[str]:
    return mostly(
        st.sampled_from([prefix + name for name in operations]),
        st.one_of(
            st.sampled_from(["", prefix, prefix + "DetectLabels", "DynamoDB_20120810.Query"]),
            text(max_size=30).map(lambda t: prefix + t),
        ),
    )


@st.composite
def rekognition_calls(draw: st.DrawFn, fuzz: Fuzzer, creds: Credentials, world: World) -> Call:
    bucket = fuzz.components.settings.bucket
    target = draw(_targets(rekognition.TARGET_PREFIX, sorted(OPERATIONS)))
    names = REKOGNITION_NAMES.get(target.removeprefix(rekognition.TARGET_PREFIX), [])
    body = draw(params_body(rekognition_params(world, bucket), names or ["CollectionId"]))
    content_type = draw(
        st.sampled_from([rekognition.CONTENT_TYPE, rekognition.CONTENT_TYPE, "", "text/plain"])
    )
    headers = {"X-Amz-Target": wire(target), "Content-Type": content_type}
    signer = Signer(creds, rekognition.SIGNING_NAME, fuzz.url)
    return draw(
        signed_call(
            surface="rekognition",
            route=f"POST / {target[:60]}",
            signer=signer,
            target="/",
            body=body,
            headers=headers,
            host=fuzz.host_header,
        )
    )


# -- DynamoDB --


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
        "Limit": _numbers(),
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
    target = draw(_targets(dynamodb.TARGET_PREFIX, sorted(dynamodb.OPERATIONS)))
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


def _rekognition(fuzz: Fuzzer, creds: Credentials, operation: str, body: bytes) -> Call:
    headers = {
        "X-Amz-Target": rekognition.TARGET_PREFIX + operation,
        "Content-Type": rekognition.CONTENT_TYPE,
    }
    return signed_admin_call(
        fuzz, creds, "rekognition", rekognition.SIGNING_NAME, body, headers=headers
    )


def rekognition_classics(fuzz: Fuzzer, creds: Credentials, world: World) -> list[Call]:
    """Inputs that broke (or nearly broke) the endpoint once: sent first, every run."""
    huge = base64.b64encode(b"9" * 400).decode()
    bomb = base64.b64encode(png(65_535, 65_535)).decode()
    photo = base64.b64encode(world.photos.faces[0]).decode()
    bucket = fuzz.components.settings.bucket
    return [
        _rekognition(fuzz, creds, "ListCollections", b"[" * 100_000),
        _rekognition(fuzz, creds, "ListCollections", b'{"MaxResults": 1' + b"0" * 5000 + b"}"),
        _rekognition(fuzz, creds, "ListCollections", dumps({"NextToken": huge})),
        _rekognition(
            fuzz, creds, "ListFaces", dumps({"CollectionId": COLLECTION, "NextToken": huge})
        ),
        _rekognition(
            fuzz, creds, "ListUsers", dumps({"CollectionId": COLLECTION, "NextToken": huge})
        ),
        _rekognition(fuzz, creds, "DetectFaces", dumps({"Image": {"Bytes": bomb}})),
        _rekognition(fuzz, creds, "DetectFaces", dumps({"Image": {"Bytes": "not base64!"}})),
        _rekognition(fuzz, creds, "DetectFaces", dumps({"Image": {"Bytes": photo}})),
        _rekognition(
            fuzz,
            creds,
            "IndexFaces",
            dumps(
                {
                    "CollectionId": COLLECTION,
                    "Image": {"S3Object": {"Bucket": bucket, "Name": "faces/../../keys.db"}},
                }
            ),
        ),
        _rekognition(
            fuzz,
            creds,
            "SearchFacesByImage",
            dumps(
                {
                    "CollectionId": COLLECTION,
                    "Image": {"S3Object": {"Bucket": bucket, "Name": CROP_KEY}},
                }
            ),
        ),
        _rekognition(
            fuzz, creds, "SearchUsers", dumps({"CollectionId": COLLECTION, "UserId": "ada"})
        ),
        _rekognition(
            fuzz,
            creds,
            "SearchFaces",
            dumps({"CollectionId": COLLECTION, "FaceId": world.ids[2], "MaxFaces": 2**63}),
        ),
        _rekognition(
            fuzz,
            creds,
            "CompareFaces",
            dumps(
                {
                    "SourceImage": {"Bytes": photo},
                    "TargetImage": {"Bytes": photo},
                    "SimilarityThreshold": float("nan"),
                }
            ),
        ),
    ]


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


def dynamodb_classics(fuzz: Fuzzer, creds: Credentials) -> list[Call]:
    """Inputs that broke (or nearly broke) the endpoint once: sent first, every run."""
    deep = {"UserId": {"S": "deep-item"}, "x": typed_nested(300)}
    return [
        _dynamodb(fuzz, creds, "Scan", b"[" * 100_000),
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


def test_rekognition(run_fuzz: Run, fuzz: Fuzzer, credentials: Credentials, world: World) -> None:
    calls = rekognition_calls(fuzz, credentials, world)
    run_fuzz("rekognition", calls, 100, rekognition_classics(fuzz, credentials, world))


def test_dynamodb(run_fuzz: Run, fuzz: Fuzzer, credentials: Credentials, world: World) -> None:
    calls = dynamodb_calls(fuzz, credentials, world)
    run_fuzz("dynamodb", calls, 100, dynamodb_classics(fuzz, credentials))
