"""Fuzz: the REST API under ``/api/v1``, every route, with generated paths, queries and bodies."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from facelens.people.matching import THRESHOLD_ATTRIBUTE
from tests.fuzz.calls import (
    JSON_TYPES,
    Route,
    bearer,
    bearer_call,
    content_type_header,
    extra_headers,
    json_body,
    path_for,
)
from tests.fuzz.conftest import Run
from tests.fuzz.forms import Part, multipart, multipart_body
from tests.fuzz.harness import Fuzzer
from tests.fuzz.images import png
from tests.fuzz.strategies import (
    JSON_SCALARS,
    LONE,
    both_encodings,
    dumps,
    json_values,
    mostly,
    query_string,
    text,
)
from tests.fuzz.wire import Call
from tests.fuzz.world import COLLECTION, USER, Credentials, World

C = "/api/v1/collections/{c}"
NUMBERS = st.sampled_from(["1", "0", "-1", "100", "4097", "1e3", "nan", "inf", "", "x", "9" * 30])
THRESHOLDS = st.sampled_from(["80", "0", "100", "100.0001", "-0", "nan", "-inf", "1e309", ""])


def routes(world: World) -> list[Route]:
    ids = mostly(st.sampled_from(world.ids), text())
    face_ids = st.lists(ids, max_size=5) | st.lists(st.just(world.ids[2]), max_size=200)
    profile = json_values(keys=["Name", "UserId", "FaceId", THRESHOLD_ATTRIBUTE])
    return [
        Route("GET", "/api/v1/health"),
        Route("GET", "/api/v1/metrics"),
        Route("GET", "/api/v1/collections", ("max_results", "next_token")),
        Route("POST", "/api/v1/collections", json={"CollectionId": ids}),
        Route("GET", C),
        Route("DELETE", C),
        Route(
            "POST",
            C + "/faces",
            files=("image",),
            form={
                "ExternalImageId": text(),
                "MaxFaces": NUMBERS,
                "QualityFilter": st.sampled_from(["AUTO", "NONE", "LOW", "x"]),
            },
        ),
        Route("GET", C + "/faces", ("max_results", "next_token", "user_id")),
        Route("DELETE", C + "/faces/{f}"),
        Route(
            "POST",
            C + "/faces/search",
            files=("image",),
            form={"MaxFaces": NUMBERS, "FaceMatchThreshold": THRESHOLDS},
        ),
        Route("POST", C + "/identify", ("faces",), files=("image",)),
        Route("GET", C + "/users", ("max_results", "next_token")),
        Route("POST", C + "/users", json={"UserId": ids}),
        Route("POST", C + "/users/{u}/faces", json={"FaceIds": face_ids}),
        Route("DELETE", C + "/users/{u}", ("forget",)),
        Route(
            "POST",
            C + "/users/search",
            files=("image",),
            form={"MaxUsers": NUMBERS, "UserMatchThreshold": THRESHOLDS},
        ),
        Route("GET", C + "/strangers"),
        Route("GET", C + "/strangers/{s}"),
        Route(
            "POST",
            C + "/strangers/{s}/name",
            json={"UserId": ids, "Profile": profile, "Extend": st.booleans() | JSON_SCALARS},
        ),
        Route("POST", C + "/strangers/{s}/merge", json={"Other": ids}),
        Route("POST", C + "/strangers/{s}/split", json={"FaceIds": face_ids}),
        Route("GET", "/api/v1/profiles", ("max_results", "next_token")),
        Route("GET", "/api/v1/profiles/{p}"),
        Route("PUT", "/api/v1/profiles/{p}", json={}, open_json=True),
        Route("PATCH", "/api/v1/profiles/{p}", json={}, open_json=True),
        Route("DELETE", "/api/v1/profiles/{p}"),
        Route("GET", "/api/v1/profiles/{p}/threshold"),
        Route(
            "PUT",
            "/api/v1/profiles/{p}/threshold",
            json={
                THRESHOLD_ATTRIBUTE: st.sampled_from([80, 50, 49.9, 100, 101, -1]) | JSON_SCALARS
            },
        ),
        Route("DELETE", "/api/v1/profiles/{p}/threshold"),
        Route(
            "GET",
            "/api/v1/identifications",
            ("status", "camera", "user_id", "max_results", "next_token"),
        ),
        Route("GET", "/api/v1/identifications/unknown", ("max_results", "next_token")),
        Route("POST", "/api/v1/identifications/{r}/reject", json={"PersonId": ids}),
        Route("GET", "/api/v1/corrections", ("person", "collection_id")),
        Route("DELETE", "/api/v1/corrections/{x}"),
        Route(
            "GET",
            "/api/v1/audit",
            ("actor", "action", "target", "since", "max_results", "next_token"),
        ),
        Route("DELETE", "/api/v1/people/{p}", ("collection_id",)),
    ]


@st.composite
def rest_calls(draw: st.DrawFn, fuzz: Fuzzer, creds: Credentials, world: World) -> Call:
    route = draw(st.sampled_from(routes(world)))
    method = (
        route.method
        if draw(st.integers(0, 15))
        else draw(
            st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE"])
        )
    )
    target = draw(path_for(route.template, world.ids)) + draw(query_string(route.query))
    auth, headers = draw(bearer(creds))
    headers = [("Host", fuzz.host_header), *headers, *draw(extra_headers())]
    body = b""
    if route.json is not None:
        body = draw(json_body(route.json, open_object=route.open_json))
        headers += content_type_header(draw(st.sampled_from(JSON_TYPES)))
    elif route.files:
        body, content_type = draw(
            multipart_body(world.photos, files=route.files, fields=route.form)
        )
        headers.append(("Content-Type", content_type))
    return Call("rest", route.name, method, target, tuple(headers), body, auth=auth)


def b64(data: bytes) -> str:
    return quote(base64.urlsafe_b64encode(data).decode(), safe="")


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


def upload(image: bytes, **fields: str) -> tuple[bytes, str]:
    parts = [Part("image", image, "x.png", "image/png")]
    parts += [Part(k, v.encode()) for k, v in fields.items()]
    return multipart(parts, "fuzzboundary"), "multipart/form-data; boundary=fuzzboundary"


def surrogate_sweep(call: Any, world: World) -> list[Call]:
    """Every JSON route once with every field a lone surrogate (as an escape and as raw
    bytes), on ids that exist: whatever reaches a store unvalidated shows as a 500."""
    names = {
        "c": COLLECTION,
        "u": USER,
        "p": USER,
        "f": world.ids[2],
        "r": world.ids[4],
        "s": (world.strangers or ["stranger-1"])[0],
        "x": "00000000-0000-4000-8000-000000000000",
    }
    calls = []
    for route in routes(world):
        if route.json is None:
            continue
        target = route.template.format(**names)
        document: dict[str, Any] = {name: LONE for name in route.json}
        if route.open_json:
            document = {LONE: LONE, "Name": LONE}
        for value in (document, {name: [LONE] for name in route.json}):
            calls += [call(route.method, target, body) for body in both_encodings(value)]
    return calls


def classics(fuzz: Fuzzer, creds: Credentials, world: World) -> list[Call]:
    """Inputs that broke (or nearly broke) the API once: sent first, every run."""

    def call(method: str, target: str, body: bytes = b"", **kw: Any) -> Call:
        return bearer_call(fuzz, creds, method, target, body, **kw)

    huge, negative = b64(b"9" * 400), b64(b"-" + b"9" * 30)
    cursors = [b64(b'["0001-01-01T00:00:00", ""]'), b64(b'[1e999, "x"]'), b64(b"[1, 2]"), huge]
    deep = dumps(nested(300))
    photo = world.photos.faces[0]
    calls = [
        call("GET", f"/api/v1/audit?next_token={huge}"),
        call("GET", f"/api/v1/audit?next_token={negative}"),
        call("GET", "/api/v1/audit?since=0001-01-01T00%3A00%3A00%2B14%3A00"),
        call("GET", "/api/v1/audit?since=9999-12-31T23%3A59%3A59-14%3A00"),
        *(call("GET", f"/api/v1/identifications?next_token={c}") for c in cursors),
        call("GET", f"/api/v1/collections?next_token={huge}"),
        call("GET", f"/api/v1/collections/{COLLECTION}/faces?next_token={huge}"),
        call("GET", f"/api/v1/collections/{COLLECTION}/users?next_token={huge}"),
        call("GET", f"/api/v1/profiles?next_token={huge}"),
        call("GET", "/api/v1/collections?max_results=99999999999999999999"),
        call("PUT", "/api/v1/profiles/deep", deep),
        call("GET", "/api/v1/profiles/deep"),
        call("GET", "/api/v1/profiles"),
        call("PATCH", f"/api/v1/profiles/{USER}", deep),
        call("PUT", "/api/v1/profiles/x", b"[" * 100_000),
        call("PUT", "/api/v1/profiles/nul", b'{"Name": "a\\u0000b", "k\\u0000": 1}'),
        call("PATCH", f"/api/v1/profiles/{USER}", b'{"Note": "\\u0000"}'),
        call("PUT", "/api/v1/profiles/x", b'{"a": 1e999999, "b": NaN, "c": -Infinity}'),
        call("POST", "/api/v1/collections", b'{"CollectionId": "\\ud800"}'),
        call("PUT", "/api/v1/profiles/%ED%A0%80", b'{"Name": "\\udfff"}'),
        call("GET", "/api/v1/profiles/%ED%A0%80"),
        *(
            call("POST", f"/api/v1/collections/{COLLECTION}/strangers/{s}/merge", other)
            for s in world.strangers
            for other in (b'{"Other": "\\ud800"}', b'{"Other": "\xed\xa0\x80"}')
        ),
        call("GET", "/api/v1/profiles/%ff%fe"),
        call("DELETE", "/api/v1/people/%2e%2e?collection_id=%2e%2e"),
        call("GET", f"/api/v1/identifications?user_id=%00&camera={'a' * 5000}"),
        # NUL in the history's filters: PostgreSQL cannot bind it (these were 500s there).
        call("GET", "/api/v1/identifications?camera=a%00b"),
        call("GET", "/api/v1/audit?actor=a%00b&target=a%00b"),
        call("POST", "/api/v1/identifications/a%00b/reject", b"{}"),
        # NUL in a person to forget: the collection store on PostgreSQL cannot bind it.
        call("DELETE", "/api/v1/people/a%00b"),
        call("DELETE", f"/api/v1/collections/{COLLECTION}/users/a%00b?forget=true"),
    ]
    calls += surrogate_sweep(call, world)
    for image in (
        png(65_535, 65_535),
        png(0, 0),
        b"",
        photo[: len(photo) // 2],
        photo,
    ):
        body, content_type = upload(image, ExternalImageId="x", MaxFaces="1")
        target = f"/api/v1/collections/{COLLECTION}/faces"
        calls.append(call("POST", target, body, content_type=content_type))
        calls.append(call("POST", target + "/search", body, content_type=content_type))
        identify = target.removesuffix("/faces") + "/identify?faces=all"
        calls.append(call("POST", identify, body, content_type=content_type))
    return calls


def test_rest_api(run_fuzz: Run, fuzz: Fuzzer, credentials: Credentials, world: World) -> None:
    run_fuzz("rest", rest_calls(fuzz, credentials, world), 120, classics(fuzz, credentials, world))
