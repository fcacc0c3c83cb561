"""Keys are stored safely and checked exactly; sessions expire; failures are limited."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from facelens.access.keys import KeyStore, Principal, Role
from facelens.api.security import FailureLimiter, Sessions, check_bind
from facelens.errors import (
    ConfigurationError,
    ResourceNotFoundException,
    TooManyFailedAuthenticationsException,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_api_keys_are_hashed_and_verified(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    made = keys.create_api_key("ci", Role.READ)
    token = made.token.get_secret_value()
    assert keys.verify_api_key(token) == Principal("ci", Role.READ, made.key_id)
    assert keys.verify_api_key(token + "x") is None
    assert keys.verify_api_key("fl_unknown_secret") is None
    assert keys.verify_api_key("garbage") is None
    raw = sqlite3.connect(tmp_path / "keys.db").execute("SELECT * FROM api_keys").fetchall()
    assert token.split("_", 2)[2] not in repr(raw)  # only its hash is stored
    assert stat.S_IMODE((tmp_path / "keys.db").stat().st_mode) == 0o600
    assert keys.has_keys()
    keys.delete(made.key_id)
    assert keys.verify_api_key(token) is None
    with pytest.raises(ResourceNotFoundException):
        keys.delete(made.key_id)
    keys.close()


def test_access_keys_for_sigv4(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    assert not keys.has_keys()
    made = keys.create_access_key("sdk", Role.ADMIN)
    assert made.access_key_id.startswith("AKFL")
    assert len(made.access_key_id) == 20
    found = keys.access_key(made.access_key_id)
    assert found is not None
    principal, secret = found
    assert principal.role is Role.ADMIN
    assert secret.get_secret_value() == made.secret_access_key.get_secret_value()
    assert keys.access_key("AKFLNOTAKEY000000000") is None
    assert [(k.kind, k.name) for k in keys.list_keys()] == [("access", "sdk")]
    keys.close()


def test_roles() -> None:
    assert Role.ADMIN.allows(Role.READ)
    assert Role.ADMIN.allows(Role.ADMIN)
    assert Role.READ.allows(Role.READ)
    assert not Role.READ.allows(Role.ADMIN)


def test_no_keys_means_loopback_only() -> None:
    check_bind("127.0.0.1", has_keys=False)
    check_bind("::1", has_keys=False)
    check_bind("0.0.0.0", has_keys=True)
    with pytest.raises(ConfigurationError, match="keys create"):
        check_bind("0.0.0.0", has_keys=False)


def test_failure_limiter_window() -> None:
    clock = Clock()
    limiter = FailureLimiter(2, clock=clock)
    limiter.check("a")
    limiter.failed("a")
    limiter.failed("a")
    with pytest.raises(TooManyFailedAuthenticationsException):
        limiter.check("a")
    limiter.check("b")  # per address
    clock.now += 61
    limiter.check("a")


def test_sessions_expire_and_close() -> None:
    clock = Clock()
    sessions = Sessions(hours=1, clock=clock)
    who = Principal("me", Role.ADMIN, "k")
    session = sessions.open(who)
    assert sessions.get(session) == who
    clock.now += 3601
    assert sessions.get(session) is None
    again = sessions.open(who)
    sessions.close(again)
    assert sessions.get(again) is None
