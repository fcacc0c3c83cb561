"""LFW face verification, as the LFW protocol measures it.

Pairs file (pairsDevTrain-style with folds): a header ``<folds> <n>``, then per
fold ``n`` matched lines ``name i j`` and ``n`` mismatched lines
``name1 i name2 j``. Accuracy is cross-validated: for each fold the distance
threshold is chosen on the other folds and applied to this one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facelens.collection.service import DEFAULT_FACE_MATCH_THRESHOLD
from facelens.collection.similarity import distance_for_similarity
from facelens.config import Settings
from facelens.engine.images import read_image_file
from facelens.engine.protocol import FaceEngine
from facelens.engine.registry import build_engine
from facelens.engine.types import DetectedFace, FaceDetail, Landmarks, Point, Pose, Quality
from facelens.errors import InvalidParameterException
from facelens.values.boxes import BoundingBox, PixelBox

DEFAULT_THRESHOLD = DEFAULT_FACE_MATCH_THRESHOLD


@dataclass(frozen=True, slots=True)
class Pair:
    left: Path
    right: Path
    same: bool
    fold: int


@dataclass(frozen=True, slots=True)
class LfwReport:
    """What `facelens bench lfw` prints. Rates are fractions (0-1); distances Euclidean (0-2).

    accuracy: mean over folds, each fold's threshold chosen on the others.
    tar_at_far_1e3: same-person pairs accepted at the strictest distance that
    lets at most 0.1% of different-person pairs through (distance_at_far_1e3).
    best_distance_threshold: the accuracy-optimal distance over all pairs (the
    similarity curve's midpoint is set from it).
    far_at_default / tar_at_default: at FaceMatchThreshold ``default_threshold``.
    undetected: images with no face found, embedded at the median landmarks.
    """

    pairs: int
    folds: int
    accuracy: float
    accuracy_std: float
    tar_at_far_1e3: float
    distance_at_far_1e3: float
    best_distance_threshold: float
    far_at_default: float
    tar_at_default: float
    default_threshold: float
    images: int
    undetected: int
    seconds: float
    images_per_second: float
    workers: int


def image_path(root: Path, name: str, number: str) -> Path:
    return root / name / f"{name}_{int(number):04d}.jpg"


def read_pairs(pairs_file: Path, images: Path) -> list[Pair]:
    """Parses a pairs file; raises InvalidParameterException when it is malformed."""
    try:
        lines = [ln.split() for ln in pairs_file.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise InvalidParameterException(f"cannot read pairs file {pairs_file}: {exc}") from exc
    if not lines or len(lines[0]) not in (1, 2):
        raise InvalidParameterException(f"{pairs_file}: first line must be '<folds> <pairs>'")
    header = [int(x) for x in lines[0]]
    folds, per_fold = (1, header[0]) if len(header) == 1 else (header[0], header[1])
    body = lines[1:]
    if len(body) != folds * per_fold * 2:
        raise InvalidParameterException(
            f"{pairs_file}: expected {folds * per_fold * 2} pairs, found {len(body)}"
        )
    pairs = []
    for index, fields in enumerate(body):
        fold = index // (2 * per_fold)
        if len(fields) == 3:
            name, a, b = fields
            pairs.append(Pair(image_path(images, name, a), image_path(images, name, b), True, fold))
        elif len(fields) == 4:
            n1, a, n2, b = fields
            pairs.append(Pair(image_path(images, n1, a), image_path(images, n2, b), False, fold))
        else:
            raise InvalidParameterException(f"{pairs_file}: line {index + 2} is not a pair")
    return pairs


def _central_face(faces: Sequence[FaceDetail]) -> FaceDetail | None:
    """LFW images are centred on the labelled person: take the face nearest the centre."""

    def offset(f: FaceDetail) -> float:
        box = f.bounding_box
        return math.hypot(box.left + box.width / 2 - 0.5, box.top + box.height / 2 - 0.5)

    return min(faces, key=offset, default=None)


_worker_engine: FaceEngine | None = None


def _init_worker(settings: Settings) -> None:
    global _worker_engine
    _worker_engine = build_engine(settings)
    _worker_engine.prepare()


def _engine(settings: Settings) -> FaceEngine:
    if _worker_engine is None:  # running in this process
        _init_worker(settings)
    if _worker_engine is None:
        raise RuntimeError("engine did not start")
    return _worker_engine


def _points(face: FaceDetail) -> npt.NDArray[np.float64]:
    lm = face.face.landmarks
    return np.array(
        [(p.x, p.y) for p in (lm.eye_left, lm.eye_right, lm.nose, lm.mouth_left, lm.mouth_right)]
    )


def _face_at(points: npt.NDArray[np.float64], width: int, height: int) -> FaceDetail:
    """A face placed at given landmarks, for images where the detector found none."""
    box = PixelBox(width * 0.28, height * 0.28, width * 0.72, height * 0.72)
    landmarks = Landmarks(*(Point(float(x), float(y)) for x, y in points))
    return FaceDetail(
        face=DetectedFace(box, landmarks, 0.0),
        bounding_box=BoundingBox.from_pixels(box, width, height),
        pose=Pose(0.0, 0.0, 0.0),
        quality=Quality(0.0, 0.0),
        image_width=width,
        image_height=height,
    )


def _read(path: Path, settings: Settings) -> npt.NDArray[np.uint8]:
    return read_image_file(
        path, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    ).pixels


_Found = tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]] | None


def _embed_paths(paths: Sequence[Path], settings: Settings) -> list[_Found]:
    """(embedding, landmarks) of the central face of each image, or None if none was found."""
    engine = _engine(settings)
    out: list[_Found] = []
    for path in paths:
        image = _read(path, settings)
        face = _central_face(engine.detect(image))
        out.append(None if face is None else (engine.embed(image, [face])[0], _points(face)))
    return out


def _embed_undetected(
    paths: Sequence[Path], points: npt.NDArray[np.float64], settings: Settings
) -> list[npt.NDArray[np.float32]]:
    engine = _engine(settings)
    out = []
    for path in paths:
        image = _read(path, settings)
        height, width = image.shape[:2]
        out.append(engine.embed(image, [_face_at(points, width, height)])[0])
    return out


def find_faces(
    paths: Sequence[Path],
    settings: Settings,
    *,
    progress: Callable[[int], None] | None = None,
    chunk: int = 16,
) -> dict[Path, _Found]:
    """(embedding, five landmarks in pixels) of the central face of each image, or None where
    the detector found none; on ``settings.workers`` processes (the dlib embedding holds the
    GIL). ``progress`` is told how many images each finished chunk held."""
    chunks = [list(paths[i : i + chunk]) for i in range(0, len(paths), chunk)]
    found: dict[Path, _Found] = {}
    if settings.workers <= 1:
        for part in chunks:
            found.update(zip(part, _embed_paths(part, settings), strict=True))
            if progress:
                progress(len(part))
    else:
        with ProcessPoolExecutor(
            max_workers=settings.workers, initializer=_init_worker, initargs=(settings,)
        ) as pool:
            futures = [(part, pool.submit(_embed_paths, part, settings)) for part in chunks]
            for part, future in futures:
                found.update(zip(part, future.result(), strict=True))
                if progress:
                    progress(len(part))
    return found


def embed_images(
    paths: Sequence[Path],
    settings: Settings,
    *,
    progress: Callable[[int], None] | None = None,
    chunk: int = 16,
) -> tuple[dict[Path, npt.NDArray[np.float32]], list[Path]]:
    """Embeds every image (:func:`find_faces`).

    LFW images are centred on their person by construction, so an image where
    the detector finds no face is embedded at the median landmark positions of
    the images where it did, as LFW evaluations commonly do. Returns the
    embeddings and the paths that needed this fallback.
    """
    found = find_faces(paths, settings, progress=progress, chunk=chunk)
    embeddings = {p: f[0] for p, f in found.items() if f is not None}
    missing = [p for p, f in found.items() if f is None]
    if missing:
        if not embeddings:
            raise InvalidParameterException("the detector found no face in any LFW image")
        median = np.median(np.stack([f[1] for f in found.values() if f is not None]), axis=0)
        embeddings.update(zip(missing, _embed_undetected(missing, median, settings), strict=True))
    return embeddings, missing


def pair_distances(
    pairs: Sequence[Pair], embeddings: dict[Path, npt.NDArray[np.float32]]
) -> npt.NDArray[np.float64]:
    """Euclidean distance (0-2) between the two unit embeddings of each pair."""
    return np.array(
        [float(np.linalg.norm(embeddings[p.left] - embeddings[p.right])) for p in pairs]
    )


def _best_threshold(dist: npt.NDArray[np.float64], same: npt.NDArray[np.bool_]) -> float:
    candidates = np.unique(dist)
    mids = np.concatenate([candidates[:1] - 1e-6, (candidates[1:] + candidates[:-1]) / 2])
    accuracy = [((dist <= t) == same).mean() for t in mids]
    return float(mids[int(np.argmax(accuracy))])


def verification_figures(
    dist: npt.NDArray[np.float64],
    same: npt.NDArray[np.bool_],
    folds: npt.NDArray[np.int64],
    *,
    threshold_similarity: float = DEFAULT_THRESHOLD,
) -> dict[str, float]:
    """Cross-validated accuracy, TAR at FAR <= 0.001, and FAR/TAR at a similarity threshold."""
    correct = np.zeros(len(dist), dtype=bool)
    accuracies = []
    for fold in np.unique(folds):
        test = folds == fold
        train = ~test if (~test).any() else test  # one fold: no held-out choice possible
        threshold = _best_threshold(dist[train], same[train])
        correct[test] = (dist[test] <= threshold) == same[test]
        accuracies.append(float(correct[test].mean()))
    negatives = np.sort(dist[~same])
    allowed = math.floor(0.001 * len(negatives))  # false accepts tolerated
    # accept d < negatives[allowed]: exactly `allowed` impostor pairs fall below
    far_cut = float(negatives[allowed]) if len(negatives) > allowed else math.inf
    tar = float((dist[same] < far_cut).mean())
    default_cut = distance_for_similarity(threshold_similarity)
    return {
        # pooled (correct pairs / pairs): the mean over equal folds, without float noise
        "accuracy": float(correct.sum() / len(correct)),
        "accuracy_std": float(np.std(accuracies)),
        "tar_at_far_1e3": tar,
        "distance_at_far_1e3": far_cut,
        "best_distance_threshold": _best_threshold(dist, same),
        "far_at_default": float((dist[~same] <= default_cut).mean()),
        "tar_at_default": float((dist[same] <= default_cut).mean()),
    }


def run_lfw(
    pairs_file: Path,
    images: Path,
    settings: Settings,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[LfwReport, npt.NDArray[np.float64], list[Pair]]:
    """Runs the whole benchmark; returns the report, the pair distances and the pairs."""
    pairs = read_pairs(pairs_file, images)
    unique = sorted({p.left for p in pairs} | {p.right for p in pairs})
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, len(unique))

    start = time.perf_counter()
    embeddings, undetected = embed_images(unique, settings, progress=step)
    seconds = time.perf_counter() - start
    dist = pair_distances(pairs, embeddings)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs], dtype=np.int64)
    figures = verification_figures(dist, same, folds)
    report = LfwReport(
        pairs=len(pairs),
        folds=int(folds.max()) + 1,
        default_threshold=DEFAULT_THRESHOLD,
        images=len(unique),
        undetected=len(undetected),
        seconds=seconds,
        images_per_second=len(unique) / seconds if seconds else 0.0,
        workers=settings.workers if settings.workers > 1 else 1,
        **figures,
    )
    return report, dist, pairs
