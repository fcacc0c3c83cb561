"""Fuzz: the dashboard under ``/ui/``: pages with odd queries, and every form with odd fields.

Forms are posted as a browser posts them, from the dashboard's own origin
(the server's ``http://127.0.0.1:PORT``) most of the time, with an admin or
read-only session cookie, and otherwise from a foreign or missing origin, or
without a session. Fields are urlencoded or multipart (photos included),
repeated, missing, overlong, or of any unicode.
"""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import strategies as st

from tests.fuzz.calls import Route, cookie_header, extra_headers, path_for
from tests.fuzz.conftest import Run
from tests.fuzz.forms import field_text, multipart_body
from tests.fuzz.harness import Fuzzer
from tests.fuzz.strategies import DATES, mostly, query_string, text
from tests.fuzz.wire import Call
from tests.fuzz.world import USER, Credentials, World

PAGE_QUERY = ("notice", "error", "undo", "next")


def pages() -> list[Route]:
    return [
        Route("GET", "/ui/", PAGE_QUERY),
        Route("GET", "/ui/login", PAGE_QUERY),
        Route("GET", "/ui/people", PAGE_QUERY),
        Route("GET", "/ui/people/{p}", PAGE_QUERY),
        Route("GET", "/ui/unknown", PAGE_QUERY),
        Route("GET", "/ui/search", PAGE_QUERY),
        Route("GET", "/ui/strangers", PAGE_QUERY),
        Route("GET", "/ui/strangers/{s}", PAGE_QUERY),
        Route("GET", "/ui/cameras", PAGE_QUERY),
        Route("GET", "/ui/feed", ("after",)),
        Route("GET", "/ui/crops/{k}"),
        Route("GET", "/ui/static/{name}"),
        Route("GET", "/"),
        Route("GET", "/docs"),
        Route("GET", "/openapi.json"),
    ]


def forms(world: World) -> list[tuple[Route, dict[str, st.SearchStrategy[str]]]]:
    ids = mostly(st.sampled_from(world.ids), text())
    numbers = st.sampled_from(["80", "50", "49", "100", "101", "", "nan", "-inf", "1e999", "x"])
    nexts = st.sampled_from(["/ui/", "/ui/people", "//evil", "https://evil", "/ui/\\x"]) | text()
    return [
        (Route("POST", "/ui/login"), {"token": text(max_size=250), "next": nexts}),
        (Route("POST", "/ui/logout"), {}),
        (Route("POST", "/ui/people", files=("photos",)), {"name": text(), "user_id": ids}),
        (
            Route("POST", "/ui/people/{p}/profile"),
            {
                "field_name": st.sampled_from(["Name", "UserId", "Born", ""]) | text(),
                "field_value": st.sampled_from(["Ada", "1815", '["x"]', ""]) | text(),
                "remove": st.sampled_from(["0", "1", "99999999999999999999", "-1", ""]) | text(),
            },
        ),
        (Route("POST", "/ui/people/{p}/faces/{f}/delete"), {}),
        (Route("POST", "/ui/people/{p}/delete"), {}),
        (Route("POST", "/ui/unknown/{r}/name"), {"name": text()}),
        (Route("POST", "/ui/search", files=("photo",)), {"threshold": numbers}),
        (Route("POST", "/ui/strangers/{s}/name"), {"name": text()}),
        (Route("POST", "/ui/strangers/{s}/merge"), {"other": ids}),
        (Route("POST", "/ui/strangers/{s}/split"), {"face_id": ids}),
        (Route("POST", "/ui/strangers/{s}/forget"), {}),
        (Route("POST", "/ui/identifications/{r}/reject"), {"next": nexts}),
        (Route("POST", "/ui/corrections/{x}/undo"), {"next": nexts}),
        (
            Route("POST", "/ui/people/{p}/threshold"),
            {"threshold": numbers, "clear": st.sampled_from(["", "1"]), "next": nexts},
        ),
    ]


@st.composite
def page_calls(draw: st.DrawFn, fuzz: Fuzzer, creds: Credentials, world: World) -> Call:
    route = draw(st.sampled_from(pages()))
    target = draw(path_for(route.template, [*world.ids, "style.css", "app.js", "faces/x.jpg"]))
    if route.template == "/ui/feed" and draw(st.booleans()):
        target += "?after=" + quote(draw(st.sampled_from(DATES)), safe="")
    else:
        target += draw(query_string(route.query))
    auth, headers = draw(cookie_header(creds))
    if route.template == "/ui/feed" and draw(st.integers(0, 3)) == 0:
        headers.append(("Last-Event-ID", draw(st.sampled_from(DATES) | text(max_size=30))))
    headers = [("Host", fuzz.host_header), *headers, *draw(extra_headers())]
    return Call("dashboard", route.name, "GET", target, tuple(headers), auth=auth)


