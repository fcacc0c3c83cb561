"""Re-embedding collections with the engine the settings build now, from the faces' sources.

Why: vectors of one embedding model do not compare with another's, so a
collection refuses an engine of another model version
(:meth:`CollectionService.require_compatible`). When the engine changes (a new
default, ``embedder=arcface``), a collection either stays on its model (the old
settings) or is re-embedded here, never silently mixed. Each face is embedded
again from its source (:mod:`facelens.collection.sources`): the crop is
decoded, the face rebuilt from the stored box and landmarks, and the engine
aligns and embeds it as it would in the original photo.

Two passes, so that nothing changes unless everything can: :func:`plan_reindex`
finds each collection's faces and which have no source (stored before sources
were kept, or with ``keep_face_sources`` off); :func:`reindex` then embeds the
sourced ones and swaps every vector and the model version in one transaction
per collection (:meth:`CollectionStore.replace_embeddings`). Faces without a
source are refused (InvalidParameterException, nothing changed) unless the
caller drops them, and then they are deleted in that same transaction.

Several collections are done together (a collection and its companions, the
strangers and the negative examples), all planned and checked before the
first changes. Embedding costs what it does when indexing, without detection:
about 50 ms a face with the default engine (dlib's ResNet on two views, each
mirrored; measured on 37 test photos' faces on a busy 2-core machine), so
about a minute per 1000 faces. The plan holds every face's record, and the
new vectors are held until the swap (about 1 KB a face in all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from facelens.collection import validation
from facelens.collection.models import StoredFace
from facelens.collection.service import CollectionService
from facelens.collection.sources import source_face
from facelens.engine.types import Embedding
from facelens.errors import InvalidParameterException

PAGE = 1000
"""Faces read per page while planning; sources read per batch while embedding."""

Progress = Callable[[int], None]
"""Told how many more faces were re-embedded (a progress bar's ``advance``)."""


@dataclass(frozen=True, slots=True)
class CollectionPlan:
    """One collection to re-embed: its faces, and those without a source.

    ``sourced`` and ``unsourced`` partition the faces found while planning.
    """

    collection_id: str
    from_version: str
    sourced: tuple[StoredFace, ...]
    unsourced: tuple[StoredFace, ...]

    @property
    def losing_users(self) -> dict[str, int]:
        """Users (people) owning unsourced faces, with how many each would lose."""
        counts: dict[str, int] = {}
        for face in self.unsourced:
            if face.user_id is not None:
                counts[face.user_id] = counts.get(face.user_id, 0) + 1
        return dict(sorted(counts.items()))


@dataclass(frozen=True, slots=True)
class ReindexPlan:
    """What :func:`reindex` will do: ``todo`` collections are on another model version
    than ``face_model_version`` (the engine's); ``current`` ones are left alone."""

    face_model_version: str
    todo: tuple[CollectionPlan, ...]
    current: tuple[str, ...]

    @property
    def face_count(self) -> int:
        """Faces to re-embed (those with a source)."""
        return sum(len(c.sourced) for c in self.todo)

    @property
    def unsourced_count(self) -> int:
        return sum(len(c.unsourced) for c in self.todo)


@dataclass(frozen=True, slots=True)
class CollectionReindex:
    """What happened to one collection: ``reindexed`` faces got new vectors, the
    ``dropped`` ones (no source) were deleted, users in ``dropped_users`` lost faces."""

    collection_id: str
    from_version: str
    to_version: str
    reindexed: int
    dropped: tuple[str, ...]
    dropped_users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReindexResult:
    """The collections re-embedded, and those already at ``face_model_version``."""

    face_model_version: str
    reindexed: tuple[CollectionReindex, ...]
    current: tuple[str, ...]


def plan_reindex(service: CollectionService, collection_ids: Sequence[str]) -> ReindexPlan:
    """Reads what re-embedding ``collection_ids`` takes; changes nothing.

    ResourceNotFoundException for a collection that does not exist (a caller
    with optional companions checks them first).
    """
    version = service.face_model_version
    todo: list[CollectionPlan] = []
    current: list[str] = []
    for collection_id in dict.fromkeys(collection_ids):
        info = service.describe_collection(validation.collection_id(collection_id))
        if info.face_model_version == version:
            current.append(collection_id)
            continue
        sourced: list[StoredFace] = []
        unsourced: list[StoredFace] = []
        for page in _pages(service, collection_id):
            have = service.store.get_sources(collection_id, [f.face_id for f in page])
            for face in page:
                (sourced if face.face_id in have else unsourced).append(face)
        todo.append(
            CollectionPlan(collection_id, info.face_model_version, tuple(sourced), tuple(unsourced))
        )
    return ReindexPlan(version, tuple(todo), tuple(current))


def reindex(
    service: CollectionService,
    plan: ReindexPlan,
    *,
    drop_unsourced: bool = False,
    progress: Progress | None = None,
) -> ReindexResult:
    """Re-embeds the plan's collections with ``service``'s engine, one transaction each.

    Faces without a source: InvalidParameterException before anything changes,
    naming how many and whose, unless ``drop_unsourced`` (then they are deleted).
    A face added to a collection since the plan was made fails its swap with
    ConflictException (that collection unchanged; run again).
    """
    if plan.face_model_version != service.face_model_version:
        raise InvalidParameterException(
            f"The plan is for {plan.face_model_version}; this engine makes "
            f"{service.face_model_version} embeddings"
        )
    if plan.unsourced_count and not drop_unsourced:
        raise unsourced_error(plan)
    done: list[CollectionReindex] = []
    for todo in plan.todo:
        vectors = _embed(service, todo, progress)
        dropped = tuple(f.face_id for f in todo.unsourced)
        service.store.replace_embeddings(
            todo.collection_id,
            vectors,
            face_model_version=plan.face_model_version,
            delete=dropped,
        )
        done.append(
            CollectionReindex(
                todo.collection_id,
                todo.from_version,
                plan.face_model_version,
                len(vectors),
                dropped,
                tuple(todo.losing_users),
            )
        )
    return ReindexResult(plan.face_model_version, tuple(done), plan.current)


def unsourced_error(plan: ReindexPlan) -> InvalidParameterException:
    """Why the plan cannot run as it is: how many faces have no source, and whose."""
    parts = []
    for todo in plan.todo:
        if not todo.unsourced:
            continue
        users = ", ".join(f"{u} ({n})" for u, n in todo.losing_users.items())
        unowned = sum(f.user_id is None for f in todo.unsourced)
        whose = f"users {users}" if users else "no user"
        if users and unowned:
            whose += f", and {unowned} face(s) of no user"
        parts.append(
            f"{todo.collection_id}: {len(todo.unsourced)} of "
            f"{len(todo.sourced) + len(todo.unsourced)} face(s), of {whose}"
        )
    return InvalidParameterException(
        f"{plan.unsourced_count} face(s) have no source to re-embed them from (stored before "
        "face sources were kept, or with keep_face_sources off): "
        + "; ".join(parts)
        + ". Enrol these again, or reindex with --drop-unsourced to delete them. "
        "Nothing was changed."
    )


def _pages(service: CollectionService, collection_id: str) -> Iterator[list[StoredFace]]:
    token: str | None = None
    while True:
        page = service.store.list_faces(collection_id, max_results=PAGE, next_token=token)
        if page.faces:
            yield page.faces
        token = page.next_token
        if token is None:
            return


def _embed(
    service: CollectionService, todo: CollectionPlan, progress: Progress | None
) -> dict[str, Embedding]:
    """New vectors of the plan's sourced faces (a face deleted meanwhile is left out)."""
    engine = service.analyzer.engine
    vectors: dict[str, Embedding] = {}
    for start in range(0, len(todo.sourced), PAGE):
        batch = todo.sourced[start : start + PAGE]
        sources = service.store.get_sources(todo.collection_id, [f.face_id for f in batch])
        for face in batch:
            source = sources.get(face.face_id)
            if source is not None:
                pixels, detail = source_face(source, confidence=face.confidence)
                vectors[face.face_id] = engine.embed(pixels, [detail])[0]
            if progress is not None:
                progress(1)
    return vectors
