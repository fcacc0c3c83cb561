"""Authentication for the HTTP server: API keys, dashboard sessions, and a limit on failures.

A request authenticates with an API key (``Authorization: Bearer fl_…`` or
``X-Api-Key: fl_…``) or, from the dashboard, with the session cookie a login
with such a key set. The Rekognition endpoint uses SigV4 access keys instead
(:mod:`facelens.api.aws.sigv4`) but shares the failure limit. With no keys at
all the server trusts every caller as ``local`` admin, which
:func:`check_bind` allows on loopback only.

Failures are counted per client address; past ``limit`` in a minute the
address gets ``ThrottlingException`` (429) until the minute is over, so a
key cannot be guessed at network speed (it could not anyway: 256 bits), and
a misconfigured client does not flood the log. The address is the peer's,
or what a proxy in ``serve.trusted_proxies`` forwards for (uvicorn applies
``X-Forwarded-For`` from those only: see :class:`facelens.http_server.ThreadedServer`).

A session lasts as long as its key: each request re-reads the key from the
key store (at most every ``KEY_RECHECK_SECONDS``), so deleting a key, or
changing its role, logs its sessions out in every server process sharing
the keys file.

Browsers: a state-changing request that carries no credentials of its own
(bearer key, SigV4 signature) rides on the browser's cookie, or on no
authentication at all on a keyless loopback server, so it must come from
this server's own pages (:func:`cross_site`). A page elsewhere can still
*send* such a request (a form post, a "simple" fetch); it cannot add an
``Authorization`` header without the CORS preflight this server never
grants, so requests with one are left to their signature or key.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request

from facelens.access.keys import LOCAL, KeyStore, Principal, Role
from facelens.errors import (
    AccessDeniedException,
    ConfigurationError,
    TooManyFailedAuthenticationsException,
    UnrecognizedClientException,
)
from facelens.http_server import host_name, host_port, is_loopback

SESSION_COOKIE = "facelens_session"
_WINDOW_S = 60.0
KEY_RECHECK_SECONDS = 1.0
"""How stale a session's view of its key may be, seconds: a deleted key's sessions end
within this long in every process (one indexed SQLite read per key per interval)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing here, so a cross-origin one is harmless (the browser does
not let the foreign page read the answer)."""
_DEFAULT_PORTS = (80, 443)


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
        self,
        keys: KeyStore,
        *,
        open_access: bool,
        limiter: FailureLimiter,
        sessions: Sessions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self.open_access = open_access
        self.limiter = limiter
        self.sessions = sessions
        self._clock = clock
        self._keys_seen: dict[str, tuple[float, Principal | None]] = {}
        self._keys_lock = threading.Lock()

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
            if principal is not None and self._key_unchanged(principal):
                return principal
            if principal is not None:  # its key was deleted or changed: the login is over
                self.sessions.close(session_id)
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

    def _key_unchanged(self, principal: Principal) -> bool:
        """Whether the session's key still exists with the name and role it logged in with;
        read from the key store at most every ``KEY_RECHECK_SECONDS``."""
        now = self._clock()
        with self._keys_lock:
            seen = self._keys_seen.get(principal.key_id)
        if seen is None or now - seen[0] >= KEY_RECHECK_SECONDS:
            seen = (now, self.keys.api_key(principal.key_id))
            with self._keys_lock:
                self._keys_seen[principal.key_id] = seen
        return seen[1] == principal


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


def has_credentials(headers: Mapping[str, str]) -> bool:
    """Whether a request authenticates itself (bearer key, ``X-Api-Key``, SigV4): headers a
    cross-origin page cannot set without a CORS preflight, which this server never grants."""
    scheme = headers.get("authorization", "").split(" ", 1)[0].lower()
    return scheme in ("bearer", "aws4-hmac-sha256") or "x-api-key" in headers


def same_origin(url: str, host: str, *, public_names: frozenset[str] = frozenset()) -> bool:
    """Whether a browser's ``Origin`` (or ``Referer``) URL is this server's: the name and
    port of the request's ``Host`` (80 and 443 count as no port), or any of
    ``public_names`` (a reverse proxy's name: the proxy may send its own Host upstream)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return False
    name = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("http", "https") or not name:
        return False
    if name in public_names:
        return True
    own = host_name(host)
    own_port = host_port(host)
    return (
        own is not None
        and name == own
        and (None if port in _DEFAULT_PORTS else port)
        == (None if own_port in _DEFAULT_PORTS else own_port)
    )


def cross_site(
    method: str, headers: Mapping[str, str], *, public_names: frozenset[str] = frozenset()
) -> str | None:
    """Why a state-changing browser request must be refused as coming from another site,
    or None. Decides, in this order: ``Origin`` (browsers send it on every cross-origin
    POST; "null" from sandboxes and privacy modes is foreign), ``Sec-Fetch-Site``, then
    ``Referer``. A request with none of them is not from a browser page and passes, as do
    safe methods and requests bearing their own credentials (:func:`has_credentials`)."""
    if method.upper() in SAFE_METHODS or has_credentials(headers):
        return None
    host = headers.get("host", "")
    origin = headers.get("origin")
    if origin is not None:
        if same_origin(origin, host, public_names=public_names):
            return None
        return f"Requests from another site's page ({origin[:100]!r}) may not change anything"
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site.strip().lower() in ("same-origin", "none"):
            return None
        return "Requests from another site's page may not change anything"
    referer = headers.get("referer")
    if referer and not same_origin(referer, host, public_names=public_names):
        return "Requests from another site's page may not change anything"
    return None
