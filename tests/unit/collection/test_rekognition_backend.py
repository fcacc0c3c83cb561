"""The Rekognition back-end against botocore's Stubber: moto has no Rekognition collections.

The Stubber checks every request against Rekognition's own service model
(names, types, required parameters) and answers with responses shaped as
AWS documents them, so these tests pin both directions of the adapter.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from facelens.aws_clients import AwsClientOptions
from facelens.collection.models import QualityFilter
from facelens.collection.rekognition import (
    MAX_IMAGE_BYTES,
    RekognitionCollections,
    open_rekognition,
)
from facelens.errors import (
    ConfigurationError,
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    ServiceUnavailableException,
    StorageError,
)
from facelens.recognizer.finders import RekognitionFinder, SearchOptions
from facelens.values.boxes import BoundingBox

FACE_A = "11111111-1111-4111-8111-111111111111"
FACE_B = "22222222-2222-4222-8222-222222222222"
IMAGE = b"\xff\xd8\xff\xe0 a jpeg"
BOX = {"Width": 0.5, "Height": 0.6, "Left": 0.25, "Top": 0.2}


def _face(face_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "FaceId": face_id,
        "BoundingBox": BOX,
        "ImageId": "33333333-3333-4333-8333-333333333333",
        "Confidence": 99.9,
        **extra,
    }


@pytest.fixture
def stubbed() -> Iterator[tuple[RekognitionCollections, Stubber]]:
    client = boto3.session.Session().client(
        "rekognition",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield RekognitionCollections(client=client), stubber
        stubber.assert_no_pending_responses()


def test_collections_are_created_described_listed_and_deleted(
    stubbed: tuple[RekognitionCollections, Stubber],
) -> None:
    rekognition, stub = stubbed
    created = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    stub.add_response(
        "create_collection",
        {"StatusCode": 200, "CollectionArn": "arn:x", "FaceModelVersion": "7.0"},
        {"CollectionId": "faces"},
    )
    stub.add_response(
        "describe_collection",
        {"FaceCount": 3, "UserCount": 1, "FaceModelVersion": "7.0", "CreationTimestamp": created},
        {"CollectionId": "faces"},
    )
    stub.add_response(
        "list_collections",
        {"CollectionIds": ["faces"], "FaceModelVersions": ["7.0"], "NextToken": "t2"},
        {"MaxResults": 10, "NextToken": "t1"},
    )
    stub.add_response("delete_collection", {"StatusCode": 200}, {"CollectionId": "faces"})

    assert rekognition.create_collection("faces").face_model_version == "7.0"
    info = rekognition.describe_collection("faces")
    assert (info.face_count, info.user_count, info.created_at) == (3, 1, created)
    page = rekognition.list_collections(max_results=10, next_token="t1")
    assert (page.collection_ids, page.next_token) == (["faces"], "t2")
    rekognition.delete_collection("faces")


def test_index_faces_sends_bytes_and_returns_faces_and_reasons(
    stubbed: tuple[RekognitionCollections, Stubber],
) -> None:
    rekognition, stub = stubbed
    stub.add_response(
        "index_faces",
        {
            "FaceRecords": [{"Face": _face(FACE_A, ExternalImageId="anna")}],
            "UnindexedFaces": [{"Reasons": ["EXCEEDS_MAX_FACES"]}],
            "FaceModelVersion": "7.0",
        },
        {
            "CollectionId": "faces",
            "Image": {"Bytes": IMAGE},
            "ExternalImageId": "anna",
            "MaxFaces": 1,
            "QualityFilter": "AUTO",
        },
    )
    result = rekognition.index_faces("faces", IMAGE, external_image_id="anna", max_faces=1)
    assert [f.face_id for f in result.faces] == [FACE_A]
    assert result.faces[0].external_image_id == "anna"
    assert result.faces[0].bounding_box == BoundingBox(width=0.5, height=0.6, left=0.25, top=0.2)
    assert result.unindexed_reasons == (("EXCEEDS_MAX_FACES",),)


def test_search_returns_the_searched_box_and_matches_best_first(
    stubbed: tuple[RekognitionCollections, Stubber],
) -> None:
    rekognition, stub = stubbed
    stub.add_response(
        "search_faces_by_image",
        {
            "SearchedFaceBoundingBox": BOX,
            "SearchedFaceConfidence": 99.5,
            "FaceMatches": [
                {"Similarity": 91.0, "Face": _face(FACE_B)},
                {"Similarity": 99.1, "Face": _face(FACE_A, UserId="anna")},
            ],
            "FaceModelVersion": "7.0",
        },
        {
            "CollectionId": "faces",
            "Image": {"Bytes": IMAGE},
            "MaxFaces": 5,
            "FaceMatchThreshold": 90.0,
            "QualityFilter": "NONE",
        },
    )
    result = rekognition.search_faces_by_image(
        "faces", IMAGE, max_faces=5, face_match_threshold=90.0
    )
    assert [m.face.face_id for m in result.matches] == [FACE_A, FACE_B]
    assert result.matches[0].face.user_id == "anna"
    assert result.searched_box.left == pytest.approx(0.25)


def test_list_faces_pages_and_delete_faces_reports_what_was_deleted(
    stubbed: tuple[RekognitionCollections, Stubber],
) -> None:
    rekognition, stub = stubbed
    stub.add_response(
        "list_faces",
        {"Faces": [_face(FACE_A)], "NextToken": "more", "FaceModelVersion": "7.0"},
        {"CollectionId": "faces", "MaxResults": 1, "UserId": "anna"},
    )
    stub.add_response(
        "delete_faces",
        {"DeletedFaces": [FACE_A]},
        {"CollectionId": "faces", "FaceIds": [FACE_A, FACE_B]},
    )
    page = rekognition.list_faces("faces", max_results=1, user_id="anna")
    assert ([f.face_id for f in page.faces], page.next_token) == ([FACE_A], "more")
    assert rekognition.delete_faces("faces", [FACE_A, FACE_B, FACE_A]) == [FACE_A]


@pytest.mark.parametrize(
    ("code", "status", "raised"),
    [
        ("InvalidParameterException", 400, InvalidParameterException),
        ("InvalidImageFormatException", 400, InvalidImageFormatException),
        ("ImageTooLargeException", 400, ImageTooLargeException),
        ("ResourceNotFoundException", 400, ResourceNotFoundException),
        ("ResourceAlreadyExistsException", 400, ResourceAlreadyExistsException),
        ("ThrottlingException", 400, ServiceUnavailableException),
        ("ProvisionedThroughputExceededException", 400, ServiceUnavailableException),
        ("InternalServerError", 500, ServiceUnavailableException),
        ("AccessDeniedException", 400, StorageError),
    ],
)
def test_rekognition_errors_become_ours(
    stubbed: tuple[RekognitionCollections, Stubber],
    code: str,
    status: int,
    raised: type[Exception],
) -> None:
    rekognition, stub = stubbed
    stub.add_client_error(
        "search_faces_by_image",
        service_error_code=code,
        service_message="refused for the test",
        http_status_code=status,
        expected_params={
            "CollectionId": "faces",
            "Image": {"Bytes": IMAGE},
            "MaxFaces": 10,
            "FaceMatchThreshold": 80.0,
            "QualityFilter": "NONE",
        },
    )
    with pytest.raises(raised, match="refused for the test"):
        rekognition.search_faces_by_image("faces", IMAGE)


def test_access_denied_is_retryable_not_a_dead_letter(
    stubbed: tuple[RekognitionCollections, Stubber],
) -> None:
    """A missing IAM permission is fixed by its owner: the event must wait, not be dropped."""
    rekognition, stub = stubbed
    stub.add_client_error("delete_collection", service_error_code="AccessDeniedException")
    with pytest.raises(StorageError) as raised:
        rekognition.delete_collection("faces")
    assert not isinstance(raised.value, InvalidParameterException)


@pytest.mark.parametrize(
    ("image", "raised"),
    [(b"", InvalidImageFormatException), (b"x" * (MAX_IMAGE_BYTES + 1), ImageTooLargeException)],
)
def test_images_rekognition_would_refuse_are_refused_before_the_call(
    stubbed: tuple[RekognitionCollections, Stubber], image: bytes, raised: type[Exception]
) -> None:
    rekognition, _ = stubbed
    with pytest.raises(raised):
        rekognition.search_faces_by_image("faces", image)


def test_bad_parameters_are_refused_before_the_call(
    stubbed: tuple[RekognitionCollections, Stubber],
) -> None:
    rekognition, _ = stubbed
    with pytest.raises(InvalidParameterException, match="CollectionId"):
        rekognition.describe_collection("no spaces allowed")
    with pytest.raises(InvalidParameterException, match="FaceMatchThreshold"):
        rekognition.search_faces_by_image("faces", IMAGE, face_match_threshold=101)


def test_an_unreachable_endpoint_is_unavailable_quickly(aws_env: dict[str, str]) -> None:
    rekognition = RekognitionCollections(
        aws=AwsClientOptions(
            endpoint_url="http://127.0.0.1:9",
            region="us-east-1",
            connect_timeout=0.5,
            read_timeout=0.5,
            max_attempts=1,
        )
    )
    try:
        with pytest.raises(ServiceUnavailableException, match="unreachable"):
            rekognition.describe_collection("faces")
    finally:
        rekognition.close()


def test_the_finder_names_the_best_match_and_its_user(
    stubbed: tuple[RekognitionCollections, Stubber],
) -> None:
    rekognition, stub = stubbed
    expected = {
        "CollectionId": "staff",
        "Image": {"Bytes": IMAGE},
        "MaxFaces": 3,
        "FaceMatchThreshold": 95.0,
        "QualityFilter": "NONE",
    }
    match = {"Similarity": 99.0, "Face": _face(FACE_A, UserId="anna", ExternalImageId="a.jpg")}
    stub.add_response(
        "search_faces_by_image",
        {"SearchedFaceBoundingBox": BOX, "SearchedFaceConfidence": 99.0, "FaceMatches": [match]},
        expected,
    )
    stub.add_response(
        "search_faces_by_image",
        {"SearchedFaceBoundingBox": BOX, "SearchedFaceConfidence": 99.0, "FaceMatches": []},
        expected,
    )
    finder = RekognitionFinder(
        rekognition,
        options=SearchOptions(collection_id="staff", face_match_threshold=95.0, max_faces=3),
    )
    finder.prepare()  # nothing remote: the function may not describe the collection
    named = finder.find(IMAGE)
    assert named.identity is not None
    assert (named.identity.face_id, named.identity.user_id) == (FACE_A, "anna")
    assert named.identity.external_image_id == "a.jpg"
    assert finder.find(IMAGE).identity is None


def test_the_finder_passes_no_face_on_as_a_permanent_error(
    stubbed: tuple[RekognitionCollections, Stubber],
) -> None:
    rekognition, stub = stubbed
    stub.add_client_error(
        "search_faces_by_image",
        service_error_code="InvalidParameterException",
        service_message="There are no faces in the image. Should be at least 1.",
        expected_params={
            "CollectionId": "faces",
            "Image": ANY,
            "MaxFaces": 5,
            "FaceMatchThreshold": 80.0,
            "QualityFilter": "NONE",
        },
    )
    with pytest.raises(InvalidParameterException, match="no faces"):
        RekognitionFinder(rekognition).find(IMAGE)


@pytest.mark.parametrize(
    "url", ["rekognition://bucket", "rekognition://?region=a&region=b", "rekognition://?x=1"]
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_rekognition(url)


def test_url_options_reach_the_client() -> None:
    backend = open_rekognition("rekognition://?region=eu-west-1&endpoint_url=http://127.0.0.1:1")
    assert (backend.aws.options.region, backend.aws.options.endpoint_url) == (
        "eu-west-1",
        "http://127.0.0.1:1",
    )
    assert isinstance(open_rekognition("rekognition://"), RekognitionCollections)


def test_quality_filter_is_sent_as_rekognition_names_it(
    stubbed: tuple[RekognitionCollections, Stubber],
) -> None:
    rekognition, stub = stubbed
    stub.add_response(
        "index_faces",
        {"FaceRecords": [], "UnindexedFaces": [], "FaceModelVersion": "7.0"},
        {"CollectionId": "faces", "Image": {"Bytes": IMAGE}, "QualityFilter": "HIGH"},
    )
    result = rekognition.index_faces("faces", IMAGE, quality_filter=QualityFilter.HIGH)
    assert result.faces == ()
