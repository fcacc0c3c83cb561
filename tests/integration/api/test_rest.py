"""The REST API over real HTTP: every endpoint, its roles, its errors and its limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from facelens.history.ledger import Recognition, Status
from tests.servers.facelens_api import ApiServer, start_api_server

COLLECTION = "staff"


def photo(testdata: Path, person: str, n: int = 0) -> bytes:
    return sorted((testdata / "people" / person).glob("*.jpg"))[n].read_bytes()


def call(
    server: ApiServer,
    method: str,
    path: str,
    *,
    token: str | None = None,
    expect: int = 200,
    **kwargs: Any,
) -> Any:
    response = requests.request(
        method,
        f"{server.url}/api/v1{path}",
        headers=server.headers(token=token),
        timeout=120,
        **kwargs,
    )
    assert response.status_code == expect, response.text
    return response.json() if response.content else None


def test_health_needs_no_key(api_server: ApiServer) -> None:
    response = requests.get(f"{api_server.url}/api/v1/health", timeout=10)
    assert response.json() == {"Status": "ok"}


@pytest.mark.slow
def test_collections_faces_users_search_and_forget(api_server: ApiServer, testdata: Path) -> None:
    created = call(
        api_server, "POST", "/collections", json={"CollectionId": COLLECTION}, expect=201
    )
    assert created["StatusCode"] == 200
    assert COLLECTION in call(api_server, "GET", "/collections")["CollectionIds"]
    indexed = call(
        api_server,
        "POST",
        f"/collections/{COLLECTION}/faces",
        files={"image": ("obama.jpg", photo(testdata, "obama"), "image/jpeg")},
        data={"ExternalImageId": "obama"},
        expect=201,
    )
    [record] = indexed["FaceRecords"]
    face_id = record["Face"]["FaceId"]
    assert record["Face"]["ExternalImageId"] == "obama"
    second = call(
        api_server,
        "POST",
        f"/collections/{COLLECTION}/faces",
        files={"image": ("o2.jpg", photo(testdata, "obama", 1), "image/jpeg")},
        expect=201,
    )["FaceRecords"][0]["Face"]["FaceId"]

    described = call(api_server, "GET", f"/collections/{COLLECTION}")
    assert described["FaceCount"] == 2
    listed = call(api_server, "GET", f"/collections/{COLLECTION}/faces", params={"max_results": 1})
    assert len(listed["Faces"]) == 1
    assert "NextToken" in listed

    found = call(
        api_server,
        "POST",
        f"/collections/{COLLECTION}/faces/search",
        files={"image": ("q.jpg", photo(testdata, "obama", 2), "image/jpeg")},
        token=api_server.reader_token,  # searching is reading
    )
    assert found["FaceMatches"][0]["Face"]["FaceId"] in {face_id, second}
    assert found["FaceMatches"][0]["Similarity"] > 90

    call(
        api_server, "POST", f"/collections/{COLLECTION}/users", json={"UserId": "obama"}, expect=201
    )
    associated = call(
        api_server,
        "POST",
        f"/collections/{COLLECTION}/users/obama/faces",
        json={"FaceIds": [face_id, second]},
    )
    assert sorted(f["FaceId"] for f in associated["AssociatedFaces"]) == sorted([face_id, second])
    assert (
        call(api_server, "GET", f"/collections/{COLLECTION}/users")["Users"][0]["UserId"] == "obama"
    )
    mine = call(api_server, "GET", f"/collections/{COLLECTION}/faces", params={"user_id": "obama"})
    assert len(mine["Faces"]) == 2
    users = call(
        api_server,
        "POST",
        f"/collections/{COLLECTION}/users/search",
        files={"image": ("q.jpg", photo(testdata, "obama", 3), "image/jpeg")},
    )
    assert users["UserMatches"][0]["User"]["UserId"] == "obama"

    call(api_server, "PUT", "/profiles/obama", json={"Name": "Barack Obama", "Terms": [2009, 2013]})
    merged = call(api_server, "PATCH", "/profiles/obama", json={"Role": "President"})
    assert merged["Item"]["Name"] == "Barack Obama"
    assert merged["Item"]["Role"] == "President"
    assert call(api_server, "GET", "/profiles/obama", token=api_server.reader_token)["Item"][
        "Terms"
    ] == [2009, 2013]
    assert call(api_server, "GET", "/profiles")["Items"][0]["UserId"] == "obama"

    forgotten = call(
        api_server, "DELETE", f"/collections/{COLLECTION}/users/obama", params={"forget": "true"}
    )
    assert sorted(forgotten["DeletedFaces"]) == sorted([face_id, second])
    assert forgotten["DeletedProfiles"] == ["obama"]
    call(api_server, "GET", "/profiles/obama", expect=404)
    assert call(api_server, "GET", f"/collections/{COLLECTION}")["FaceCount"] == 0

    third = call(
        api_server,
        "POST",
        f"/collections/{COLLECTION}/faces",
        files={"image": ("b.jpg", photo(testdata, "brad_pitt"), "image/jpeg")},
        expect=201,
    )["FaceRecords"][0]["Face"]["FaceId"]
    deleted = call(api_server, "DELETE", f"/collections/{COLLECTION}/faces/{third}")
    assert deleted["DeletedFaces"] == [third]
    call(api_server, "DELETE", f"/collections/{COLLECTION}/faces/{third}", expect=404)
    call(api_server, "DELETE", f"/collections/{COLLECTION}", expect=204)
    call(api_server, "GET", f"/collections/{COLLECTION}", expect=404)


def test_errors_are_aws_shaped(api_server: ApiServer, testdata: Path) -> None:
    missing = call(api_server, "GET", "/collections/nope", expect=404)
    assert missing["__type"] == "ResourceNotFoundException"
    call(api_server, "POST", "/collections", json={"CollectionId": "c"}, expect=201)
    again = call(api_server, "POST", "/collections", json={"CollectionId": "c"}, expect=409)
    assert again["__type"] == "ResourceAlreadyExistsException"
    bad = call(
        api_server,
        "POST",
        "/collections/c/faces",
        files={"image": ("x.jpg", b"not an image", "image/jpeg")},
        expect=400,
    )
    assert bad["__type"] == "InvalidImageFormatException"
    empty = call(
        api_server,
        "POST",
        "/collections/c/faces",
        files={"image": ("x.jpg", b"", "image/jpeg")},
        expect=400,
    )
    assert empty["__type"] == "InvalidParameterException"
    noface = next((testdata / "noface").iterdir()).read_bytes()
    search = call(
        api_server,
        "POST",
        "/collections/c/faces/search",
        files={"image": ("n.jpg", noface, "image/jpeg")},
        expect=400,
    )
    assert search["__type"] == "InvalidParameterException"
    invalid = call(api_server, "POST", "/collections", json={"Wrong": 1}, expect=400)
    assert invalid["__type"] == "ValidationException"
    assert call(api_server, "GET", "/profiles/nobody", expect=404)["__type"] == (
        "ResourceNotFoundException"
    )


def test_profile_and_user_deletion(api_server: ApiServer) -> None:
    call(api_server, "PUT", "/profiles/p1", json={"Name": "Ada"})
    call(api_server, "DELETE", "/profiles/p1", token=api_server.reader_token, expect=403)
    call(api_server, "DELETE", "/profiles/p1", expect=204)
    call(api_server, "DELETE", "/profiles/p1", expect=404)
    call(api_server, "POST", "/collections", json={"CollectionId": "c"}, expect=201)
    call(api_server, "POST", "/collections/c/users", json={"UserId": "ada"}, expect=201)
    assert call(api_server, "DELETE", "/collections/c/users/ada") == {}
    assert call(api_server, "GET", "/collections/c/users")["Users"] == []
    call(api_server, "DELETE", "/collections/c/users/ada", expect=404)


def test_authentication_and_roles(api_server: ApiServer) -> None:
    url = f"{api_server.url}/api/v1/collections"
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["__type"] == "UnrecognizedClientException"
    assert "Bearer" in anonymous.headers["WWW-Authenticate"]
    wrong = requests.get(url, headers={"Authorization": "Bearer fl_000000000000_nope"}, timeout=10)
    assert wrong.status_code == 401
    assert requests.get(url, headers={"X-Api-Key": api_server.reader_token}, timeout=10).ok
    denied = requests.post(
        url,
        json={"CollectionId": "x"},
        headers={"Authorization": f"Bearer {api_server.reader_token}"},
        timeout=10,
    )
    assert denied.status_code == 403
    assert denied.json()["__type"] == "AccessDeniedException"
    metrics = requests.get(
        f"{api_server.url}/api/v1/metrics", headers=api_server.headers(), timeout=10
    )
    assert 'facelens_recognitions{status="identified"} 0.0' in metrics.text


def test_failed_authentications_are_rate_limited(tmp_path: Path) -> None:
    server = start_api_server(tmp_path / "home", failed_auth_limit=3)
    try:
        url = f"{server.url}/api/v1/collections"
        bad = {"Authorization": "Bearer fl_000000000000_guess"}
        codes = [requests.get(url, headers=bad, timeout=10).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        throttled = requests.get(url, headers=server.headers(), timeout=10)  # even a good key
        assert throttled.status_code == 429
        assert throttled.json()["__type"] == "ThrottlingException"
    finally:
        server.server.stop()
        server.stack.close()


def test_oversized_uploads_are_refused(tmp_path: Path, testdata: Path) -> None:
    server = start_api_server(tmp_path / "home", max_upload_bytes=100_000)
    try:
        big = b"\xff" * 200_000
        response = requests.post(
            f"{server.url}/api/v1/collections/c/faces",
            files={"image": ("big.jpg", big, "image/jpeg")},
            headers=server.headers(),
            timeout=30,
        )
        assert response.status_code == 413
        assert response.json()["__type"] == "RequestEntityTooLargeException"

        def chunks() -> Any:  # no Content-Length: the limit holds as the body streams in
            for _ in range(20):
                yield b"x" * 10_000

        streamed = requests.put(
            f"{server.url}/api/v1/profiles/p",
            data=chunks(),
            headers={**server.headers(), "Content-Type": "application/json"},
            timeout=30,
        )
        assert streamed.status_code == 413
    finally:
        server.server.stop()
        server.stack.close()


def test_identification_history_pages_and_filters(api_server: ApiServer) -> None:
    ledger = api_server.bundles.history().ledger
    start = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    for n in range(5):
        status = Status.UNKNOWN if n % 2 else Status.IDENTIFIED
        message = {"Status": status.value, "Camera": "door" if n < 3 else "porch"}
        if status is Status.IDENTIFIED:
            message["UserId"] = "ada"
        ledger.record(
            Recognition(
                recognition_id=f"r{n}",
                status=status,
                topic="rekognition",
                message=message,
                recognized_at=start + timedelta(seconds=n),
                bucket="facelens",
                key=f"faces/k{n}.jpg",
            )
        )
    first = call(api_server, "GET", "/identifications", params={"max_results": 2})
    assert [r["RecognitionId"] for r in first["Identifications"]] == ["r4", "r3"]
    rest = call(
        api_server,
        "GET",
        "/identifications",
        params={"max_results": 10, "next_token": first["NextToken"]},
    )
    assert [r["RecognitionId"] for r in rest["Identifications"]] == ["r2", "r1", "r0"]
    assert "NextToken" not in rest
    unknown = call(api_server, "GET", "/identifications/unknown")
    assert [r["RecognitionId"] for r in unknown["Identifications"]] == ["r3", "r1"]
    door = call(api_server, "GET", "/identifications", params={"camera": "door", "user_id": "ada"})
    assert [r["RecognitionId"] for r in door["Identifications"]] == ["r2", "r0"]
    assert call(api_server, "GET", "/identifications", params={"next_token": "!!"}, expect=400)


def test_openapi_documents_the_api(api_server: ApiServer) -> None:
    reader = api_server.headers(token=api_server.reader_token)  # the docs need the read role
    schema = requests.get(f"{api_server.url}/openapi.json", headers=reader, timeout=10).json()
    assert "/api/v1/collections/{collection_id}/faces" in schema["paths"]
    assert requests.get(f"{api_server.url}/docs", headers=reader, timeout=10).ok
