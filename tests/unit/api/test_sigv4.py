"""SigV4 verification against botocore's own signer: what boto3 signs, facelens accepts.

Each request is signed by ``botocore.auth.SigV4Auth`` exactly as boto3
signs it, then handed to :func:`facelens.api.aws.sigv4.verify` the way the
server sees it (raw path and query, a Host header as HTTP clients add it).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode_sequence
from pydantic import SecretStr

from facelens.access.keys import Principal, Role
from facelens.api.aws.replays import ReplayCache, mutating, repeatable
from facelens.api.aws.sigv4 import SignedRequest, authenticate, canonical_query, verify
from facelens.api.security import FailureLimiter
from facelens.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    SignatureReusedException,
    ThrottlingException,
    TooManyFailedAuthenticationsException,
    UnrecognizedClientException,
)

KEY_ID = "AKFLTESTKEY000000001"
SECRET = "s3cr3t/with+special=chars"
PRINCIPAL = Principal(name="sdk", role=Role.ADMIN, key_id=KEY_ID)
REGION = "us-east-1"
SERVICE = "rekognition"
URL = "http://127.0.0.1:8080/"
BODY = b'{"CollectionId": "friends"}'
TARGET = "RekognitionService.CreateCollection"


def lookup(access_key_id: str) -> tuple[Principal, SecretStr] | None:
    return (PRINCIPAL, SecretStr(SECRET)) if access_key_id == KEY_ID else None


def sign(
    *,
    url: str = URL,
    method: str = "POST",
    body: bytes = BODY,
    headers: dict[str, str] | None = None,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    region: str = REGION,
    service: str = SERVICE,
    unsigned: dict[str, str] | None = None,
) -> SignedRequest:
    """The request botocore signs, as the server receives it; ``unsigned`` headers are
    added after signing (as a proxy, or an attacker, would add them)."""
    sent = {"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"}
    sent.update(headers or {})
    request = AWSRequest(method=method, url=url, data=body, headers=sent)
    SigV4Auth(Credentials(key_id, secret), service, region).add_auth(request)
    parts = urlsplit(url)
    pairs = [(name, str(value)) for name, value in request.headers.items()]
    pairs.append(("host", parts.netloc))
    pairs.extend((unsigned or {}).items())
    return SignedRequest(method, parts.path or "/", parts.query, tuple(pairs), body)


def check(request: SignedRequest, *, now: datetime | None = None) -> Principal:
    return verify(
        request, lookup=lookup, region=REGION, service=SERVICE, now=now or datetime.now(UTC)
    )


def replace_header(request: SignedRequest, name: str, value: str) -> SignedRequest:
    headers = tuple((k, value if k.lower() == name else v) for k, v in request.headers)
    return SignedRequest(request.method, request.path, request.query_string, headers, request.body)


def test_a_botocore_signature_verifies() -> None:
    assert check(sign()) == PRINCIPAL


def test_aws_test_suite_get_vanilla() -> None:
    # AWS's published SigV4 test vector "get-vanilla" (secret, time and signature from the suite)
    request = SignedRequest(
        "GET",
        "/",
        "",
        (
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                "SignedHeaders=host;x-amz-date, "
                "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
        ),
        b"",
    )
    principal = Principal("suite", Role.READ, "AKIDEXAMPLE")
    found = verify(
        request,
        lookup=lambda _: (principal, SecretStr("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")),
        region="us-east-1",
        service="service",
        now=datetime(2015, 8, 30, 12, 40, tzinfo=UTC),
    )
    assert found == principal


def test_a_tampered_body_is_refused() -> None:
    good = sign()
    tampered = SignedRequest(
        good.method, good.path, good.query_string, good.headers, b'{"CollectionId": "other"}'
    )
    with pytest.raises(InvalidSignatureException):
        check(tampered)


def test_a_tampered_signed_header_is_refused() -> None:
    tampered = replace_header(sign(), "x-amz-target", "RekognitionService.DeleteCollection")
    with pytest.raises(InvalidSignatureException):
        check(tampered)


def test_an_unsigned_header_may_change() -> None:
    good = sign()
    extra = SignedRequest(
        good.method, good.path, good.query_string, (*good.headers, ("X-Other", "x")), good.body
    )
    assert check(extra) == PRINCIPAL


def test_header_whitespace_is_canonicalised() -> None:
    request = sign(headers={"X-Amz-Meta-Note": "two  spaced   words"})
    assert check(request) == PRINCIPAL


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignatureException, match="does not match"):
        check(sign(secret="not-the-secret"))


def test_an_unknown_access_key_is_refused() -> None:
    with pytest.raises(UnrecognizedClientException, match="security token"):
        check(sign(key_id="AKFLUNKNOWN000000000"))


def test_an_old_signature_has_expired() -> None:
    request = sign()
    assert check(request, now=datetime.now(UTC) + timedelta(minutes=14)) == PRINCIPAL
    with pytest.raises(InvalidSignatureException, match="Signature expired"):
        check(request, now=datetime.now(UTC) + timedelta(minutes=16))


def test_a_signature_from_the_future_is_refused() -> None:
    with pytest.raises(InvalidSignatureException, match="not yet current"):
        check(sign(), now=datetime.now(UTC) - timedelta(minutes=16))


@pytest.mark.parametrize(("region", "service"), [("eu-west-1", SERVICE), (REGION, "s3")])
def test_a_wrong_scope_is_refused(region: str, service: str) -> None:
    with pytest.raises(InvalidSignatureException, match="scoped"):
        check(sign(region=region, service=service))


QUERIES = [
    [("b", "2"), ("a", "1")],
    [("name", "with space"), ("plus", "a+b"), ("slash", "a/b"), ("eq", "x=y&z")],
    [("unicode", "caf\u00e9 \u2713"), ("tilde~", "-_.~"), ("empty", "")],
    [("a", "2"), ("a", "1"), ("A", "0")],
]


@pytest.mark.parametrize("query", QUERIES)
def test_query_strings_with_special_characters(query: list[tuple[str, str]]) -> None:
    url = f"http://127.0.0.1:8080/some%20path/x?{percent_encode_sequence(query)}"
    request = sign(url=url, method="GET", body=b"")
    assert check(request) == PRINCIPAL
    changed = SignedRequest(
        request.method, request.path, request.query_string + "&z=1", request.headers, b""
    )
    with pytest.raises(InvalidSignatureException):
        check(changed)


def test_canonical_query_sorts_and_reencodes() -> None:
    assert canonical_query("b=2&a=%7e&a=1&c") == "a=1&a=~&b=2&c="


def test_a_matching_content_sha256_is_accepted_and_a_wrong_one_refused() -> None:
    digest = hashlib.sha256(BODY).hexdigest()
    assert check(sign(headers={"X-Amz-Content-SHA256": digest})) == PRINCIPAL
    wrong = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(InvalidSignatureException, match="x-amz-content-sha256"):
        check(sign(headers={"X-Amz-Content-SHA256": wrong}))


def test_unsigned_and_streaming_payloads_are_not_supported() -> None:
    for declared in ("UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):
        with pytest.raises(InvalidSignatureException, match="not supported"):
            check(sign(headers={"X-Amz-Content-SHA256": declared}))


def test_no_authorization_header() -> None:
    with pytest.raises(MissingAuthenticationTokenException):
        check(SignedRequest("POST", "/", "", (("host", "127.0.0.1:8080"),), BODY))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer fl_abc_def",
        "AWS4-HMAC-SHA256 Credential=AKFL/20240101/us-east-1/rekognition/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKFL/us-east-1/rekognition, SignedHeaders=host, Signature=0",
    ],
)
def test_a_malformed_authorization_header(header: str) -> None:
    request = replace_header(sign(), "authorization", header)
    with pytest.raises(IncompleteSignatureException):
        check(request)


def test_failures_count_against_the_client_and_throttle_it() -> None:
    limiter = FailureLimiter(2)

    def attempt(request: SignedRequest, client: str = "10.0.0.1") -> Principal:
        return authenticate(
            request, lookup=lookup, limiter=limiter, client=client, region=REGION, service=SERVICE
        )

    unsigned = SignedRequest("POST", "/", "", (("host", "127.0.0.1:8080"),), BODY)
    for _ in range(3):  # no signature at all guesses nothing: not counted
        with pytest.raises(MissingAuthenticationTokenException):
            attempt(unsigned)
    assert attempt(sign()) == PRINCIPAL
    with pytest.raises(InvalidSignatureException):
        attempt(sign(secret="wrong"))
    with pytest.raises(UnrecognizedClientException):
        attempt(sign(key_id="AKFLUNKNOWN000000000"))
    with pytest.raises(TooManyFailedAuthenticationsException):
        attempt(sign())  # even a good signature waits out the minute
    assert attempt(sign(), client="10.0.0.2") == PRINCIPAL


def sign_partly(signed: dict[str, str], unsigned: dict[str, str]) -> SignedRequest:
    """A request signed by botocore with only ``signed`` headers (and host, x-amz-date),
    then given ``unsigned`` headers: what a client that signs too little sends, or what
    an attacker makes of its request."""
    request = AWSRequest(method="POST", url=URL, data=BODY, headers=signed)
    SigV4Auth(Credentials(KEY_ID, SECRET), SERVICE, REGION).add_auth(request)
    pairs = [(name, str(value)) for name, value in request.headers.items()]
    pairs.append(("host", urlsplit(URL).netloc))
    pairs.extend(unsigned.items())
    return SignedRequest("POST", "/", "", tuple(pairs), BODY)


def test_a_target_outside_the_signature_is_refused() -> None:
    # Signed for host and x-amz-date only: the operation could be swapped in transit.
    request = sign_partly({}, {"X-Amz-Target": "RekognitionService.DeleteCollection"})
    assert "SignedHeaders=host;x-amz-date," in (request.header("authorization") or "")
    with pytest.raises(IncompleteSignatureException, match="x-amz-target"):
        check(request)


def test_an_unsigned_content_type_is_refused() -> None:
    request = sign_partly({"X-Amz-Target": TARGET}, {"Content-Type": "application/json"})
    with pytest.raises(IncompleteSignatureException, match="content-type"):
        check(request)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Amz-Security-Token", "session-token"),
        ("X-Amz-Content-SHA256", hashlib.sha256(BODY).hexdigest()),
        ("X-Amz-Meta-Anything", "x"),
    ],
)
def test_every_x_amz_header_must_be_signed(header: str, value: str) -> None:
    assert check(sign(headers={header: value})) == PRINCIPAL  # signed: fine
    with pytest.raises(IncompleteSignatureException, match=header.lower()):
        check(sign(unsigned={header: value}))


def test_a_body_without_content_type_needs_no_content_type_signed() -> None:
    # The body itself is always covered (its SHA-256 is in the canonical request).
    request = AWSRequest(method="POST", url=URL, data=BODY, headers={"X-Amz-Target": TARGET})
    SigV4Auth(Credentials(KEY_ID, SECRET), SERVICE, REGION).add_auth(request)
    pairs = (*((k, str(v)) for k, v in request.headers.items()), ("host", "127.0.0.1:8080"))
    assert check(SignedRequest("POST", "/", "", pairs, BODY)) == PRINCIPAL


@pytest.mark.parametrize(
    ("operation", "changes"),
    [
        ("CreateCollection", True),
        ("DeleteCollection", True),
        ("IndexFaces", True),
        ("AssociateFaces", True),
        ("PutItem", True),
        ("CreateTable", True),
        ("SomethingNew", True),
        ("DescribeCollection", False),
        ("ListFaces", False),
        ("GetItem", False),
        ("SearchFacesByImage", False),
        ("Scan", False),
        ("Query", False),
        ("CompareFaces", False),
        ("DetectFaces", False),
    ],
)
def test_which_operations_are_mutating(operation: str, changes: bool) -> None:
    assert mutating(operation) is changes


@pytest.mark.parametrize(
    ("operation", "twice_is_once"),
    [
        ("CreateCollection", True),
        ("DeleteCollection", True),
        ("PutItem", True),
        ("DeleteFaces", True),
        ("AssociateFaces", True),
        ("IndexFaces", False),
        ("SomethingNew", False),
    ],
)
def test_which_operations_are_repeatable(operation: str, twice_is_once: bool) -> None:
    assert repeatable(operation) is twice_is_once


def attempt_once(
    request: SignedRequest,
    replays: ReplayCache | None,
    *,
    now: datetime | None = None,
    limiter: FailureLimiter | None = None,
    repeatable: bool = False,
) -> Principal:
    return authenticate(
        request,
        lookup=lookup,
        limiter=limiter or FailureLimiter(100),
        client="10.0.0.1",
        region=REGION,
        service=SERVICE,
        now=now,
        replays=replays,
        repeatable=repeatable,
    )


def test_a_mutating_request_is_accepted_once() -> None:
    replays = ReplayCache()
    request = sign()
    assert attempt_once(request, replays) == PRINCIPAL
    with pytest.raises(SignatureReusedException, match="already been used"):
        attempt_once(request, replays)
    # Unsigned headers changed, same signature: still the same request.
    with pytest.raises(SignatureReusedException, match="already been used"):
        attempt_once(replace_header(request, "user-agent", "other"), replays)
    # Anything signed that differs (in practice: a later X-Amz-Date) makes a new signature.
    assert attempt_once(sign(headers={"X-Amz-Meta-Attempt": "2"}), replays) == PRINCIPAL


def test_a_replay_is_refused_as_throttling_and_not_counted_as_a_failure() -> None:
    # Retryable (botocore signs again and succeeds); not a guess, so no failure counted.
    replays = ReplayCache()
    limiter = FailureLimiter(1)
    request = sign()
    assert attempt_once(request, replays, limiter=limiter) == PRINCIPAL
    for _ in range(3):
        with pytest.raises(SignatureReusedException, match="already been used") as refused:
            attempt_once(request, replays, limiter=limiter)
        assert not isinstance(refused.value, TooManyFailedAuthenticationsException)
    assert attempt_once(sign(headers={"X-Amz-Meta-Attempt": "2"}), replays, limiter=limiter)


def test_a_read_may_be_repeated() -> None:
    request = sign()
    for _ in range(3):  # no cache given: the caller judged the request a read
        assert attempt_once(request, None) == PRINCIPAL


def test_a_failed_signature_is_not_remembered() -> None:
    replays = ReplayCache()
    with pytest.raises(InvalidSignatureException, match="does not match"):
        attempt_once(sign(secret="wrong"), replays)
    assert len(replays) == 0


def test_a_used_signature_is_remembered_for_its_whole_validity() -> None:
    replays = ReplayCache()
    request = sign()
    start = datetime.now(UTC)
    assert attempt_once(request, replays, now=start) == PRINCIPAL
    with pytest.raises(SignatureReusedException, match="already been used"):
        attempt_once(request, replays, now=start + timedelta(minutes=14))


def test_an_immediate_duplicate_of_a_repeatable_operation_is_accepted() -> None:
    # A client sending CreateCollection twice within a second sends one signature twice;
    # the duplicate meets ResourceAlreadyExistsException, as it would from AWS.
    replays = ReplayCache()
    request = sign()
    start = datetime.now(UTC)
    for seconds in (0, 1, 2):
        when = start + timedelta(seconds=seconds)
        assert attempt_once(request, replays, now=when, repeatable=True) == PRINCIPAL
    # Later than REPEAT_GRACE after the first use: a replay.
    with pytest.raises(SignatureReusedException, match="already been used"):
        attempt_once(request, replays, now=start + timedelta(seconds=3), repeatable=True)


def test_a_repeat_after_another_change_is_refused() -> None:
    # A captured DeleteCollection, sent again after its owner made the collection again.
    replays = ReplayCache()
    delete = sign(headers={"X-Amz-Target": "RekognitionService.DeleteCollection"})
    assert attempt_once(delete, replays, repeatable=True) == PRINCIPAL
    create = sign()  # CreateCollection
    assert attempt_once(create, replays, repeatable=True) == PRINCIPAL
    with pytest.raises(SignatureReusedException, match="already been used"):
        attempt_once(delete, replays, repeatable=True)


def test_an_operation_that_adds_each_time_is_never_repeated() -> None:
    replays = ReplayCache()
    index = sign(headers={"X-Amz-Target": "RekognitionService.IndexFaces"})
    assert attempt_once(index, replays) == PRINCIPAL
    with pytest.raises(SignatureReusedException, match="already been used"):
        attempt_once(index, replays)


def test_used_signatures_are_forgotten_when_they_expire() -> None:
    replays = ReplayCache()
    now = datetime.now(UTC)
    replays.claim("a", expires=now + timedelta(minutes=1), now=now)
    replays.claim("b", expires=now + timedelta(minutes=2), now=now)
    assert len(replays) == 2
    replays.claim("c", expires=now + timedelta(minutes=3), now=now + timedelta(seconds=61))
    assert len(replays) == 2  # "a" expired (its request would be refused as too old anyway)


def test_a_full_cache_refuses_rather_than_forgets() -> None:
    replays = ReplayCache(limit=2)
    now = datetime.now(UTC)
    expires = now + timedelta(minutes=1)
    replays.claim("a", expires=expires, now=now)
    replays.claim("b", expires=expires, now=now)
    with pytest.raises(ThrottlingException, match="signed requests"):
        replays.claim("c", expires=expires, now=now)
    with pytest.raises(SignatureReusedException, match="already been used"):
        replays.claim("a", expires=expires, now=now)  # still remembered, not evicted
    replays.claim("c", expires=now + timedelta(minutes=2), now=now + timedelta(seconds=61))
    assert len(replays) == 1
