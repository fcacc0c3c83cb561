"""uvicorn serving one app from a daemon thread of this process: started once, stopped once.

Used by the edge runner's live view and by ``facelens serve`` (and, in one
process, ``facelens up``): the caller keeps its main thread (and its signal
handlers), and the server's port is known when ``start()`` returns, even
when asked for port 0.

Every server answers only to the host names it knows (:class:`HostCheck`):
a page on ``attacker.example`` whose name an attacker re-points at 127.0.0.1
(DNS rebinding) is same-origin with itself for the browser, so without this
check it could read and change everything a loopback server without keys
serves. The browser still sends ``Host: attacker.example``, which is refused.
``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from the
proxies a server is told to trust (none by default), since any client can
send them.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from facelens.errors import AccessDeniedException, ConfigurationError

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``: addresses no other machine reaches."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False


WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
"""Bind addresses meaning "every address of this machine"."""


def host_name(host: str) -> str | None:
    """The name in a ``Host`` header value (``name[:port]``, ``[v6]:port``): lower case,
    without port, brackets or a trailing dot; None when it is not a valid one."""
    text = host.strip()
    if not text or any(c in text for c in "/?#@\\ \t"):
        return None
    try:
        parts = urlsplit("//" + text)
        _ = parts.port  # raises ValueError for a port that is not 0-65535
    except ValueError:
        return None
    name = (parts.hostname or "").rstrip(".")
    return name or None


def host_port(host: str) -> int | None:
    """The port of a valid ``Host`` value, None when it names none."""
    try:
        return urlsplit("//" + host.strip()).port
    except ValueError:
        return None


@dataclass(frozen=True)
class AllowedHosts:
    """The names a server answers to: ``names`` (lower case, no port) and loopback
    addresses; ``any_address``: every IP literal too (a server bound to every
    address; an address, unlike a name, cannot be re-pointed by a third party)."""

    names: frozenset[str]
    any_address: bool = False

    def allows(self, host: str) -> bool:
        """Whether a ``Host`` header value names this server (on any port)."""
        name = host_name(host)
        if name is None:
            return False
        if name in self.names:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return self.any_address or address.is_loopback


def hosts_for(bind_host: str, extra: Iterable[str] = ()) -> AllowedHosts:
    """What a server bound to ``bind_host`` answers to: ``localhost``, loopback addresses,
    ``bind_host`` itself (every IP address when it is a wildcard) and ``extra`` names."""
    bind = bind_host.strip().lower()
    names = {"localhost", *(n.strip().lower().rstrip(".").strip("[]") for n in extra)}
    wildcard = bind in WILDCARD_HOSTS
    if not wildcard:
        names.add(bind.strip("[]").rstrip("."))
    return AllowedHosts(frozenset(names), any_address=wildcard)


class HostCheck:
    """ASGI middleware: a request whose ``Host`` is not one of ``allowed`` gets 403
    ``AccessDeniedException`` before the app sees it. ``setting`` names, in the message,
    the setting that adds names."""

    def __init__(self, app: ASGIApp, allowed: AllowedHosts, *, setting: str) -> None:
        self.app = app
        self.allowed = allowed
        self._setting = setting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((v for k, v in scope.get("headers", []) if k == b"host"), b"")
        text = host.decode("latin-1")
        if self.allowed.allows(text):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # refused before the handshake: a close, not a 403
            await send({"type": "websocket.close", "code": 1008})
            return
        shown = text[:100] if text else "(none)"
        error = AccessDeniedException(
            f"This server does not answer to Host {shown!r}: add the name to {self._setting} "
            "if it is really this server's"
        )
        body = json.dumps({"__type": error.code, "message": error.message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": error.http_status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-amzn-errortype", error.code.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class ThreadedServer:
    """uvicorn serving ``app`` from a daemon thread. ``what`` names it in messages.

    ``localhost`` binds 127.0.0.1 only (with port 0 asyncio would otherwise
    give 127.0.0.1 and ::1 two different free ports). If ``app.state.stopping``
    is a ``threading.Event`` it is set at stop, so never-ending responses
    (streams) can end.

    Requests must name the server in ``Host`` (:func:`hosts_for` ``host``
    and ``allowed_hosts``; ``hosts_setting`` is the setting a refusal points to).
    ``trusted_proxies`` (IP addresses or networks): the only peers whose
    ``X-Forwarded-For``/``-Proto`` uvicorn applies; none, the headers are ignored.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str,
        port: int,
        what: str = "server",
        allowed_hosts: Iterable[str] = (),
        hosts_setting: str = "the allowed host names",
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"{what} port must be 0-65535, got {port}")
        self._app = app
        self._asgi = HostCheck(app, hosts_for(host, allowed_hosts), setting=hosts_setting)
        self._trusted_proxies = [p.strip() for p in trusted_proxies]
        self._what = what
        self._host = host
        self._bind_host = "127.0.0.1" if host.strip().lower() == "localhost" else host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def port(self) -> int:
        """The port listened on once started (the picked one when asked for 0)."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self._bind_host}]" if ":" in self._bind_host else self._bind_host
        return f"http://{host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, timeout: float = 10.0) -> None:
        """Listen and serve; returns once the socket is listening.

        Raises ConfigurationError when the port cannot be bound (in use, or
        privileged) or the server did not come up within ``timeout`` seconds.
        """
        if self._server is not None:
            raise ConfigurationError(f"a {self._what} can be started only once")
        config = uvicorn.Config(
            self._asgi,
            host=self._bind_host,
            port=self._port,
            # uvicorn's default believes X-Forwarded-For from 127.0.0.1, i.e. from any local
            # client: it could then dodge the failed-authentication limit, or lock out any
            # address it names. Only configured proxies are believed.
            proxy_headers=bool(self._trusted_proxies),
            forwarded_allow_ips=self._trusted_proxies or None,
            log_level="warning",
            lifespan="off",
            log_config=None,  # leave the process' logging alone: records propagate to root
            access_log=False,
        )
        server = uvicorn.Server(config)
        self._server = server
        thread = threading.Thread(
            target=self._run, args=(server,), name=f"facelens-{self._what}", daemon=True
        )
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                where = f"{self._host}:{self._port}"
                failure = self._failure
                reason = f": {failure}" if failure is not None else ""
                raise ConfigurationError(
                    f"{self._what} cannot listen on {where}{reason}"
                ) from failure
            if time.monotonic() > deadline:
                server.should_exit = True
                raise ConfigurationError(
                    f"{self._what} on {self._host}:{self._port} did not start within {timeout} s"
                )
            time.sleep(0.01)
        self._port = int(server.servers[0].sockets[0].getsockname()[1])
        logger.info("%s at %s", self._what, self.url)

    def _run(self, server: uvicorn.Server) -> None:
        try:
            server.run()
        except SystemExit as exc:
            # uvicorn logs a bind failure and calls sys.exit(1) from inside the
            # `except OSError`, so the OSError is the SystemExit's context.
            self._failure = exc.__context__ if exc.__context__ is not None else exc
        except Exception as exc:
            self._failure = exc
            logger.exception("%s failed", self._what)

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop serving and wait (at most ``timeout`` seconds) for the thread to end.

        Open streams end first (the app's ``stopping`` event); if connections
        still hold uvicorn after half the timeout, it is told to force its exit.
        """
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        stopping: Any = getattr(self._app.state, "stopping", None)
        if isinstance(stopping, threading.Event):
            stopping.set()
        server.should_exit = True
        deadline = time.monotonic() + timeout
        thread.join(timeout / 2)
        if thread.is_alive():
            server.force_exit = True
            thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            logger.warning("%s did not stop within %.1f s", self._what, timeout)
