"""What every dashboard page shares: templates, who is looking, same-origin POSTs, forms.

The page modules (:mod:`facelens.api.dashboard.feed`, :mod:`facelens.api.dashboard.people`,
...) import this one and :mod:`facelens.api.dashboard.sightings`, never each other.
Pages are server-rendered HTML: a page request without a login is sent to
``/ui/login`` (303), while the resources a page loads (crops, the event
stream) answer 401 as the API does.

Cross-site request forgery: every state-changing POST must carry an
``Origin`` (or, failing that, ``Referer``) naming this server's host, and
the session cookie is ``SameSite=Strict``; either alone stops a foreign
page from posting with a logged-in browser's cookie. (The app-wide
:class:`facelens.api.middleware.SameOriginWrites` refuses foreign origins on
every route already; a dashboard form must also name its origin at all.)
"""

from __future__ import annotations

import uuid
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from facelens.access.keys import Principal, Role
from facelens.api.context import ServerContext, server
from facelens.api.security import Authenticator, same_origin
from facelens.errors import (
    AccessDeniedException,
    InvalidParameterException,
    UnrecognizedClientException,
)
from facelens.profiles.store import ProfileStore
from facelens.profiles.types import Profile

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
MAX_MESSAGE_CHARS = 300
"""Longest notice or error shown from a redirect's query string."""


@cache
def templates() -> Jinja2Templates:
    """The page templates, autoescaped (built on first use: nothing is read at import)."""
    built = Jinja2Templates(directory=TEMPLATES)
    built.env.filters["similarity"] = _similarity
    built.env.filters["fpir"] = fpir_text
    built.env.filters["url_part"] = lambda text: quote(str(text), safe="")
    return built


def authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.authenticator
    return auth


# -- who is looking --


def login_url(request: Request) -> str:
    """The login page, coming back to this page (GET) afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/ui/login?next={quote(here, safe='')}" if request.method == "GET" else "/ui/login"


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only a dashboard path of this server (no open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


def viewer(request: Request) -> Principal:
    """Dependency of a page: the caller (any role), or a redirect to the login page."""
    try:
        principal = authenticator(request).authenticate(request)
    except UnrecognizedClientException:
        raise HTTPException(
            status_code=303, detail="Log in first", headers={"Location": login_url(request)}
        ) from None
    request.state.principal = principal
    return principal


def editor(request: Request) -> Principal:
    """Dependency of a state-changing POST: same origin, logged in, admin role."""
    check_same_origin(request)
    principal = viewer(request)
    if not principal.role.allows(Role.ADMIN):
        raise AccessDeniedException(f"{principal.name} ({principal.role}) may only look")
    return principal


Viewer = Annotated[Principal, Depends(viewer)]
"""A page's caller: anyone logged in (a login redirect otherwise)."""
Editor = Annotated[Principal, Depends(editor)]
"""A change's caller: logged in with the admin role, posting from the dashboard itself."""


def check_same_origin(request: Request) -> None:
    """Raises AccessDeniedException unless Origin (else Referer) names this server (its
    Host, or a name in ``serve.allowed_hosts``)."""
    host = request.headers.get("host", "")
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not host or not claimed:
        raise AccessDeniedException("A dashboard form must be sent from the dashboard")
    names = frozenset(server(request).settings.allowed_hosts)
    if not same_origin(claimed, host, public_names=names):
        raise AccessDeniedException("Cross-origin form posts are refused")


# -- responses --


def page(request: Request, template: str, *, status_code: int = 200, **context: Any) -> Response:
    """A rendered page with the navigation's state and this server's security headers."""
    ctx = server(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    base = {
        "principal": principal,
        "can_edit": principal is not None and principal.role.allows(Role.ADMIN),
        "open_access": authenticator(request).open_access,
        "notice": request.query_params.get("notice", "")[:MAX_MESSAGE_CHARS],
        "error": request.query_params.get("error", "")[:MAX_MESSAGE_CHARS],
        "undo": _uuid_or_none(request.query_params.get("undo")),
        "here": request.url.path,
        "collection_id": ctx.collection_id,
    }
    return templates().TemplateResponse(
        request,
        template,
        {**base, **context},
        status_code=status_code,
        headers=security_headers(ctx),
    )


def back(
    path: str, *, notice: str | None = None, error: str | None = None, undo: str | None = None
) -> RedirectResponse:
    """Post/redirect/get: back to a page, with a message to show there; ``undo``: a
    correction id the page offers to undo next to the notice."""
    query = [
        f"{k}={quote(v[:MAX_MESSAGE_CHARS], safe='')}"
        for k, v in (("notice", notice), ("error", error), ("undo", undo))
        if v
    ]
    return RedirectResponse(path + ("?" + "&".join(query) if query else ""), status_code=303)


def security_headers(ctx: ServerContext) -> dict[str, str]:
    """No framing, no foreign scripts; images from here and from the configured cameras."""
    cameras = " ".join(sorted({o for c in ctx.settings.cameras if (o := origin_of(c.url))}))
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        f"img-src 'self' blob: data: {cameras}".rstrip()
        + "; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, without any user:password@."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def public_url(url: str) -> str:
    """A camera URL as put in a page: credentials removed (browsers refuse them in <img>)."""
    parts = urlsplit(url)
    origin = origin_of(url)
    if origin is None:
        return ""
    return origin + parts.path + (f"?{parts.query}" if parts.query else "")


# -- forms --


def form_text(form: FormData, name: str, *, max_chars: int = 1000) -> str:
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > max_chars:
        raise InvalidParameterException(f"{name} is over {max_chars} characters")
    return text


def _uuid_or_none(text: str | None) -> str | None:
    """A correction id from a query string, only when it is one (it goes into a form URL)."""
    try:
        return str(uuid.UUID(text)) if text else None
    except ValueError:
        return None


def name_of(profiles: ProfileStore, person_id: str) -> str:
    """The profile's ``Name`` of a person (UserId or FaceId), else the id itself."""
    return shown_name(profiles.get(person_id), person_id)


def shown_name(profile: Profile | None, person_id: str) -> str:
    """The ``Name`` of ``profile`` (the person's, already read), else the person's id."""
    name = profile.attributes.get("Name") if profile is not None else None
    return str(name) if name else person_id


# -- template filters --


def _similarity(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} %"


def fpir_text(value: float | None) -> str:
    """A share of strangers (0-1) as people read it: "1 in 400" below 1%, else a percent."""
    if value is None:
        return ""
    if value <= 0:
        return "none"
    if value < 0.01:
        return f"1 in {round(1 / value):,}"
    return f"{value * 100:.0f} %"
