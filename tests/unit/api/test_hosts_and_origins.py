"""Which Host names a server answers to, which browser origins are its own, and the settings
that extend them (``serve.allowed_hosts``, ``serve.trusted_proxies``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from facelens.api.security import cross_site, has_credentials, same_origin
from facelens.config import EdgeSettings, ServeSettings
from facelens.http_server import host_name, hosts_for


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8080", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:80", "::1"),
        ("faces.example.org.:443", "faces.example.org"),
        ("", None),
        ("a b", None),
        ("x:99999", None),
        ("user@x", None),
        ("x/y", None),
    ],
)
def test_host_names(header: str, name: str | None) -> None:
    assert host_name(header) == name


def test_a_loopback_server_answers_to_loopback_names_only() -> None:
    allowed = hosts_for("127.0.0.1")
    for ok in ("127.0.0.1:8080", "localhost:1", "[::1]:8080", "127.9.9.9", "LOCALHOST"):
        assert allowed.allows(ok), ok
    for refused in ("attacker.example:8080", "10.0.0.1", "localhost.attacker.example", "", "::1"):
        assert not allowed.allows(refused), refused


def test_configured_names_and_wildcard_binds() -> None:
    named = hosts_for("faces.lan", ["proxy.example"])
    assert named.allows("faces.lan:8080")
    assert named.allows("proxy.example")
    assert not named.allows("192.168.1.5:8080")
    everywhere = hosts_for("0.0.0.0")
    assert everywhere.allows("192.168.1.5:8080")  # an address cannot be re-pointed
    assert everywhere.allows("[fe80::1]:8080")
    assert not everywhere.allows("mybox:8080")  # a name can: it must be configured
    assert hosts_for("::").allows("10.1.2.3")


def test_own_origins() -> None:
    host = "127.0.0.1:8080"
    assert same_origin("http://127.0.0.1:8080", host)
    assert same_origin("http://127.0.0.1:8080/ui/people?x=1", host)
    assert not same_origin("http://127.0.0.1:8081", host)
    assert not same_origin("http://localhost:8080", host)
    assert not same_origin("null", host)
    assert not same_origin("file:///tmp/x.html", host)
    assert not same_origin("http://127.0.0.1:99999", host)
    assert same_origin("https://faces.example.org", "faces.example.org")
    assert same_origin("http://faces.example.org", "faces.example.org:80")
    # A proxy that sends its own Host upstream: the public name is configured.
    assert same_origin(
        "https://faces.example.org", host, public_names=frozenset({"faces.example.org"})
    )


def test_cross_site_writes() -> None:
    own = {"host": "127.0.0.1:8080"}
    evil = "http://attacker.example"
    assert cross_site("POST", {**own, "origin": evil}) is not None
    assert cross_site("DELETE", {**own, "origin": "null"}) is not None
    assert cross_site("PUT", {**own, "sec-fetch-site": "cross-site"}) is not None
    assert cross_site("PATCH", {**own, "sec-fetch-site": "same-site"}) is not None
    assert cross_site("POST", {**own, "referer": evil + "/x"}) is not None
    assert cross_site("POST", {**own, "origin": "http://127.0.0.1:8080"}) is None
    assert cross_site("POST", {**own, "sec-fetch-site": "same-origin"}) is None
    assert cross_site("POST", own) is None  # curl, SDKs: not a browser page
    assert cross_site("GET", {**own, "origin": evil}) is None  # reads change nothing
    for credentials in (
        {"authorization": "Bearer fl_x_y"},
        {"authorization": "AWS4-HMAC-SHA256 Credential=AKFL/..."},
        {"x-api-key": "fl_x_y"},
    ):
        assert has_credentials(credentials)
        assert cross_site("POST", {**own, "origin": evil, **credentials}) is None
    # A browser attaches remembered Basic credentials by itself: they do not exempt.
    assert cross_site("POST", {**own, "origin": evil, "authorization": "Basic eDp5"}) is not None


def test_settings() -> None:
    serve = ServeSettings(
        allowed_hosts=["Faces.Example.org.", "[::1]"], trusted_proxies=["10.0.0.0/8"]
    )
    assert serve.allowed_hosts == ["faces.example.org", "::1"]
    assert ServeSettings().trusted_proxies == []
    assert EdgeSettings(view_allowed_hosts=["cam1.lan"]).view_allowed_hosts == ["cam1.lan"]
    for bad in ("x:80", "*.example.org", "", "x/y"):
        with pytest.raises(ValidationError, match="not a host name"):
            ServeSettings(allowed_hosts=[bad])
    with pytest.raises(ValidationError, match="not an IP address or network"):
        ServeSettings(trusted_proxies=["proxy.lan"])
