"""Stranger clustering on the LFW development images: clusters against true identities.

Every image under ``<testdata>/lfw/images`` (Name/Name_0001.jpg) is embedded
once, as ``facelens bench lfw`` embeds them (the registry's engine, the face
nearest the centre, the median-landmarks fallback where none is found), and
the vectors are cached in ``bench/results/strangers_lfw_embeddings.npy``
(with a ``.json`` of paths and the model version beside it), so a threshold
sweep costs seconds, not minutes. Then, for each ``--thresholds`` value, the
images are fed in one shuffled order (``--seed``) through exactly what the
recognizer calls for an unknown face, :meth:`StrangerService.observe`, on a
memory collection store, and the resulting strangers are scored against the
LFW names:

* ``clusters`` against ``identities``, and ``singletons`` (clusters of one face);
* ``purity``: the fraction of faces whose cluster's majority identity is
  theirs (1.0: no cluster mixes people);
* ``inverse_purity``: the fraction of faces in their identity's largest
  cluster (1.0: no person is split over several strangers);
* ``pairwise_precision`` / ``pairwise_recall`` / ``pairwise_f1`` over all pairs
  of faces (same cluster vs same person), and the ``adjusted_rand_index``;
* ``observe_ms``: the time per ``observe`` call (search, add, associate).

LFW is a hard case for a camera's strangers: most identities have one photo
(1340 of 2086), photos span years, and the faces are many. A home camera sees
few people, often; the figures bound the clustering's errors from below.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench._common import RESULTS_DIR, machine_facts, summarize_ms, testdata_dir, write_result
from facelens.config import Settings
from facelens.engine.registry import build_engine
from facelens.evaluation.lfw import embed_images

CACHE = RESULTS_DIR / "strangers_lfw_embeddings.npy"
DEFAULT_THRESHOLDS = (70.0, 80.0, 85.0, 90.0, 95.0)


def _columns() -> tuple[Any, ...]:
    return (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


def lfw_paths(images: Path) -> list[Path]:
    return sorted(images.glob("*/*.jpg"))


def load_embeddings(images: Path, workers: int) -> tuple[list[Path], np.ndarray, dict[str, Any]]:
    """The embedding of every LFW image, from the cache when it matches, else computed."""
    paths = lfw_paths(images)
    names = [str(p.relative_to(images)) for p in paths]
    # The default engine (HOG + 68-point landmarks), as the similarity scale was fitted with,
    # whatever FACELENS_MODELS_DIR says.
    settings = Settings(workers=workers, models_dir=None)
    engine = build_engine(settings)
    model = engine.model_version
    meta_path = CACHE.with_suffix(".json")
    if CACHE.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        fresh = isinstance(meta.get("undetected"), list)
        if meta.get("paths") == names and meta.get("model_version") == model and fresh:
            return paths, np.load(CACHE), {**meta, "cached": True, "paths": len(names)}
    started = time.perf_counter()
    with Progress(*_columns()) as progress:
        task = progress.add_task("Embedding LFW images", total=len(paths))
        found, undetected = embed_images(
            paths, settings, progress=lambda n: progress.advance(task, n)
        )
    seconds = time.perf_counter() - started
    vectors = np.stack([found[p] for p in paths]).astype(np.float32)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    np.save(CACHE, vectors)
    meta = {
        "model_version": model,
        "paths": names,
        "undetected": sorted(str(p.relative_to(images)) for p in undetected),
        "embed_seconds": round(seconds, 1),
        "workers": workers,
    }
    meta_path.write_text(json.dumps(meta) + "\n")
    return paths, vectors, {**meta, "cached": False, "paths": len(names)}


def _pairs(counts: Sequence[int]) -> int:
    return sum(c * (c - 1) // 2 for c in counts)


def score(truth: Sequence[str], assigned: Sequence[str]) -> dict[str, Any]:
    """Purity, inverse purity, pairwise precision/recall and ARI of a clustering."""
    n = len(truth)
    cells = Counter(zip(assigned, truth, strict=True))
    by_cluster: dict[str, Counter[str]] = defaultdict(Counter)
    by_identity: dict[str, Counter[str]] = defaultdict(Counter)
    for (cluster, identity), count in cells.items():
        by_cluster[cluster][identity] = count
        by_identity[identity][cluster] = count
    purity = sum(max(c.values()) for c in by_cluster.values()) / n
    inverse = sum(max(c.values()) for c in by_identity.values()) / n
    together = _pairs(list(cells.values()))  # pairs in the same cluster and the same identity
    same_cluster = _pairs([sum(c.values()) for c in by_cluster.values()])
    same_identity = _pairs([sum(c.values()) for c in by_identity.values()])
    total = n * (n - 1) // 2
    precision = together / same_cluster if same_cluster else 1.0
    recall = together / same_identity if same_identity else 1.0
    expected = same_cluster * same_identity / total if total else 0.0
    maximum = (same_cluster + same_identity) / 2
    ari = (together - expected) / (maximum - expected) if maximum != expected else 1.0
    sizes = [sum(c.values()) for c in by_cluster.values()]
    return {
        "faces": n,
        "identities": len(by_identity),
        "identities_with_several_faces": sum(
            1 for c in by_identity.values() if sum(c.values()) > 1
        ),
        "clusters": len(by_cluster),
        "singletons": sum(1 for s in sizes if s == 1),
        "largest_cluster": max(sizes),
        "purity": round(purity, 4),
        "inverse_purity": round(inverse, 4),
        "pairwise_precision": round(precision, 4),
        "pairwise_recall": round(recall, 4),
        "pairwise_f1": round(2 * precision * recall / (precision + recall), 4)
        if precision + recall
        else 0.0,
        "adjusted_rand_index": round(ari, 4),
    }


def cluster(vectors: np.ndarray, order: Sequence[int], threshold: float, model: str) -> Any:
    """Feeds the vectors in ``order`` through StrangerService.observe; returns ids and times."""
    from facelens.collection.stores.registry import open_store
    from facelens.people.stranger_model import StrangerSettings
    from facelens.people.strangers import StrangerService

    store = open_store("memory://")
    store.create_collection("lfw", face_model_version=model)
    service = StrangerService(store, settings=StrangerSettings(threshold=threshold))
    assigned: dict[int, str] = {}
    seconds: list[float] = []
    with Progress(*_columns()) as progress:
        task = progress.add_task(f"observe @ {threshold:g}", total=len(order))
        for i in order:
            started = time.perf_counter()
            match = service.observe("lfw", vectors[i])
            seconds.append(time.perf_counter() - started)
            assigned[i] = match.stranger_id
            progress.advance(task)
    store.close()
    return [assigned[i] for i in range(len(vectors)) if i in assigned], seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--thresholds",
        type=lambda s: [float(x) for x in s.split(",")],
        default=list(DEFAULT_THRESHOLDS),
        help="stranger_threshold values (similarity 0-100), comma-separated",
    )
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--seed", type=int, default=20240609, help="shuffle seed")
    parser.add_argument("--workers", type=int, default=1, help="embedding processes")
    parser.add_argument(
        "--with-undetected",
        action="store_true",
        help="also cluster the images where no face was found (embedded at median landmarks)",
    )
    parser.add_argument("--embed-only", action="store_true", help="fill the cache and stop")
    parser.add_argument("--name", default="strangers_lfw", help="bench/results/<name>.json")
    args = parser.parse_args(argv)

    images = testdata_dir() / "lfw" / "images"
    machine = machine_facts()
    paths, vectors, embedding = load_embeddings(images, args.workers)
    if args.embed_only:
        print(json.dumps({**embedding, "undetected": len(embedding["undetected"])}, indent=2))
        return
    # The recognizer never sees a face the detector missed (that crop is a dead letter), so
    # the images embedded at the median landmarks are left out unless asked for.
    skipped = set() if args.with_undetected else set(embedding["undetected"])
    order = [i for i, p in enumerate(paths) if str(p.relative_to(images)) not in skipped]
    random.Random(args.seed).shuffle(order)
    if args.limit is not None:
        order = order[: args.limit]
    truth_all = [p.parent.name for p in paths]
    keep = sorted(order)
    truth = [truth_all[i] for i in keep]
    runs = []
    for threshold in args.thresholds:
        assigned, seconds = cluster(vectors, order, threshold, embedding["model_version"])
        runs.append(
            {"threshold": threshold, **score(truth, assigned), "observe_ms": summarize_ms(seconds)}
        )
    write_result(
        args.name,
        {
            "machine": machine,
            "embedding": {**embedding, "undetected": len(embedding["undetected"])},
            "seed": args.seed,
            "limit": args.limit,
            "left_out_undetected": len(skipped),
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
