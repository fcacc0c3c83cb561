"""Fuzz: the Rekognition endpoint, ``POST /`` with ``X-Amz-Target: RekognitionService.*``."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

from facelens.api.aws import rekognition
from facelens.api.aws.rekognition_ops import ATTRIBUTES, OPERATIONS
from tests.fuzz.aws_params import numbers, params_body, targets
from tests.fuzz.calls import Signer, signed_admin_call, signed_call
from tests.fuzz.conftest import Run
from tests.fuzz.harness import Fuzzer
from tests.fuzz.images import base64_images, png
from tests.fuzz.strategies import (
    JSON_SCALARS,
    LONE,
    both_encodings,
    dumps,
    json_values,
    mostly,
    text,
    token_values,
)
from tests.fuzz.wire import Call, wire
from tests.fuzz.world import COLLECTION, CROP_KEY, Credentials, World


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
        "MaxFaces": numbers(),
        "MaxResults": numbers(),
        "MaxUsers": numbers(),
        "NextToken": token_values(),
        "FaceMatchThreshold": numbers(),
        "UserMatchThreshold": numbers(),
        "SimilarityThreshold": numbers(),
        "QualityFilter": st.sampled_from(["AUTO", "NONE", "LOW", "MEDIUM", "HIGH", ""]) | text(),
        "DetectionAttributes": attributes | JSON_SCALARS,
        "Attributes": attributes | JSON_SCALARS,
        "Image": images,
        "SourceImage": images,
        "TargetImage": images,
    }


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


@st.composite
def rekognition_calls(draw: st.DrawFn, fuzz: Fuzzer, creds: Credentials, world: World) -> Call:
    bucket = fuzz.bundles.settings.bucket
    target = draw(targets(rekognition.TARGET_PREFIX, sorted(OPERATIONS)))
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


def _rekognition(fuzz: Fuzzer, creds: Credentials, operation: str, body: bytes) -> Call:
    headers = {
        "X-Amz-Target": rekognition.TARGET_PREFIX + operation,
        "Content-Type": rekognition.CONTENT_TYPE,
    }
    return signed_admin_call(
        fuzz, creds, "rekognition", rekognition.SIGNING_NAME, body, headers=headers
    )


IMAGES = ("Image", "SourceImage", "TargetImage")
LISTS = ("FaceIds", "DetectionAttributes", "Attributes")


def surrogate_sweep(fuzz: Fuzzer, creds: Credentials) -> list[Call]:
    """Every operation once with every string a lone surrogate (escaped and raw bytes),
    in a collection that exists: whatever reaches a store unvalidated shows as a 500."""
    calls = []
    for operation, names in REKOGNITION_NAMES.items():
        document: dict[str, Any] = {"CollectionId": COLLECTION}
        for name in names:
            if name in IMAGES:
                document[name] = {"S3Object": {"Bucket": LONE, "Name": LONE}}
            elif name in LISTS:
                document[name] = [LONE]
            elif name != "CollectionId" or operation == "CreateCollection":
                document[name] = LONE
        calls += [_rekognition(fuzz, creds, operation, body) for body in both_encodings(document)]
    return calls


def rekognition_classics(fuzz: Fuzzer, creds: Credentials, world: World) -> list[Call]:
    """Inputs that broke (or nearly broke) the endpoint once: sent first, every run."""
    huge = base64.b64encode(b"9" * 400).decode()
    bomb = base64.b64encode(png(65_535, 65_535)).decode()
    photo = base64.b64encode(world.photos.faces[0]).decode()
    bucket = fuzz.bundles.settings.bucket
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


def test_rekognition(run_fuzz: Run, fuzz: Fuzzer, credentials: Credentials, world: World) -> None:
    calls = rekognition_calls(fuzz, credentials, world)
    classics = rekognition_classics(fuzz, credentials, world) + surrogate_sweep(fuzz, credentials)
    run_fuzz("rekognition", calls, 100, classics)
