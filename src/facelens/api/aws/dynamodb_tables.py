"""The DynamoDB endpoint's table catalogue: names, keys and creation times in a SQLite file.

facelens keeps ONE profile store (:mod:`facelens.profiles`). A DynamoDB table
on the facelens server is a *view* of that store, not a separate container:
every table shows every profile, under the key attribute the table was
created with (``FaceId`` in the original recipe), so an item put through any
table is the profile the recognizer publishes and ``facelens profiles get``
shows. What a table adds is only its catalogue entry, kept here so that
``create-table``, ``describe-table`` and ``list-tables`` answer as DynamoDB
does: the name, its single HASH key attribute of type S (profile ids are
strings), the billing mode and capacities as given, and the creation time.
Deleting a table removes the entry, never the profiles.

The file (``<home>/dynamodb-tables.db``) is opened per call and closed at
once: catalogue reads are a fraction of a millisecond, and the server has no
shutdown hook that could close a long-lived connection.
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facelens.errors import (
    ResourceInUseException,
    ResourceNotFoundException,
    StorageError,
    ValidationException,
)
from facelens.sqlite import connect

ACCOUNT_ID = "000000000000"
"""The account in table ARNs: facelens has no accounts, and this is what local emulators use."""

PROVISIONED = "PROVISIONED"
PAY_PER_REQUEST = "PAY_PER_REQUEST"
NOT_FOUND = "Requested resource not found"

_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_MAX_KEY_NAME_BYTES = 255
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dynamodb_tables (
    name TEXT PRIMARY KEY,
    key_attribute TEXT NOT NULL,
    billing_mode TEXT NOT NULL,
    read_capacity INTEGER NOT NULL,
    write_capacity INTEGER NOT NULL,
    table_id TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""
_UNITS = ("ReadCapacityUnits", "WriteCapacityUnits")
_MAX_CAPACITY_UNITS = 2**63 - 1
"""DynamoDB's capacities are Longs; a larger one reached SQLite's 64-bit INTEGER column
and raised OverflowError (a 500)."""
_COLUMNS = "name, key_attribute, billing_mode, read_capacity, write_capacity, table_id, created_at"


@dataclass(frozen=True)
class TableInfo:
    """One catalogue entry. ``created_at``: Unix epoch seconds; capacities: units per second
    as the creator gave them (0 for PAY_PER_REQUEST), kept only to be described back."""

    name: str
    key: str
    billing_mode: str
    read_capacity: int
    write_capacity: int
    table_id: str
    created_at: float

    def arn(self, region: str) -> str:
        return f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{self.name}"


def table_name(value: Any) -> str:
    """A valid table name (3-255 of ``A-Za-z0-9_.-``); ValidationException otherwise."""
    if not isinstance(value, str) or not _TABLE_NAME.fullmatch(value):
        raise ValidationException(
            f"1 validation error detected: Value {value!r} at 'tableName' failed to satisfy "
            "constraint: Member must be 3-255 characters of [a-zA-Z0-9_.-]"
        )
    return value


def table_from_request(params: Mapping[str, Any], *, now: float | None = None) -> TableInfo:
    """The table a CreateTable request asks for; ValidationException for anything but one
    HASH key of type S, and for capacities that do not fit the billing mode, as DynamoDB."""
    name = table_name(params.get("TableName"))
    key = _hash_key(params.get("KeySchema"))
    definitions = params.get("AttributeDefinitions")
    if not isinstance(definitions, list) or not all(isinstance(d, dict) for d in definitions):
        raise ValidationException("AttributeDefinitions must be a list of objects")
    defined = {d.get("AttributeName"): d.get("AttributeType") for d in definitions}
    if len(definitions) != 1 or key not in defined:
        raise ValidationException(
            "One or more parameter values were invalid: Number of attributes in KeySchema does "
            "not exactly match number of attributes defined in AttributeDefinitions"
        )
    if defined[key] != "S":
        raise ValidationException(
            f"One or more parameter values were invalid: the key {key} of a facelens table must "
            f"have AttributeType S (profile ids are strings), not {defined[key]!r}"
        )
    for indexes in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if params.get(indexes):
            raise ValidationException(f"{indexes} are not supported by facelens tables")
    billing, read, write = _capacity(params)
    created = time.time() if now is None else now
    return TableInfo(name, key, billing, read, write, str(uuid.uuid4()), round(created, 3))


def _hash_key(schema: Any) -> str:
    if (
        not isinstance(schema, list)
        or len(schema) != 1
        or not isinstance(schema[0], dict)
        or schema[0].get("KeyType") != "HASH"
    ):
        raise ValidationException(
            "One or more parameter values were invalid: a facelens table has exactly one key, "
            "a HASH key of type S (the profile id); RANGE keys are not supported"
        )
    key = schema[0].get("AttributeName")
    if not isinstance(key, str) or not key or len(key.encode()) > _MAX_KEY_NAME_BYTES:
        raise ValidationException("The key's AttributeName must be 1-255 bytes")
    return key


def _capacity(params: Mapping[str, Any]) -> tuple[str, int, int]:
    billing = params.get("BillingMode") or PROVISIONED
    throughput = params.get("ProvisionedThroughput")
    if billing == PAY_PER_REQUEST:
        if throughput:
            raise ValidationException(
                "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"
            )
        return billing, 0, 0
    if billing != PROVISIONED:
        raise ValidationException(
            f"BillingMode must be {PROVISIONED} or {PAY_PER_REQUEST}, not {billing!r}"
        )
    given = [throughput.get(n) if isinstance(throughput, dict) else None for n in _UNITS]
    units = [
        u
        for u in given
        if isinstance(u, int) and not isinstance(u, bool) and 1 <= u <= _MAX_CAPACITY_UNITS
    ]
    if len(units) != len(_UNITS):
        raise ValidationException(
            "One or more parameter values were invalid: ReadCapacityUnits and "
            f"WriteCapacityUnits must both be specified (each 1-{_MAX_CAPACITY_UNITS}) when "
            "BillingMode is PROVISIONED"
        )
    return billing, units[0], units[1]


def describe(
    table: TableInfo,
    *,
    region: str,
    item_count: int,
    size_bytes: int,
    status: str = "ACTIVE",
) -> dict[str, Any]:
    """A TableDescription as DynamoDB returns it (``CreationDateTime`` in epoch seconds)."""
    description: dict[str, Any] = {
        "AttributeDefinitions": [{"AttributeName": table.key, "AttributeType": "S"}],
        "TableName": table.name,
        "KeySchema": [{"AttributeName": table.key, "KeyType": "HASH"}],
        "TableStatus": status,
        "CreationDateTime": table.created_at,
        "ProvisionedThroughput": {
            "NumberOfDecreasesToday": 0,
            "ReadCapacityUnits": table.read_capacity,
            "WriteCapacityUnits": table.write_capacity,
        },
        "TableSizeBytes": size_bytes,
        "ItemCount": item_count,
        "TableArn": table.arn(region),
        "TableId": table.table_id,
        "DeletionProtectionEnabled": False,
    }
    if table.billing_mode == PAY_PER_REQUEST:
        description["BillingModeSummary"] = {
            "BillingMode": PAY_PER_REQUEST,
            "LastUpdateToPayPerRequestDateTime": table.created_at,
        }
    return description


class TableCatalogue:
    """The tables, in one SQLite file; thread-safe (a connection per call)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            # connect: the file 0600, and the schema retried while a process creating it
            # together with this one holds a lock SQLite does not wait for.
            with closing(connect(self.path, setup=lambda conn: conn.executescript(_SCHEMA))) as c:
                yield c
        except sqlite3.Error as exc:
            raise StorageError(f"The DynamoDB table catalogue {self.path} failed: {exc}") from exc

    def create(self, table: TableInfo) -> TableInfo:
        """Adds ``table``; ResourceInUseException if the name is taken."""
        with self._connection() as conn:
            try:
                conn.execute(
                    f"INSERT INTO dynamodb_tables ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        table.name,
                        table.key,
                        table.billing_mode,
                        table.read_capacity,
                        table.write_capacity,
                        table.table_id,
                        table.created_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ResourceInUseException(f"Table already exists: {table.name}") from None
        return table

    def get(self, name: str) -> TableInfo | None:
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM dynamodb_tables WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else TableInfo(*row)

    def require(self, name: Any) -> TableInfo:
        """The table ``name``; ResourceNotFoundException (DynamoDB's words) if there is none."""
        found = self.get(table_name(name))
        if found is None:
            raise ResourceNotFoundException(NOT_FOUND)
        return found

    def delete(self, name: Any) -> TableInfo:
        """Removes the entry (the profiles stay: they are the store's); the entry it was."""
        table = self.require(name)
        with self._connection() as conn:
            conn.execute("DELETE FROM dynamodb_tables WHERE name = ?", (table.name,))
        return table

    def names(self, *, after: str | None = None, limit: int = 100) -> tuple[list[str], bool]:
        """Up to ``limit`` names in order, after ``after``; and whether more follow."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT name FROM dynamodb_tables WHERE name > ? ORDER BY name LIMIT ?",
                (after or "", limit + 1),
            ).fetchall()
        return [r[0] for r in rows[:limit]], len(rows) > limit
