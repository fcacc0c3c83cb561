"""Verifying AWS Signature Version 4, so boto3 and the AWS CLI can call facelens unchanged.

Every AWS SDK signs its requests with SigV4: an HMAC-SHA256 over a canonical
form of the request, keyed by a key derived from the secret, the date, the
region and the service. The server recomputes the same signature from the
request it received and the secret it holds (see :mod:`facelens.access.keys`),
and compares the two in constant time. Nothing about the secret crosses the
wire, and a signature covers the method, path, query, the headers the client
chose to sign and the body's SHA-256, so a captured request cannot be altered.

What must be signed: ``host``, ``content-type`` when the request has one, and
every ``x-amz-*`` header it carries (``x-amz-date``, ``x-amz-target``, which
names the operation on ``POST /``, ``x-amz-security-token``,
``x-amz-content-sha256``), as AWS's SigV4 specification asks. Otherwise a
request signed for ``host;x-amz-date`` only could have its operation swapped
in transit (DescribeCollection into DeleteCollection) and still verify. A
request that signs too little is refused with IncompleteSignatureException
(400), AWS's answer to an Authorization header that lacks a required part.
botocore (boto3, the AWS CLI) signs every header but a few hop-by-hop and
tracing ones (``user-agent``, ``expect``, ``x-amzn-trace-id``…), so what it
sends always qualifies.

Replays of requests that change something are refused by :mod:`facelens.api.aws.replays`
(:func:`authenticate` claims the signature once verified).

Supported: the ``Authorization`` header form (``AWS4-HMAC-SHA256
Credential=…, SignedHeaders=…, Signature=…``) with ``X-Amz-Date`` (or
``Date``), and ``x-amz-content-sha256`` when it is the body's hex digest.
Not supported, and refused: presigned URLs (``X-Amz-Signature`` in the
query), chunked uploads (``STREAMING-…``) and ``UNSIGNED-PAYLOAD``, SigV4a.
An ``X-Amz-Security-Token`` is signed like any header but not checked:
facelens issues long-term keys only, and the signature with our secret is
what proves the caller.

The canonical request follows AWS's specification for services other than
S3: the path is normalised (dot segments and empty segments removed) and
percent-encoded once more on top of the encoding it arrived with; query
names and values are decoded, re-encoded with only ``A-Za-z0-9-_.~`` left
bare, and sorted; header names are lower-cased, values trimmed with inner
runs of spaces collapsed, repeated headers joined with commas.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

from pydantic import SecretStr

from facelens.access.keys import Principal
from facelens.api.aws.replays import ReplayCache
from facelens.api.security import FailureLimiter
from facelens.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
"""How far a request's time may be from ours, either way (AWS's own limit)."""

AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_UNRESERVED = "-_.~"
_TERMINATOR = "aws4_request"

KeyLookup = Callable[[str], tuple[Principal, SecretStr] | None]
"""An access key id -> its principal and secret, or None (``KeyStore.access_key``)."""


@dataclass(frozen=True)
class SignedRequest:
    """An HTTP request as it arrived.

    ``path`` and ``query_string`` are exactly as sent (still percent-encoded:
    ASGI's ``raw_path`` and ``query_string``); ``headers`` are (name, value)
    pairs in any case, a repeated name once per value; ``body`` is the whole body.
    """

    method: str
    path: str
    query_string: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in the order received."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Authorization:
    """The parts of a SigV4 ``Authorization`` header."""

    access_key_id: str
    date: str
    """The credential scope's day, ``yyyymmdd``."""
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{_TERMINATOR}"


def parse_authorization(header: str) -> Authorization:
    """The parts of ``header``; IncompleteSignatureException when it is not SigV4's form."""
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureException(
            f"Only {ALGORITHM} signatures (AWS Signature Version 4) are accepted here"
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if not fields.get(n)]
    if missing:
        raise IncompleteSignatureException(
            f"Authorization header requires the {', '.join(missing)} parameter(s)"
        )
    credential = fields["Credential"].split("/")
    if len(credential) != 5 or not all(credential) or credential[4] != _TERMINATOR:
        raise IncompleteSignatureException(
            "Credential must have the form ACCESS_KEY_ID/yyyymmdd/region/service/aws4_request"
        )
    signed = tuple(fields["SignedHeaders"].split(";"))
    if any(not h or h != h.strip().lower() for h in signed):
        raise IncompleteSignatureException("SignedHeaders must be lower-case names joined by ';'")
    access_key_id, date, region, service, _ = credential
    return Authorization(access_key_id, date, region, service, signed, fields["Signature"])


def canonical_uri(path: str) -> str:
    """The path, dot and empty segments removed, percent-encoded once more (not S3's rule)."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    normalized = "/" + "/".join(segments)
    if segments and path.endswith("/"):
        normalized += "/"
    return quote(normalized, safe="/~")


def canonical_query(query_string: str) -> str:
    """Names and values decoded, re-encoded AWS's way, sorted by name then value."""
    if not query_string:
        return ""
    pairs = []
    for item in query_string.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append(
            (quote(unquote(name), safe=_UNRESERVED), quote(unquote(value), safe=_UNRESERVED))
        )
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_headers(request: SignedRequest, signed_headers: tuple[str, ...]) -> str:
    """``name:value`` lines for the signed headers, each line ending in a newline.

    A signed header the request lacks cannot have been signed by this request:
    InvalidSignatureException.
    """
    lines = []
    for name in sorted(set(signed_headers)):
        values = request.header_values(name)
        if not values:
            raise InvalidSignatureException(f"The signed header {name!r} is not in the request")
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
    return "".join(lines)


def canonical_request(
    request: SignedRequest, signed_headers: tuple[str, ...], payload_hash: str
) -> str:
    return "\n".join(
        (
            request.method.upper(),
            canonical_uri(request.path),
            canonical_query(request.query_string),
            canonical_headers(request, signed_headers),
            ";".join(sorted(set(signed_headers))),
            payload_hash,
        )
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """HMAC chain: "AWS4"+secret -> day -> region -> service -> "aws4_request"."""
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, _TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def signature(secret: str, auth: Authorization, amz_date: str, canonical: str) -> str:
    key = signing_key(secret, auth.date, auth.region, auth.service)
    to_sign = string_to_sign(amz_date, auth.scope, canonical)
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def verify(
    request: SignedRequest,
    *,
    lookup: KeyLookup,
    region: str,
    service: str,
    now: datetime,
) -> Principal:
    """The principal whose access key signed ``request``; raises why not otherwise.

    ``now`` is an aware datetime (the server's clock). Errors, as AWS names them:
    no Authorization header: MissingAuthenticationTokenException; a malformed
    one, or one whose SignedHeaders leave out host, content-type or an
    ``x-amz-*`` header of the request: IncompleteSignatureException; an unknown access key:
    UnrecognizedClientException; a wrong scope, a time more than 15 minutes
    off, a payload hash or signature that does not match:
    InvalidSignatureException.
    """
    return _verify(request, lookup=lookup, region=region, service=service, now=now)[0]


def _verify(
    request: SignedRequest,
    *,
    lookup: KeyLookup,
    region: str,
    service: str,
    now: datetime,
) -> tuple[Principal, Authorization, datetime]:
    """:func:`verify`, also giving the parsed header and the request's signed time."""
    header = request.header("authorization")
    if header is None or not header.strip():
        if "x-amz-signature=" in request.query_string.lower():
            raise IncompleteSignatureException("Presigned URLs are not supported here")
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    auth = parse_authorization(header)
    _require_signed(request, auth)
    amz_date, request_time = _request_time(request, auth)
    if auth.region != region or auth.service != service:
        raise InvalidSignatureException(
            f"Credential should be scoped to a valid region and service: "
            f"expected {region}/{service}, got {auth.region}/{auth.service}"
        )
    if amz_date[:8] != auth.date:
        raise InvalidSignatureException(
            f"Credential should be scoped to the request's date {amz_date[:8]}, not {auth.date}"
        )
    if abs(now - request_time) > MAX_SKEW:
        earliest = (now - MAX_SKEW).strftime(AMZ_DATE_FORMAT)
        raise InvalidSignatureException(
            f"Signature expired: {amz_date} is now earlier than {earliest} "
            f"({now.strftime(AMZ_DATE_FORMAT)} - 15 min.)"
            if request_time < now
            else f"Signature not yet current: {amz_date} is still later than "
            f"{(now + MAX_SKEW).strftime(AMZ_DATE_FORMAT)} "
            f"({now.strftime(AMZ_DATE_FORMAT)} + 15 min.)"
        )
    payload_hash = _payload_hash(request)
    found = lookup(auth.access_key_id)
    if found is None:
        raise UnrecognizedClientException("The security token included in the request is invalid.")
    principal, secret = found
    expected = signature(
        secret.get_secret_value(),
        auth,
        amz_date,
        canonical_request(request, auth.signed_headers, payload_hash),
    )
    if not hmac.compare_digest(expected.encode(), auth.signature.encode("utf-8", "replace")):
        raise InvalidSignatureException(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return principal, auth, request_time


def authenticate(
    request: SignedRequest,
    *,
    lookup: KeyLookup,
    limiter: FailureLimiter,
    client: str,
    region: str,
    service: str,
    now: datetime | None = None,
    replays: ReplayCache | None = None,
    repeatable: bool = False,
) -> Principal:
    """:func:`verify`, behind the per-client failure limit shared with API keys.

    A client over the limit is refused before any work (ThrottlingException);
    every failed verification counts, except a request with no signature at
    all (it guesses nothing, as an unauthenticated REST call counts nothing).

    ``replays``: given for a request that changes something
    (:func:`facelens.api.aws.replays.mutating`); its signature, once verified, is
    accepted once (:meth:`ReplayCache.claim`;
    ``repeatable`` as there). A refused repeat is not counted as a failure:
    it guesses nothing, and a legitimate client's same-second repeat looks
    just like one. Reads pass None and may be repeated.
    """
    limiter.check(client)
    now = now or datetime.now(UTC)
    try:
        principal, auth, request_time = _verify(
            request, lookup=lookup, region=region, service=service, now=now
        )
    except MissingAuthenticationTokenException:
        raise
    except (UnrecognizedClientException, InvalidSignatureException):
        limiter.failed(client)
        raise
    if replays is not None:
        replays.claim(
            auth.signature, expires=request_time + MAX_SKEW, now=now, repeatable=repeatable
        )
    return principal


def _require_signed(request: SignedRequest, auth: Authorization) -> None:
    """IncompleteSignatureException unless host, the content type and every ``x-amz-*``
    header of the request are signed: an unsigned one could be changed in transit."""
    present = {name.lower() for name, _ in request.headers}
    required = {"host"} | {
        name for name in present if name.startswith("x-amz-") or name == "content-type"
    }
    missing = sorted(required - set(auth.signed_headers))
    if missing:
        raise IncompleteSignatureException(
            f"SignedHeaders must include {';'.join(missing)}: host, content-type and every "
            "x-amz-* header of the request must be signed"
        )


def _request_time(request: SignedRequest, auth: Authorization) -> tuple[str, datetime]:
    """The signed request time as ``yyyymmddThhmmssZ`` and as an aware datetime."""
    amz_date = request.header("x-amz-date")
    if amz_date is not None:
        if "x-amz-date" not in auth.signed_headers:
            raise IncompleteSignatureException("SignedHeaders must include x-amz-date")
        try:
            when = datetime.strptime(amz_date.strip(), AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise IncompleteSignatureException(
                f"X-Amz-Date must have the form yyyyMMddTHHmmssZ, got {amz_date!r}"
            ) from None
        return amz_date.strip(), when
    date = request.header("date")
    if date is None or "date" not in auth.signed_headers:
        raise IncompleteSignatureException(
            "A signed X-Amz-Date (or Date) header is required for a SigV4 signature"
        )
    try:
        when = parsedate_to_datetime(date).astimezone(UTC)
    except (TypeError, ValueError):
        raise IncompleteSignatureException(f"Date is not an HTTP date: {date!r}") from None
    return when.strftime(AMZ_DATE_FORMAT), when


def _payload_hash(request: SignedRequest) -> str:
    """The body's SHA-256 (hex); a declared ``x-amz-content-sha256`` must be that very hash."""
    actual = hashlib.sha256(request.body).hexdigest()
    declared = request.header("x-amz-content-sha256")
    if declared is None:
        return actual
    declared = declared.strip()
    if declared == "UNSIGNED-PAYLOAD" or declared.startswith("STREAMING-"):
        raise InvalidSignatureException(
            f"x-amz-content-sha256 {declared} is not supported: sign the payload's SHA-256"
        )
    if not hmac.compare_digest(declared.lower().encode("utf-8", "replace"), actual.encode()):
        raise InvalidSignatureException(
            "The provided x-amz-content-sha256 header does not match what was computed"
        )
    return declared