@st.composite
def urlencoded(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[str]]) -> bytes:
    pairs: list[str] = []
    for name, values in fields.items():
        for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2, 3]))):
            value = quote(draw(values), safe="", errors="surrogatepass")
            pairs.append(f"{name}={value}")
    if draw(st.integers(0, 6)) == 0:
        pairs.append(draw(st.sampled_from(["%zz=%", "=", "&&", "a" * 3000, "x=%ff%fe"])))
    return "&".join(pairs).encode()


@st.composite
def form_calls(draw: st.DrawFn, fuzz: Fuzzer, creds: Credentials, world: World) -> Call:
    route, fields = draw(st.sampled_from(forms(world)))
    target = draw(path_for(route.template, world.ids))
    auth, headers = draw(cookie_header(creds))
    if route.template == "/ui/logout" and auth in ("admin", "reader"):
        # Logging out the suite's own sessions would log every later case out.
        headers = [("Cookie", creds.spare_cookie)]
    if route.template == "/ui/login":
        auth = "form-token"
        fields = {
            **fields,
            "token": st.sampled_from([creds.admin_token, creds.reader_token]) | fields["token"],
        }
    origin = draw(
        st.sampled_from(
            [
                fuzz.origin,
                fuzz.origin,
                fuzz.origin,
                fuzz.origin,
                None,
                "null",
                "http://evil.example",
            ]
        )
    )
    if origin is not None:
        how = draw(st.sampled_from(["Origin", "Origin", "Referer"]))
        headers.append((how, origin if how == "Origin" else origin + "/ui/"))
    if route.files or draw(st.integers(0, 5)) == 0:
        body, content_type = draw(
            multipart_body(world.photos, files=route.files, fields=fields or {"x": field_text()})
        )
    else:
        body = draw(urlencoded(fields))
        content_type = draw(
            st.sampled_from(["application/x-www-form-urlencoded"] * 4 + ["", "text/plain"])
        )
    headers = [("Host", fuzz.host_header), *headers, ("Content-Type", content_type)]
    headers += draw(extra_headers())
    return Call("dashboard", route.name, "POST", target, tuple(headers), body, auth=auth)


def page_classics(fuzz: Fuzzer, creds: Credentials) -> list[Call]:
    """Pages that broke (or nearly broke) once: sent first, every run."""

    def get(target: str, *headers: tuple[str, str]) -> Call:
        sent = (("Host", fuzz.host_header), ("Cookie", creds.admin_cookie), *headers)
        return Call("dashboard", f"GET {target[:40]}", "GET", target, sent, auth="admin")

    return [
        get("/ui/feed?after=0001-01-01T00%3A00%3A00"),
        get("/ui/feed?after=0001-01-01T00%3A00%3A00%2B14%3A00"),
        get("/ui/feed?after=9999-12-31T23%3A59%3A59-14%3A00"),
        get("/ui/feed", ("Last-Event-ID", "0001-01-01T00:00:05")),
        get("/ui/people/%ED%A0%80"),
        get("/ui/strangers/stranger-99999999999999999999999"),
        get("/ui/crops/faces%2F..%2F..%2Fkeys.db"),
        get("/ui/static/..%2Fapp.py"),
        get("/ui/?undo=x&notice=" + "a" * 5000),
    ]


def form_classics(fuzz: Fuzzer, creds: Credentials) -> list[Call]:
    """Forms that broke (or nearly broke) once: sent first, every run."""

    def post(target: str, body: str) -> Call:
        sent = (
            ("Host", fuzz.host_header),
            ("Cookie", creds.admin_cookie),
            ("Origin", fuzz.origin),
            ("Content-Type", "application/x-www-form-urlencoded"),
        )
        route = f"POST {target[:40]}"
        return Call("dashboard", route, "POST", target, sent, body.encode(), auth="admin")

    return [
        post(
            f"/ui/people/{USER}/profile",
            "field_name=Name&field_value=x&field_name=Born&field_value=1e999",
        ),
        post(f"/ui/people/{USER}/profile", "field_name=&field_value=x&remove=99999999999999999999"),
        post(f"/ui/people/{USER}/profile", "field_name=Name&field_value=a%00b"),
        post(f"/ui/people/{USER}/threshold", "threshold=nan"),
        post(f"/ui/people/{USER}/threshold", "threshold=1e999"),
        post("/ui/search", "threshold=50"),
        post("/ui/strangers/stranger-1/split", "face_id=" + "&face_id=".join(["x"] * 2000)),
        post("/ui/login", "token=" + "a" * 5000 + "&next=//evil.example"),
    ]


def test_dashboard_pages(
    run_fuzz: Run, fuzz: Fuzzer, credentials: Credentials, world: World
) -> None:
    calls = page_calls(fuzz, credentials, world)
    run_fuzz("dashboard", calls, 60, page_classics(fuzz, credentials))


def test_dashboard_forms(
    run_fuzz: Run, fuzz: Fuzzer, credentials: Credentials, world: World
) -> None:
    calls = form_calls(fuzz, credentials, world)
    run_fuzz("dashboard", calls, 100, form_classics(fuzz, credentials))
