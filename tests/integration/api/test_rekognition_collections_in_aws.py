"""facelens' Rekognition endpoint on a server whose collections are in AWS (``rekognition://``).

Why: such a server keeps no collections, so every operation on them is
refused with a message that says where they are; but DetectFaces and
CompareFaces only look at the images given, with facelens' engine, and must
keep working there (they did before the routes were handed parts: the
operations' parts opened the local collections first, and failed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from facelens.collection.analysis import FaceAnalyzer
from facelens.config import ServeSettings, Settings
from facelens.engine.protocol import FaceEngine
from facelens.wiring.stores import IN_REKOGNITION
from tests.servers.facelens_api import ApiServer, start_server


@pytest.fixture
def server(tmp_path: Path, engine: FaceEngine) -> Iterator[ApiServer]:
    settings = Settings(
        home=tmp_path / "home",
        models_dir=None,
        collections_url="rekognition://?region=eu-west-1&endpoint_url=http://127.0.0.1:9",
        serve=ServeSettings(port=0),
    )
    started = start_server(settings, analyzer=FaceAnalyzer(engine))
    try:
        yield started
    finally:
        started.server.stop()
        started.stack.close()


@pytest.fixture
def client(server: ApiServer) -> Any:
    """boto3's Rekognition client on the server; no retries, so a refusal is seen once."""
    return boto3.session.Session().client(
        "rekognition",
        endpoint_url=server.url,
        region_name=server.region,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_detect_and_compare_faces_need_only_the_engine(client: Any, testdata: Path) -> None:
    obama_1 = (testdata / "people" / "obama" / "obama_1.jpg").read_bytes()
    obama_2 = (testdata / "people" / "obama" / "obama_2.jpg").read_bytes()
    detected = client.detect_faces(Image={"Bytes": obama_1})
    assert len(detected["FaceDetails"]) == 1
    compared = client.compare_faces(SourceImage={"Bytes": obama_1}, TargetImage={"Bytes": obama_2})
    assert len(compared["FaceMatches"]) == 1
    assert compared["UnmatchedFaces"] == []


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("list_collections", {}),
        ("create_collection", {"CollectionId": "staff"}),
        ("list_faces", {"CollectionId": "staff"}),
    ],
)
def test_operations_on_collections_are_refused_with_where_they_are(
    client: Any, operation: str, params: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as refused:
        getattr(client, operation)(**params)
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameterException"
    assert error["Message"] == IN_REKOGNITION
