"""Web attacks on a real server: DNS rebinding, cross-site writes, stale sessions, forged
X-Forwarded-For, open API docs.

Each test drives a server started as ``facelens serve`` starts it (``build_server``) on
loopback, with raw ``http.client`` requests so every header (``Host`` included) and the
client's own source address (127.0.0.x) are exactly what an attacker would choose.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from facelens.access.keys import KeyStore, Role
from facelens.api.security import KEY_RECHECK_SECONDS, SESSION_COOKIE
from facelens.api.serve import build_server
from facelens.config import ServeSettings, Settings
from facelens.http_server import ThreadedServer
from facelens.wiring.process import process_role
from facelens.wiring.server import ServerBundles, open_server_bundles
from tests.servers.facelens_api import ApiServer, start_api_server, start_server

EVIL = "http://attacker.example"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.body)
        return loaded


def send(
    url: str,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    source: str | None = None,
) -> Reply:
    """One request to the server at ``url``, from the loopback address ``source`` (default:
    the kernel's pick, 127.0.0.1). A ``Host`` in ``headers`` replaces the real one."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    conn = http.client.HTTPConnection(
        parts.hostname,
        parts.port,
        timeout=30,
        source_address=(source, 0) if source is not None else None,
    )
    try:
        wanted = dict(headers or {})
        conn.putrequest(method, path, skip_host="Host" in wanted, skip_accept_encoding=True)
        for name, value in wanted.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()


