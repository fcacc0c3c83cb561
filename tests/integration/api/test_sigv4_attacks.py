"""Attacks on SigV4 against a real facelens server: a swapped operation and exact replays.

Requests are signed by botocore's own ``SigV4Auth`` (what boto3 and the AWS
CLI use) with the server's access key, then sent over real HTTP, byte for
byte, as an attacker who captured them would send them again. Normal boto3
use (a new signature for every call and every retry) is the contract tests'.
"""

from __future__ import annotations

import base64
import http.client
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.servers.facelens_api import ApiServer

REKOGNITION = "RekognitionService."
JSON_1_1 = "application/x-amz-json-1.1"


class Captured:
    """A signed request, as it went over the wire once; :meth:`send` sends it (again)."""

    def __init__(self, url: str, headers: dict[str, str], body: bytes) -> None:
        self.url = url
        self.headers = headers
        self.body = body

    def send(self) -> tuple[int, dict[str, Any]]:
        """The status and JSON answer. http.client, not urllib: urllib would add a
        Content-Type of its own to a POST that has none, and nothing else is sent here
        but what was captured (and Host, Accept-Encoding, Content-Length)."""
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.netloc, timeout=60)
        try:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            connection.request("POST", path, body=self.body, headers=self.headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            connection.close()


def signed(
    server: ApiServer,
    headers: dict[str, str],
    body: bytes,
    *,
    path: str = "/",
    service: str = "rekognition",
) -> Captured:
    """``body`` with ``headers``, signed by botocore for ``service``: every header given is
    signed (as boto3 signs them), plus host and x-amz-date."""
    url = server.url.rstrip("/") + path
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    credentials = Credentials(server.access_key_id, server.secret_access_key)
    SigV4Auth(credentials, service, server.region).add_auth(request)
    return Captured(url, {k: str(v) for k, v in request.headers.items()}, body)


def rekognition_call(server: ApiServer, operation: str, params: dict[str, Any]) -> Captured:
    headers = {"X-Amz-Target": REKOGNITION + operation, "Content-Type": JSON_1_1}
    return signed(server, headers, json.dumps(params).encode())


def refused(answer: tuple[int, dict[str, Any]]) -> bool:
    """Whether ``answer`` is the refusal of a replay: ThrottlingException (DynamoDB qualifies
    the type with a namespace), which an SDK retries by signing again."""
    status, document = answer
    code = str(document.get("__type", "")).rpartition("#")[2]
    return (status, code) == (400, "ThrottlingException") and (
        "already been used" in document.get("message", "")
    )


def client(server: ApiServer, name: str = "rekognition", *, retries: bool = False) -> Any:
    """A boto3 client; without ``retries`` it makes one attempt, so refusals are seen."""
    config = Config() if retries else Config(retries={"total_max_attempts": 1})
    return boto3.session.Session().client(
        name,
        endpoint_url=server.url,
        region_name=server.region,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        config=config,
    )


def collections(server: ApiServer) -> list[str]:
    ids: list[str] = client(server).list_collections()["CollectionIds"]
    return ids


def test_an_operation_outside_the_signature_cannot_be_swapped(api_server: ApiServer) -> None:
    client(api_server).create_collection(CollectionId="victim")
    body = json.dumps({"CollectionId": "victim"}).encode()
    # A client that signed only host and x-amz-date; its X-Amz-Target is not covered ...
    describe = signed(api_server, {}, body)
    assert "SignedHeaders=host;x-amz-date," in describe.headers["Authorization"]
    # ... so whoever sees the request can make DescribeCollection a DeleteCollection.
    describe.headers.update(
        {"X-Amz-Target": REKOGNITION + "DeleteCollection", "Content-Type": JSON_1_1}
    )
    status, answer = describe.send()
    assert (status, answer["__type"]) == (400, "IncompleteSignatureException")
    assert "x-amz-target" in answer["message"]
    assert "victim" in collections(api_server)


def test_a_captured_create_or_delete_cannot_undo_what_came_after(
    api_server: ApiServer,
) -> None:
    owner = client(api_server, retries=True)  # boto3 as deployed, retrying what asks for it
    create = rekognition_call(api_server, "CreateCollection", {"CollectionId": "once"})
    assert create.send()[0] == 200
    # Sent again at once, nothing in between: a client sending twice, and AWS's answer.
    status, answer = create.send()
    assert (status, answer["__type"]) == (400, "ResourceAlreadyExistsException")

    delete = rekognition_call(api_server, "DeleteCollection", {"CollectionId": "once"})
    assert delete.send()[0] == 200
    assert refused(create.send())  # the captured create, after the delete: nothing made
    assert "once" not in collections(api_server)

    owner.create_collection(CollectionId="once")  # made again by its owner
    assert refused(delete.send())  # the captured delete: nothing deleted
    assert "once" in collections(api_server)


def test_a_replayed_index_faces_indexes_nothing_more(api_server: ApiServer, testdata: Path) -> None:
    client(api_server).create_collection(CollectionId="faces")
    # Each IndexFaces adds a face: even at once, with nothing in between, never run twice.
    image = (testdata / "people" / "obama" / "obama_1.jpg").read_bytes()
    index = rekognition_call(
        api_server,
        "IndexFaces",
        {"CollectionId": "faces", "Image": {"Bytes": base64.b64encode(image).decode()}},
    )
    status, answer = index.send()
    assert status == 200
    assert len(answer["FaceRecords"]) == 1
    assert refused(index.send())
    assert len(client(api_server).list_faces(CollectionId="faces")["Faces"]) == 1


def test_reads_may_be_repeated(api_server: ApiServer) -> None:
    client(api_server).create_collection(CollectionId="read")
    describe = rekognition_call(api_server, "DescribeCollection", {"CollectionId": "read"})
    assert [describe.send()[0] for _ in range(3)] == [200, 200, 200]


def dynamodb_call(server: ApiServer, operation: str, params: dict[str, Any]) -> Captured:
    headers = {
        "X-Amz-Target": f"DynamoDB_20120810.{operation}",
        "Content-Type": "application/x-amz-json-1.0",
    }
    return signed(server, headers, json.dumps(params).encode(), service="dynamodb")


def test_dynamodb_and_iot_data_replays_are_refused(api_server: ApiServer) -> None:
    table = {
        "TableName": "people",
        "KeySchema": [{"AttributeName": "FaceId", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "FaceId", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    create = dynamodb_call(api_server, "CreateTable", table)
    assert create.send()[0] == 200
    status, answer = create.send()  # at once: the duplicate meets what AWS would say
    assert (status, answer["__type"].rpartition("#")[2]) == (400, "ResourceInUseException")

    key = {"FaceId": {"S": "0b5c5c1e-6a0e-4a5c-8a39-3c6f1d2e4f50"}}
    put = dynamodb_call(api_server, "PutItem", {"TableName": "people", "Item": key})
    assert put.send()[0] == 200
    dynamodb = client(api_server, "dynamodb", retries=True)
    dynamodb.delete_item(TableName="people", Key=key)
    assert refused(put.send())  # the captured put cannot bring the item back
    assert "Item" not in dynamodb.get_item(TableName="people", Key=key)

    publish = signed(api_server, {}, b"hello", path="/topics/doors?qos=1", service="iotdata")
    assert publish.send()[0] == 200
    assert refused(publish.send())  # each publish is a message: never run twice


def test_boto3_calls_that_repeat_within_a_second_go_through(api_server: ApiServer) -> None:
    """botocore leaves the per-call headers (``amz-sdk-invocation-id``, ``amz-sdk-request``)
    out of the signature and X-Amz-Date counts whole seconds, so identical calls within a
    second carry one signature. The repeat is refused as a replay, a second late, with an
    error boto3's default retries answer by signing again: in a later second, accepted."""
    iot = client(api_server, "iot-data", retries=True)
    answers = [iot.publish(topic="same", qos=0, payload=b"same") for _ in range(3)]
    assert {a["ResponseMetadata"]["HTTPStatusCode"] for a in answers} == {200}
    # Three calls in well under a second: at least two shared one, and one was retried.
    assert sum(a["ResponseMetadata"]["RetryAttempts"] for a in answers) >= 1
