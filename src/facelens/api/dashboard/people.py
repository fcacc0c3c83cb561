"""The dashboard's people pages: enrol, edit a profile, remove faces or a person, name unknowns.

A person's page also lists their corrections and match threshold (changed
through :mod:`facelens.api.dashboard.corrections`); search is
:mod:`facelens.api.dashboard.search`, strangers :mod:`facelens.api.dashboard.strangers`.

Anyone logged in may look; changes (every POST here) need the
admin role and come from the dashboard itself (:func:`dashboard_web.editor`).
Each change redirects back to a page with a notice or an error (post,
redirect, get), so a reload never repeats it. Engine and store work runs in
the thread pool (:mod:`facelens.api.dashboard.enrol`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from facelens.api.actors import request_actor
from facelens.api.context import (
    Collections,
    Context,
    Corrections,
    Enrolment,
    Forget,
    Ledger,
    Objects,
    Policy,
    ProfileAccess,
    Profiles,
    Store,
    Users,
)
from facelens.api.dashboard.enrol import name_unknown
from facelens.api.dashboard.sightings import corrections_of, sightings, with_corrections
from facelens.api.dashboard.web import (
    Editor,
    Viewer,
    back,
    form_text,
    name_of,
    page,
    shown_name,
)
from facelens.collection.models import UserInfo
from facelens.collection.stores.store import CollectionStore
from facelens.collection.users import UserService
from facelens.config import RecognizerSettings
from facelens.enrolment import Photo, enrol_person, remove_face
from facelens.errors import FacelensError, InvalidParameterException, ResourceNotFoundException
from facelens.history.audit import Actor
from facelens.history.ledger import Status
from facelens.people.matching import MatchPolicy, open_set_rule, summarise
from facelens.people.profiles import ProfileService
from facelens.profiles.store import ProfileStore
from facelens.profiles.types import key_attribute
from facelens.rendering.rule import rule_sentences

router = APIRouter(include_in_schema=False)

MAX_PHOTOS = 20
MAX_PEOPLE_PAGES = 20
"""ListUsers pages (500 users each) the people page reads: 10,000 people."""
UNKNOWN_SHOWN = 48
VIA = {"Via": "dashboard"}
"""Where the dashboard's changes came from, in their audit entries."""


@dataclass(frozen=True)
class Person:
    user_id: str
    name: str
    face_count: int

    @property
    def initials(self) -> str:
        words = [w for w in self.name.split() if w[:1].isalnum()]
        return "".join(w[0] for w in words[:2]).upper() or "?"


def _people(
    users: UserService,
    profiles: ProfileService,
    actor: Actor,
    collection_id: str,
    *,
    via: str,
) -> list[Person]:
    """Everyone enrolled, by name. The names are one read of their profiles, recorded once
    for the page (``via``: which one) with every id it shows."""
    listed: list[UserInfo] = []
    token: str | None = None
    try:
        for _ in range(MAX_PEOPLE_PAGES):
            page = users.list_users(collection_id, max_results=500, next_token=token)
            listed += page.users
            token = page.next_token
            if token is None:
                break
    except ResourceNotFoundException:  # no collection yet: nobody is enrolled
        return []
    found = profiles.get_many(actor, [u.user_id for u in listed], context={"Via": via})
    people = [
        Person(u.user_id, shown_name(found.get(u.user_id), u.user_id), u.face_count) for u in listed
    ]
    return sorted(people, key=lambda p: (p.name.casefold(), p.user_id))


def _person_path(user_id: str) -> str:
    return f"/ui/people/{quote(user_id, safe='')}"


async def _photos(form: FormData, field: str) -> list[Photo]:
    uploads = [f for f in form.getlist(field) if isinstance(f, UploadFile) and f.filename]
    if len(uploads) > MAX_PHOTOS:
        raise InvalidParameterException(f"At most {MAX_PHOTOS} photos at a time")
    return [Photo(label=f.filename or "photo", body=await f.read()) for f in uploads]


# -- people --


