"""`facelens bench identify`: the identification protocol run on a folder of photos.

Three parts, each swappable:

* **Embeddings** (:func:`embed_folder`): the central face of every photo, found
  and embedded exactly as ``facelens bench lfw`` does it
  (:func:`facelens.evaluation.lfw.find_faces`, on ``settings.workers``
  processes), cached between runs in ``<cache_dir>/identify-<key>.npz``. An
  entry is reused when the photo's path, size and modification time match;
  the file's ``<key>`` is a hash of every setting that changes a vector
  (:func:`engine_key`), so a run with another engine, detector or alignment
  never sees another's vectors. Photos where no face is found are left out of
  the protocol and counted: they could not be enrolled nor searched either.
* **The rule the recognizer applies** (:class:`RecognizerRule`): a gallery is
  enrolled into a fresh in-memory collection through facelens' own services
  (a user per identity, its faces stored with ``ExternalImageId`` = the user
  and associated through ``UserService.associate_faces``, which refuses a
  face that does not look like the person's others, as ``facelens enroll``
  does), and every probe is decided by ``EngineFinder.search``: the very
  object and method the recognizer calls for each crop, built by the same
  wiring from the same settings (``recognizer.face_match_threshold``,
  ``max_faces``, per-person thresholds, negatives). Whatever rule the
  recognizer gets later is what this measures.
* **Metrics** (:mod:`facelens.evaluation.identification`): pure functions of
  the score matrix and the rule's decisions.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facelens.collection.models import NewFace
from facelens.collection.service import CollectionService
from facelens.collection.stores.store import CollectionStore
from facelens.collection.users import UserService, template
from facelens.config import Settings
from facelens.engine.open_set import calibration_for
from facelens.engine.registry import build_engine, detector_name
from facelens.engine.types import Embedding
from facelens.errors import InvalidParameterException
from facelens.evaluation import identification as ident
from facelens.evaluation.lfw import find_faces
from facelens.recognizer.finders import EngineFinder
from facelens.values.boxes import BoundingBox

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
CACHE_FORMAT = 1
"""Bumped when the cache file's layout or what a cached vector means changes."""
FACE_CHOICE = "central face (facelens.evaluation.lfw), no fallback"
"""Which face of a photo is embedded; part of the cache key."""
_NOT_VECTOR_SETTINGS = frozenset(
    {
        "home",
        "models_dir",
        "testdata",
        "collections_url",
        "objects_url",
        "bucket",
        "profiles_url",
        "workers",
        "embed_threads",
        "max_image_bytes",
        "max_image_pixels",
        "image_pixel_budget",
        "image_budget_wait_seconds",
    }
)
"""Top-level settings that cannot change a face's vector (where files live, how many
processes and threads, input limits). Every other top-level setting is part of the cache
key, so a setting added later for the engine invalidates the cache without a code change.
Sections (recognizer, MQTT, ...) and lists (notify) are left out: none makes vectors."""

Vector = npt.NDArray[np.float32]
Progress = Callable[[str, int, int | None], None]
"""(stage, done, total): called as photos are embedded and probes are decided."""


def scan(images: Path) -> dict[str, list[Path]]:
    """LFW layout: identity -> its photos (``<images>/<identity>/<anything>.jpg|.jpeg|.png``)."""
    if not images.is_dir():
        raise InvalidParameterException(f"--images {images}: not a folder")
    found: dict[str, list[Path]] = {}
    for folder in sorted(p for p in images.iterdir() if p.is_dir()):
        photos = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if photos:
            found[folder.name] = photos
    if not found:
        raise InvalidParameterException(
            f"--images {images}: no <identity>/<photo>.jpg folders (LFW layout) in it"
        )
    return found


