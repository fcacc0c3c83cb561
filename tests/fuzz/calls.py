"""Building generated calls: credentials as each surface carries them, bodies, multipart.

The strategies here turn a route (method, path template, query names, body
kind) into :class:`~tests.fuzz.harness.Call` objects with hostile parts, and
add credentials of every kind: valid (admin, read-only), missing, wrong,
malformed, and for SigV4 signed with the wrong secret, key, service or region,
or signed and then tampered with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from facelens.api.security import SESSION_COOKIE
from tests.fuzz.harness import Fuzzer
from tests.fuzz.strategies import (
    dumps,
    header_text,
    json_values,
    raw_bodies,
    segments,
    text,
)
from tests.fuzz.wire import AccessKey, Call, basic_auth_like, sigv4_headers
from tests.fuzz.world import Credentials

# -- credentials --

BEARER_KINDS = ("admin", "admin", "admin", "reader", "none", "bogus", "x-api-key", "garbage")


@st.composite
def bearer(draw: st.DrawFn, creds: Credentials) -> tuple[str, list[tuple[str, str]]]:
    """(kind, headers) of an API-key caller (the REST API)."""
    kind = draw(st.sampled_from(BEARER_KINDS))
    if kind == "admin":
        return kind, [("Authorization", f"Bearer {creds.admin_token}")]
    if kind == "reader":
        return kind, [("Authorization", f"Bearer {creds.reader_token}")]
    if kind == "none":
        return kind, []
    if kind == "bogus":
        token = draw(st.sampled_from(["fl_000000000000_nope", creds.admin_token[:-1] + "x", ""]))
        return kind, [("Authorization", f"Bearer {token}")]
    if kind == "x-api-key":
        token = draw(st.sampled_from([creds.admin_token, creds.reader_token, "fl_x"]))
        return kind, [("X-Api-Key", token)]
    value = draw(
        st.one_of(
            header_text(),
            st.just("Bearer"),
            st.just("bearer  " + creds.admin_token),
            header_text().map(lambda t: "Bearer " + t),
            header_text().map(basic_auth_like),
        )
    )
    return kind, [("Authorization", value)]


SIGV4_KINDS = (
    "admin",
    "admin",
    "admin",
    "admin",
    "admin",
    "reader",
    "reader",
    "unsigned",
    "wrong-secret",
    "unknown-key",
    "wrong-service",
    "wrong-region",
    "tampered",
    "garbage",
)


@dataclass(frozen=True)
class Signer:
    """Signs a generated request as an AWS SDK would, or fails to in a chosen way."""

    creds: Credentials
    service: str
    url: str

    def headers(
        self, kind: str, method: str, target: str, body: bytes, headers: Mapping[str, str]
    ) -> list[tuple[str, str]]:
        key = self.creds.admin_key
        service, region = self.service, self.creds.region
        if kind == "reader":
            key = self.creds.reader_key
        elif kind == "wrong-secret":
            key = AccessKey(key.key_id, key.secret[:-1] + ("A" if key.secret[-1] != "A" else "B"))
        elif kind == "unknown-key":
            key = AccessKey("AKIAFUZZFUZZFUZZFUZZ", "secret")
        elif kind == "wrong-service":
            service = "s3" if service != "s3" else "dynamodb"
        elif kind == "wrong-region":
            region = "eu-west-1" if region != "eu-west-1" else "us-east-1"
        signed = sigv4_headers(
            self.url + target, method, body, headers, key=key, service=service, region=region
        )
        if kind == "tampered":  # signed, then the date moved: the signature no longer fits
            signed = [
                (n, "20000101T000000Z" if n.lower() == "x-amz-date" else v) for n, v in signed
            ]
        return signed


@st.composite
def garbage_sigv4(draw: st.DrawFn, creds: Credentials, service: str) -> str:
    """An ``Authorization`` that looks like SigV4 with one or more parts wrong."""
    key = draw(st.sampled_from([creds.admin_key.key_id, "", "AKIA", "a/b"]) | text(max_size=20))
    date = draw(st.sampled_from(["20240101", "", "2024010", "99999999", "20240230"]))
    region = draw(st.sampled_from([creds.region, "", "x"]))
    scope_service = draw(st.sampled_from([service, "", "*"]))
    terminator = draw(st.sampled_from(["aws4_request", "aws4", ""]))
    credential = draw(
        st.sampled_from(
            [
                f"{key}/{date}/{region}/{scope_service}/{terminator}",
                f"{key}/{date}",
                key,
                "",
            ]
        )
    )
    signed = draw(
        st.sampled_from(["host;x-amz-date", "", "host", ";;", "Host;X-Amz-Date", "a" * 300])
    )
    signature = draw(st.sampled_from(["0" * 64, "", "zz", "g" * 64, "0" * 63]))
    algorithm = draw(st.sampled_from(["AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", "", "AWS"]))
    separator = draw(st.sampled_from([", ", ",", " ", ",,"]))
    parts = [f"Credential={credential}", f"SignedHeaders={signed}", f"Signature={signature}"]
    if draw(st.booleans()):
        parts = draw(st.permutations(parts))
    if draw(st.integers(0, 4)) == 0:
        parts = parts[: draw(st.integers(0, len(parts)))]
    value = f"{algorithm} {separator.join(parts)}"
    return value.replace("\r", "").replace("\n", "")


@st.composite
def signed_call(
    draw: st.DrawFn,
    *,
    surface: str,
    route: str,
    signer: Signer,
    target: str,
    body: bytes,
    headers: Mapping[str, str],
    host: str,
) -> Call:
    """A POST signed (or not) as :data:`SIGV4_KINDS` says; the Host is the server's own."""
    kind = draw(st.sampled_from(SIGV4_KINDS))
    base = {"Host": host, **headers}
    if kind == "unsigned":
        sent = list(base.items())
    elif kind == "garbage":
        sent = [
            *base.items(),
            ("X-Amz-Date", draw(st.sampled_from(["20240101T000000Z", "", "x"]))),
            ("Authorization", draw(garbage_sigv4(signer.creds, signer.service))),
        ]
    else:
        sent = signer.headers(kind, "POST", target, body, base)
    if kind == "tampered" and body and draw(st.booleans()):
        body = body[:-1] + bytes([body[-1] ^ 1])  # the signed digest no longer matches
    return Call(surface, route, "POST", target, tuple(sent), body, auth=f"sigv4:{kind}")