@dataclass(frozen=True)
class RuleNote:
    """What the identification rule means for the collection now (the same sentences as
    ``facelens collections describe``), and the first one-photo people to link to."""

    sentences: tuple[str, ...]
    one_photo: tuple[Person, ...]
    more: int


ONE_PHOTO_LINKED = 12
"""One-photo people linked under the rule's sentences; the rest are counted."""


def _rule_note(
    policy: MatchPolicy, recognizer: RecognizerSettings, collection_id: str, people: list[Person]
) -> RuleNote | None:
    try:
        summary = summarise(policy, collection_id, open_set_rule(recognizer))
    except ResourceNotFoundException:  # no collection yet: nothing to say
        return None
    one = [p for p in people if p.face_count <= 1]
    shown = tuple(one[:ONE_PHOTO_LINKED])
    return RuleNote(tuple(rule_sentences(summary)), shown, len(one) - len(shown))


@router.get("/ui/people")
def people(
    request: Request,
    _who: Viewer,
    ctx: Context,
    users: Users,
    profiles: ProfileAccess,
    policy: Policy,
) -> Response:
    actor = request_actor(request)
    found = _people(users, profiles, actor, ctx.collection_id, via="dashboard people")
    note = _rule_note(policy, ctx.recognizer, ctx.collection_id, found)
    return page(request, "people.html", people=found, rule=note, active="people")


@router.post("/ui/people")
async def enrol(request: Request, _who: Editor, ctx: Context, enrolment: Enrolment) -> Response:
    actor = request_actor(request)
    try:
        async with request.form() as form:
            name = form_text(form, "name", max_chars=200)
            user_id = form_text(form, "user_id", max_chars=128) or None
            photos = await _photos(form, "photos")
        report = await run_in_threadpool(
            partial(enrol_person, user_id=user_id),
            enrolment,
            actor,
            ctx.collection_id,
            name,
            photos,
        )
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        return back("/ui/people", error=exc.message)
    added = len(report.face_ids)
    notice = f"{report.name}: {added} face{'s' if added != 1 else ''} enrolled."
    if report.problems:
        notice += " Skipped: " + "; ".join(report.problems)
    return back(_person_path(report.user_id), notice=notice)