def multipart(files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body, as a plain HTML form on any web page can post it."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, (filename, content) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def face_photo(testdata: Path) -> bytes:
    return sorted((testdata / "people" / "obama").glob("*.jpg"))[0].read_bytes()


def create_collection(collection_id: str) -> tuple[bytes, dict[str, str]]:
    return json.dumps({"CollectionId": collection_id}).encode(), {
        "Content-Type": "application/json"
    }


@dataclass
class OpenServer:
    """A server without keys: every loopback caller is trusted (the default first run)."""

    url: str
    port: int
    bundles: ServerBundles
    server: ThreadedServer


@pytest.fixture
def open_server(tmp_path: Path) -> Iterator[OpenServer]:
    settings = Settings(home=tmp_path / "home", models_dir=None, serve=ServeSettings(port=0))
    with ExitStack() as stack:
        bundles = open_server_bundles(settings, stack, process_role(settings, "open-test"))
        server, _ = build_server(bundles)
        server.start()
        try:
            yield OpenServer(server.url, server.port, bundles, server)
        finally:
            server.stop()


def login(server: ApiServer, token: str) -> str:
    """A dashboard login as the browser makes it; the ``Cookie`` header to send afterwards."""
    body = urllib.parse.urlencode({"token": token}).encode()
    reply = send(
        server.url,
        "/ui/login",
        method="POST",
        body=body,
        headers={"Origin": server.url, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 303, reply.body
    return reply.headers["set-cookie"].split(";", 1)[0]


# -- 1. DNS rebinding and cross-site writes on a keyless loopback server --


def test_a_rebinding_page_cannot_read_or_enrol(open_server: OpenServer) -> None:
    port = open_server.port
    rebound = {"Host": f"attacker.example:{port}"}
    read = send(open_server.url, "/api/v1/collections", headers=rebound)
    assert read.status == 403, read.body
    assert read.json()["__type"] == "AccessDeniedException"
    assert "serve.allowed_hosts" in str(read.json()["message"])
    # The page is same-origin with itself, so its Origin matches its Host: only the Host
    # check stands between it and the dashboard's enrolment form.
    body, content_type = multipart({"photos": ("x.jpg", b"\xff\xd8not a photo")})
    enrol = send(
        open_server.url,
        "/ui/people",
        method="POST",
        body=body,
        headers={
            **rebound,
            "Origin": f"http://attacker.example:{port}",
            "Content-Type": content_type,
        },
    )
    assert enrol.status == 403, enrol.body
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "127.0.0.2"):
        assert send(open_server.url, "/api/v1/collections", headers={"Host": host}).status == 200


def test_cross_origin_writes_are_refused_without_keys(
    open_server: OpenServer, testdata: Path
) -> None:
    open_server.bundles.collections().collections.create_collection("x")
    body, content_type = multipart({"image": ("face.jpg", face_photo(testdata))})
    index = send(
        open_server.url,
        "/api/v1/collections/x/faces",
        method="POST",
        body=body,
        headers={"Origin": EVIL, "Content-Type": content_type},
    )
    assert index.status == 403, index.body
    assert index.json()["__type"] == "AccessDeniedException"

    payload, json_type = create_collection("c1")
    for foreign in (
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Origin": f"http://localhost:{open_server.port + 1}"},  # another local web app
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Referer": f"{EVIL}/page.html"},
    ):
        for path in ("/api/v1/collections", "/topics/things-x", "/"):
            reply = send(
                open_server.url, path, method="POST", body=payload, headers={**json_type, **foreign}
            )
            assert reply.status == 403, (path, foreign, reply.body)
            assert reply.json()["__type"] == "AccessDeniedException"
    assert open_server.bundles.collections().collections.list_collections().collection_ids == ["x"]
    assert open_server.bundles.collections().collections.describe_collection("x").face_count == 0

    # Its own pages, and clients that are not browsers (curl, scripts: no Origin), still can.
    own = {"Origin": open_server.url}
    for n, extra in enumerate(({}, own, {"Referer": open_server.url + "/ui/"})):
        made = send(
            open_server.url,
            "/api/v1/collections",
            method="POST",
            body=create_collection(f"ok{n}")[0],
            headers={**json_type, **extra},
        )
        assert made.status == 201, (extra, made.body)
    # Reading cross-origin is harmless (the browser keeps the answer from the page).
    assert send(open_server.url, "/api/v1/collections", headers={"Origin": EVIL}).status == 200


# -- 3. the dashboard cookie on the REST API --


def test_the_dashboard_cookie_does_not_write_cross_origin(
    api_server: ApiServer, testdata: Path
) -> None:
    cookie = login(api_server, api_server.admin_token)
    api_server.bundles.collections().collections.create_collection("x")
    body, content_type = multipart({"image": ("face.jpg", face_photo(testdata))})
    for path, payload, kind in (
        ("/api/v1/collections/x/faces", body, content_type),
        ("/api/v1/collections", create_collection("c1")[0], "application/json"),
        ("/ui/people", body, content_type),
    ):
        reply = send(
            api_server.url,
            path,
            method="POST",
            body=payload,
            headers={"Cookie": cookie, "Origin": EVIL, "Content-Type": kind},
        )
        assert reply.status == 403, (path, reply.body)
        assert reply.json()["__type"] == "AccessDeniedException"
    assert api_server.bundles.collections().collections.list_collections().collection_ids == ["x"]
    assert api_server.bundles.collections().collections.describe_collection("x").face_count == 0
    payload, _ = create_collection("mine")
    same = send(
        api_server.url,
        "/api/v1/collections",
        method="POST",
        body=payload,
        headers={"Cookie": cookie, "Origin": api_server.url, "Content-Type": "application/json"},
    )
    assert same.status == 201, same.body
    # A bearer key is not something a foreign page can attach (CORS preflight): allowed.
    keyed = send(
        api_server.url,
        "/api/v1/collections",
        method="POST",
        body=create_collection("keyed")[0],
        headers={**api_server.headers(), "Origin": EVIL, "Content-Type": "application/json"},
    )
    assert keyed.status == 201, keyed.body


# -- 2. a deleted key's sessions --


def test_deleting_a_key_ends_its_sessions_in_every_server(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", models_dir=None, serve=ServeSettings(port=0))
    first = start_server(settings)
    second_stack = ExitStack()
    second_role = process_role(settings, "api-test-2")
    second, _ = build_server(open_server_bundles(settings, second_stack, second_role))
    second.start()
    try:
        doomed = first.bundles.keys.create_api_key("doomed", Role.ADMIN)
        changed = first.bundles.keys.create_api_key("demoted", Role.ADMIN)
        servers = [first, replace_url(first, second.url)]
        sessions = {
            (s.url, key.key_id): login(s, key.token.get_secret_value())
            for s in servers
            for key in (doomed, changed)
        }
        for (url, _), cookie in sessions.items():
            assert send(url, "/api/v1/collections", headers={"Cookie": cookie}).status == 200

        # `facelens keys delete` runs in its own process: its own connection to keys.db.
        cli = KeyStore(settings.home / "keys.db")
        cli.delete(doomed.key_id)
        cli.close()
        with sqlite3.connect(settings.home / "keys.db") as db:  # a role changed underneath
            db.execute("UPDATE api_keys SET role = 'read' WHERE key_id = ?", (changed.key_id,))
        db.close()
        time.sleep(KEY_RECHECK_SECONDS + 0.2)

        for (url, _), cookie in sessions.items():
            api = send(url, "/api/v1/collections", headers={"Cookie": cookie})
            assert api.status == 401, (url, api.body)
            page = send(url, "/ui/people", headers={"Cookie": cookie})
            assert page.status == 303
            assert page.headers["location"].startswith("/ui/login")
            form = send(
                url,
                "/ui/people",
                method="POST",
                body=b"name=x",
                headers={
                    "Cookie": cookie,
                    "Origin": url,
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            assert form.status == 303
            assert form.headers["location"].startswith("/ui/login")
        # Other keys are untouched.
        assert send(first.url, "/api/v1/collections", headers=first.headers()).status == 200
    finally:
        second.stop()
        second_stack.close()
        first.server.stop()
        first.stack.close()


def replace_url(server: ApiServer, url: str) -> ApiServer:
    return ApiServer(
        url,
        server.bundles,
        server.stack,
        server.admin_token,
        server.reader_token,
        server.access_key_id,
        server.secret_access_key,
        server.region,
        server.server,
    )


# -- 4. X-Forwarded-For and the failed-authentication limit --


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[ApiServer]:
    started = start_api_server(tmp_path / "home", failed_auth_limit=3)
    try:
        yield started
    finally:
        started.server.stop()
        started.stack.close()


def bad_key(n: int) -> dict[str, str]:
    return {"Authorization": f"Bearer fl_nokey{n}_wrong"}


def test_forwarded_for_does_not_dodge_the_failure_limit(limited_server: ApiServer) -> None:
    statuses = [
        send(
            limited_server.url,
            "/api/v1/collections",
            headers={**bad_key(n), "X-Forwarded-For": f"10.0.0.{n}"},
        ).status
        for n in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


def test_forwarded_for_cannot_lock_out_another_address(limited_server: ApiServer) -> None:
    victim = "127.0.0.3"
    for n in range(5):
        send(
            limited_server.url,
            "/api/v1/collections",
            headers={**bad_key(n), "X-Forwarded-For": victim},
        )
    reply = send(
        limited_server.url, "/api/v1/collections", headers=limited_server.headers(), source=victim
    )
    assert reply.status == 200, reply.body


def test_a_trusted_proxy_forwards_its_clients_addresses(tmp_path: Path) -> None:
    proxy = "127.0.0.2"
    started = start_api_server(tmp_path / "home", failed_auth_limit=2, trusted_proxies=[proxy])
    url = started.url
    try:
        for n in range(3):  # 10.9.9.9, behind the proxy, guesses
            send(
                url,
                "/api/v1/collections",
                headers={**bad_key(n), "X-Forwarded-For": "10.9.9.9"},
                source=proxy,
            )
        locked = send(
            url,
            "/api/v1/collections",
            headers={**started.headers(), "X-Forwarded-For": "10.9.9.9"},
            source=proxy,
        )
        assert locked.status == 429
        other = {**started.headers(), "X-Forwarded-For": "10.9.9.8"}
        assert send(url, "/api/v1/collections", headers=other, source=proxy).status == 200
        # A client that is not the proxy cannot speak for anyone: its guesses are its own.
        for n in range(3):
            send(url, "/api/v1/collections", headers={**bad_key(n), "X-Forwarded-For": "10.9.9.8"})
        assert send(url, "/api/v1/collections", headers=other).status == 429
        assert send(url, "/api/v1/collections", headers=other, source=proxy).status == 200
    finally:
        started.server.stop()
        started.stack.close()


# -- 9. the API's documentation --


def test_the_docs_need_the_read_role_when_keys_exist(api_server: ApiServer) -> None:
    for path in ("/docs", "/openapi.json"):
        assert send(api_server.url, path).status == 401, path
        bad = send(api_server.url, path, headers=api_server.headers(token="fl_x_y"))
        assert bad.status == 401
        reader = send(
            api_server.url, path, headers=api_server.headers(token=api_server.reader_token)
        )
        assert reader.status == 200, path
    cookie = login(api_server, api_server.reader_token)
    schema = send(api_server.url, "/openapi.json", headers={"Cookie": cookie})
    assert "/api/v1/collections" in schema.json()["paths"]  # type: ignore[operator]
    assert SESSION_COOKIE in cookie


def test_the_docs_stay_open_on_a_keyless_loopback_server(open_server: OpenServer) -> None:
    assert send(open_server.url, "/docs").status == 200
    schema = send(open_server.url, "/openapi.json").json()
    assert "/api/v1/collections" in schema["paths"]  # type: ignore[operator]
