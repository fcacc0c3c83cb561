"""The dashboard's strangers: anonymous persons grouped from unknown faces; name, merge, split.

The recognizer groups every unknown face into a stranger
(:class:`facelens.people.strangers.StrangerService`). ``/ui/strangers`` shows
each with its best crops, how often and when it was seen, and a one-click
Name form: the name gives the user id as every enrolment does
(:func:`facelens.enrolment.person_id`), and a name already in use adds the
stranger's faces to that person, as naming an unknown face does. A
stranger's own page adds its faces (to split some off as another stranger),
a merge with another stranger, and Forget (as ``facelens forget``).

A stranger's faces are embeddings, not images; the page shows next to each
face the crop of the sighting it came from
(:func:`facelens.people.stranger_sightings.faces_with_sightings`).

Changes need the admin role and come from the dashboard itself; they go
through :class:`facelens.people.stranger_curation.StrangerCuration` and
:class:`facelens.people.forget.Forgetter`, which record each as the session
user's. Store work runs in the thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from facelens.api.actors import request_actor
from facelens.api.context import (
    Context,
    Curation,
    Forget,
    Ledger,
    ProfileAccess,
    Profiles,
    Store,
    Strangers,
    Users,
)
from facelens.api.dashboard.sightings import Sighting, crop_url, sightings
from facelens.api.dashboard.web import (
    Editor,
    Viewer,
    back,
    form_text,
    name_of,
    page,
    shown_name,
)
from facelens.api.parts import CropPlace
from facelens.collection.stores.store import CollectionStore
from facelens.enrolment import person_id
from facelens.errors import FacelensError, ResourceNotFoundException
from facelens.history.audit import Actor
from facelens.people.stranger_curation import StrangerCuration
from facelens.people.stranger_model import Stranger
from facelens.people.stranger_sightings import faces_with_sightings
from facelens.people.strangers import StrangerService
from facelens.profiles.store import ProfileStore

router = APIRouter(include_in_schema=False)

SIGHTINGS_SHOWN = 24
VIA = {"Via": "dashboard"}
"""Where the dashboard's changes came from, in their audit entries."""


@dataclass(frozen=True)
class StrangerCard:
    """A stranger as the pages show it: crop_urls of its best crops (largest face first)."""

    stranger: Stranger
    crop_urls: tuple[str, ...]

    @property
    def stranger_id(self) -> str:
        return self.stranger.stranger_id


@dataclass(frozen=True)
class FaceChoice:
    """One face of a stranger, with the crop of the sighting it came from (if known)."""

    face_id: str
    indexed_at: datetime
    crop_url: str | None


def _path(stranger_id: str) -> str:
    return f"/ui/strangers/{quote(stranger_id, safe='')}"


def _card(crops: CropPlace, stranger: Stranger) -> StrangerCard:
    urls = (crop_url(crops, crop.bucket, crop.key) for crop in stranger.best_crops)
    return StrangerCard(stranger, tuple(u for u in urls if u))


def _cards(strangers: StrangerService, crops: CropPlace, collection_id: str) -> list[StrangerCard]:
    try:
        found = strangers.list(collection_id)
    except ResourceNotFoundException:  # no collection yet: nobody was seen
        return []
    # The most recently seen first: the one at the door now is the one to name.
    found.sort(key=lambda s: s.last_seen.timestamp() if s.last_seen else 0.0, reverse=True)
    return [_card(crops, s) for s in found]


def _faces(store: CollectionStore, stranger: Stranger, seen: list[Sighting]) -> list[FaceChoice]:
    """The stranger's faces (newest first), each with the crop of the sighting it came from."""
    with_crops = [s for s in seen if s.crop_url]
    paired = faces_with_sightings(store, stranger, with_crops, seen_at=lambda s: s.seen_at)
    return [
        FaceChoice(face.face_id, face.indexed_at, None if near is None else near.crop_url)
        for face, near in paired
    ]


@router.get("/ui/strangers")
def strangers(
    request: Request,
    _who: Viewer,
    ctx: Context,
    users: Users,
    profiles: ProfileAccess,
    service: Strangers,
) -> Response:
    names: list[str] = []
    try:
        listed = users.list_users(ctx.collection_id, max_results=500)
    except ResourceNotFoundException:
        pass
    else:
        # The names offered to choose from: one recorded read of the people they name.
        ids = [u.user_id for u in listed.users]
        actor = request_actor(request)
        found = profiles.get_many(actor, ids, context={"Via": "dashboard strangers"})
        names = sorted({shown_name(found.get(i), i) for i in ids}, key=str.casefold)
    cards = _cards(service, ctx.crops, ctx.collection_id)
    return page(request, "strangers.html", strangers=cards, names=names, active="strangers")


