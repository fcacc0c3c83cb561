"""The dashboard's corrections: "not this person", its undo, and a person's own threshold.

Each identification on the live feed and on a person's page has a "Not
this person" button: the crop's face becomes a negative example of whom it
was identified as (:class:`facelens.people.corrections.CorrectionService`),
so that face, and faces more like it than like the person, are not
identified as them again. The page it came from shows a notice with an Undo
button (the correction's id travels in the redirect's query string, checked
to be a UUID before it is put into a form). The service records each change
in the audit log under the session's user (``dashboard:<key name>``).

Every route here changes something: admin role, same origin
(:func:`facelens.api.dashboard.web.editor`); the engine (a rejection embeds
the crop again) and the stores run in the thread pool.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from facelens.api.actors import request_actor
from facelens.api.context import Corrections, Profiles
from facelens.api.dashboard.web import Editor, back, form_text, name_of, safe_next
from facelens.errors import FacelensError, InvalidParameterException
from facelens.people.matching import MIN_OVERRIDE

router = APIRouter(include_in_schema=False)


async def _next(request: Request, default: str) -> tuple[str, str, bool]:
    """(page to go back to, the threshold field, whether clearing was asked) from the form."""
    async with request.form() as form:
        target = safe_next(form_text(form, "next", max_chars=1000) or default)
        value = form_text(form, "threshold", max_chars=20)
        clear = bool(form_text(form, "clear", max_chars=10))
    return target, value, clear


@router.post("/ui/identifications/{recognition_id}/reject")
async def reject(
    request: Request,
    recognition_id: str,
    _who: Editor,
    corrections: Corrections,
    profiles: Profiles,
) -> Response:
    """This identification was wrong: its face becomes a negative example of the person."""
    target, _, _ = await _next(request, "/ui/")
    actor = request_actor(request)
    try:
        correction = await run_in_threadpool(
            lambda: corrections.reject(recognition_id, actor=actor)
        )
        name = await run_in_threadpool(name_of, profiles, correction.person_id)
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        return back(target, error=exc.message)
    return back(
        target,
        notice=f"Noted: that face is not {name}; it will not be identified as them again.",
        undo=correction.correction_id,
    )


@router.post("/ui/corrections/{correction_id}/undo")
async def undo(
    request: Request,
    correction_id: str,
    _who: Editor,
    corrections: Corrections,
    profiles: Profiles,
) -> Response:
    """Deletes that negative example: the identification rule is as before the correction."""
    target, _, _ = await _next(request, "/ui/")
    actor = request_actor(request)
    try:
        correction = await run_in_threadpool(lambda: corrections.undo(correction_id, actor=actor))
        name = await run_in_threadpool(name_of, profiles, correction.person_id)
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        return back(target, error=exc.message)
    return back(target, notice=f"Correction undone: that face may be identified as {name} again.")


@router.post("/ui/people/{person_id}/threshold")
async def set_threshold(
    request: Request, person_id: str, _who: Editor, corrections: Corrections
) -> Response:
    """Sets (similarity 50-100) or clears the person's own match threshold."""
    target, text, clear = await _next(request, f"/ui/people/{quote(person_id, safe='')}")
    actor = request_actor(request)
    try:
        value = None if clear else _value(text)
        result = await run_in_threadpool(
            lambda: corrections.set_threshold(person_id, value, actor=actor)
        )
    except FacelensError as exc:
        if exc.http_status >= 500:
            raise
        return back(target, error=exc.message)
    if result.override is None:
        notice = f"Own threshold cleared: the global {result.effective:g} % applies."
    else:
        notice = f"Threshold set to {result.override:g} %."
    return back(target, notice=notice)


def _value(text: str) -> float:
    problem = f"The threshold must be a similarity from {MIN_OVERRIDE:g} to 100"
    try:
        value = float(text)
    except ValueError:
        raise InvalidParameterException(problem) from None
    if not MIN_OVERRIDE <= value <= 100:
        raise InvalidParameterException(problem)
    return value
