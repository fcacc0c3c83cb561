"""LFW verification for ``bench.compare``: facelens' pipeline and face_recognition's, interleaved.

Ours is exactly what ``facelens bench lfw`` runs (``facelens.evaluation.lfw``:
the registry's engine in each worker, the central face of each image, the
median-landmarks fallback for images where no face is found), driven here
block by block so that the peer's blocks can alternate with ours on the
same machine: ours embeds a block of images on its 2 worker processes, then
the peer embeds the same block on its 2, and so on; each side's time is the
sum of its blocks' wall times. Both pools are started and warmed (models
loaded, one image each) before the clock runs.

The peer, per image, as its README does it: ``load_image_file``,
``face_locations`` (HOG, upsample 1), the face nearest the centre (as ours
takes), ``face_encodings`` at that box (5-point landmarks, one jitter).
Where no face is found, the closest its API allows to our fallback: ours
places the face at the median landmarks of the detected images; the peer's
``face_encodings`` takes a box, not landmarks, so it gets the median box of
the detected images (its 5-point predictor then runs in that box). The
whole-image box is also tried for those images, and the accuracy with it
is reported as an alternative. Peer distances are ``face_distance`` (raw
Euclidean between its unnormalised float64 encodings: its metric, its
threshold 0.6). Both sets of distances then go through the same
:func:`facelens.evaluation.lfw.verification_figures`.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facelens.config import Settings
from facelens.evaluation import lfw
from facelens.evaluation.lfw import Pair

Box = tuple[int, int, int, int]
"""(top, right, bottom, left) in pixels, face_recognition's order."""

PEER_TOLERANCE = 0.6
"""face_recognition's default ``compare_faces`` tolerance (its documented operating point)."""
CHUNK = 16
"""Images per task sent to a worker (as lfw.embed_images)."""
BLOCK = 128
"""Images per interleaving block: each side embeds one block, then the other does."""

_fr: Any = None


def _peer_init() -> None:
    global _fr
    # imported by name: face_recognition is optional, untyped and not a dependency
    _fr = importlib.import_module("face_recognition")


def _central(boxes: Sequence[Box], width: int, height: int) -> Box | None:
    """The box whose centre is nearest the image centre (LFW centres its person)."""

    def offset(b: Box) -> float:
        top, right, bottom, left = b
        return math.hypot((left + right) / 2 / width - 0.5, (top + bottom) / 2 / height - 0.5)

    return min(boxes, key=offset, default=None)


_PeerFound = tuple[npt.NDArray[np.float64], Box] | None


def _peer_embed(paths: Sequence[Path]) -> list[_PeerFound]:
    """(encoding, box) of the central face of each image, or None where none was found."""
    out: list[_PeerFound] = []
    for path in paths:
        image = _fr.load_image_file(str(path))
        height, width = image.shape[:2]
        box = _central(_fr.face_locations(image), width, height)
        if box is None:
            out.append(None)
            continue
        out.append((_fr.face_encodings(image, known_face_locations=[box])[0], box))
    return out


def _peer_embed_at(paths: Sequence[Path], box: Box | None) -> list[npt.NDArray[np.float64]]:
    """Encodings at a fixed box (None: the whole image), for images where no face was found."""
    out = []
    for path in paths:
        image = _fr.load_image_file(str(path))
        height, width = image.shape[:2]
        where = box if box is not None else (0, width, height, 0)
        out.append(_fr.face_encodings(image, known_face_locations=[where])[0])
    return out


def _ours_embed_undetected(paths: Sequence[Path], points: Any, settings: Settings) -> list[Any]:
    return lfw._embed_undetected(paths, points, settings)


