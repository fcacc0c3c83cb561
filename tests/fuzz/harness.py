"""What every fuzz test shares: send one request exactly as generated, and judge the answer.

The rule the suite checks, for every generated request on every surface:

* never a 5xx, and never a dropped connection where an answer was due;
* never a hang: each request has ``TIMEOUT_S`` seconds to be answered;
* the server still answers afterwards (``GET /api/v1/health`` within
  ``HEALTH_TIMEOUT_S`` seconds, after every request);
* a refused request (4xx, or a dashboard redirect carrying an ``error=`` or
  sending to the login page) leaves the stores as they were: a fingerprint of
  collections, faces, users, profiles, keys, DynamoDB tables, corrections,
  objects, the ledger and the audit log is taken before and compared after.

Requests go out through ``http.client`` with the request target, the headers
and the body exactly as generated: ``requests``/urllib3 would normalise dot
segments out of paths, fix Content-Length and add headers of their own,
hiding the very inputs the fuzz is after.

By default the first broken rule fails the test at once (Hypothesis then
shrinks the request and prints it). In collect mode (``FACELENS_FUZZ_COLLECT=1``,
or the ``long`` profile) every finding is recorded, grouped by signature
(surface, route, what broke, the server's exception), and the test fails at
its end with all of them: what a long run reports as "N cases, M found".
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import os
import re
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from facelens.api.dynamodb_items import ProfileTables
from facelens.errors import FacelensError
from facelens.wiring import Components

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


# -- the server's own view: errors it logged, and its stores --


class ServerErrors(logging.Handler):
    """Every ERROR the in-process server logs (uvicorn's "Exception in ASGI application"
    with its traceback, facelens' own ``logger.exception``), taken per request."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._records: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        with self._lock:
            self._records.append(text)

    def take(self) -> list[str]:
        with self._lock:
            taken, self._records = self._records, []
        return taken


@contextlib.contextmanager
def capturing_server_errors() -> Iterator[ServerErrors]:
    handler = ServerErrors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def _pages(fetch: Callable[[str | None], tuple[list[Any], str | None]]) -> list[Any]:
    items: list[Any] = []
    token: str | None = None
    for _ in range(1000):
        page, token = fetch(token)
        items.extend(page)
        if not token:
            break
    return items


def fingerprint(c: Components, tables: ProfileTables) -> dict[str, Any]:
    """What a refused request must not change, read straight from the stores."""
    collections = _pages(
        lambda t: (
            (p := c.collections.list_collections(max_results=1000, next_token=t)).collection_ids,
            p.next_token,
        )
    )
    state: dict[str, Any] = {"collections": {}}
    for cid in sorted(collections):
        faces = _pages(
            lambda t, cid=cid: (
                (p := c.collections.list_faces(cid, max_results=1000, next_token=t)).faces,
                p.next_token,
            )
        )
        users = _pages(
            lambda t, cid=cid: (
                (p := c.users.list_users(cid, max_results=500, next_token=t)).users,
                p.next_token,
            )
        )
        state["collections"][cid] = {
            "faces": sorted((f.face_id, f.user_id, f.external_image_id) for f in faces),
            "users": sorted((u.user_id, u.status.value, u.face_count) for u in users),
        }
    profiles = _pages(
        lambda t: ((p := c.profiles.list(max_results=1000, next_token=t)).profiles, p.next_token)
    )
    state["profiles"] = {p.profile_id: json.dumps(p.item, sort_keys=True) for p in profiles}
    state["keys"] = sorted(json.dumps(asdict(k), default=str) for k in c.keys.list_keys())
    state["tables"] = tables.catalogue.names(limit=1000)[0]
    newest = c.audit.entries(limit=1).entries
    state["audit"] = newest[0].entry_id if newest else None
    state["ledger"] = c.ledger.count()
    state["corrections"] = sorted(x.correction_id for x in c.corrections.list())
    objects = c.raw_objects.list_objects(c.settings.bucket, max_keys=1000)
    state["objects"] = sorted(o.key for o in objects.objects)
    return state


def difference(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    changed = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    return "; ".join(
        f"{k}: {json.dumps(before.get(k), default=str)[:300]} -> "
        f"{json.dumps(after.get(k), default=str)[:300]}"
        for k in changed
    )


# -- counting and judging --


@dataclass
class SurfaceTally:
    cases: int = 0
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    slowest: list[tuple[float, str]] = field(default_factory=list)
    samples: dict[str, str] = field(default_factory=dict)
    """The first answer's body per route, credentials and status: what refused it."""
    noted: Counter[str] = field(default_factory=Counter)
    """Errors the server logged for requests that break HTTP itself (not findings: see
    :meth:`Fuzzer.check`)."""
    findings: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def note_time(self, seconds: float, call: Call) -> None:
        """Keeps the five slowest requests (for the report: how near a hang they came)."""
        if len(self.slowest) < 5 or seconds > self.slowest[-1][0]:
            self.slowest.append((seconds, call.summary()[:400]))
            self.slowest.sort(key=lambda item: -item[0])
            del self.slowest[5:]

    def as_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "requests": self.requests,
            "statuses": dict(sorted(self.statuses.items())),
            "seconds": round(self.seconds, 1),
            "slowest": [{"seconds": round(t, 2), "call": c} for t, c in self.slowest],
            "noted": dict(self.noted),
            "samples": dict(sorted(self.samples.items())),
            "routes": dict(sorted(self.routes.items())),
            "found": len(self.findings),
            "findings": {k: {"count": len(v), "first": v[0]} for k, v in self.findings.items()},
        }


@dataclass
class Tally:
    """Cases and findings per surface, for the end-of-run summary and the JSON report."""

    surfaces: dict[str, SurfaceTally] = field(default_factory=dict)

    def of(self, surface: str) -> SurfaceTally:
        return self.surfaces.setdefault(surface, SurfaceTally())

    def as_json(self) -> dict[str, Any]:
        return {
            "cases": sum(s.cases for s in self.surfaces.values()),
            "found": sum(len(s.findings) for s in self.surfaces.values()),
            "surfaces": {name: s.as_json() for name, s in sorted(self.surfaces.items())},
        }


class FuzzFailure(AssertionError):
    """A broken rule: the request, the answer, and what the server logged."""


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_FIELD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def breaks_http(call: Call) -> bool:
    """Whether ``call`` is not HTTP: its own framing headers (Transfer-Encoding, a
    Content-Length that is not the body's), a header name that is no token, a control
    character in a value. The server may refuse it before reading the body and close, and
    a client still sending its body then sees the connection reset instead of the 400."""
    framing = {
        name.lower(): value
        for name, value in call.headers
        if name.lower() in ("content-length", "transfer-encoding")
    }
    length = framing.get("content-length")
    if "transfer-encoding" in framing or (length is not None and length != str(len(call.body))):
        return True  # the body is framed by the call's own (maybe lying) headers
    return any(
        not _TOKEN.fullmatch(name) or _NOT_FIELD_VALUE.search(_latin1(value))
        for name, value in call.headers
    )


def _refused(answer: Answer) -> bool:
    status = answer.status
    if status is None:
        return False
    if 400 <= status < 500:
        return True
    location = answer.headers.get("location", "")
    # The dashboard answers a refused form with a redirect: back with ?error=, or to login.
    return status == 303 and ("error=" in location or location.startswith("/ui/login"))


def _exception_name(errors: list[str]) -> str:
    """The server's exception, as 'Type at file:line' of its innermost frame."""
    for text in errors:
        lines = [line for line in text.splitlines() if line.strip()]
        where = next((ln.strip() for ln in reversed(lines) if ln.strip().startswith("File ")), "")
        if lines and where:
            return f"{lines[-1].split(':', 1)[0]} at {where.split(',')[0][5:]}{where.split(',')[1]}"
    return ""


@dataclass(repr=False)
class Fuzzer:
    """Sends calls to one server and checks the rule (see the module's docstring)."""

    url: str
    components: Components
    tables: ProfileTables
    errors: ServerErrors
    tally: Tally
    collect: bool
    reseed: Callable[[], None] = lambda: None
    _last: tuple[Call, Answer] | None = field(default=None, init=False)

    def __repr__(self) -> str:
        return f"Fuzzer({self.url})"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    @property
    def origin(self) -> str:
        return self.url

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"

    def state(self) -> dict[str, Any]:
        return fingerprint(self.components, self.tables)

    def check(self, call: Call) -> Answer:
        """Sends ``call``; fails (or, collecting, records) each rule it breaks."""
        tally = self.tally.of(call.surface)
        late = self.errors.take()
        if late and self._last is not None:  # logged after the last call's answer went out
            last, answer = self._last
            self._found(last, answer, ["the server logged an error after answering"], late)
        self.reseed()
        before = self.state()
        self.errors.take()
        self._trace(call)
        answer = send(self.host, self.port, call)
        self._last = (call, answer)
        tally.requests += 1
        tally.seconds += answer.seconds
        status = str(answer.status) if answer.status is not None else "none"
        status = "timeout" if answer.timed_out else status
        tally.statuses[status] += 1
        key = f"{call.route} [{call.auth}] -> {status}"
        tally.routes[key] += 1
        tally.samples.setdefault(key, answer.body[:200].decode("utf-8", "replace"))
        tally.note_time(answer.seconds, call)
        problems: list[str] = []
        if answer.timed_out:
            problems.append(f"no answer within {TIMEOUT_S:g} s")
        elif answer.status is None and not (call.may_go_unanswered or breaks_http(call)):
            problems.append("the connection closed without an answer")
        elif answer.status is not None and answer.status >= 500:
            problems.append(f"HTTP {answer.status}")
        elif answer.status is not None and answer.problem is not None:
            problems.append(f"HTTP {answer.status}, then {answer.problem}")
        if _refused(answer):
            try:
                after = self.state()
            except FacelensError as exc:
                problems.append(f"the stores cannot be read after the refusal: {exc!r}")
            else:
                if after != before:
                    changed = difference(before, after)
                    problems.append(f"refused ({answer.status}) but the stores changed: {changed}")
        health = send(
            self.host,
            self.port,
            Call(
                "health",
                "GET /api/v1/health",
                "GET",
                "/api/v1/health",
                (("Host", self.host_header),),
            ),
            timeout=HEALTH_TIMEOUT_S,
        )
        if health.status != 200:
            problems.append(f"the health probe afterwards got {health.summary()}")
        logged = self.errors.take()
        if logged and not problems:
            if call.may_go_unanswered or breaks_http(call):
                # Not HTTP: uvicorn refuses it (400) while the app may still be answering,
                # and logs the clash; or the client left mid-body and the app logs that
                # (starlette's ClientDisconnect). Nobody got a 5xx: noted, not a finding.
                tally.noted[f"{call.route} | {_exception_name(logged)}"] += 1
            else:
                problems.append("the server logged an error")
        if problems:
            self._found(call, answer, problems, logged)
        return answer

    def _trace(self, call: Call) -> None:
        """Appends the call to ``FACELENS_FUZZ_TRACE`` before it goes out: when the process
        dies (out of memory, a crash in C), the file's last entry is the request that did it."""
        path = os.environ.get("FACELENS_FUZZ_TRACE")
        if path:
            with open(path, "a", encoding="utf-8", errors="backslashreplace") as trace:
                trace.write(f"--- {time.strftime('%H:%M:%S')} {call.summary()[:3000]}\n")

    def _found(self, call: Call, answer: Answer, problems: list[str], logged: list[str]) -> None:
        what = problems[0].split(":", 1)[0]
        signature = " | ".join(x for x in (call.route, what, _exception_name(logged)) if x)
        report = f"{'; '.join(problems)}\nrequest: {call.summary()}\nanswer: {answer.summary()}" + (
            "\nserver logged:\n" + "\n".join(logged)[-4000:] if logged else ""
        )
        findings = self.tally.of(call.surface).findings.setdefault(signature, [])
        findings.append(report)
        if not self.collect:
            raise FuzzFailure(f"{call.surface}: {signature}\n{report}")

    def assert_clean(self, surface: str) -> None:
        """Fails with every finding of ``surface`` (collect mode's end of test)."""
        findings = self.tally.of(surface).findings
        if findings:
            listed = "\n\n".join(f"[{len(v)}x] {k}\n{v[0]}" for k, v in sorted(findings.items()))
            raise FuzzFailure(f"{surface}: {len(findings)} distinct findings\n\n{listed}")


def wire(value: str) -> str:
    """``value`` as the header bytes a client would send for it (UTF-8, CR and LF dropped),
    in the latin-1 string http.client writes byte for byte."""
    raw = value.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")
    return raw.decode("latin-1")


def basic_auth_like(text: str) -> str:
    """A ``Basic`` header value of ``text`` (some clients send it to any API)."""
    return "Basic " + base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()
