"""boto3's Rekognition client against a real facelens server: only endpoint_url changes.

The server is the one ``facelens serve`` runs, with the real face engine;
requests are signed by botocore with a facelens access key, and errors must
arrive as botocore's own exception classes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
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
from facelens.api.serve import build_server
from facelens.config import ServeSettings, Settings
from facelens.wiring.process import process_role
from facelens.wiring.server import open_server_bundles
from tests.servers.facelens_api import ApiServer

COLLECTION = "contract"


def rekognition(
    server: ApiServer,
    *,
    key_id: str | None = None,
    secret: str | None = None,
    signature_version: Any = None,
) -> Any:
    """A boto3 client for the server; no retries, so a refusal is seen (and counted) once."""
    config = Config(retries={"total_max_attempts": 1})
    if signature_version is not None:
        config = config.merge(Config(signature_version=signature_version))
    return boto3.session.Session().client(
        "rekognition",
        endpoint_url=server.url,
        region_name=server.region,
        aws_access_key_id=key_id or server.access_key_id,
        aws_secret_access_key=secret or server.secret_access_key,
        config=config,
    )


@pytest.fixture
def client(api_server: ApiServer) -> Any:
    return rekognition(api_server)


@pytest.fixture
def photos(testdata: Path) -> dict[str, bytes]:
    people = testdata / "people"
    return {
        "obama_1": (people / "obama" / "obama_1.jpg").read_bytes(),
        "obama_2": (people / "obama" / "obama_2.jpg").read_bytes(),
        "obama_4": (people / "obama" / "obama_4.jpg").read_bytes(),
        "biden": (people / "biden" / "biden_2.jpg").read_bytes(),
        "obama_biden": (testdata / "groups" / "obama_biden_1.jpg").read_bytes(),
        "noface": (testdata / "noface" / "compreface_no-faces.jpg").read_bytes(),
    }


def error_code(info: pytest.ExceptionInfo[Any]) -> str:
    code: str = info.value.response["Error"]["Code"]
    return code


def test_collection_and_face_cycle(client: Any, photos: dict[str, bytes]) -> None:
    created = client.create_collection(CollectionId=COLLECTION)
    assert created["StatusCode"] == 200
    assert created["CollectionArn"].endswith(f"collection/{COLLECTION}")
    headers = created["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/x-amz-json-1.1"
    assert created["ResponseMetadata"]["RequestId"]
    assert COLLECTION in client.list_collections()["CollectionIds"]

    indexed = client.index_faces(
        CollectionId=COLLECTION, Image={"Bytes": photos["obama_1"]}, ExternalImageId="obama_1.jpg"
    )
    [record] = indexed["FaceRecords"]
    face_id = record["Face"]["FaceId"]
    assert record["Face"]["ExternalImageId"] == "obama_1.jpg"
    assert 0 < record["Face"]["BoundingBox"]["Width"] <= 1
    assert client.describe_collection(CollectionId=COLLECTION)["FaceCount"] == 1

    found = client.search_faces_by_image(
        CollectionId=COLLECTION, Image={"Bytes": photos["obama_2"]}
    )
    [match] = found["FaceMatches"]
    assert match["Face"]["FaceId"] == face_id
    assert match["Similarity"] > 90
    assert found["SearchedFaceConfidence"] > 50
    stranger = client.search_faces_by_image(
        CollectionId=COLLECTION, Image={"Bytes": photos["biden"]}
    )
    assert stranger["FaceMatches"] == []

    second = client.index_faces(CollectionId=COLLECTION, Image={"Bytes": photos["obama_4"]})
    second_id = second["FaceRecords"][0]["Face"]["FaceId"]
    by_id = client.search_faces(CollectionId=COLLECTION, FaceId=face_id)
    assert by_id["SearchedFaceId"] == face_id
    assert [m["Face"]["FaceId"] for m in by_id["FaceMatches"]] == [second_id]

    listed = client.list_faces(CollectionId=COLLECTION)["Faces"]
    assert {f["FaceId"] for f in listed} == {face_id, second_id}
    page = client.list_faces(CollectionId=COLLECTION, MaxResults=1)
    assert len(page["Faces"]) == 1
    rest = client.list_faces(CollectionId=COLLECTION, NextToken=page["NextToken"])
    assert len(rest["Faces"]) == 1
    assert "NextToken" not in rest

    deleted = client.delete_faces(CollectionId=COLLECTION, FaceIds=[face_id, second_id])
    assert sorted(deleted["DeletedFaces"]) == sorted([face_id, second_id])
    assert client.list_faces(CollectionId=COLLECTION)["Faces"] == []

    assert client.delete_collection(CollectionId=COLLECTION)["StatusCode"] == 200
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_collection(CollectionId=COLLECTION)


def test_index_faces_from_the_object_store(
    api_server: ApiServer, client: Any, photos: dict[str, bytes]
) -> None:
    bucket = api_server.bundles.settings.bucket
    api_server.bundles.objects().put_object(bucket, "uploads/obama.jpg", photos["obama_1"])
    client.create_collection(CollectionId=COLLECTION)
    indexed = client.index_faces(
        CollectionId=COLLECTION, Image={"S3Object": {"Bucket": bucket, "Name": "uploads/obama.jpg"}}
    )
    assert len(indexed["FaceRecords"]) == 1
    with pytest.raises(client.exceptions.InvalidS3ObjectException):
        client.index_faces(
            CollectionId=COLLECTION, Image={"S3Object": {"Bucket": bucket, "Name": "missing.jpg"}}
        )
    with pytest.raises(client.exceptions.InvalidS3ObjectException):
        client.detect_faces(Image={"S3Object": {"Bucket": "no-such-bucket", "Name": "x.jpg"}})


def test_users(client: Any, photos: dict[str, bytes]) -> None:
    client.create_collection(CollectionId=COLLECTION)
    faces = []
    for name in ("obama_1", "obama_2", "biden"):
        indexed = client.index_faces(CollectionId=COLLECTION, Image={"Bytes": photos[name]})
        faces.append(indexed["FaceRecords"][0]["Face"]["FaceId"])
    client.create_user(CollectionId=COLLECTION, UserId="obama")
    assert client.list_users(CollectionId=COLLECTION)["Users"] == [
        {"UserId": "obama", "UserStatus": "CREATED"}
    ]
    associated = client.associate_faces(CollectionId=COLLECTION, UserId="obama", FaceIds=faces)
    assert {f["FaceId"] for f in associated["AssociatedFaces"]} == set(faces[:2])
    [refused] = associated["UnsuccessfulFaceAssociations"]
    assert refused["FaceId"] == faces[2]
    assert refused["Reasons"] == ["LOW_MATCH_CONFIDENCE"]
    assert associated["UserStatus"] == "ACTIVE"

    found = client.search_users_by_image(
        CollectionId=COLLECTION, Image={"Bytes": photos["obama_4"]}
    )
    [match] = found["UserMatches"]
    assert match["User"]["UserId"] == "obama"
    assert match["Similarity"] > 90
    assert "BoundingBox" in found["SearchedFace"]["FaceDetail"]
    by_face = client.search_users(CollectionId=COLLECTION, FaceId=faces[0])
    assert [m["User"]["UserId"] for m in by_face["UserMatches"]] == ["obama"]
    assert by_face["SearchedFace"] == {"FaceId": faces[0]}
    assert client.search_users(CollectionId=COLLECTION, FaceId=faces[2])["UserMatches"] == []

    disassociated = client.disassociate_faces(
        CollectionId=COLLECTION, UserId="obama", FaceIds=[faces[1]]
    )
    assert disassociated["DisassociatedFaces"] == [{"FaceId": faces[1]}]
    client.delete_user(CollectionId=COLLECTION, UserId="obama")
    assert client.list_users(CollectionId=COLLECTION)["Users"] == []
    assert len(client.list_faces(CollectionId=COLLECTION)["Faces"]) == 3  # faces stay


def test_detect_faces(client: Any, photos: dict[str, bytes]) -> None:
    [detail] = client.detect_faces(Image={"Bytes": photos["obama_1"]})["FaceDetails"]
    assert set(detail) >= {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence"}
    assert {lm["Type"] for lm in detail["Landmarks"]} == {
        "eyeLeft",
        "eyeRight",
        "nose",
        "mouthLeft",
        "mouthRight",
    }
    group = client.detect_faces(Image={"Bytes": photos["obama_biden"]}, Attributes=["ALL"])
    assert len(group["FaceDetails"]) == 2
    assert client.detect_faces(Image={"Bytes": photos["noface"]})["FaceDetails"] == []


def test_compare_faces(client: Any, photos: dict[str, bytes]) -> None:
    same = client.compare_faces(
        SourceImage={"Bytes": photos["obama_1"]}, TargetImage={"Bytes": photos["obama_biden"]}
    )
    [match] = same["FaceMatches"]
    assert match["Similarity"] > 90
    assert "BoundingBox" in match["Face"]
    assert len(same["UnmatchedFaces"]) == 1  # Biden
    assert set(same["SourceImageFace"]) == {"BoundingBox", "Confidence"}

    other = client.compare_faces(
        SourceImage={"Bytes": photos["obama_1"]},
        TargetImage={"Bytes": photos["biden"]},
        SimilarityThreshold=50,
    )
    assert other["FaceMatches"] == []
    assert len(other["UnmatchedFaces"]) == 1
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.compare_faces(
            SourceImage={"Bytes": photos["noface"]}, TargetImage={"Bytes": photos["obama_1"]}
        )


def test_errors_are_the_sdks_own_exceptions(client: Any, photos: dict[str, bytes]) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_collection(CollectionId="missing")
    client.create_collection(CollectionId=COLLECTION)
    with pytest.raises(client.exceptions.ResourceAlreadyExistsException):
        client.create_collection(CollectionId=COLLECTION)
    with pytest.raises(client.exceptions.InvalidParameterException, match="no faces"):
        client.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": photos["noface"]})
    with pytest.raises(client.exceptions.InvalidImageFormatException):
        client.index_faces(CollectionId=COLLECTION, Image={"Bytes": b"not an image at all"})
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.index_faces(CollectionId="missing", Image={"Bytes": photos["obama_1"]})


def test_an_unsigned_request_is_refused(api_server: ApiServer) -> None:
    unsigned = rekognition(api_server, signature_version=botocore.UNSIGNED)
    with pytest.raises(ClientError) as info:
        unsigned.list_collections()
    assert error_code(info) == "MissingAuthenticationTokenException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_wrong_secret_is_refused(api_server: ApiServer) -> None:
    wrong = rekognition(api_server, secret="not-the-secret-access-key")
    with pytest.raises(ClientError) as info:
        wrong.list_collections()
    assert error_code(info) == "InvalidSignatureException"


def test_an_unknown_access_key_is_refused(api_server: ApiServer) -> None:
    unknown = rekognition(api_server, key_id="AKFLNOTAKEY000000000", secret="whatever")
    with pytest.raises(ClientError) as info:
        unknown.list_collections()
    assert error_code(info) == "UnrecognizedClientException"


def test_repeated_failures_are_throttled(api_server: ApiServer) -> None:
    wrong = rekognition(api_server, secret="not-the-secret-access-key")
    limit = api_server.bundles.settings.serve.failed_auth_limit
    for _ in range(limit):
        with pytest.raises(ClientError):
            wrong.list_collections()
    with pytest.raises(ClientError) as info:
        rekognition(api_server).list_collections()  # the right key waits out the minute too
    assert error_code(info) == "ThrottlingException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_a_read_key_can_look_but_not_change(api_server: ApiServer, client: Any) -> None:
    client.create_collection(CollectionId=COLLECTION)
    key = api_server.bundles.keys.create_access_key("reader", Role.READ)
    reader = rekognition(
        api_server, key_id=key.access_key_id, secret=key.secret_access_key.get_secret_value()
    )
    assert COLLECTION in reader.list_collections()["CollectionIds"]
    assert reader.describe_collection(CollectionId=COLLECTION)["FaceCount"] == 0
    with pytest.raises(reader.exceptions.AccessDeniedException):
        reader.create_collection(CollectionId="other")
    with pytest.raises(reader.exceptions.AccessDeniedException):
        reader.delete_collection(CollectionId=COLLECTION)


def signed_post(server: ApiServer, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """A request boto3 cannot make (an unknown operation, broken JSON), signed by botocore."""
    request = AWSRequest(
        method="POST",
        url=server.url + "/",
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
    )
    credentials = Credentials(server.access_key_id, server.secret_access_key)
    SigV4Auth(credentials, "rekognition", server.region).add_auth(request)
    sent = urllib.request.Request(
        server.url + "/", data=body, headers=dict(request.headers.items()), method="POST"
    )
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_unknown_operations_and_broken_json(api_server: ApiServer) -> None:
    status, answer = signed_post(api_server, "RekognitionService.DetectLabels", b"{}")
    assert (status, answer["__type"]) == (400, "UnknownOperationException")
    status, answer = signed_post(api_server, "RekognitionService.ListCollections", b"{not json")
    assert (status, answer["__type"]) == (400, "SerializationException")
    status, answer = signed_post(api_server, "RekognitionService.ListCollections", b"{}")
    assert (status, answer) == (200, {"CollectionIds": [], "FaceModelVersions": []})


def test_without_keys_any_local_signer_is_trusted(tmp_path: Path) -> None:
    # No keys at all: the server listens on loopback only and trusts every caller, as
    # the REST API does; an SDK still signs (with anything), and that is accepted.
    settings = Settings(home=tmp_path / "home", models_dir=None, serve=ServeSettings(port=0))
    with ExitStack() as stack:
        server, _ = build_server(open_server_bundles(settings, stack, process_role(settings)))
        server.start()
        try:
            client = boto3.session.Session().client(
                "rekognition",
                endpoint_url=server.url,
                region_name="us-east-1",
                aws_access_key_id="anything",
                aws_secret_access_key="anything",
            )
            assert client.create_collection(CollectionId=COLLECTION)["StatusCode"] == 200
            assert client.list_collections()["CollectionIds"] == [COLLECTION]
        finally:
            server.stop()
