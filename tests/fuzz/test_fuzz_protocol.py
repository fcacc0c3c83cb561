"""Fuzz: HTTP itself: lying lengths, bad chunks, odd methods, hosts, targets and headers.

Aimed at every surface's routes with valid admin credentials, so what is
under test is the framing and the header handling in front of the routes:
Content-Length that promises more or less than is sent, or 10^30 bytes, or
is negative or not a number, twice; chunked bodies with bad sizes; absent,
foreign and doubled Host headers; request targets in absolute or asterisk
form, with dot segments, or 100,000 characters long; header lines by the
hundred or 64 KiB long. The server may refuse such a request or close the
connection, but it must not answer 5xx, hang, or stop answering others.
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from tests.fuzz.conftest import Run
from tests.fuzz.harness import Fuzzer
from tests.fuzz.strategies import dumps, header_text, json_values, text
from tests.fuzz.wire import Call
from tests.fuzz.world import Credentials

TARGETS = (
    "/",
    "/api/v1/health",
    "/api/v1/collections",
    "/api/v1/profiles/ada",
    "/api/v1/collections/faces/faces",
    "/topics/facelens/x",
    "/ui/login",
    "/ui/people",
)
ODD_TARGETS = (
    "*",
    "http://evil.example/api/v1/health",
    "//api/v1/health",
    "/api/v1/../../../../etc/passwd",
    "/api/v1/%2e%2e/%2e%2e/etc/passwd",
    "/api/v1/profiles/%00",
    "/api/v1/profiles/%ff%fe",
    "/ui/static/..%2f..%2fapp.py",
    "/ui/crops/faces/..%2f..%2f..%2fkeys.db",
    "/" + "a" * 9000,
    "/api/v1/profiles/" + "a" * 100_000,
    "/api/v1/collections?" + "&".join(f"max_results={i}" for i in range(2000)),
)


@st.composite
def framing(draw: st.DrawFn, body: bytes) -> tuple[list[tuple[str, str]], bytes, bool, bool]:
    """(headers, body, may go unanswered, half close): how the body is framed, or mis-framed."""
    choice = draw(st.integers(0, 9))
    if choice == 0:  # promises more than it sends
        return [("Content-Length", str(len(body) + draw(st.integers(1, 1000))))], body, True, True
    if choice == 1:  # promises less: the rest reads as the next request
        return [("Content-Length", str(max(0, len(body) - 3)))], body + b"GARBAGE", True, False
    if choice == 2:
        length = draw(st.sampled_from(["1" + "0" * 30, "-1", "abc", "1e3", " 5", "0x10", ""]))
        return [("Content-Length", length)], body, True, False
    if choice == 3:
        return [("Content-Length", str(len(body))), ("Content-Length", "0")], body, True, False
    if choice == 4:  # chunked, correctly
        chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        return [("Transfer-Encoding", "chunked")], chunked, False, False
    if choice == 5:  # chunked, wrongly
        size = draw(st.sampled_from(["zz", "ffffffffffffffffffff", "-1", "1;x=" + "y" * 5000]))
        chunked = f"{size}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        return [("Transfer-Encoding", "chunked")], chunked, True, True
    if choice == 6:
        headers = [("Transfer-Encoding", "chunked"), ("Content-Length", str(len(body)))]
        return headers, body, True, True
    if choice == 7:
        encoding = draw(st.sampled_from(["gzip", "identity, chunked", "chunked, gzip", "x"]))
        return [("Transfer-Encoding", encoding)], body, True, True
    return [("Content-Length", str(len(body)))], body, False, False


@st.composite
def protocol_calls(draw: st.DrawFn, fuzz: Fuzzer, creds: Credentials) -> Call:
    method = draw(
        st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT"])
        | st.sampled_from(["TRACE", "PROPFIND", "GeT", "X" * 300])
    )
    target = draw(st.sampled_from(TARGETS) | st.sampled_from(ODD_TARGETS))
    body = draw(st.sampled_from([b"", b"{}", b'{"CollectionId": "c"}']) | json_values().map(dumps))
    framed, body, unanswered, half_close = draw(framing(body))
    host = draw(
        st.sampled_from(
            [[fuzz.host_header]] * 4
            + [[], ["evil.example"], [""], [fuzz.host_header, "evil.example"], ["a" * 5000]]
        )
    )
    headers = [("Host", h) for h in host]
    headers.append(("Authorization", f"Bearer {creds.admin_token}"))
    headers.append(("Content-Type", "application/json"))
    extra = draw(st.integers(0, 6))
    if extra == 0:
        headers += [(f"X-Fuzz-{i}", "v") for i in range(draw(st.sampled_from([100, 500])))]
    elif extra == 1:
        headers.append(("X-Long", "v" * draw(st.sampled_from([8000, 70_000]))))
    elif extra == 2:
        name = draw(text(max_size=10).filter(lambda n: n.isascii() and n.isprintable() and n))
        headers.append((name.replace(":", "").replace(" ", "") or "X", draw(header_text())))
    elif extra == 3:
        headers.append(("Expect", "100-continue"))
    headers += framed
    odd = not (set(host) <= {fuzz.host_header}) or target in ODD_TARGETS or extra <= 2
    return Call(
        "protocol",
        f"{method[:10]} {target[:40]}",
        method,
        target,
        tuple(headers),
        body,
        auth="admin",
        may_go_unanswered=unanswered or odd or len(method) > 10,
        half_close=half_close,
    )


def classics(fuzz: Fuzzer, creds: Credentials) -> list[Call]:
    """Framing that broke (or nearly broke) once: sent first, every run."""

    def post(target: str, length: str, body: bytes = b"{}") -> Call:
        headers = (
            ("Host", fuzz.host_header),
            ("Authorization", f"Bearer {creds.admin_token}"),
            ("Content-Type", "application/json"),
            ("Content-Length", length),
        )
        return Call(
            "protocol",
            f"POST {target} (Content-Length {length[:12]})",
            "POST",
            target,
            headers,
            body,
            auth="admin",
            may_go_unanswered=True,
            half_close=True,
        )

    return [
        post("/", "1" + "0" * 30),
        post("/api/v1/collections", str(2**63)),
        post("/topics/x", "99999999999"),
        post("/ui/login", "100"),
    ]


@pytest.mark.parametrize("backend", ["sqlite"])  # reaches no store
def test_http_framing_and_headers(run_fuzz: Run, fuzz: Fuzzer, credentials: Credentials) -> None:
    run_fuzz("protocol", protocol_calls(fuzz, credentials), 60, classics(fuzz, credentials))
