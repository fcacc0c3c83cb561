"""The dashboard's login: a form taking an API key, a session cookie, and logging out.

A login trades an API key for a session (:class:`facelens.api.security.Sessions`)
in an HttpOnly, ``SameSite=Strict`` cookie; failures count against the
client's failure limit as a wrong bearer key does. A keyless loopback
server has nobody to log in: the form sends the browser on.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from facelens.api.dashboard.web import authenticator, check_same_origin, form_text, page, safe_next
from facelens.api.security import SESSION_COOKIE
from facelens.errors import FacelensError, UnrecognizedClientException

router = APIRouter(include_in_schema=False)


@router.get("/ui/login")
def login_form(request: Request, next: str | None = None) -> Response:
    if authenticator(request).open_access:
        return RedirectResponse(safe_next(next), status_code=303)
    return page(request, "login.html", next=safe_next(next), active="login")


@router.post("/ui/login")
async def login(request: Request) -> Response:
    check_same_origin(request)
    async with request.form() as form:
        token = form_text(form, "token", max_chars=200)
        target = safe_next(form_text(form, "next", max_chars=1000))
    auth = authenticator(request)
    try:
        session_id = await run_in_threadpool(auth.login, request, token)
    except UnrecognizedClientException:
        return page(
            request,
            "login.html",
            status_code=401,
            next=target,
            active="login",
            login_error="That API key is not valid.",
        )
    except FacelensError as exc:  # too many failures from this address
        return page(
            request,
            "login.html",
            status_code=exc.http_status,
            next=target,
            active="login",
            login_error=exc.message,
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=auth.sessions.max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/ui/logout")
def logout(request: Request) -> Response:
    check_same_origin(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        authenticator(request).sessions.close(session_id)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
