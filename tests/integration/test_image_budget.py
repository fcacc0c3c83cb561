"""Issue 16, defect 7, end to end: images are analysed inside the process's pixel budget.

The analyzer holds an image's pixels from before its decode until its last
embedding, whichever operation runs (IndexFaces, SearchFacesByImage,
DetectFaces, CompareFaces), so concurrent requests queue instead of
multiplying memory. A real server answers an image over the pixel limit,
and one that waited too long for room, with AWS 400s, never a 5xx.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import numpy.typing as npt
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from facelens.collection.analysis import FaceAnalyzer, ImageLimits
from facelens.collection.compare import compare_faces, detect_faces
from facelens.collection.models import QualityFilter
from facelens.config import ServeSettings, Settings
from facelens.engine.images import image_pixels
from facelens.engine.pixel_budget import PixelBudget, shared_pixel_budget
from facelens.engine.protocol import FaceEngine
from facelens.engine.registry import build_engine
from facelens.engine.types import FaceDetail, RGBImage
from facelens.errors import ImageTooLargeException, InvalidImageFormatException
from tests.servers.facelens_api import ApiServer, start_server
from tests.unit.engine.test_decode_budget import black_png

PHOTO = "people/obama/obama_1.jpg"  # 910 x 1137, one face
MAX_BYTES = 15 * 1024 * 1024


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> FaceEngine:
    built = build_engine(Settings(home=tmp_path_factory.mktemp("home"), models_dir=models_dir))
    built.prepare()
    return built


@pytest.fixture(scope="module")
def photo(testdata: Path) -> bytes:
    return (testdata / PHOTO).read_bytes()


@pytest.fixture(scope="module")
def too_large() -> bytes:
    """A real PNG of 8000 x 7000 black pixels (56 MP, 160 KB): over the 50 MP default."""
    return black_png(8000, 7000)


class WatchedEngine:
    """The real engine, noting what the budget held at each call and how many analyses
    were under way at once (from a detection's start to its embedding's end)."""

    def __init__(self, inner: FaceEngine) -> None:
        self.inner = inner
        self.model_version = inner.model_version
        self.dimension = inner.dimension
        self.budget: PixelBudget | None = None
        self.held_at_calls: list[int] = []
        self._lock = threading.Lock()
        self.under_way = 0
        self.most_under_way = 0

    def _note(self) -> None:
        assert self.budget is not None
        self.held_at_calls.append(self.budget.in_flight)

    def prepare(self) -> None:
        self.inner.prepare()

    def detect(self, image: RGBImage, *, largest_only: bool = False) -> list[FaceDetail]:
        with self._lock:
            self._note()
            self.under_way += 1
            self.most_under_way = max(self.most_under_way, self.under_way)
        return self.inner.detect(image, largest_only=largest_only)

    def align(self, image: RGBImage, face: FaceDetail) -> RGBImage:
        return self.inner.align(image, face)

    def embed(self, image: RGBImage, faces: Sequence[FaceDetail]) -> npt.NDArray[np.float32]:
        try:
            with self._lock:
                self._note()
            return self.inner.embed(image, faces)
        finally:
            with self._lock:
                self.under_way -= 1


def watched_analyzer(engine: FaceEngine, pixel_budget: int) -> tuple[FaceAnalyzer, WatchedEngine]:
    watched = WatchedEngine(engine)
    analyzer = FaceAnalyzer(watched, limits=ImageLimits(pixel_budget=pixel_budget))
    watched.budget = analyzer.budget
    return analyzer, watched


def test_concurrent_searches_queue_for_the_budget(engine: FaceEngine, photo: bytes) -> None:
    # Eight simultaneous searches, room for two photos: at most two are ever
    # between decode and embedding. Without the budget all eight were.
    pixels = image_pixels(photo, max_bytes=MAX_BYTES, max_pixels=50_000_000)
    analyzer, watched = watched_analyzer(engine, 2 * pixels + 1)  # a budget of its own
    start = threading.Barrier(8)
    embeddings: list[npt.NDArray[np.float32]] = []
    errors: list[BaseException] = []

    def search() -> None:
        start.wait()
        try:
            embeddings.append(analyzer.probe(photo, QualityFilter.NONE).embedding)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(embeddings) == 8
    assert 1 <= watched.most_under_way <= 2
    assert max(watched.held_at_calls) <= 2 * pixels + 1
    for embedding in embeddings[1:]:  # queueing changes nothing in the results
        np.testing.assert_allclose(embedding, embeddings[0], atol=1e-6)
    assert analyzer.budget.in_flight == 0


@pytest.mark.parametrize("operation", ["index", "search", "detect_faces", "compare_faces"])
def test_every_operation_analyses_inside_the_budget(
    engine: FaceEngine, photo: bytes, operation: str
) -> None:
    pixels = image_pixels(photo, max_bytes=MAX_BYTES, max_pixels=50_000_000)
    analyzer, watched = watched_analyzer(engine, 10 * pixels + 3)
    if operation == "index":
        analyzer.plan_index(photo, max_faces=None, quality_filter=QualityFilter.NONE)
    elif operation == "search":
        analyzer.probe(photo, QualityFilter.NONE)
    elif operation == "detect_faces":
        detect_faces(analyzer, photo)
    else:
        compare_faces(analyzer, photo, photo)
    assert watched.held_at_calls
    assert all(held >= pixels for held in watched.held_at_calls), watched.held_at_calls
    assert analyzer.budget.in_flight == 0


def test_bad_bytes_fail_at_once_even_with_the_budget_full(
    engine: FaceEngine, too_large: bytes
) -> None:
    # The header is checked before waiting for room: junk is not queued.
    analyzer = FaceAnalyzer(engine, limits=ImageLimits(pixel_budget=1_001, budget_wait_seconds=30))
    held = threading.Event()
    release = threading.Event()

    def occupy() -> None:
        with analyzer.budget.hold(1_001):
            held.set()
            release.wait(30)

    occupant = threading.Thread(target=occupy)
    occupant.start()
    try:
        assert held.wait(10)
        with pytest.raises(InvalidImageFormatException):
            analyzer.probe(b"not an image at all", QualityFilter.NONE)
        with pytest.raises(ImageTooLargeException):
            analyzer.probe(too_large, QualityFilter.NONE)
    finally:
        release.set()
        occupant.join(timeout=10)


# --- a real server -------------------------------------------------------------------

BUDGET = 3_000_017  # this module's servers' own budget (the shared one is per limit)


@pytest.fixture
def server(tmp_path: Path, models_dir: Path) -> Iterator[ApiServer]:
    settings = Settings(
        home=tmp_path / "home",
        models_dir=models_dir,
        serve=ServeSettings(port=0),
        image_pixel_budget=BUDGET,
        image_budget_wait_seconds=0.2,
    )
    started = start_server(settings)
    try:
        response = requests.post(
            f"{started.url}/api/v1/collections",
            json={"CollectionId": "budget"},
            headers=started.headers(),
            timeout=30,
        )
        assert response.status_code == 201, response.text
        yield started
    finally:
        started.server.stop()
        started.stack.close()


def rest_search(server: ApiServer, image: bytes) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/collections/budget/faces/search",
        files={"image": ("photo", image, "application/octet-stream")},
        headers=server.headers(),
        timeout=120,
    )


def rekognition(server: ApiServer) -> Any:
    return boto3.session.Session().client(
        "rekognition",
        endpoint_url=server.url,
        region_name=server.region,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_image_over_the_pixel_limit_is_a_400(server: ApiServer, too_large: bytes) -> None:
    response = rest_search(server, too_large)
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == "ImageTooLargeException"

    with pytest.raises(ClientError) as refused:
        rekognition(server).search_faces_by_image(CollectionId="budget", Image={"Bytes": too_large})
    assert refused.value.response["Error"]["Code"] == "ImageTooLargeException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_request_that_waits_too_long_is_throttled_not_hung(server: ApiServer, photo: bytes) -> None:
    budget = shared_pixel_budget(BUDGET)  # the server runs in this process: the same budget
    release = threading.Event()
    held = threading.Event()

    def occupy() -> None:  # another request analysing a large image
        with budget.hold(BUDGET):
            held.set()
            release.wait(30)

    occupant = threading.Thread(target=occupy)
    occupant.start()
    try:
        assert held.wait(10)
        response = rest_search(server, photo)
        assert response.status_code == 400, response.text
        assert response.json()["__type"] == "ThrottlingException"
        with pytest.raises(ClientError) as refused:
            rekognition(server).search_faces_by_image(CollectionId="budget", Image={"Bytes": photo})
        assert refused.value.response["Error"]["Code"] == "ThrottlingException"
    finally:
        release.set()
        occupant.join(timeout=10)
    response = rest_search(server, photo)  # room again: the same request succeeds
    assert response.status_code == 200, response.text
    assert response.json()["FaceMatches"] == []
