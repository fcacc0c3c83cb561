"""The dashboard over plain HTTP: login, sessions, roles, same-origin POSTs, crops, the feed.

A real server (``api_server``) on loopback, driven with urllib so every
redirect, cookie attribute and status is seen as a browser would get it.
No face engine is needed here: the browser test enrols and recognizes, and
strangers and corrections (real crops through the real recognizer) are
:mod:`tests.integration.api.test_dashboard_strangers`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

import pytest

from facelens.api.security import SESSION_COOKIE
from facelens.api.serve import build_server
from facelens.config import ServeSettings, Settings
from facelens.history.ledger import Recognition, Status
from facelens.wiring.process import process_role
from facelens.wiring.server import open_server_bundles
from tests.servers.facelens_api import ApiServer

PAGES = [
    "/ui/",
    "/ui/people",
    "/ui/people/someone",
    "/ui/unknown",
    "/ui/strangers",
    "/ui/strangers/stranger-9",
    "/ui/search",
    "/ui/cameras",
]
MISSING = {"/ui/people/someone", "/ui/strangers/stranger-9"}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.body)
        return loaded


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def call(
    server: ApiServer,
    path: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    request = urllib.request.Request(
        server.url + path, data=data, method=method, headers=headers or {}
    )
    try:
        with _OPENER.open(request, timeout=10) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.headers, exc.read())


def post_form(
    server: ApiServer, path: str, fields: dict[str, str], *, headers: dict[str, str]
) -> Reply:
    body = urllib.parse.urlencode(fields).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    return call(server, path, method="POST", data=body, headers=form)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    for name, (filename, content) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def origin(server: ApiServer) -> dict[str, str]:
    return {"Origin": server.url}


def login(server: ApiServer, token: str) -> str:
    """Logs in as a browser would; returns the ``Cookie`` header to send afterwards."""
    reply = post_form(server, "/ui/login", {"token": token}, headers=origin(server))
    assert reply.status == 303, reply.text
    cookie = reply.headers["Set-Cookie"]
    return cookie.split(";", 1)[0]


def test_login_with_a_bad_key_fails(api_server: ApiServer) -> None:
    reply = post_form(
        api_server, "/ui/login", {"token": "fl_nothere_wrong"}, headers=origin(api_server)
    )
    assert reply.status == 401
    assert "Set-Cookie" not in reply.headers
    assert "not valid" in reply.text
    assert 'id="token"' in reply.text  # the form again, to retry


def test_login_with_the_admin_key_sets_an_http_only_session_cookie(api_server: ApiServer) -> None:
    reply = post_form(
        api_server,
        "/ui/login",
        {"token": api_server.admin_token, "next": "/ui/people"},
        headers=origin(api_server),
    )
    assert reply.status == 303
    assert reply.headers["Location"] == "/ui/people"
    cookie = reply.headers["Set-Cookie"]
    attributes = {a.strip().split("=", 1)[0].lower() for a in cookie.split(";")}
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "max-age=43200" in cookie.lower()  # serve.session_hours (12 h)
    session = cookie.split(";", 1)[0]

    page = call(api_server, "/ui/people", headers={"Cookie": session})
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Enrol a person" in page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]

    out = post_form(api_server, "/ui/logout", {}, headers={"Cookie": session, **origin(api_server)})
    assert out.status == 303
    assert call(api_server, "/ui/", headers={"Cookie": session}).status == 303


def test_a_login_goes_back_only_to_a_dashboard_page(api_server: ApiServer) -> None:
    for target in ("https://evil.example/", "//evil.example/ui/", "/api/v1/collections"):
        reply = post_form(
            api_server,
            "/ui/login",
            {"token": api_server.admin_token, "next": target},
            headers=origin(api_server),
        )
        assert reply.headers["Location"] == "/ui/"


def test_pages_need_a_login(api_server: ApiServer) -> None:
    for path in PAGES:
        reply = call(api_server, path)
        assert reply.status == 303, path
        location = reply.headers["Location"]
        assert location == "/ui/login?next=" + urllib.parse.quote(path, safe=""), path
    assert call(api_server, "/ui/login").status == 200
    assert call(api_server, "/ui/static/style.css").status == 200
    assert call(api_server, "/ui/static/../app.py").status == 404
    session = login(api_server, api_server.reader_token)
    for path in PAGES:
        reply = call(api_server, path, headers={"Cookie": session})
        expected = 404 if path in MISSING else 200
        assert reply.status == expected, path


def test_a_read_only_key_can_look_but_not_enrol(api_server: ApiServer) -> None:
    session = login(api_server, api_server.reader_token)
    page = call(api_server, "/ui/people", headers={"Cookie": session})
    assert page.status == 200
    assert "Enrol a person" not in page.text  # no form it could not use
    body, content_type = multipart({"name": "Ada"}, {"photos": ("ada.jpg", b"\xff\xd8not")})
    headers = {"Cookie": session, "Content-Type": content_type, **origin(api_server)}
    reply = call(api_server, "/ui/people", method="POST", data=body, headers=headers)
    assert reply.status == 403
    assert reply.json()["__type"] == "AccessDeniedException"
    named = post_form(
        api_server,
        "/ui/unknown/abc/name",
        {"name": "Ada"},
        headers=headers | {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert named.status == 403


def test_cross_origin_posts_are_refused(api_server: ApiServer) -> None:
    session = login(api_server, api_server.admin_token)
    body, content_type = multipart({"name": "Ada"}, {"photos": ("ada.jpg", b"\xff\xd8not")})
    for foreign in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Referer": "http://evil.example/ui/people"},
        {},
    ):
        headers = {"Cookie": session, "Content-Type": content_type, **foreign}
        reply = call(api_server, "/ui/people", method="POST", data=body, headers=headers)
        assert reply.status == 403, foreign
        assert reply.json()["__type"] == "AccessDeniedException"
    evil_login = post_form(
        api_server,
        "/ui/login",
        {"token": api_server.admin_token},
        headers={"Origin": "http://evil.example"},
    )
    assert evil_login.status == 403
    assert "Set-Cookie" not in evil_login.headers
    # A same-origin Referer alone (no Origin) is enough.
    same = post_form(
        api_server,
        "/ui/logout",
        {},
        headers={"Cookie": session, "Referer": api_server.url + "/ui/"},
    )
    assert same.status == 303


def test_an_enrolment_without_a_face_comes_back_with_the_reason(api_server: ApiServer) -> None:
    session = login(api_server, api_server.admin_token)
    body, content_type = multipart({"name": "Ada"}, {})
    headers = {"Cookie": session, "Content-Type": content_type, **origin(api_server)}
    reply = call(api_server, "/ui/people", method="POST", data=body, headers=headers)
    assert reply.status == 303
    assert reply.headers["Location"].startswith("/ui/people?error=")
    shown = call(api_server, reply.headers["Location"], headers={"Cookie": session})
    assert "Choose at least one photo" in shown.text


def test_crops_need_a_login_and_are_served_privately(api_server: ApiServer) -> None:
    b = api_server.bundles
    key = "faces/1_1/0_0/1700000000000_0.jpg"
    b.objects().put_object(b.settings.bucket, key, b"\xff\xd8jpeg", content_type="image/jpeg")
    assert call(api_server, f"/ui/crops/{key}").status == 401
    bad = call(api_server, f"/ui/crops/{key}", headers=api_server.headers(token="fl_x_y"))
    assert bad.status == 401
    reply = call(
        api_server, f"/ui/crops/{key}", headers=api_server.headers(token=api_server.reader_token)
    )
    assert reply.status == 200
    assert reply.body == b"\xff\xd8jpeg"
    assert reply.headers["Content-Type"] == "image/jpeg"
    assert reply.headers["Cache-Control"].startswith("private")
    outside = call(api_server, "/ui/crops/other/x.jpg", headers=api_server.headers())
    assert outside.status == 400
    missing = call(api_server, "/ui/crops/faces/none.jpg", headers=api_server.headers())
    assert missing.status == 404


def test_the_feed_streams_new_sightings(api_server: ApiServer) -> None:
    assert call(api_server, "/ui/feed").status == 401
    session = login(api_server, api_server.reader_token)
    start = datetime.now(UTC) - timedelta(seconds=1)
    request = urllib.request.Request(
        f"{api_server.url}/ui/feed?after={urllib.parse.quote(start.isoformat())}",
        headers={"Cookie": session},
    )
    with _OPENER.open(request, timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.readline() == b"retry: 2000\n"
        api_server.bundles.history().ledger.record(
            Recognition(
                recognition_id="r-1",
                status=Status.IDENTIFIED,
                topic="rekognition",
                message={
                    "Name": "Grace <Hopper>",
                    "UserId": "grace",
                    "Similarity": 97.5,
                    "Camera": "door",
                    "Status": "identified",
                },
                recognized_at=datetime.now(UTC),
                bucket=api_server.bundles.settings.bucket,
                key="faces/1_1/0_0/1_0.jpg",
            )
        )
        lines: list[bytes] = []
        while not lines or lines[-1] != b"\n":
            line = stream.readline()  # blocks until the next poll sends it (timeout: 10 s)
            if line.startswith(b":") or (line == b"\n" and not lines):
                continue
            lines.append(line)
    assert lines[0].startswith(b"id: ")
    assert lines[1] == b"event: sighting\n"
    data = json.loads(lines[2].removeprefix(b"data: "))
    assert data["id"] == "r-1"
    assert "Grace &lt;Hopper&gt;" in data["html"]  # escaped by the template
    assert "97.5 %" in data["html"]
    assert "door" in data["html"]
    assert "/ui/crops/faces/1_1/0_0/1_0.jpg" in data["html"]


@pytest.mark.parametrize(
    "path",
    [
        "/ui/people",
        "/ui/logout",
        "/ui/unknown/x/name",
        "/ui/strangers/stranger-1/name",
        "/ui/identifications/x/reject",
        "/ui/corrections/x/undo",
        "/ui/people/x/threshold",
    ],
)
def test_posts_without_a_login_go_to_the_login_page(api_server: ApiServer, path: str) -> None:
    reply = post_form(api_server, path, {"name": "x"}, headers=origin(api_server))
    assert reply.status == 303
    assert reply.headers["Location"].startswith("/ui/login")


def test_stopping_the_server_ends_an_open_feed(api_server: ApiServer) -> None:
    request = urllib.request.Request(
        f"{api_server.url}/ui/feed", headers=api_server.headers(token=api_server.reader_token)
    )
    with _OPENER.open(request, timeout=10) as stream:
        assert stream.readline() == b"retry: 2000\n"
        api_server.server.stop()
        assert not api_server.server.running
        # A clean end of the chunked body: had uvicorn been left waiting on the stream and
        # forced to exit, the connection would be cut mid-body and read() would raise.
        rest = stream.read()
    assert b"event:" not in rest


def test_without_keys_the_pages_need_no_login(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", models_dir=None, serve=ServeSettings(port=0))
    stack = ExitStack()
    bundles = open_server_bundles(settings, stack, process_role(settings, "open-test"))
    server, _ = build_server(bundles)
    server.start()
    opened = ApiServer(server.url, bundles, stack, "", "", "", "", "", server)
    try:
        for path in PAGES:
            reply = call(opened, path)
            assert reply.status == (404 if path in MISSING else 200), path
        assert "Log out" not in call(opened, "/ui/").text
        login_page = call(opened, "/ui/login?next=/ui/people")
        assert login_page.status == 303
        assert login_page.headers["Location"] == "/ui/people"
    finally:
        server.stop()
        stack.close()
