"""Who is acting: the audit log's actor for a call through the REST API, dashboard or AWS.

Routes parse, hand the application services (:mod:`facelens.people`,
:mod:`facelens.enrolment`) the actor of the call, and render; the services
record what they did (:mod:`facelens.history.audit`). The actor names the
key and how it was presented: ``api-key:<name>`` (a bearer token),
``dashboard:<name>`` (a dashboard session opened with that key),
``access-key:<name>`` (SigV4), or ``local`` (no keys: open access on
loopback).
"""

from __future__ import annotations

from fastapi import Request

from facelens.access.keys import LOCAL as OPEN_ACCESS
from facelens.access.keys import Principal
from facelens.history.audit import LOCAL, Actor

API_KEY = "api-key"
ACCESS_KEY = "access-key"
DASHBOARD = "dashboard"


def actor_of(principal: Principal, *, via: str) -> Actor:
    """``<via>:<key name>``, or ``local`` for open access."""
    if principal == OPEN_ACCESS:
        return LOCAL
    return Actor(via, principal.name)


def request_actor(request: Request) -> Actor:
    """The actor of a REST or dashboard request, after its ``require``/``viewer`` dependency
    authenticated it (which set ``request.state.principal``)."""
    principal: Principal = request.state.principal
    carried_key = request.headers.get("authorization") or request.headers.get("x-api-key")
    return actor_of(principal, via=API_KEY if carried_key else DASHBOARD)
