"""The dashboard's search page: who is in this photo, as the recognizer would decide it.

The photo's largest face is embedded once; the people and faces above the
chosen similarity are listed, and the recognizer's own rule
(:class:`facelens.people.matching.MatchPolicy`: per-person thresholds, and
"not this person" corrections as vetoes) gives the answer it would publish,
at the global threshold. A person vetoed by a correction, or held to a
threshold of their own, is marked in the lists, so a match the recognizer
would refuse is not mistaken for an identification. The photo is not stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from facelens.api.context import Analyzer, Collections, Context, Policy, Profiles, Users
from facelens.api.dashboard.web import Viewer, check_same_origin, form_text, name_of, page
from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.models import QualityFilter
from facelens.collection.service import CollectionService
from facelens.collection.users import UserService
from facelens.config import RecognizerSettings
from facelens.errors import FacelensError, InvalidParameterException, ResourceNotFoundException
from facelens.people.matching import VETO_SIMILARITY, MatchPolicy, open_set_rule
from facelens.profiles.store import ProfileStore

router = APIRouter(include_in_schema=False)

SEARCH_RESULTS = 5


@dataclass(frozen=True)
class Searching:
    """What a search reads: the engine, the people and faces it ranks, the recognizer's
    rule (and its settings) that gives the verdict, and the profiles that name them."""

    analyzer: FaceAnalyzer
    users: UserService
    collections: CollectionService
    policy: MatchPolicy
    profiles: ProfileStore
    recognizer: RecognizerSettings
    collection_id: str


def _searching(
    ctx: Context,
    analyzer: Analyzer,
    users: Users,
    collections: Collections,
    policy: Policy,
    profiles: Profiles,
) -> Searching:
    return Searching(
        analyzer, users, collections, policy, profiles, ctx.recognizer, ctx.collection_id
    )


SearchParts = Annotated[Searching, Depends(_searching)]


@router.get("/ui/search")
def search_form(request: Request, _who: Viewer, ctx: Context) -> Response:
    threshold = ctx.recognizer.face_match_threshold
    return page(request, "search.html", threshold=threshold, active="search")


@router.post("/ui/search")
async def search(request: Request, _who: Viewer, parts: SearchParts) -> Response:
    check_same_origin(request)
    threshold = parts.recognizer.face_match_threshold
    try:
        async with request.form() as form:
            uploads = [f for f in form.getlist("photo") if isinstance(f, UploadFile) and f.filename]
            text = form_text(form, "threshold", max_chars=10)
            if len(uploads) != 1:
                raise InvalidParameterException("Choose one photo")
            image = await uploads[0].read()
        threshold = _threshold(text, threshold)
        found = await run_in_threadpool(_search, parts, image, threshold)
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        missing = isinstance(exc, ResourceNotFoundException)
        return page(
            request,
            "search.html",
            status_code=400,
            threshold=threshold,
            active="search",
            search_error="Nobody is enrolled yet." if missing else exc.message,
        )
    return page(request, "search.html", threshold=threshold, active="search", **found)


def _threshold(text: str, default: float) -> float:
    try:
        value = float(text) if text else default
    except ValueError:
        raise InvalidParameterException("The similarity must be a number from 0 to 100") from None
    if not 0 <= value <= 100:
        raise InvalidParameterException("The similarity must be a number from 0 to 100")
    return value


def _search(s: Searching, image: bytes, threshold: float) -> dict[str, Any]:
    """Lists and verdict for one photo (blocking: the engine and the stores)."""
    cid = s.collection_id
    global_threshold = s.recognizer.face_match_threshold
    s.collections.require_compatible(cid)  # no collection: ResourceNotFoundException
    embedding = s.analyzer.probe(image, QualityFilter.NONE).embedding
    users = s.users.match_embedding(cid, embedding, limit=SEARCH_RESULTS, threshold=threshold)
    faces = s.collections.match_embedding(cid, embedding, limit=SEARCH_RESULTS, threshold=threshold)
    policy = s.policy
    r = s.recognizer
    rule = open_set_rule(r)
    verdict = policy.identify(
        cid, embedding, threshold=global_threshold, max_faces=r.max_faces, rule=rule
    )
    negatives = policy.negatives(cid, embedding, floor=policy.floor(threshold))

    def marks(person_id: str, similarity: float, *profile_ids: str | None) -> dict[str, Any]:
        veto = negatives.get(person_id)
        return {
            "vetoed": veto is not None and (veto >= VETO_SIMILARITY or veto >= similarity),
            "own_threshold": policy.override(*profile_ids),
        }

    user_rows = [
        {
            "user_id": m.user.user_id,
            "name": name_of(s.profiles, m.user.user_id),
            "similarity": m.similarity,
            "faces": m.user.face_count,
            **marks(m.user.user_id, m.similarity, m.user.user_id),
        }
        for m in users
    ]
    face_rows = []
    for m in faces:
        f = m.face
        owner = f.user_id or f.face_id
        name = name_of(s.profiles, owner)
        face_rows.append(
            {
                "face_id": f.face_id,
                "user_id": f.user_id,
                "similarity": m.similarity,
                "name": f.external_image_id if name == owner and f.external_image_id else name,
                **marks(owner, m.similarity, f.user_id, None if f.user_id else f.face_id),
            }
        )
    answer = None
    if verdict is not None:
        person = verdict.user_id or verdict.face_id or ""
        answer = {
            "user_id": verdict.user_id,
            "name": name_of(s.profiles, person),
            "similarity": verdict.similarity,
            "expected_fpir": verdict.expected_fpir,
            "gallery_size": verdict.gallery_size,
        }
    return {
        "users": user_rows,
        "faces": face_rows,
        "verdict": answer,
        "global_threshold": global_threshold,
        "rule": r.rule if rule is None or policy.calibration() is not None else "similarity",
        "max_fpir": r.max_false_identification_rate,
        "searched": True,
    }
