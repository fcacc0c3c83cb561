"""Enrolling a folder: one face record per photo, one user per sub-folder.

Layout understood::

    photos/
      alice.jpg            -> ExternalImageId "alice.jpg", every face indexed
      bob/1.jpg, bob/2.png -> user "bob", the largest face of each photo

Detection and embedding (about 0.2 s a photo) run on ``workers`` processes,
since dlib's embedding holds the GIL; storing runs in this process, in the
order of the plan, so results are the same whatever the worker count. A
photo that fails (unreadable, no face, a face that does not match the user's
others) is reported and the run goes on: one bad file never costs the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from facelens.collection.analysis import FaceAnalyzer, IndexPlan
from facelens.collection.models import IndexFacesResult, QualityFilter
from facelens.collection.service import CollectionService
from facelens.collection.users import UserService
from facelens.engine.images import read_image_file
from facelens.errors import ConflictException, FacelensError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_.\-:]")


def external_image_id(path: Path) -> str:
    """The file name, with characters ExternalImageId forbids replaced by '_' (max 255)."""
    return _NOT_ALLOWED.sub("_", path.name)[:255] or "_"


def user_id_for(folder: Path) -> str:
    return _NOT_ALLOWED.sub("_", folder.name)[:128] or "_"


@dataclass(frozen=True, slots=True)
class EnrolItem:
    path: Path
    external_image_id: str
    user_id: str | None


@dataclass(slots=True)
class EnrolOutcome:
    item: EnrolItem
    result: IndexFacesResult | None = None
    associated: list[str] = field(default_factory=list)
    error: FacelensError | None = None


def plan(folder: Path) -> list[EnrolItem]:
    """Image files directly in ``folder`` and one level down (sorted, hidden files skipped)."""

    def images(directory: Path) -> Iterator[Path]:
        for path in sorted(directory.iterdir()):
            visible = not path.name.startswith(".")
            if visible and path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                yield path

    items = [EnrolItem(p, external_image_id(p), None) for p in images(folder)]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        uid = user_id_for(sub)
        items.extend(EnrolItem(p, external_image_id(p), uid) for p in images(sub))
    return items


# -- per-process analysis (a process pool's workers each build their own engine) --

_worker: FaceAnalyzer | None = None


def _start_worker(make: Callable[[], FaceAnalyzer]) -> None:
    global _worker
    _worker = make()


def _analyze(item: EnrolItem, quality: QualityFilter) -> IndexPlan | FacelensError:
    if _worker is None:
        raise RuntimeError("enrolment worker started without an analyzer")
    return _analyze_with(_worker, item, quality)


def _analyze_with(
    analyzer: FaceAnalyzer, item: EnrolItem, quality: QualityFilter
) -> IndexPlan | FacelensError:
    try:
        image = read_image_file(
            item.path, max_bytes=analyzer.limits.max_bytes, max_pixels=analyzer.limits.max_pixels
        )
        return analyzer.plan_index(
            image, max_faces=1 if item.user_id else None, quality_filter=quality
        )
    except FacelensError as exc:
        return exc


def _plans(
    items: list[EnrolItem],
    quality: QualityFilter,
    analyzer: FaceAnalyzer,
    make_analyzer: Callable[[], FaceAnalyzer] | None,
    workers: int,
) -> Iterator[IndexPlan | FacelensError]:
    if workers <= 1 or make_analyzer is None or len(items) < 2:
        for item in items:
            yield _analyze_with(analyzer, item, quality)
        return
    pool: Executor = ProcessPoolExecutor(
        max_workers=workers, initializer=_start_worker, initargs=(make_analyzer,)
    )
    with pool:
        yield from pool.map(_analyze, items, [quality] * len(items))


def enrol(
    collections: CollectionService,
    users: UserService,
    collection_id: str,
    items: list[EnrolItem],
    *,
    quality_filter: QualityFilter = QualityFilter.AUTO,
    workers: int = 1,
    make_analyzer: Callable[[], FaceAnalyzer] | None = None,
    advance: Callable[[], None] | None = None,
) -> list[EnrolOutcome]:
    """Indexes each item; items with a user get their largest face associated to it.

    ``make_analyzer`` (picklable) builds the analyzer in each worker process;
    without it, or with ``workers`` 1, everything runs here.
    """
    collections.require_compatible(collection_id)
    outcomes = []
    known_users: set[str] = set()
    analyses = _plans(items, quality_filter, collections.analyzer, make_analyzer, workers)
    for item, analysis in zip(items, analyses, strict=True):
        outcome = EnrolOutcome(item)
        try:
            if isinstance(analysis, FacelensError):
                raise analysis
            result = collections.store_plan(
                collection_id, analysis, external_image_id=item.external_image_id
            )
            outcome.result = result
            if item.user_id and result.face_records:
                if item.user_id not in known_users:
                    # a user from an earlier run is extended, not an error
                    with suppress(ConflictException):
                        users.create_user(collection_id, item.user_id)
                    known_users.add(item.user_id)
                face_ids = [r.face.face_id for r in result.face_records]
                association = users.associate_faces(collection_id, item.user_id, face_ids)
                outcome.associated = association.associated_face_ids
        except FacelensError as exc:
            outcome.error = exc
        outcomes.append(outcome)
        if advance:
            advance()
    return outcomes