def engine_key(settings: Settings) -> dict[str, Any]:
    """Everything that decides a photo's vector: the engine's model version, the detector
    "auto" resolves to, every top-level setting not known to be irrelevant, the face choice."""
    values = {
        name: value
        for name, value in settings.model_dump(mode="json").items()
        if name not in _NOT_VECTOR_SETTINGS and not isinstance(value, dict | list)
    }
    return {
        "format": CACHE_FORMAT,
        "face": FACE_CHOICE,
        "model_version": build_engine(settings).model_version,
        "detector_resolved": detector_name(settings),
        "settings": values,
    }


def cache_file(cache_dir: Path, settings: Settings) -> Path:
    """``<cache_dir>/identify-<16 hex of the engine key's SHA-256>.npz``."""
    key = json.dumps(engine_key(settings), sort_keys=True)
    return cache_dir / f"identify-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


_Stamp = tuple[str, int, int]
"""(absolute path, size in bytes, modification time in ns): when a cached vector is valid."""


def _stamp(path: Path) -> _Stamp:
    stat = path.stat()
    return (str(path.absolute()), stat.st_size, stat.st_mtime_ns)


def load_cache(path: Path) -> dict[_Stamp, Vector | None]:
    """The cached vectors (None: no face was found); empty when the file is missing or
    unreadable (a cache is never worth failing a run over)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            paths, sizes, mtimes = data["paths"], data["sizes"], data["mtimes"]
            found, vectors = data["found"], data["vectors"]
    except (OSError, ValueError, KeyError):
        return {}
    return {
        (str(p), int(s), int(m)): (vectors[i].astype(np.float32) if f else None)
        for i, (p, s, m, f) in enumerate(zip(paths, sizes, mtimes, found, strict=True))
    }


def save_cache(path: Path, entries: Mapping[_Stamp, Vector | None]) -> None:
    """Writes the cache atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamps = list(entries)
    dims = {len(v) for v in entries.values() if v is not None}
    dim = dims.pop() if len(dims) == 1 else 0
    vectors = np.zeros((len(stamps), dim), dtype=np.float32)
    for i, stamp in enumerate(stamps):
        vector = entries[stamp]
        if vector is not None and dim:
            vectors[i] = vector
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(
                out,
                paths=np.array([s[0] for s in stamps], dtype=np.str_),
                sizes=np.array([s[1] for s in stamps], dtype=np.int64),
                mtimes=np.array([s[2] for s in stamps], dtype=np.int64),
                found=np.array([entries[s] is not None for s in stamps], dtype=np.bool_),
                vectors=vectors,
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Embedded:
    """Each photo's vector (None: no face found), and how the cache did (``cache_hits``:
    photos whose vectors were read back, ``embedded``: photos run through the engine)."""

    vectors: Mapping[Path, Vector | None]
    cache_file: Path
    cache_hits: int
    embedded: int
    seconds: float


def embed_folder(
    paths: Sequence[Path],
    settings: Settings,
    cache_dir: Path,
    *,
    progress: Progress | None = None,
) -> Embedded:
    """Vectors of ``paths`` from the cache where valid, the rest embedded (and cached)."""
    started = time.perf_counter()
    where = cache_file(cache_dir, settings)
    cached = load_cache(where)
    stamps = {p: _stamp(p) for p in paths}
    vectors: dict[Path, Vector | None] = {}
    todo: list[Path] = []
    for path, stamp in stamps.items():
        if stamp in cached:
            vectors[path] = cached[stamp]
        else:
            todo.append(path)
    if todo:
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress("embedding", done, len(todo))

        found = find_faces(todo, settings, progress=step)
        for path in todo:
            hit = found[path]
            vectors[path] = None if hit is None else hit[0].astype(np.float32)
        kept = {s: v for s, v in cached.items() if Path(s[0]).exists()}
        save_cache(where, kept | {stamps[p]: vectors[p] for p in todo})
    return Embedded(
        vectors, where, len(paths) - len(todo), len(todo), time.perf_counter() - started
    )


def gallery_settings(settings: Settings, home: Path) -> Settings:
    """The settings of one gallery's rule: ``settings``' engine and recognizer, with fresh
    stores in memory (objects under ``home``)."""
    return settings.model_copy(
        update={
            "home": home,
            "collections_url": "memory://",
            "profiles_url": "memory://",
            "objects_url": f"file://{home / 'objects'}",
        }
    )


class RecognizerRule:
    """A gallery enrolled into a fresh collection, and the recognizer's decision for a probe
    (module docstring). Its parts are the recognizer's own, built by the caller's wiring
    from :func:`gallery_settings` (see :data:`OpenRule`), which also closes them."""

    def __init__(
        self,
        finder: EngineFinder,
        store: CollectionStore,
        collections: CollectionService,
        users: UserService,
    ) -> None:
        self.finder = finder
        self.store = store
        self.collections = collections
        self.users = users
        self.collection_id = finder.options.collection_id
        self.collections.create_collection(self.collection_id)
        self._index: dict[str, int] = {}
        self.refused = 0

    def enrol(
        self, identities: Sequence[str], photos: Mapping[str, Sequence[Vector]]
    ) -> dict[str, list[Vector]]:
        """Enrols each identity (gallery index = position in ``identities``) as ``facelens
        enroll`` does; returns the vectors each identity kept (refused faces are deleted)."""
        box = BoundingBox(0.5, 0.5, 0.25, 0.25)  # not used by any decision
        new: list[NewFace] = []
        owner: dict[str, str] = {}
        for name in identities:
            user_id = self._user_id(name, len(self._index))
            self._index[user_id] = len(self._index)
            for vector in photos[name]:
                face_id = str(uuid.uuid4())
                owner[face_id] = name
                new.append(NewFace(face_id, str(uuid.uuid4()), user_id, box, 100.0, vector))
        for start in range(0, len(new), 1000):
            self.store.add_faces(self.collection_id, new[start : start + 1000])
        kept: dict[str, list[Vector]] = {name: [] for name in identities}
        by_user: dict[str, list[NewFace]] = {}
        for face in new:
            by_user.setdefault(str(face.external_image_id), []).append(face)
        for user_id, faces in by_user.items():
            self.users.create_user(self.collection_id, user_id)
            result = self.users.associate_faces(
                self.collection_id, user_id, [f.face_id for f in faces]
            )
            refused = [f.face_id for f in result.unsuccessful]
            if refused:
                self.collections.delete_faces(self.collection_id, refused)
                self.refused += len(refused)
            for face in faces:
                if face.face_id not in refused:
                    kept[owner[face.face_id]].append(face.embedding)
        return kept

    @staticmethod
    def _user_id(name: str, number: int) -> str:
        """A UserId for an identity: its slug, numbered so that two names never share one."""
        from facelens.enrolment import person_id

        return f"{person_id(name)[:40]}-{number}"

    def decide(self, embedding: Embedding) -> int:
        """The gallery index the recognizer names for ``embedding``, -1 for unknown."""
        identity = self.finder.search(embedding)
        if identity is None:
            return -1
        for who in (identity.user_id, identity.external_image_id):
            if who is not None and who in self._index:
                return self._index[who]
        raise RuntimeError(f"the recognizer named {identity}, which this gallery never enrolled")


def describe_rule(settings: Settings) -> dict[str, Any]:
    """The settings the recognizer's rule reads, for the report."""
    r = settings.recognizer
    return {
        "name": "recognizer",
        "code": "facelens.recognizer.finders.EngineFinder.search as facelens.wiring builds it "
        "(the recognizer's own decision)",
        "rule": r.rule,
        "max_false_identification_rate": r.max_false_identification_rate,
        "face_match_threshold": r.face_match_threshold,
        "max_faces": r.max_faces,
        "calibrated": calibration_for(build_engine(settings).model_version) is not None,
    }


@dataclass(frozen=True)
class Counts:
    """What was in the folder. images_without_face are left out before the split, so an
    identity whose photos have no face for all but one becomes a non-mated one."""

    identities: int
    images: int
    images_without_face: int
    identities_with_a_face: int
    enrolable_identities: int


@dataclass(frozen=True)
class GalleryResult:
    """One gallery size and enrol_photos: who was enrolled and the figures.

    gallery_size: identities enrolled; enrolled_faces: faces kept (enrolment_refused: faces
    the association check refused as not looking like the person's others); seconds: enrol
    plus deciding every probe; threshold_score: each threshold-free threshold on the open-set
    score the rule thresholds (:func:`facelens.engine.open_set.open_set_score`: minus the
    distance to the nearest person, plus a cohort term in galleries of over 10 people).
    """

    gallery_size_requested: str
    gallery_size: int
    enrol_photos: int
    enrolled_faces: int
    enrolment_refused: int
    identities_enrolling_several: int
    figures: ident.Figures
    threshold_score: tuple[float | None, ...]
    seconds: float


@dataclass(frozen=True)
class IdentifyReport:
    """What ``facelens bench identify`` prints (documented in the README's bench section)."""

    images_dir: str
    seed: int
    counts: Counts
    engine: Mapping[str, Any]
    rule: Mapping[str, Any]
    results: tuple[GalleryResult, ...]
    cache_file: str
    cache_hits: int
    embedded: int
    embed_seconds: float
    total_seconds: float
    workers: int


def euclidean(probes: npt.ArrayLike, columns: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Euclidean distances, probes x columns, in float64 (no cancellation near 0); one matrix
    product, so 2000 probes x 2000 faces is 32 MB, not a probes x faces x 128 array."""
    a, b = np.asarray(probes, np.float64), np.asarray(columns, np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    distances: npt.NDArray[np.float64] = np.sqrt(np.maximum(squared, 0.0))
    return distances


@dataclass(frozen=True)
class GalleryScores:
    """Per probe and identity, minus the distance to the nearer of the identity's template
    and faces (``scores``: what the recognizer's candidates are, users on their template,
    then faces); and each identity's template against the others the same way (``people``,
    identities x identities, minus distances), which the open-set score's cohort reads."""

    scores: ident.Scores
    people: ident.Scores


def gallery_scores(
    probes: npt.NDArray[np.float32], kept: Mapping[str, Sequence[Vector]], identities: Sequence[str]
) -> GalleryScores:
    """The score matrices of one gallery (see :class:`GalleryScores`)."""
    columns: list[Vector] = []
    owners: list[int] = []
    templates: list[Vector] = []
    for i, name in enumerate(identities):
        faces = list(kept[name])
        if not faces:
            continue
        templates.append(template(faces))
        columns += [templates[-1], *faces]
        owners += [i] * (len(faces) + 1)
    n = len(identities)
    if not columns:
        return GalleryScores(np.full((len(probes), n), -np.inf), np.full((n, n), -np.inf))
    matrix = np.stack(columns)
    return GalleryScores(
        ident.identity_scores(euclidean(probes, matrix), owners, n),
        ident.identity_scores(euclidean(np.stack(templates), matrix), owners, n),
    )


OpenRule = Callable[[Settings, ExitStack], RecognizerRule]
"""Builds a gallery's rule from its :func:`gallery_settings`, its parts closed by the stack
(the front ends pass :func:`facelens.wiring.evaluation.open_recognizer_rule`)."""


def measure(
    split: ident.Split,
    vectors: Mapping[str, Vector],
    settings: Settings,
    open_rule: OpenRule,
    *,
    progress: Progress | None = None,
) -> GalleryResult:
    """Enrols ``split``'s gallery, decides every probe with the recognizer, and the figures."""
    started = time.perf_counter()
    dim = len(next(iter(vectors.values()))) if vectors else 0
    probes = np.array([vectors[p] for p, _ in split.probes], dtype=np.float32).reshape(-1, dim)
    truth = split.truth()
    label = f"gallery {split.requested_size}, {split.enrol_photos} photo(s)"
    decisions = np.full(len(split.probes), -1, dtype=np.int64)
    with (
        tempfile.TemporaryDirectory(prefix="facelens-identify-") as home,
        ExitStack() as stack,
    ):
        rule = open_rule(gallery_settings(settings, Path(home)), stack)
        kept = rule.enrol(
            split.identities,
            {n: [vectors[p] for p in split.gallery[n]] for n in split.identities},
        )
        for i, (photo, _) in enumerate(split.probes):
            decisions[i] = rule.decide(vectors[photo])
            if progress and (i % 50 == 49 or i == len(split.probes) - 1):
                progress(label, i + 1, len(split.probes))
        refused = rule.refused
    scored = gallery_scores(probes, kept, split.identities)
    calibration = calibration_for(build_engine(settings).model_version)
    offsets = None
    if calibration is not None:
        n = len(split.identities)
        offsets = np.array(
            [calibration.person_offset(n, len(kept[name])) for name in split.identities]
        )
    ranked = ident.open_set_top(-scored.scores, -scored.people, offsets)
    figures = ident.figures(scored.scores, truth, decisions, ranked=ranked)
    return GalleryResult(
        gallery_size_requested=split.requested_size,
        gallery_size=len(split.identities),
        enrol_photos=split.enrol_photos,
        enrolled_faces=sum(len(v) for v in kept.values()),
        enrolment_refused=refused,
        identities_enrolling_several=sum(1 for n in split.identities if len(split.gallery[n]) > 1),
        figures=figures,
        threshold_score=tuple(
            None if a.threshold is None else round(a.threshold, 4) for a in figures.threshold_free
        ),
        seconds=time.perf_counter() - started,
    )


def usable_photos(
    found: Mapping[str, Sequence[Path]], vectors: Mapping[Path, Vector | None]
) -> dict[str, list[str]]:
    """identity -> its photos (as strings) where a face was found; identities without any
    are left out."""
    out: dict[str, list[str]] = {}
    for name, paths in found.items():
        kept = [str(p) for p in paths if vectors.get(p) is not None]
        if kept:
            out[name] = kept
    return out


def run_identify(
    images: Path,
    settings: Settings,
    *,
    sizes: Sequence[str],
    enrol_counts: Sequence[int],
    seed: int,
    cache_dir: Path,
    open_rule: OpenRule,
    progress: Progress | None = None,
) -> IdentifyReport:
    """The whole benchmark: embed (or read back), then one result per enrol count and size;
    ``open_rule`` builds each gallery's rule (:data:`OpenRule`)."""
    started = time.perf_counter()
    found = scan(images)
    paths = [p for ps in found.values() for p in ps]
    embedded = embed_folder(paths, settings, cache_dir, progress=progress)
    photos = usable_photos(found, embedded.vectors)
    vectors = {str(p): v for p, v in embedded.vectors.items() if v is not None}
    results = [
        measure(
            ident.split(photos, size=size, enrol_photos=k, seed=seed),
            vectors,
            settings,
            open_rule,
            progress=progress,
        )
        for k in enrol_counts
        for size in sizes
    ]
    counts = Counts(
        identities=len(found),
        images=len(paths),
        images_without_face=sum(1 for v in embedded.vectors.values() if v is None),
        identities_with_a_face=len(photos),
        enrolable_identities=len(ident.enrolable(photos)),
    )
    return IdentifyReport(
        images_dir=str(images),
        seed=seed,
        counts=counts,
        engine=engine_key(settings),
        rule=describe_rule(settings),
        results=tuple(results),
        cache_file=str(embedded.cache_file),
        cache_hits=embedded.cache_hits,
        embedded=embedded.embedded,
        embed_seconds=round(embedded.seconds, 3),
        total_seconds=round(time.perf_counter() - started, 3),
        workers=max(1, settings.workers),
    )
