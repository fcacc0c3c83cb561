"""Who may call the server: API keys for the REST API and dashboard, access keys for AWS SDKs.

Two kinds, because the two protocols need different things from the server:

* An **API key** is a bearer token (``fl_<id>_<secret>``). Only the SHA-256
  of its secret is stored: the token is 32 random bytes, so a fast hash is
  as strong as a slow one and checking costs microseconds. Shown once, at
  creation.
* An **access key** (``AKFL…`` id and secret) signs requests with AWS
  Signature Version 4, so existing boto3 and AWS CLI code works unchanged.
  SigV4 is an HMAC: the server must compute the same signature, so it must
  hold the secret itself (AWS does too). It is stored as it is, in a file
  only its owner can read (0600), never logged and never returned again.

Each key carries a role: ``read`` (look, search, stream) or ``admin``
(also enrol, edit, delete, and manage keys).
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr

from facelens.errors import InvalidParameterException, ResourceNotFoundException
from facelens.sqlite import SqliteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""
_ALPHABET = string.ascii_uppercase + string.digits


class Role(StrEnum):
    READ = "read"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        return self is Role.ADMIN or needed is Role.READ


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a key's name and role (``local`` when keys are off)."""

    name: str
    role: Role
    key_id: str


LOCAL = Principal(name="local", role=Role.ADMIN, key_id="local")
"""The caller when no keys exist: the server then only listens on loopback."""


@dataclass(frozen=True)
class NewApiKey:
    key_id: str
    token: SecretStr


@dataclass(frozen=True)
class NewAccessKey:
    access_key_id: str
    secret_access_key: SecretStr


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never its secret. kind: 'api' or 'access'."""

    key_id: str
    kind: str
    name: str
    role: Role
    created_at: float


class KeyStore:
    """Keys in one SQLite file (created 0600); thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = SqliteDatabase(path, schema=_SCHEMA, what="The key store", fsync=True)

    def _private(self) -> None:
        if self.path.exists():
            self.path.chmod(0o600)

    def create_api_key(self, name: str, role: Role) -> NewApiKey:
        _check_name(name)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?)",
                (key_id, name, role.value, _sha256(secret), time.time()),
            )
        self._private()
        return NewApiKey(key_id, SecretStr(f"fl_{key_id}_{secret}"))

    def create_access_key(self, name: str, role: Role) -> NewAccessKey:
        _check_name(name)
        access_key_id = "AKFL" + "".join(secrets.choice(_ALPHABET) for _ in range(16))
        secret = secrets.token_urlsafe(30)[:40]
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO access_keys VALUES (?, ?, ?, ?, ?)",
                (access_key_id, name, role.value, secret, time.time()),
            )
        self._private()
        return NewAccessKey(access_key_id, SecretStr(secret))

    def verify_api_key(self, token: str) -> Principal | None:
        """The principal a bearer token stands for, or None (compared in constant time)."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "fl":
            return None
        _, key_id, secret = parts
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT name, role, secret_sha256 FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        if row is None or not secrets.compare_digest(_sha256(secret), row[2]):
            return None
        return Principal(name=row[0], role=Role(row[1]), key_id=key_id)

    def api_key(self, key_id: str) -> Principal | None:
        """The principal an API key stands for now (None once deleted): what a dashboard
        session re-checks, so deleting a key ends its sessions in every server process."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT name, role FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        return None if row is None else Principal(name=row[0], role=Role(row[1]), key_id=key_id)

    def access_key(self, access_key_id: str) -> tuple[Principal, SecretStr] | None:
        """The principal and secret of an access key, for SigV4; None if unknown."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT name, role, secret FROM access_keys WHERE access_key_id = ?",
                (access_key_id,),
            ).fetchone()
        if row is None:
            return None
        return Principal(row[0], Role(row[1]), access_key_id), SecretStr(row[2])

    def list_keys(self) -> list[KeyInfo]:
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT key_id, 'api', name, role, created_at FROM api_keys UNION ALL "
                "SELECT access_key_id, 'access', name, role, created_at FROM access_keys "
                "ORDER BY 5"
            ).fetchall()
        return [KeyInfo(r[0], r[1], r[2], Role(r[3]), r[4]) for r in rows]

    def has_keys(self) -> bool:
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT 1 FROM api_keys UNION ALL SELECT 1 FROM access_keys LIMIT 1"
            ).fetchone()
        return row is not None

    def delete(self, key_id: str) -> None:
        with self._db.transaction() as conn:
            gone = conn.execute("DELETE FROM api_keys WHERE key_id = ?", (key_id,)).rowcount
            gone += conn.execute(
                "DELETE FROM access_keys WHERE access_key_id = ?", (key_id,)
            ).rowcount
        if not gone:
            raise ResourceNotFoundException(f"No key {key_id!r}")

    def close(self) -> None:
        self._db.close()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _check_name(name: str) -> None:
    if not name or len(name) > 100 or not name.isprintable():
        raise InvalidParameterException("A key name is 1-100 printable characters")
