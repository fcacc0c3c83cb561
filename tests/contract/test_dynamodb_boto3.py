"""boto3's DynamoDB client and resource against a real facelens server: only endpoint_url changes.

Every table is a view of the server's one profile store, so what is put
here is checked through that store (``bundles.profiles()``) too. Errors must arrive as
botocore's own exception classes (DynamoDB's ``__type`` is namespaced:
``com.amazonaws.dynamodb.v20120810#ResourceNotFoundException``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

import boto3
import botocore
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from facelens.access.keys import Role
from tests.servers.facelens_api import ApiServer

TABLE = "facerecognition"
FACE_ID = "0b5c5c1e-6a0e-4a5c-8a39-3c6f1d2e4f50"
OTHER_FACE_ID = "1c6d6d2f-7b1f-4b6d-9b4a-4d7f2e3f5a61"


def session_kwargs(
    server: ApiServer, *, key_id: str | None = None, secret: str | None = None
) -> dict[str, Any]:
    return {
        "endpoint_url": server.url,
        "region_name": server.region,
        "aws_access_key_id": key_id or server.access_key_id,
        "aws_secret_access_key": secret or server.secret_access_key,
        "config": Config(retries={"total_max_attempts": 1}),
    }


def dynamodb(server: ApiServer, **kwargs: Any) -> Any:
    return boto3.session.Session().client("dynamodb", **session_kwargs(server, **kwargs))


@pytest.fixture
def client(api_server: ApiServer) -> Any:
    return dynamodb(api_server)


def create_table(client: Any, name: str = TABLE, key: str = "FaceId") -> dict[str, Any]:
    answer: dict[str, Any] = client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
    )
    return answer


def error_code(info: pytest.ExceptionInfo[Any]) -> str:
    code: str = info.value.response["Error"]["Code"]
    return code


def test_table_lifecycle(client: Any, api_server: ApiServer) -> None:
    created = create_table(client)["TableDescription"]
    assert created["TableName"] == TABLE
    assert created["KeySchema"] == [{"AttributeName": "FaceId", "KeyType": "HASH"}]
    assert created["AttributeDefinitions"] == [{"AttributeName": "FaceId", "AttributeType": "S"}]
    assert created["TableStatus"] == "ACTIVE"
    assert created["TableArn"] == f"arn:aws:dynamodb:{api_server.region}:000000000000:table/{TABLE}"
    assert created["ProvisionedThroughput"]["ReadCapacityUnits"] == 1
    assert "BillingModeSummary" not in created

    client.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1})
    described = client.describe_table(TableName=TABLE)["Table"]
    assert described["CreationDateTime"] == created["CreationDateTime"]  # a datetime to boto3
    assert described["ItemCount"] == 0

    on_demand = client.create_table(
        TableName="people",
        KeySchema=[{"AttributeName": "UserId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "UserId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )["TableDescription"]
    assert on_demand["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

    assert client.list_tables()["TableNames"] == ["facerecognition", "people"]
    first = client.list_tables(Limit=1)
    assert (first["TableNames"], first["LastEvaluatedTableName"]) == (["facerecognition"], TABLE)
    rest = client.list_tables(ExclusiveStartTableName=first["LastEvaluatedTableName"])
    assert rest["TableNames"] == ["people"]
    assert "LastEvaluatedTableName" not in rest

    deleted = client.delete_table(TableName="people")["TableDescription"]
    assert deleted["TableStatus"] == "DELETING"
    assert client.list_tables()["TableNames"] == [TABLE]


def test_items_are_the_profile_store(client: Any, api_server: ApiServer) -> None:
    create_table(client)
    item = {
        "FaceId": {"S": FACE_ID},
        "Name": {"S": "Anna Berg"},
        "Bio": {"S": "Runs the front desk."},
        "Age": {"N": "31"},
        "Height": {"N": "1.72"},
        "Staff": {"BOOL": True},
        "Badge": {"NULL": True},
        "Tags": {"SS": ["desk", "admin"]},
        "Address": {"M": {"City": {"S": "Oslo"}, "Floors": {"L": [{"N": "1"}, {"N": "2"}]}}},
    }
    assert client.put_item(TableName=TABLE, Item=item).get("Attributes") is None

    profile = api_server.bundles.profiles().get(FACE_ID)
    assert profile is not None
    assert profile.attributes == {
        "Name": "Anna Berg",
        "Bio": "Runs the front desk.",
        "Age": 31,
        "Height": 1.72,
        "Staff": True,
        "Badge": None,
        "Tags": ["admin", "desk"],  # a set comes back as a sorted list
        "Address": {"City": "Oslo", "Floors": [1, 2]},
    }

    got = client.get_item(TableName=TABLE, Key={"FaceId": {"S": FACE_ID}}, ConsistentRead=True)
    assert got["Item"] == {**item, "Tags": {"L": [{"S": "admin"}, {"S": "desk"}]}}
    assert "Item" not in client.get_item(TableName=TABLE, Key={"FaceId": {"S": OTHER_FACE_ID}})

    # A profile put the facelens way is an item of every table.
    api_server.bundles.profiles().put(OTHER_FACE_ID, {"Name": "Bo"})
    other = client.get_item(TableName=TABLE, Key={"FaceId": {"S": OTHER_FACE_ID}})["Item"]
    assert other == {"FaceId": {"S": OTHER_FACE_ID}, "Name": {"S": "Bo"}}
    assert client.describe_table(TableName=TABLE)["Table"]["ItemCount"] == 2

    replaced = client.put_item(
        TableName=TABLE,
        Item={"FaceId": {"S": FACE_ID}, "Name": {"S": "Anna B."}},
        ReturnValues="ALL_OLD",
    )
    assert replaced["Attributes"]["Name"] == {"S": "Anna Berg"}
    assert api_server.bundles.profiles().get(FACE_ID).attributes == {"Name": "Anna B."}  # type: ignore[union-attr]

    gone = client.delete_item(
        TableName=TABLE, Key={"FaceId": {"S": FACE_ID}}, ReturnValues="ALL_OLD"
    )
    assert gone["Attributes"] == {"FaceId": {"S": FACE_ID}, "Name": {"S": "Anna B."}}
    assert api_server.bundles.profiles().get(FACE_ID) is None
    assert "Attributes" not in client.delete_item(TableName=TABLE, Key={"FaceId": {"S": FACE_ID}})


def test_the_resource_interface(api_server: ApiServer) -> None:
    resource = boto3.session.Session().resource("dynamodb", **session_kwargs(api_server))
    table = resource.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "FaceId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "FaceId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table.wait_until_exists()
    assert table.table_status == "ACTIVE"
    assert table.key_schema == [{"AttributeName": "FaceId", "KeyType": "HASH"}]

    table = resource.Table(TABLE)
    table.put_item(Item={"FaceId": FACE_ID, "Name": "Anna", "Age": 31, "Score": Decimal("0.5")})
    item = table.get_item(Key={"FaceId": FACE_ID})["Item"]
    assert item == {"FaceId": FACE_ID, "Name": "Anna", "Age": 31, "Score": Decimal("0.5")}
    assert api_server.bundles.profiles().get(FACE_ID).attributes["Age"] == 31  # type: ignore[union-attr]
    assert [i["FaceId"] for i in table.scan()["Items"]] == [FACE_ID]
    table.delete_item(Key={"FaceId": FACE_ID})
    assert "Item" not in table.get_item(Key={"FaceId": FACE_ID})


def test_scan_pages(client: Any, api_server: ApiServer) -> None:
    create_table(client, key="UserId")
    ids = [f"person-{n:02d}" for n in range(7)]
    for user_id in reversed(ids):
        client.put_item(TableName=TABLE, Item={"UserId": {"S": user_id}, "N": {"N": "1"}})

    seen: list[str] = []
    pages = 0
    start: dict[str, Any] | None = None
    while True:
        kwargs: dict[str, Any] = {"TableName": TABLE, "Limit": 3}
        if start is not None:
            kwargs["ExclusiveStartKey"] = start
        page = client.scan(**kwargs)
        pages += 1
        assert page["Count"] == len(page["Items"]) <= 3
        seen += [item["UserId"]["S"] for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if start is None:
            break
    assert seen == ids
    assert pages == 3

    # A start key the server has not handed out (a new client, a restart) works too.
    resumed = client.scan(TableName=TABLE, ExclusiveStartKey={"UserId": {"S": "person-03a"}})
    assert [i["UserId"]["S"] for i in resumed["Items"]] == ids[4:]
    counted = client.scan(TableName=TABLE, Select="COUNT")
    assert (counted["Count"], counted["ScannedCount"], "Items" in counted) == (7, 7, False)

    paginator = client.get_paginator("scan")
    everything = [
        item["UserId"]["S"]
        for page in paginator.paginate(TableName=TABLE, PaginationConfig={"PageSize": 2})
        for item in page["Items"]
    ]
    assert everything == ids


def test_errors_are_the_sdks_own_exceptions(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="not found"):
        client.describe_table(TableName="missing")
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="not found"):
        client.get_item(TableName="missing", Key={"FaceId": {"S": FACE_ID}})
    create_table(client)
    with pytest.raises(client.exceptions.ResourceInUseException):
        create_table(client)

    def validation(call: Any, match: str, **kwargs: Any) -> None:
        with pytest.raises(ClientError, match=match) as info:
            call(**kwargs)
        assert error_code(info) == "ValidationException"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    validation(
        client.create_table,
        "RANGE",
        TableName="ranged",
        KeySchema=[
            {"AttributeName": "FaceId", "KeyType": "HASH"},
            {"AttributeName": "When", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "FaceId", "AttributeType": "S"},
            {"AttributeName": "When", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    validation(
        client.create_table,
        "AttributeType S",
        TableName="numbered",
        KeySchema=[{"AttributeName": "FaceId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "FaceId", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    validation(
        client.get_item,
        "does not match the schema",
        TableName=TABLE,
        Key={"UserId": {"S": "anna"}},
    )
    validation(
        client.put_item, "Missing the key FaceId", TableName=TABLE, Item={"Name": {"S": "x"}}
    )
    validation(
        client.put_item,
        "Type mismatch for key FaceId",
        TableName=TABLE,
        Item={"FaceId": {"N": "1"}},
    )
    validation(
        client.put_item,
        "binary",
        TableName=TABLE,
        Item={"FaceId": {"S": FACE_ID}, "Photo": {"B": b"\xff\xd8"}},
    )
    validation(
        client.put_item,
        "not supported",
        TableName=TABLE,
        Item={"FaceId": {"S": FACE_ID}},
        ConditionExpression="attribute_not_exists(FaceId)",
    )
    validation(
        client.put_item,
        "Return values",
        TableName=TABLE,
        Item={"FaceId": {"S": FACE_ID}},
        ReturnValues="ALL_NEW",
    )


def test_refused_callers(api_server: ApiServer, client: Any) -> None:
    create_table(client)
    unsigned = boto3.session.Session().client(
        "dynamodb",
        **session_kwargs(api_server)
        | {
            "config": Config(signature_version=botocore.UNSIGNED, retries={"total_max_attempts": 1})
        },
    )
    with pytest.raises(ClientError) as info:
        unsigned.list_tables()
    assert error_code(info) == "MissingAuthenticationTokenException"

    wrong = dynamodb(api_server, secret="not-the-secret-access-key")
    with pytest.raises(ClientError) as info:
        wrong.describe_table(TableName=TABLE)
    assert error_code(info) == "InvalidSignatureException"

    key = api_server.bundles.keys.create_access_key("reader", Role.READ)
    reader = dynamodb(
        api_server, key_id=key.access_key_id, secret=key.secret_access_key.get_secret_value()
    )
    assert reader.describe_table(TableName=TABLE)["Table"]["TableName"] == TABLE
    assert reader.scan(TableName=TABLE)["Items"] == []
    with pytest.raises(ClientError) as info:
        reader.put_item(TableName=TABLE, Item={"FaceId": {"S": FACE_ID}})
    assert error_code(info) == "AccessDeniedException"
    assert "dynamodb:PutItem" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as info:
        reader.create_table(
            TableName="other",
            KeySchema=[{"AttributeName": "FaceId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "FaceId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    assert error_code(info) == "AccessDeniedException"
    assert api_server.bundles.profiles().get(FACE_ID) is None


def signed_post(
    server: ApiServer, target: str, body: bytes, *, service: str
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A request boto3 cannot make, signed by botocore for ``service``."""
    request = AWSRequest(
        method="POST",
        url=server.url + "/",
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"},
    )
    credentials = Credentials(server.access_key_id, server.secret_access_key)
    SigV4Auth(credentials, service, server.region).add_auth(request)
    sent = urllib.request.Request(
        server.url + "/", data=body, headers=dict(request.headers.items()), method="POST"
    )
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_dispatch_by_target(api_server: ApiServer) -> None:
    status, headers, answer = signed_post(
        api_server,
        "DynamoDB_20120810.DescribeTable",
        b'{"TableName": "missing"}',
        service="dynamodb",
    )
    assert status == 400
    assert answer["__type"] == "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"
    assert answer["message"] == "Requested resource not found"
    assert "x-amz-crc32" in {name.lower() for name in headers}

    status, _, answer = signed_post(
        api_server, "DynamoDB_20120810.UpdateItem", b"{}", service="dynamodb"
    )
    assert (status, answer["__type"]) == (
        400,
        "com.amazon.coral.service#UnknownOperationException",
    )
    # Each service checks its own signing name: a DynamoDB call signed for Rekognition fails.
    status, _, answer = signed_post(
        api_server, "DynamoDB_20120810.ListTables", b"{}", service="rekognition"
    )
    assert (status, answer["__type"]) == (403, "com.amazon.coral.service#InvalidSignatureException")
    status, _, answer = signed_post(api_server, "Nobody.DoesThis", b"{}", service="dynamodb")
    assert (status, answer["__type"]) == (
        400,
        "com.amazon.coral.service#UnknownOperationException",
    )
    status, _, answer = signed_post(
        api_server, "DynamoDB_20120810.ListTables", b"[not json", service="dynamodb"
    )
    assert (status, answer["__type"]) == (400, "com.amazon.coral.service#SerializationException")
    status, _, answer = signed_post(
        api_server, "RekognitionService.ListCollections", b"{}", service="rekognition"
    )
    assert (status, answer) == (200, {"CollectionIds": [], "FaceModelVersions": []})
