"""Requests on the wire: a generated call, sent byte for byte, and what came back.

Requests go out through ``http.client`` with the request target, the headers
and the body exactly as generated: ``requests``/urllib3 would normalise dot
segments out of paths, fix Content-Length and add headers of their own,
hiding the very inputs the fuzz is after. SigV4 signatures are botocore's own
(what every AWS SDK sends).
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TIMEOUT_S = float(os.environ.get("FACELENS_FUZZ_TIMEOUT_S", "30"))
"""Seconds one request may take before it counts as a hang: generous, since the real face
engine runs on valid images and this machine may be busy with other tests."""
HEALTH_TIMEOUT_S = 10.0
"""Seconds the health probe after each request may take."""
STREAM_WATCH_S = 1.2
"""Seconds an event stream (the dashboard's live feed) is read: two of its 0.5 s polls."""
SHOWN_BYTES = 600
"""How much of a request or answer body a finding shows."""


@dataclass(frozen=True)
class Call:
    """One request as generated. ``target``: the request target exactly as sent (path and
    query, percent-encoded ASCII); ``route``: the route it aims at, to group findings;
    ``auth``: which credentials it carries, for the report. ``may_go_unanswered``: the
    request breaks HTTP itself (a lying length, a bad chunk), so the server may close
    without an answer; ``half_close``: the client stops sending after it (the length
    promised more), so a server waiting for the rest sees the end instead of hanging."""

    surface: str
    route: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    auth: str = ""
    may_go_unanswered: bool = False
    half_close: bool = False

    def __repr__(self) -> str:  # what Hypothesis prints for a failing case: bounded
        return f"Call({self.surface}: {self.summary()})"

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for n, v in self.headers if n.lower() == wanted), None)

    def summary(self) -> str:
        body = self.body[:SHOWN_BYTES]
        more = f" …(+{len(self.body) - SHOWN_BYTES} bytes)" if len(self.body) > SHOWN_BYTES else ""
        headers = "".join(f"\n  {n}: {v[:200]}" for n, v in self.headers)
        return f"{self.method} {self.target[:2000]} [{self.auth}]{headers}\n  body: {body!r}{more}"


@dataclass(frozen=True)
class Answer:
    """What came back. ``status`` None: no answer (``problem`` says why)."""

    status: int | None
    headers: Mapping[str, str]
    body: bytes
    seconds: float
    timed_out: bool = False
    problem: str | None = None

    def summary(self) -> str:
        if self.status is None:
            return f"no answer after {self.seconds:.1f} s: {self.problem}"
        return f"{self.status} after {self.seconds:.2f} s: {self.body[:SHOWN_BYTES]!r}"


def _latin1(value: str) -> str:
    """``value`` if http.client can write it (latin-1), else the UTF-8 bytes a client would
    send for it (see :func:`wire`)."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return wire(value)
    return value


def send(host: str, port: int, call: Call, *, timeout: float = TIMEOUT_S) -> Answer:
    """Sends ``call`` on a fresh connection; an event stream's body is not waited for."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    started = time.monotonic()
    sent_error: OSError | None = None
    try:
        try:
            connection.putrequest(
                call.method, call.target, skip_host=True, skip_accept_encoding=True
            )
            names = {name.lower() for name, _ in call.headers}
            for name, value in call.headers:
                connection.putheader(name, _latin1(value))
            if not names & {"content-length", "transfer-encoding"} and (
                call.body or call.method in ("POST", "PUT", "PATCH")
            ):
                connection.putheader("Content-Length", str(len(call.body)))
            connection.endheaders(call.body or None)
            if call.half_close and connection.sock is not None:
                connection.sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError) as exc:
            sent_error = exc  # the server may have answered early (413) and closed
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        if headers.get("content-type", "").startswith("text/event-stream"):
            body, broke = _stream_start(connection, response)
            return Answer(response.status, headers, body, time.monotonic() - started, problem=broke)
        body = response.read()
        return Answer(response.status, headers, body, time.monotonic() - started)
    except TimeoutError:
        return Answer(None, {}, b"", time.monotonic() - started, timed_out=True, problem="timeout")
    except (OSError, http.client.HTTPException) as exc:
        problem = repr(exc) if sent_error is None else f"{sent_error!r}, then {exc!r}"
        return Answer(None, {}, b"", time.monotonic() - started, problem=problem)
    finally:
        connection.close()


def _stream_start(
    connection: http.client.HTTPConnection, response: http.client.HTTPResponse
) -> tuple[bytes, str | None]:
    """The first ``STREAM_WATCH_S`` seconds of a never-ending stream, and whether it broke
    off meanwhile (the server failing after its 200 went out shows only that way)."""
    if connection.sock is not None:
        connection.sock.settimeout(STREAM_WATCH_S)
    received = b""
    deadline = time.monotonic() + STREAM_WATCH_S
    try:
        while time.monotonic() < deadline:
            chunk = response.read1(65536)
            if not chunk:
                return received, "the event stream ended"
            received += chunk
    except TimeoutError:
        return received, None  # still open: as it should be
    except (OSError, http.client.HTTPException) as exc:
        return received, f"the event stream broke off: {exc!r}"
    return received, None


# -- credentials --


@dataclass(frozen=True)
class AccessKey:
    key_id: str
    secret: str = field(repr=False)


def sigv4_headers(
    url: str,
    method: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    key: AccessKey,
    service: str,
    region: str,
) -> list[tuple[str, str]]:
    """``headers`` plus what botocore's SigV4 signer adds (Authorization, X-Amz-Date,
    X-Amz-Content-SHA256 where botocore sends it): a request signed as an AWS SDK signs it."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(Credentials(key.key_id, key.secret), service, region).add_auth(request)
    return [(str(n), str(v)) for n, v in request.headers.items()]


def wire(value: str) -> str:
    """``value`` as the header bytes a client would send for it (UTF-8, CR and LF dropped),
    in the latin-1 string http.client writes byte for byte."""
    raw = value.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")
    return raw.decode("latin-1")


def basic_auth_like(text: str) -> str:
    """A ``Basic`` header value of ``text`` (some clients send it to any API)."""
    return "Basic " + base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_FIELD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def breaks_http(call: Call) -> bool:
    """Whether ``call`` is not HTTP: its own framing headers (Transfer-Encoding, a
    Content-Length that is not the body's), no Host or two, a header name that is no
    token, a control character in a value. The server may refuse it before reading the
    body and close, and a client still sending its body then sees the connection reset
    instead of the 400."""
    framing = {
        name.lower(): value
        for name, value in call.headers
        if name.lower() in ("content-length", "transfer-encoding")
    }
    length = framing.get("content-length")
    if "transfer-encoding" in framing or (length is not None and length != str(len(call.body))):
        return True  # the body is framed by the call's own (maybe lying) headers
    if sum(name.lower() == "host" for name, _ in call.headers) != 1:
        return True  # HTTP/1.1 needs exactly one Host
    return any(
        not _TOKEN.fullmatch(name) or _NOT_FIELD_VALUE.search(_latin1(value))
        for name, value in call.headers
    )