# -- JSON bodies --


@st.composite
def json_body(
    draw: st.DrawFn, fields: Mapping[str, st.SearchStrategy[Any]], *, open_object: bool = False
) -> bytes:
    """A JSON object with some of ``fields`` (plausible or any JSON), or something else.
    ``open_object``: any keys are welcome (a profile's attributes)."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(raw_bodies())
    if choice == 1:
        return dumps(draw(json_values(keys=list(fields))))
    document: dict[str, Any] = {}
    for name, values in fields.items():
        if draw(st.integers(0, 3)) > 0:
            document[name] = draw(values) if draw(st.integers(0, 3)) > 0 else draw(json_values())
    if open_object or draw(st.integers(0, 4)) == 0:
        document.update(draw(st.dictionaries(text(max_size=12), json_values(), max_size=4)))
    return dumps(document, ascii_only=draw(st.booleans()))


JSON_TYPES = (
    "application/json",
    "application/json",
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    "",
    "multipart/form-data; boundary=x",
    None,
)


@dataclass(frozen=True)
class Route:
    """One route: ``template`` with ``{kind}`` placeholders for path segments; ``query``
    its query parameters; ``json`` its body's fields (values: strategies), or ``files``
    and ``form`` for a multipart upload."""

    method: str
    template: str
    query: tuple[str, ...] = ()
    json: Mapping[str, st.SearchStrategy[Any]] | None = None
    open_json: bool = False
    files: tuple[str, ...] = ()
    form: Mapping[str, st.SearchStrategy[str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


@st.composite
def path_for(draw: st.DrawFn, template: str, ids: Sequence[str]) -> str:
    out = template
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        out = out[:start] + draw(segments(ids)) + out[end + 1 :]
    return out


@st.composite
def cookie_header(draw: st.DrawFn, creds: Credentials) -> tuple[str, list[tuple[str, str]]]:
    """(kind, headers) of a dashboard caller: a session cookie, or a bad one, or a key."""
    kind = draw(
        st.sampled_from(["admin", "admin", "admin", "reader", "none", "bogus", "bearer", "junk"])
    )
    if kind == "admin":
        return kind, [("Cookie", creds.admin_cookie)]
    if kind == "reader":
        return kind, [("Cookie", creds.reader_cookie)]
    if kind == "none":
        return kind, []
    if kind == "bogus":
        return kind, [
            ("Cookie", f"{SESSION_COOKIE}=" + draw(st.sampled_from(["", "x", "a" * 500])))
        ]
    if kind == "bearer":
        return kind, [("Authorization", f"Bearer {creds.admin_token}")]
    return kind, [("Cookie", draw(header_text()))]


def content_type_header(value: str | None) -> list[tuple[str, str]]:
    return [] if value is None else [("Content-Type", value)]


@st.composite
def extra_headers(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Now and then a header nobody asked for."""
    if draw(st.integers(0, 5)) > 0:
        return []
    name = draw(
        st.sampled_from(
            [
                "Accept",
                "Accept-Encoding",
                "X-Forwarded-For",
                "X-Forwarded-Host",
                "Last-Event-ID",
                "Range",
                "If-None-Match",
                "Expect",
                "X-Amz-Target",
                "Transfer-Encoding",
            ]
        )
    )
    return [(name, draw(header_text()))]


# -- hand-written calls (the classics every run sends first) --


def bearer_call(
    fuzz: Fuzzer,
    creds: Credentials,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    content_type: str | None = "application/json",
    headers: Sequence[tuple[str, str]] = (),
) -> Call:
    """A REST call with the admin key (``route``: the target without its query)."""
    sent = [("Host", fuzz.host_header), ("Authorization", f"Bearer {creds.admin_token}")]
    if body:
        sent += content_type_header(content_type)
    route = f"{method} {target.split('?', 1)[0][:80]}"
    return Call("rest", route, method, target, (*sent, *headers), body, auth="admin")


def signed_admin_call(
    fuzz: Fuzzer,
    creds: Credentials,
    surface: str,
    service: str,
    body: bytes,
    *,
    target: str = "/",
    headers: Mapping[str, str] | None = None,
) -> Call:
    """A call signed with the admin access key for ``service`` (signed now: send it soon)."""
    base = {"Host": fuzz.host_header, **(headers or {})}
    signer = Signer(creds, service, fuzz.url)
    sent = signer.headers("admin", "POST", target, body, base)
    amz_target = base.get("X-Amz-Target", "")
    route = f"POST {target.split('?', 1)[0][:60]} {amz_target}".rstrip()
    return Call(surface, route, "POST", target, tuple(sent), body, auth="sigv4:admin")
