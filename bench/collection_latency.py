"""Per-image latency of IndexFaces and SearchFacesByImage on the real engine and SQLite.

Why: a camera pipeline calls one of these per frame or per photo, so the
number that matters is the latency of one call, from the encoded image bytes
to the stored face (IndexFaces) or to the ranked matches (SearchFacesByImage):
decode + detect + embed + store/search, the way ``CollectionService`` runs it.

What is timed (``time.perf_counter``, reported in milliseconds):

* ``index_faces``: every photo under ``<testdata>/people/**`` (jpg/png)
  indexed into one collection, ``--repeat`` passes;
* ``search_faces_by_image``: the same photos searched against that filled
  collection (FaceMatchThreshold 80, MaxFaces 10); photos in which no face is
  found raise InvalidParameterException and are counted, not timed;
* both split by image size: megapixels of the decoded image, and longer side
  up to / over 1024 px (the HOG detector upsamples images up to 1024 px once,
  which makes small photos cost about as much as mid-sized ones);
* a breakdown of one typical photo (one face, IndexFaces latency nearest the
  median) into decode, detect, align, embedding network, store and search, so
  a reader sees where the time goes.

Not timed: building and preparing the engine (model loading), reading the
files from disk, and one warm-up call (reported separately as ``first_call``).

Run from the repository root::

    python -m bench.collection_latency [--repeat N] [--breakdown-repeat K]

(defaults: 3 passes over the photos, 10 runs of the breakdown).

Writes bench/results/collection_latency.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench._common import machine_facts, summarize_ms, testdata_dir, write_result
from facelens.collection.analysis import FaceAnalyzer, ImageLimits
from facelens.collection.models import NewFace
from facelens.collection.service import DEFAULT_FACE_MATCH_THRESHOLD, CollectionService
from facelens.collection.similarity import distance_for_similarity
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from facelens.config import Settings
from facelens.engine.registry import build_engine
from facelens.errors import InvalidParameterException

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
COLLECTION = "bench"
SIZE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("under_0.5_MP", 0.0, 0.5),
    ("0.5_to_1.5_MP", 0.5, 1.5),
    ("1.5_MP_and_over", 1.5, float("inf")),
)
"""(label, lower bound inclusive, upper bound exclusive), in megapixels of the decoded image."""
UPSAMPLE_UP_TO = 1024
"""Longer side (px) up to which the HOG detector upsamples once, at about 4x the cost.