@router.get("/ui/people/{user_id}")
def person(
    request: Request,
    user_id: str,
    _who: Viewer,
    ctx: Context,
    store: Store,
    collections: Collections,
    profiles: ProfileAccess,
    ledger: Ledger,
    corrections: Corrections,
) -> Response:
    try:
        user = store.get_user(ctx.collection_id, user_id)
        faces = collections.list_faces(ctx.collection_id, user_id=user_id, max_results=100)
    except ResourceNotFoundException:
        return page(
            request,
            "message.html",
            status_code=404,
            title="No such person",
            text=f"Nobody with the id {user_id!r} is enrolled.",
            active="people",
        )
    profile = profiles.get(request_actor(request), user_id, context={"Via": "dashboard page"})
    attributes = profile.attributes if profile is not None else {}
    fields = [
        (k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
        for k, v in attributes.items()
    ]
    seen = sightings(ctx.crops, ledger.history(limit=12, user_id=user_id))
    seen = with_corrections(corrections, seen)
    return page(
        request,
        "person.html",
        person=Person(user.user_id, str(attributes.get("Name") or user.user_id), user.face_count),
        fields=fields,
        faces=faces.faces,
        sightings=seen,
        corrections=corrections_of(corrections, ledger, ctx.crops, user_id),
        threshold=corrections.threshold(user_id),
        active="people",
    )


@router.post("/ui/people/{user_id}/profile")
async def save_profile(
    request: Request,
    user_id: str,
    _who: Editor,
    ctx: Context,
    store: Store,
    profiles: ProfileAccess,
) -> Response:
    actor = request_actor(request)
    async with request.form() as form:
        names = [str(v).strip() for v in form.getlist("field_name")]
        values = [str(v).strip() for v in form.getlist("field_value")]
        remove = form_text(form, "remove", max_chars=10)
    try:
        attributes = await run_in_threadpool(
            _edited, store, profiles.store, ctx.collection_id, user_id, names, values, remove
        )
        await run_in_threadpool(lambda: profiles.put(actor, user_id, attributes))
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        return back(_person_path(user_id), error=exc.message)
    return back(_person_path(user_id), notice="Profile saved.")


def _edited(
    store: CollectionStore,
    profiles: ProfileStore,
    collection_id: str,
    user_id: str,
    names: list[str],
    values: list[str],
    remove: str,
) -> dict[str, Any]:
    """The profile the form describes. A value not edited keeps its JSON type (numbers, lists)."""
    store.get_user(collection_id, user_id)  # only enrolled people
    profile = profiles.get(user_id)
    before = profile.attributes if profile is not None else {}
    # isdecimal+isascii: isdigit() passes "²", which int() refuses (a 500).
    removed = int(remove) if remove.isascii() and remove.isdecimal() else -1
    key = key_attribute(user_id)
    attributes: dict[str, Any] = {}
    for index, (name, value) in enumerate(zip(names, values, strict=False)):
        if index == removed or (not name and not value) or name == key:
            continue
        if not name:
            raise InvalidParameterException(f"The value {value!r} needs a field name")
        old = before.get(name)
        unchanged = not isinstance(old, str) and value == json.dumps(old, ensure_ascii=False)
        attributes[name] = old if name in before and unchanged else value
    return attributes


@router.post("/ui/people/{user_id}/faces/{face_id}/delete")
async def delete_face(
    request: Request,
    user_id: str,
    face_id: str,
    _who: Editor,
    ctx: Context,
    enrolment: Enrolment,
) -> Response:
    cid = ctx.collection_id
    actor = request_actor(request)
    try:
        await run_in_threadpool(remove_face, enrolment, actor, cid, user_id, face_id)
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        return back(_person_path(user_id), error=exc.message)
    return back(_person_path(user_id), notice="Face deleted.")


@router.post("/ui/people/{user_id}/delete")
async def forget(
    request: Request,
    user_id: str,
    _who: Editor,
    ctx: Context,
    profiles: Profiles,
    forgetter: Forget,
) -> Response:
    """Forgets the person (:class:`facelens.people.forget.Forgetter`, as ``facelens forget``):
    faces, negative examples, profiles, their crops and records, their former stranger's
    sightings; audited under a pseudonym, earlier entries redacted."""
    cid = ctx.collection_id
    actor = request_actor(request)
    name = await run_in_threadpool(name_of, profiles, user_id)
    try:
        report = await run_in_threadpool(
            lambda: forgetter.forget(
                user_id, actor=actor, collection_id=cid, users_only=True, context=VIA
            )
        )
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        return back(_person_path(user_id), error=exc.message)
    return back(
        "/ui/people",
        notice=f"{name} was deleted with {len(report.deleted_faces)} faces, "
        f"{len(report.deleted_crops)} crops and {report.deleted_records} sightings.",
    )


# -- unknown faces --


@router.get("/ui/unknown")
def unknown(
    request: Request,
    _who: Viewer,
    ctx: Context,
    ledger: Ledger,
    users: Users,
    profiles: ProfileAccess,
) -> Response:
    records = ledger.history(limit=UNKNOWN_SHOWN, status=Status.UNKNOWN)
    actor = request_actor(request)
    return page(
        request,
        "unknown.html",
        sightings=sightings(ctx.crops, records),
        people=_people(users, profiles, actor, ctx.collection_id, via="dashboard unknown"),
        active="unknown",
    )


@router.post("/ui/unknown/{recognition_id}/name")
async def name_face(
    request: Request,
    recognition_id: str,
    _who: Editor,
    ctx: Context,
    enrolment: Enrolment,
    ledger: Ledger,
    objects: Objects,
) -> Response:
    cid = ctx.collection_id
    actor = request_actor(request)
    try:
        async with request.form() as form:
            name = form_text(form, "name", max_chars=200)
        report = await run_in_threadpool(
            name_unknown, enrolment, actor, ledger, objects, cid, recognition_id, name
        )
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        return back("/ui/unknown", error=exc.message)
    return back(
        _person_path(report.user_id),
        notice=f"The face was added to {report.name}; their next sightings will be identified.",
    )
