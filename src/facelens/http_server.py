"""uvicorn serving one app from a daemon thread of this process: started once, stopped once.

Used by the edge runner's live view and by ``facelens serve`` (and, in one
process, ``facelens up``): the caller keeps its main thread (and its signal
handlers), and the server's port is known when ``start()`` returns, even
when asked for port 0.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from typing import Any

import uvicorn

from facelens.errors import ConfigurationError

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``: addresses no other machine reaches."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False


class ThreadedServer:
    """uvicorn serving ``app`` from a daemon thread. ``what`` names it in messages.

    ``localhost`` binds 127.0.0.1 only (with port 0 asyncio would otherwise
    give 127.0.0.1 and ::1 two different free ports). If ``app.state.stopping``
    is a ``threading.Event`` it is set at stop, so never-ending responses
    (streams) can end.
    """

    def __init__(self, app: Any, *, host: str, port: int, what: str = "server") -> None:
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"{what} port must be 0-65535, got {port}")
        self._app = app
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
            self._app,
            host=self._bind_host,
            port=self._port,
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
