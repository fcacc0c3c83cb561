"""The AWS CLI's ``aws rekognition`` against a real facelens server, with --endpoint-url.

The CLI runs as a subprocess with only the credentials and region given
here: no AWS config or credentials file of the machine is read (both point
to files that do not exist), and no AWS_* variable leaks in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.servers.facelens_api import ApiServer

COLLECTION = "cli-contract"


class AwsCli:
    def __init__(self, server: ApiServer, tmp_path: Path) -> None:
        self.server = server
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=server.access_key_id,
            AWS_SECRET_ACCESS_KEY=server.secret_access_key,
            AWS_DEFAULT_REGION=server.region,
            AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
            AWS_MAX_ATTEMPTS="1",
        )
        self.env = env
        self.cwd = tmp_path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "awscli", "rekognition", *args]
        command += ["--endpoint-url", self.server.url, "--output", "json"]
        return subprocess.run(
            command, env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=60
        )

    def __call__(self, *args: str) -> Any:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}


@pytest.fixture
def aws(api_server: ApiServer, tmp_path: Path) -> AwsCli:
    return AwsCli(api_server, tmp_path)


def test_cli_collection_cycle(
    aws: AwsCli, api_server: ApiServer, testdata: Path, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.jpg"  # a relative fileb:// path, as users type it
    photo.write_bytes((testdata / "people" / "obama" / "obama_1.jpg").read_bytes())
    bucket = api_server.bundles.settings.bucket
    api_server.bundles.objects().put_object(
        bucket, "uploads/obama_4.jpg", (testdata / "people" / "obama" / "obama_4.jpg").read_bytes()
    )

    created = aws("create-collection", "--collection-id", COLLECTION)
    assert created["StatusCode"] == 200

    by_bytes = aws(
        "index-faces",
        "--collection-id",
        COLLECTION,
        "--image-bytes",
        "fileb://photo.jpg",
        "--external-image-id",
        "photo.jpg",
    )
    [record] = by_bytes["FaceRecords"]
    s3_image = json.dumps({"S3Object": {"Bucket": bucket, "Name": "uploads/obama_4.jpg"}})
    by_object = aws("index-faces", "--collection-id", COLLECTION, "--image", s3_image)
    [other] = by_object["FaceRecords"]
    face_ids = {record["Face"]["FaceId"], other["Face"]["FaceId"]}

    searched = aws(
        "search-faces-by-image",
        "--collection-id",
        COLLECTION,
        "--image-bytes",
        f"fileb://{testdata / 'people' / 'obama' / 'obama_2.jpg'}",
    )
    assert {m["Face"]["FaceId"] for m in searched["FaceMatches"]} == face_ids
    assert all(m["Similarity"] > 90 for m in searched["FaceMatches"])

    listed = aws("list-faces", "--collection-id", COLLECTION)
    assert {f["FaceId"] for f in listed["Faces"]} == face_ids
    assert {f.get("ExternalImageId") for f in listed["Faces"]} == {"photo.jpg", None}

    deleted = aws("delete-faces", "--collection-id", COLLECTION, "--face-ids", *sorted(face_ids))
    assert sorted(deleted["DeletedFaces"]) == sorted(face_ids)
    assert aws("list-faces", "--collection-id", COLLECTION)["Faces"] == []


def test_cli_errors_exit_non_zero_with_the_code(aws: AwsCli) -> None:
    missing = aws.run("describe-collection", "--collection-id", "no-such-collection")
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr

    aws.env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret-access-key"
    refused = aws.run("list-collections")
    assert refused.returncode != 0
    assert "InvalidSignatureException" in refused.stderr