@router.get("/ui/strangers/{stranger_id}")
def stranger(
    request: Request,
    stranger_id: str,
    _who: Viewer,
    ctx: Context,
    service: Strangers,
    store: Store,
    ledger: Ledger,
) -> Response:
    try:
        found = service.get(ctx.collection_id, stranger_id)
    except ResourceNotFoundException:
        return page(
            request,
            "message.html",
            status_code=404,
            title="No such stranger",
            text=f"There is no stranger {stranger_id!r}: they may have been named or merged.",
            active="strangers",
        )
    ids = [found.stranger_id, *found.merged]
    records = ledger.sightings(ids, limit=max(SIGHTINGS_SHOWN, 4 * found.face_count))
    seen = sightings(ctx.crops, records)
    others = [s for s in service.list(ctx.collection_id) if s.stranger_id != stranger_id]
    return page(
        request,
        "stranger.html",
        card=_card(ctx.crops, found),
        faces=_faces(store, found, seen),
        sightings=seen[:SIGHTINGS_SHOWN],
        others=others,
        active="strangers",
    )


@router.post("/ui/strangers/{stranger_id}/name")
async def name(
    request: Request,
    stranger_id: str,
    _who: Editor,
    ctx: Context,
    curation: Curation,
    profiles: Profiles,
) -> Response:
    """Makes the stranger a person called ``name`` (their faces enrolled; an existing
    person of that name gains them)."""
    cid = ctx.collection_id
    actor = request_actor(request)
    async with request.form() as form:
        given = " ".join(form_text(form, "name", max_chars=200).split())
        came_from = form_text(form, "from", max_chars=10)
    failed = _path(stranger_id) if came_from == "page" else "/ui/strangers"
    try:
        user_id = person_id(given)
        named = await run_in_threadpool(
            _name, curation, profiles, actor, cid, stranger_id, user_id, given
        )
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        return back(failed, error=exc.message)
    shown = name_of(profiles, user_id)
    return back(
        f"/ui/people/{quote(user_id, safe='')}",
        notice=f"{stranger_id} is now {shown} ({len(named)} face{'s' if len(named) != 1 else ''} "
        "enrolled); their next sightings will be identified.",
    )


def _name(
    curation: StrangerCuration,
    profiles: ProfileStore,
    actor: Actor,
    collection_id: str,
    stranger_id: str,
    user_id: str,
    given: str,
) -> tuple[str, ...]:
    """Names the stranger; an existing person keeps their profile's Name. Blocking."""
    existing = profiles.get(user_id)
    keep = existing is not None and bool(existing.attributes.get("Name"))
    named = curation.name(
        actor,
        collection_id,
        stranger_id,
        user_id,
        profile={} if keep else {"Name": given},
        extend=True,
        context=VIA,
    )
    return named.face_ids


@router.post("/ui/strangers/{stranger_id}/merge")
async def merge(
    request: Request,
    stranger_id: str,
    _who: Editor,
    ctx: Context,
    curation: Curation,
) -> Response:
    """The chosen other stranger is the same person: its faces and sightings join this one."""
    actor = request_actor(request)
    async with request.form() as form:
        other = form_text(form, "other", max_chars=128)
    try:
        await run_in_threadpool(
            lambda: curation.merge(actor, ctx.collection_id, stranger_id, other, context=VIA)
        )
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        return back(_path(stranger_id), error=exc.message)
    return back(_path(stranger_id), notice=f"{other} was merged into {stranger_id}.")


@router.post("/ui/strangers/{stranger_id}/split")
async def split(
    request: Request,
    stranger_id: str,
    _who: Editor,
    ctx: Context,
    curation: Curation,
) -> Response:
    """The chosen faces are someone else: they become a new stranger."""
    actor = request_actor(request)
    async with request.form() as form:
        face_ids = [str(v).strip() for v in form.getlist("face_id") if str(v).strip()]
    try:
        if not face_ids:
            return back(_path(stranger_id), error="Choose the faces to split off")
        new_id = await run_in_threadpool(
            lambda: curation.split(actor, ctx.collection_id, stranger_id, face_ids, context=VIA)
        )
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        return back(_path(stranger_id), error=exc.message)
    count = len(face_ids)
    return back(
        _path(new_id),
        notice=f"{count} face{'s' if count != 1 else ''} split off {stranger_id} as {new_id}.",
    )


@router.post("/ui/strangers/{stranger_id}/forget")
async def forget(
    request: Request,
    stranger_id: str,
    _who: Editor,
    ctx: Context,
    forgetter: Forget,
) -> Response:
    """Forgets the stranger as ``facelens forget`` does: faces, sightings, crops; audited
    under a pseudonym."""
    cid = ctx.collection_id
    actor = request_actor(request)
    try:
        report = await run_in_threadpool(
            lambda: forgetter.forget(stranger_id, actor=actor, collection_id=cid, context=VIA)
        )
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        return back(_path(stranger_id), error=exc.message)
    return back(
        "/ui/strangers",
        notice=f"{stranger_id} was forgotten with {len(report.deleted_crops)} crops and "
        f"{report.deleted_records} sightings.",
    )
