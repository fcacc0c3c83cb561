"""Authentication for the HTTP server: API keys, dashboard sessions, and a limit on failures.

A request authenticates with an API key (``Authorization: Bearer fl_…`` or
``X-Api-Key: fl_…``) or, from the dashboard, with the session cookie a login
with such a key set. The Rekognition endpoint uses SigV4 access keys instead
(:mod:`facelens.api.sigv4`) but shares the failure limit. With no keys at
all the server trusts every caller as ``local`` admin, which
:func:`check_bind` allows on loopback only.

Failures are counted per client address; past ``limit`` in a minute the
address gets ``ThrottlingException`` (429) until the minute is over, so a
key cannot be guessed at network speed (it could not anyway: 256 bits), and
a misconfigured client does not flood the log.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from facelens.api.keys import LOCAL, KeyStore, Principal, Role
from facelens.errors import (
    AccessDeniedException,
    ConfigurationError,
    TooManyFailedAuthenticationsException,
    UnrecognizedClientException,
)
from facelens.http_server import is_loopback

SESSION_COOKIE = "facelens_session"
_WINDOW_S = 60.0


def check_bind(host: str, *, has_keys: bool) -> None:
    """Refuses to serve faces to the network without authentication."""
    if not has_keys and not is_loopback(host):
        raise ConfigurationError(
            f"Refusing to listen on {host} without API keys: create one with "
            "`facelens keys create --name NAME --role admin`, or listen on 127.0.0.1"
        )


class FailureLimiter:
    """Failed authentications per client address in a sliding minute; thread-safe."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        with self._lock:
            recent = self._recent(client)
            if len(recent) >= self.limit:
                wait = _WINDOW_S - (self._clock() - recent[0])
                raise TooManyFailedAuthenticationsException(
                    f"Too many failed authentications from {client}; retry in {wait:.0f} s"
                )

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self._clock())
            if len(self._failures) > 10_000:  # forget the quietest addresses
                for quiet in [c for c, d in self._failures.items() if not d][:5_000]:
                    del self._failures[quiet]

    def _recent(self, client: str) -> deque[float]:
        recent = self._failures.setdefault(client, deque())
        horizon = self._clock() - _WINDOW_S
        while recent and recent[0] < horizon:
            recent.popleft()
        return recent


@dataclass(frozen=True)
class _Session:
    principal: Principal
    expires: float


class Sessions:
    """Dashboard logins: random ids in an HttpOnly cookie, kept in memory (a restart logs
    everyone out, which is the safe direction)."""

    def __init__(self, *, hours: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = hours * 3600.0
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    @property
    def max_age(self) -> int:
        return int(self._ttl)

    def open(self, principal: Principal) -> str:
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session_id] = _Session(principal, self._clock() + self._ttl)
        return session_id

    def get(self, session_id: str) -> Principal | None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if session.expires < self._clock():
                del self._sessions[session_id]
                return None
            return session.principal

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)


class Authenticator:
    """Turns a request into a Principal, or raises the AWS-style reason it cannot."""

    def __init__(
        self, keys: KeyStore, *, open_access: bool, limiter: FailureLimiter, sessions: Sessions
    ) -> None:
        self.keys = keys
        self.open_access = open_access
        self.limiter = limiter
        self.sessions = sessions

    def authenticate(self, request: Request) -> Principal:
        client = client_address(request)
        self.limiter.check(client)
        token = _bearer(request)
        if token is not None:
            principal = self.keys.verify_api_key(token)
            if principal is None:
                self.limiter.failed(client)
                raise UnrecognizedClientException("The API key is not valid")
            return principal
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            principal = self.sessions.get(session_id)
            if principal is not None:
                return principal
        if self.open_access:
            return LOCAL
        raise UnrecognizedClientException(
            "Authentication required: 'Authorization: Bearer <API key>' or a dashboard login"
        )

    def login(self, request: Request, token: str) -> str:
        """A session id for a valid API key; failures count against the client."""
        client = client_address(request)
        self.limiter.check(client)
        principal = self.keys.verify_api_key(token.strip())
        if principal is None:
            self.limiter.failed(client)
            raise UnrecognizedClientException("The API key is not valid")
        return self.sessions.open(principal)


def require(role: Role) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the caller, who must hold ``role`` (admin holds every role)."""

    def dependency(request: Request) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        principal = authenticator.authenticate(request)
        if not principal.role.allows(role):
            raise AccessDeniedException(f"{principal.name} ({principal.role}) may not do this")
        request.state.principal = principal
        return principal

    return dependency


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-api-key")
