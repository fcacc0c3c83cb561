"""What every fuzz test shares: send a generated request, judge the answer, count.

The rule the suite checks, for every generated request on every surface:

* never a 5xx, and never a dropped connection where an answer was due; an
  event stream must not break off in its first ``STREAM_WATCH_S`` seconds;
* nothing logged at ERROR by the server while answering (an exception after
  the 200 of a stream went out shows only there). Requests that are not HTTP
  (their own framing, bad header bytes) are exempt: uvicorn refuses them
  while the app may still answer and logs the clash, which is noted, not found;
* never a hang: each request has ``TIMEOUT_S`` seconds to be answered;
* the server still answers afterwards (``GET /api/v1/health`` within
  ``HEALTH_TIMEOUT_S`` seconds, after every request);
* a refused request (4xx, or a dashboard redirect carrying an ``error=`` or
  sending to the login page) leaves the stores as they were: a fingerprint of
  collections, faces, users, profiles, keys, DynamoDB tables, corrections,
  objects, the ledger and the audit log is taken before and compared after.

By default the first broken rule fails the test at once (Hypothesis then
shrinks the request and prints it). In collect mode (``FACELENS_FUZZ_COLLECT=1``,
or the ``long`` profile) every finding is recorded, grouped by signature
(surface, route, what broke, the server's exception), and the test fails at
its end with all of them: what a long run reports as "N cases, M found".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from facelens.api.aws.dynamodb_items import ProfileTables
from facelens.errors import FacelensError
from facelens.wiring.server import ServerBundles
from tests.fuzz.wire import HEALTH_TIMEOUT_S, TIMEOUT_S, Answer, Call, breaks_http, send

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


def _pages(fetch: Callable[[str | None], tuple[Sequence[Any], str | None]]) -> list[Any]:
    items: list[Any] = []
    token: str | None = None
    for _ in range(1000):
        page, token = fetch(token)
        items.extend(page)
        if not token:
            break
    return items


def _faces_page(c: ServerBundles, cid: str, token: str | None) -> tuple[Sequence[Any], str | None]:
    page = c.collections().collections.list_faces(cid, max_results=1000, next_token=token)
    return page.faces, page.next_token


def _users_page(c: ServerBundles, cid: str, token: str | None) -> tuple[Sequence[Any], str | None]:
    page = c.collections().users.list_users(cid, max_results=500, next_token=token)
    return page.users, page.next_token


def fingerprint(c: ServerBundles, tables: ProfileTables) -> dict[str, Any]:
    """What a refused request must not change, read straight from the stores."""
    collections = _pages(
        lambda t: (
            (
                p := c.collections().collections.list_collections(max_results=1000, next_token=t)
            ).collection_ids,
            p.next_token,
        )
    )
    state: dict[str, Any] = {"collections": {}}
    for cid in sorted(collections):
        faces = _pages(partial(_faces_page, c, cid))
        users = _pages(partial(_users_page, c, cid))
        state["collections"][cid] = {
            "faces": sorted((f.face_id, f.user_id, f.external_image_id) for f in faces),
            "users": sorted((u.user_id, u.status.value, u.face_count) for u in users),
        }
    profiles = _pages(
        lambda t: ((p := c.profiles().list(max_results=1000, next_token=t)).profiles, p.next_token)
    )
    state["profiles"] = {p.profile_id: json.dumps(p.item, sort_keys=True) for p in profiles}
    state["keys"] = sorted(json.dumps(asdict(k), default=str) for k in c.keys.list_keys())
    state["tables"] = tables.catalogue.names(limit=1000)[0]
    newest = c.history().audit.entries(limit=1).entries
    state["audit"] = newest[0].entry_id if newest else None
    state["ledger"] = c.history().ledger.count()
    state["corrections"] = sorted(x.correction_id for x in c.people().corrections.list())
    objects = c.objects().list_objects(c.settings.bucket, max_keys=1000)
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
    findings: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Per signature: how often, and the first report (a long run may repeat one often)."""
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
            "findings": {k: {"count": n, "first": v} for k, (n, v) in self.findings.items()},
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
    bundles: ServerBundles
    tables: ProfileTables
    errors: ServerErrors
    tally: Tally
    collect: bool
    reseed: Callable[[], None] = lambda: None
    backend: str = "sqlite"
    _last: tuple[Call, Answer] | None = field(default=None, init=False)

    def __repr__(self) -> str:
        return f"Fuzzer({self.url}, {self.backend})"

    def surface(self, name: str) -> str:
        """The tally's name for surface ``name`` on this server's backend."""
        return name if self.backend == "sqlite" else f"{name}@{self.backend}"

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
        return fingerprint(self.bundles, self.tables)

    def check(self, call: Call) -> Answer:
        """Sends ``call``; fails (or, collecting, records) each rule it breaks."""
        tally = self.tally.of(self.surface(call.surface))
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
        findings = self.tally.of(self.surface(call.surface)).findings
        count, first = findings.get(signature, (0, report))
        findings[signature] = (count + 1, first)
        if not self.collect:
            raise FuzzFailure(f"{self.surface(call.surface)}: {signature}\n{report}")

    def assert_clean(self, surface: str) -> None:
        """Fails with every finding of ``surface`` (collect mode's end of test)."""
        findings = self.tally.of(surface).findings
        if findings:
            listed = "\n\n".join(f"[{n}x] {k}\n{v}" for k, (n, v) in sorted(findings.items()))
            raise FuzzFailure(f"{surface}: {len(findings)} distinct findings\n\n{listed}")