class _Side:
    """A warmed pool of worker processes and the wall time spent in its blocks."""

    def __init__(
        self, name: str, workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
    ) -> None:
        self.name = name
        self.seconds = 0.0
        self.pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=initializer,
            initargs=initargs,
        )

    def run(self, tasks: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
        """Runs the tasks on the pool; adds their wall time to :attr:`seconds`."""
        start = time.perf_counter()
        futures: list[Future[Any]] = [self.pool.submit(fn, *args) for fn, args in tasks]
        results = [f.result() for f in futures]
        self.seconds += time.perf_counter() - start
        return results


def _chunks(paths: Sequence[Path], size: int = CHUNK) -> list[list[Path]]:
    return [list(paths[i : i + size]) for i in range(0, len(paths), size)]


def select_pairs(pairs: Sequence[Pair], folds: int, per_fold: int | None) -> list[Pair]:
    """The first ``folds`` folds; with ``per_fold``, only that many same and different pairs each.

    Every fold keeps both kinds of pairs, so thresholds and FAR stay defined.
    """
    chosen: list[Pair] = []
    for fold in range(folds):
        same = [p for p in pairs if p.fold == fold and p.same]
        different = [p for p in pairs if p.fold == fold and not p.same]
        if per_fold is not None:
            same, different = same[:per_fold], different[:per_fold]
        chosen += same + different
    return chosen


def run(
    pairs_file: Path,
    images: Path,
    *,
    folds: int,
    per_fold: int | None,
    workers: int,
    models_dir: Path | None,
    detector: str | None,
    with_peer: bool,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Both sides over the selected pairs; the figures, times and undetected counts of each."""
    all_pairs = lfw.read_pairs(pairs_file, images)
    available = int(max(p.fold for p in all_pairs)) + 1
    folds = min(folds, available)
    pairs = select_pairs(all_pairs, folds, per_fold)
    unique = sorted({p.left for p in pairs} | {p.right for p in pairs})
    chosen: dict[str, Any] = {} if detector is None else {"detector": detector}
    settings = Settings(workers=workers, models_dir=models_dir, **chosen)

    ours = _Side("ours", workers, lfw._init_worker, (settings,))
    peer = _Side("peer", workers, _peer_init, ()) if with_peer else None
    sides = [s for s in (ours, peer) if s is not None]
    try:
        # Warm-up: every worker loads its models and embeds one image, untimed.
        ours.run([(lfw._embed_paths, (unique[:1], settings)) for _ in range(workers)])
        peer_skipped = None
        if peer is not None:
            try:
                peer.run([(_peer_embed, (unique[:1],)) for _ in range(workers)])
            except BrokenProcessPool as exc:  # face_recognition present but not importable
                peer.pool.shutdown(wait=False, cancel_futures=True)
                sides.remove(peer)
                peer, peer_skipped = None, f"face_recognition workers did not start: {exc}"
        ours.seconds = 0.0
        if peer is not None:
            peer.seconds = 0.0

        ours_found: dict[Path, Any] = {}
        peer_found: dict[Path, _PeerFound] = {}
        done = 0
        for start in range(0, len(unique), BLOCK):
            block = unique[start : start + BLOCK]
            parts = _chunks(block)
            for part, result in zip(
                parts, ours.run([(lfw._embed_paths, (p, settings)) for p in parts]), strict=True
            ):
                ours_found.update(zip(part, result, strict=True))
            if peer is not None:
                for part, result in zip(
                    parts, peer.run([(_peer_embed, (p,)) for p in parts]), strict=True
                ):
                    peer_found.update(zip(part, result, strict=True))
            done += len(block)
            if progress:
                progress(done, len(unique))

        # The fallback for undetected images, timed as part of each side's pipeline.
        ours_missing = [p for p, f in ours_found.items() if f is None]
        ours_emb = {p: f[0] for p, f in ours_found.items() if f is not None}
        if ours_missing:
            median = np.median(np.stack([f[1] for f in ours_found.values() if f]), axis=0)
            parts = _chunks(ours_missing)
            for part, result in zip(
                parts,
                ours.run([(_ours_embed_undetected, (p, median, settings)) for p in parts]),
                strict=True,
            ):
                ours_emb.update(zip(part, result, strict=True))
        report: dict[str, Any] = {
            "pairs": len(pairs),
            "folds": folds,
            "folds_available": available,
            "pairs_per_fold_and_kind": per_fold,
            "images": len(unique),
            "workers": workers,
            "ours_engine": _engine_settings(settings),
            "ours": _figures(pairs, ours_emb, ours_missing, ours.seconds, len(unique)),
        }
        if peer is not None:
            report["peer"] = _peer_report(peer, pairs, peer_found, len(unique))
        if peer_skipped:
            report["peer_skipped"] = peer_skipped
    finally:
        for side in sides:
            side.pool.shutdown(wait=True, cancel_futures=True)
    return report


def _engine_settings(settings: Settings) -> dict[str, Any]:
    """The settings that decide our LFW figures, with the detector "auto" resolves to."""
    from facelens.engine import registry

    resolve = getattr(registry, "detector_name", None)
    return {
        "engine": settings.engine,
        "detector_setting": settings.detector,
        "detector": resolve(settings) if resolve else settings.detector,
        "embedder": getattr(settings, "embedder", None),
        "embed_flip": getattr(settings, "embed_flip", None),
        "embed_views": getattr(settings, "embed_views", None),
        "models_dir": str(settings.models_dir) if settings.models_dir else None,
    }


def _peer_report(
    peer: _Side, pairs: Sequence[Pair], found: dict[Path, _PeerFound], images: int
) -> dict[str, Any]:
    missing = [p for p, f in found.items() if f is None]
    encodings = {p: f[0] for p, f in found.items() if f is not None}
    whole_image: dict[Path, npt.NDArray[np.float64]] = {}
    median_box: Box | None = None
    if missing:
        boxes = np.array([f[1] for f in found.values() if f is not None], dtype=np.float64)
        median_box = tuple(round(float(v)) for v in np.median(boxes, axis=0))  # type: ignore[assignment]
        parts = _chunks(missing)
        for part, result in zip(
            parts, peer.run([(_peer_embed_at, (p, median_box)) for p in parts]), strict=True
        ):
            encodings.update(zip(part, result, strict=True))
        timed = peer.seconds
        for part, result in zip(
            parts, peer.run([(_peer_embed_at, (p, None)) for p in parts]), strict=True
        ):
            whole_image.update(zip(part, result, strict=True))
        peer.seconds = timed  # the alternative is a second look, not part of the pipeline
    report = _figures(pairs, encodings, missing, peer.seconds, images)
    for ours_only in ("far_at_default", "tar_at_default"):  # our similarity calibration
        report.pop(ours_only)
    report["undetected_fallback"] = (
        f"median detected box (top, right, bottom, left) {median_box}" if missing else None
    )
    dist = _distances(pairs, encodings)
    same = np.array([p.same for p in pairs])
    report["at_its_tolerance_0_6"] = {
        "far": float((dist[~same] <= PEER_TOLERANCE).mean()),
        "tar": float((dist[same] <= PEER_TOLERANCE).mean()),
    }
    if missing:
        alternative = dict(encodings) | whole_image
        alt = lfw.verification_figures(
            _distances(pairs, alternative), same, np.array([p.fold for p in pairs], np.int64)
        )
        report["with_whole_image_box_for_undetected"] = {
            "accuracy": alt["accuracy"],
            "tar_at_far_1e3": alt["tar_at_far_1e3"],
        }
    return report


def _distances(pairs: Sequence[Pair], vectors: dict[Path, Any]) -> npt.NDArray[np.float64]:
    """Euclidean distance of each pair's two vectors, as each side stores them."""
    return np.array(
        [
            float(np.linalg.norm(np.asarray(vectors[p.left], np.float64) - vectors[p.right]))
            for p in pairs
        ]
    )


def _figures(
    pairs: Sequence[Pair],
    vectors: dict[Path, Any],
    missing: list[Path],
    seconds: float,
    images: int,
) -> dict[str, Any]:
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs], dtype=np.int64)
    figures = lfw.verification_figures(_distances(pairs, vectors), same, folds)
    return {
        **{k: round(v, 5) for k, v in figures.items()},
        "undetected": len(missing),
        "seconds": round(seconds, 2),
        "images_per_second": round(images / seconds, 2) if seconds else None,
    }