Mirrors ``facelens.engine.hog._UPSAMPLE_UP_TO``; it is why small photos are
not faster than mid-sized ones, so latencies are also split on it.
"""


@dataclass
class Photo:
    """One test photo: its bytes (read before timing), person folder and size."""

    path: Path
    person: str
    data: bytes
    width: int = 0
    height: int = 0
    megapixels: float = 0.0
    index_s: list[float] = field(default_factory=list)
    search_s: list[float] = field(default_factory=list)
    faces_indexed: int = 0
    search_failures: int = 0


def find_photos(root: Path) -> list[Photo]:
    """Every jpg/png under ``root/people`` (any depth), sorted by path; the folder is the person."""
    people = root / "people"
    paths = sorted(
        p for p in people.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
    )
    if not paths:
        raise SystemExit(f"no photos under {people} (set FACELENS_TESTDATA)")
    return [Photo(p, p.parent.name, p.read_bytes()) for p in paths]


@contextmanager
def lap(samples: list[float]) -> Iterator[None]:
    """Appends the wall-clock duration of the ``with`` body to ``samples``, in seconds."""
    start = time.perf_counter()
    yield
    samples.append(time.perf_counter() - start)


def latency_report(photos: list[Photo], attribute: str) -> dict[str, Any]:
    """Summary (ms) over all samples of ``attribute``, overall and per size bucket.

    ``mean_megapixels`` is averaged over the samples, so it describes the
    images behind the figures next to it.
    """

    def block(selected: list[Photo]) -> dict[str, Any]:
        samples = [(p.megapixels, s) for p in selected for s in getattr(p, attribute)]
        return {
            **summarize_ms([s for _, s in samples]),
            "photos": len({p.path for p in selected if getattr(p, attribute)}),
            "mean_megapixels": (
                round(statistics.fmean(mp for mp, _ in samples), 3) if samples else None
            ),
        }

    return {
        "all": block(photos),
        "by_megapixels": {
            label: block([p for p in photos if low <= p.megapixels < high])
            for label, low, high in SIZE_BUCKETS
        },
        "by_longer_side": {
            f"up_to_{UPSAMPLE_UP_TO}_px": block(
                [p for p in photos if max(p.width, p.height) <= UPSAMPLE_UP_TO]
            ),
            f"over_{UPSAMPLE_UP_TO}_px": block(
                [p for p in photos if max(p.width, p.height) > UPSAMPLE_UP_TO]
            ),
        },
    }


def breakdown(
    service: CollectionService,
    store: SQLiteCollectionStore,
    analyzer: FaceAnalyzer,
    photo: Photo,
    repeat: int,
) -> dict[str, Any]:
    """Stage by stage timing of one photo, ``repeat`` times; each stage's summary is in ms.

    The stages are the ones ``CollectionService`` runs: the compatibility
    check (DescribeCollection), decode, detect (downscale, HOG, quality and
    pose), align and the embedding network (together: embed), store
    (``add_faces`` of the one face) and search (``search_faces`` over the
    filled collection at threshold 80, MaxFaces 10). The end-to-end service
    calls on the same photo are timed alongside for comparison.
    """
    engine = analyzer.engine
    embedder = getattr(engine, "embedder", None)
    max_distance = distance_for_similarity(DEFAULT_FACE_MATCH_THRESHOLD)
    stages: dict[str, list[float]] = {
        name: []
        for name in (
            "check_collection",
            "decode",
            "detect",
            "align",
            "embed_network",
            "embed",
            "store_add_faces",
            "store_search_faces",
            "index_faces_end_to_end",
            "search_faces_by_image_end_to_end",
        )
    }
    faces_detected = 0
    for _ in range(repeat):
        with lap(stages["check_collection"]):
            service.require_compatible(COLLECTION)
        with lap(stages["decode"]):
            decoded = analyzer.decode(photo.data)
        with lap(stages["detect"]):
            faces = analyzer.detect(decoded)
        faces_detected = len(faces)
        chosen = faces[:1]
        with lap(stages["embed"]):
            embeddings = analyzer.embed(decoded, chosen)
        if embedder is not None:
            with lap(stages["align"]):
                chips = [engine.align(decoded.pixels, f) for f in chosen]
            with lap(stages["embed_network"]):
                embedder.embed(chips)
        new = [
            NewFace(
                face_id=f"breakdown-{time.perf_counter_ns()}-{i}",
                image_id="breakdown",
                external_image_id=photo.person,
                bounding_box=detail.bounding_box,
                confidence=detail.confidence,
                embedding=embedding,
            )
            for i, (detail, embedding) in enumerate(zip(chosen, embeddings, strict=True))
        ]
        with lap(stages["store_add_faces"]):
            store.add_faces(COLLECTION, new)
        with lap(stages["store_search_faces"]):
            store.search_faces(COLLECTION, embeddings[0], limit=10, max_distance=max_distance)
        with lap(stages["index_faces_end_to_end"]):
            service.index_faces(COLLECTION, photo.data, external_image_id=photo.person)
        with lap(stages["search_faces_by_image_end_to_end"]):
            service.search_faces_by_image(COLLECTION, photo.data)

    summaries = {name: summarize_ms(values) for name, values in stages.items() if values}
    parts = ("check_collection", "decode", "detect", "embed", "store_add_faces")
    parts_p50 = sum(float(summaries[name]["p50_ms"]) for name in parts)
    return {
        "photo": f"{photo.person}/{photo.path.name}",
        "width": photo.width,
        "height": photo.height,
        "megapixels": round(photo.megapixels, 3),
        "bytes": len(photo.data),
        "faces_detected": faces_detected,
        "repeat": repeat,
        "stages": summaries,
        "index_share_of_p50": {
            name: round(float(summaries[name]["p50_ms"]) / parts_p50, 3) for name in parts
        },
        "note": (
            "embed = align + embed_network (timed together and apart); index_faces = "
            "check_collection + decode + detect + embed + store_add_faces (+ uuids, "
            "quality filter); search_faces_by_image = check_collection + decode + detect + "
            "embed + store_search_faces. index_share_of_p50 divides each stage's p50 by "
            "the sum of those index stages' p50s."
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat", type=int, default=3, help="passes over all photos for each operation"
    )
    parser.add_argument(
        "--breakdown-repeat", type=int, default=10, help="runs of the one-photo stage breakdown"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.breakdown_repeat < 1:
        parser.error("--repeat and --breakdown-repeat must be at least 1")

    machine = machine_facts()  # load average before this script adds its own
    root = testdata_dir()
    photos = find_photos(root)
    with tempfile.TemporaryDirectory(prefix="facelens-bench-") as tmp:
        settings = Settings(home=Path(tmp))
        engine = build_engine(settings)
        prepare_s: list[float] = []
        with lap(prepare_s):
            engine.prepare()
        analyzer = FaceAnalyzer(
            engine,
            limits=ImageLimits(settings.max_image_bytes, settings.max_image_pixels),
        )
        for photo in photos:
            decoded = analyzer.decode(photo.data)
            photo.width, photo.height = decoded.width, decoded.height
            photo.megapixels = decoded.width * decoded.height / 1e6
        store = SQLiteCollectionStore(str(Path(tmp) / "facelens.db"))
        service = CollectionService(analyzer, store)
        try:
            # One untimed call each way, so one-off costs (first dlib call, the
            # SQLite file and schema, page cache) do not land on the first photo.
            service.create_collection("warmup")
            first_index_s: list[float] = []
            first_search_s: list[float] = []
            with lap(first_index_s):
                service.index_faces("warmup", photos[0].data)
            with suppress(InvalidParameterException), lap(first_search_s):
                service.search_faces_by_image("warmup", photos[0].data)
            service.create_collection(COLLECTION)

            columns = (
                TextColumn("{task.description:<28}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns) as progress:
                task = progress.add_task("IndexFaces", total=len(photos) * args.repeat)
                for _ in range(args.repeat):
                    for photo in photos:
                        with lap(photo.index_s):
                            result = service.index_faces(
                                COLLECTION, photo.data, external_image_id=photo.person
                            )
                        photo.faces_indexed = len(result.face_records)
                        progress.advance(task)
                task = progress.add_task("SearchFacesByImage", total=len(photos) * args.repeat)
                for _ in range(args.repeat):
                    for photo in photos:
                        failed: list[float] = []
                        try:
                            with lap(failed):
                                service.search_faces_by_image(COLLECTION, photo.data)
                        except InvalidParameterException:
                            photo.search_failures += 1
                        else:
                            photo.search_s.extend(failed)
                        progress.advance(task)

            stored_faces = service.describe_collection(COLLECTION).face_count
            index_p50 = float(latency_report(photos, "index_s")["all"]["p50_ms"]) / 1000.0
            single = [p for p in photos if p.faces_indexed == 1]
            if not single:
                raise SystemExit("no photo with exactly one indexed face for the breakdown")
            typical = min(single, key=lambda p: abs(statistics.median(p.index_s) - index_p50))
            detail = breakdown(service, store, analyzer, typical, args.breakdown_repeat)
        finally:
            store.close()

    write_result(
        "collection_latency",
        {
            "machine": machine,
            "settings": {
                "engine": settings.engine,
                "detector": settings.detector,
                "detect_max_side": settings.detect_max_side,
                "model_version": engine.model_version,
                "face_match_threshold": DEFAULT_FACE_MATCH_THRESHOLD,
                "search_max_faces": 10,
                "repeat": args.repeat,
            },
            "testdata": str(root / "people"),
            "photos": len(photos),
            "mean_megapixels": round(statistics.fmean(p.megapixels for p in photos), 3),
            "faces_in_collection_after_indexing": stored_faces,
            "photos_without_indexed_face": sum(1 for p in photos if p.faces_indexed == 0),
            "search_photos_without_face": sum(1 for p in photos if p.search_failures),
            "untimed": {
                "engine_prepare_ms": round(prepare_s[0] * 1000.0, 1),
                "first_index_faces_ms": round(first_index_s[0] * 1000.0, 1),
                "first_search_faces_by_image_ms": (
                    round(first_search_s[0] * 1000.0, 1) if first_search_s else None
                ),
            },
            "index_faces": latency_report(photos, "index_s"),
            "search_faces_by_image": latency_report(photos, "search_s"),
            "breakdown": detail,
            "per_photo": [
                {
                    "photo": str(p.path.relative_to(root)),
                    "width": p.width,
                    "height": p.height,
                    "megapixels": round(p.megapixels, 3),
                    "faces_indexed": p.faces_indexed,
                    "index_ms": round(statistics.median(p.index_s) * 1000.0, 1),
                    "search_ms": (
                        round(statistics.median(p.search_s) * 1000.0, 1) if p.search_s else None
                    ),
                }
                for p in photos
            ],
        },
    )


if __name__ == "__main__":
    main()
