"""The DynamoDB-compatible endpoint for the profile table: the original recipe's table, unchanged.

DynamoDB speaks AWS JSON 1.0: ``POST /`` with
``X-Amz-Target: DynamoDB_20120810.<Operation>``, a SigV4 signature scoped to
the service ``dynamodb``, and typed attribute values. So
``boto3.client("dynamodb", endpoint_url=…)``, ``boto3.resource("dynamodb")``
and ``aws dynamodb …`` work against facelens with a facelens access key.

Every table is a view of facelens' ONE profile store (see
:mod:`facelens.api.aws.dynamodb_tables`): an item put here is the profile the
recognizer publishes with an identification and ``facelens profiles get``
shows, and every table lists every profile. Supported: CreateTable,
DescribeTable, DeleteTable (the catalogue entry only), ListTables, PutItem,
GetItem, DeleteItem (``ReturnValues`` NONE or ALL_OLD) and Scan (``Limit``,
``ExclusiveStartKey``, ``Select`` ALL_ATTRIBUTES or COUNT). Conditions,
filters, projections and indexes are refused with ValidationException
rather than ignored: code relying on them would silently do something else.
Reads are always consistent (``ConsistentRead`` is accepted either way).

Errors leave in DynamoDB's shape, ``{"__type":
"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "message": …}``
(botocore takes the part after ``#``), with the response's CRC32 in
``x-amz-crc32`` as DynamoDB sends it (botocore checks it when present).
Role: reading (DescribeTable, ListTables, GetItem, Scan) needs ``read``;
everything else ``admin``. Items are read and written through
:class:`facelens.people.profiles.ProfileService` as the signing key's actor,
which records each read and write in the audit log (the table and the
operation as its context); the old item ``ReturnValues`` ALL_OLD hands back
is recorded as read too.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from facelens.access.keys import Principal, Role
from facelens.api.actors import ACCESS_KEY, actor_of
from facelens.api.aws.dynamodb_items import ProfileTables, item_id, key_id, typed_item, typed_key
from facelens.api.aws.dynamodb_tables import TableInfo, describe, table_from_request, table_name
from facelens.api.aws.protocol import Json, JsonService
from facelens.errors import FacelensError, InvalidParameterException, ValidationException
from facelens.history.audit import Actor, Context
from facelens.people.profiles import ProfileService

SIGNING_NAME = "dynamodb"
TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"

_SERVICE_NAMESPACE = "com.amazonaws.dynamodb.v20120810"
_CORAL_SERVICE = "com.amazon.coral.service"
_CORAL_VALIDATE = "com.amazon.coral.validate"
_CORAL_AVAILABILITY = "com.amazon.coral.availability"
_CORAL_CODES = frozenset(
    {
        "AccessDeniedException",
        "IncompleteSignatureException",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "RequestEntityTooLargeException",
        "SerializationException",
        "UnknownOperationException",
        "UnrecognizedClientException",
    }
)
_UNSUPPORTED = (
    "ConditionExpression",
    "Expected",
    "ConditionalOperator",
    "FilterExpression",
    "ScanFilter",
    "ProjectionExpression",
    "AttributesToGet",
    "IndexName",
    "Segment",
    "TotalSegments",
)
_MAX_LIST_TABLES = 100


def error_type(error: FacelensError) -> str:
    """DynamoDB's qualified ``__type``: validation and protocol errors come from AWS's
    common layer (``com.amazon.coral.…``), the rest from DynamoDB's own namespace."""
    if error.code == "ValidationException":
        return f"{_CORAL_VALIDATE}#{error.code}"
    if error.code == "ThrottlingException":
        return f"{_CORAL_AVAILABILITY}#{error.code}"
    if error.code in _CORAL_CODES:
        return f"{_CORAL_SERVICE}#{error.code}"
    return f"{_SERVICE_NAMESPACE}#{error.code}"


def crc32_header(body: bytes) -> dict[str, str]:
    return {"x-amz-crc32": str(zlib.crc32(body) & 0xFFFFFFFF)}


@dataclass(frozen=True)
class Caller:
    """Who signed the call (the audit log's actor) and the profiles as read and written for
    them: each item read or written is recorded, with the table and the operation."""

    actor: Actor
    profiles: ProfileService


def _context(table: TableInfo, operation: str) -> Context:
    return {"Table": table.name, "Via": operation}


# -- tables --


def create_table(t: ProfileTables, p: Json, _caller: Caller) -> Json:
    table = t.catalogue.create(table_from_request(p))
    return {"TableDescription": _describe(t, table)}


def describe_table(t: ProfileTables, p: Json, _caller: Caller) -> Json:
    return {"Table": _describe(t, t.catalogue.require(p.get("TableName")))}


def delete_table(t: ProfileTables, p: Json, _caller: Caller) -> Json:
    table = t.catalogue.delete(p.get("TableName"))
    return {"TableDescription": _describe(t, table, status="DELETING")}


def list_tables(t: ProfileTables, p: Json, _caller: Caller) -> Json:
    limit = _integer(p, "Limit", _MAX_LIST_TABLES, maximum=_MAX_LIST_TABLES)
    start = p.get("ExclusiveStartTableName")
    names, more = t.catalogue.names(after=None if start is None else table_name(start), limit=limit)
    answer: Json = {"TableNames": names}
    if more and names:
        answer["LastEvaluatedTableName"] = names[-1]
    return answer


def _describe(t: ProfileTables, table: TableInfo, *, status: str = "ACTIVE") -> Json:
    items, size = t.counts()
    return describe(table, region=t.region, item_count=items, size_bytes=size, status=status)


# -- items --


def put_item(t: ProfileTables, p: Json, caller: Caller) -> Json:
    _refuse_unsupported(p, "PutItem")
    table = t.catalogue.require(p.get("TableName"))
    all_old = _all_old(p)
    profile_id, attributes = item_id(table, p.get("Item"))
    context = _context(table, "PutItem")
    if not all_old:
        caller.profiles.put(caller.actor, profile_id, attributes, context=context)
        return {}
    old = caller.profiles.put_returning_old(caller.actor, profile_id, attributes, context=context)
    return {} if old is None else {"Attributes": typed_item(table, old)}


def get_item(t: ProfileTables, p: Json, caller: Caller) -> Json:
    _refuse_unsupported(p, "GetItem")
    table = t.catalogue.require(p.get("TableName"))
    profile = caller.profiles.get(
        caller.actor,
        key_id(table, p.get("Key")),
        context=_context(table, "GetItem"),
        record_miss=True,  # no item is an answer here, not an error
    )
    return {} if profile is None else {"Item": typed_item(table, profile)}


def delete_item(t: ProfileTables, p: Json, caller: Caller) -> Json:
    _refuse_unsupported(p, "DeleteItem")
    table = t.catalogue.require(p.get("TableName"))
    all_old = _all_old(p)
    profile_id = key_id(table, p.get("Key"))
    context = _context(table, "DeleteItem")
    if not all_old:
        caller.profiles.delete(caller.actor, profile_id, context=context, record_miss=True)
        return {}
    old = caller.profiles.delete_returning_old(
        caller.actor, profile_id, context=context, record_miss=True
    )
    return {} if old is None else {"Attributes": typed_item(table, old)}


def scan(t: ProfileTables, p: Json, caller: Caller) -> Json:
    _refuse_unsupported(p, "Scan")
    table = t.catalogue.require(p.get("TableName"))
    limit = _integer(p, "Limit", None)
    select = p.get("Select") or "ALL_ATTRIBUTES"
    if select not in ("ALL_ATTRIBUTES", "COUNT"):
        raise ValidationException(f"Select {select!r} is not supported: ALL_ATTRIBUTES or COUNT")
    start = p.get("ExclusiveStartKey")
    after = None if start is None else key_id(table, start)
    page = t.scan(after=after, limit=limit)
    answer: Json = {"Count": len(page.profiles), "ScannedCount": len(page.profiles)}
    if select == "ALL_ATTRIBUTES":
        # Only items handed out are reads of a profile: a COUNT reads none.
        context = _context(table, "Scan")
        caller.profiles.read_together(caller.actor, page.profiles, context=context)
        answer["Items"] = [typed_item(table, profile) for profile in page.profiles]
    if page.last_id is not None:
        answer["LastEvaluatedKey"] = typed_key(table, page.last_id)
    return answer


def _all_old(p: Json) -> bool:
    returns = p.get("ReturnValues") or "NONE"
    if returns not in ("NONE", "ALL_OLD"):
        raise ValidationException(
            f"Return values set to invalid value: {returns!r} (this operation takes NONE or "
            "ALL_OLD)"
        )
    return bool(returns == "ALL_OLD")


def _refuse_unsupported(p: Json, operation: str) -> None:
    given = [name for name in _UNSUPPORTED if p.get(name) is not None]
    if given:
        raise ValidationException(
            f"{operation}: {', '.join(given)} not supported by facelens' DynamoDB endpoint "
            "(no conditions, filters, projections or indexes): read the item and decide in code"
        )


def _integer(p: Json, name: str, default: Any, *, maximum: int | None = None) -> Any:
    value = p.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationException(
            f"1 validation error detected: Value {value!r} at '{name[0].lower()}{name[1:]}' "
            "failed to satisfy constraint: Member must have value greater than or equal to 1"
        )
    if maximum is not None and value > maximum:
        raise ValidationException(
            f"1 validation error detected: Value {value!r} at '{name[0].lower()}{name[1:]}' "
            f"failed to satisfy constraint: Member must have value less than or equal to {maximum}"
        )
    return value


# -- the table the route dispatches on --

Handler = Callable[[ProfileTables, Json, Caller], Json]


@dataclass(frozen=True)
class Operation:
    role: Role
    handler: Handler


OPERATIONS: dict[str, Operation] = {
    "CreateTable": Operation(Role.ADMIN, create_table),
    "DescribeTable": Operation(Role.READ, describe_table),
    "DeleteTable": Operation(Role.ADMIN, delete_table),
    "ListTables": Operation(Role.READ, list_tables),
    "PutItem": Operation(Role.ADMIN, put_item),
    "GetItem": Operation(Role.READ, get_item),
    "DeleteItem": Operation(Role.ADMIN, delete_item),
    "Scan": Operation(Role.READ, scan),
}
"""DynamoDB operation name (``X-Amz-Target`` after ``DynamoDB_20120810.``) -> handler."""


def service(
    tables: Callable[[], ProfileTables], profiles: Callable[[], ProfileService]
) -> JsonService:
    """DynamoDB on ``POST /`` (what :func:`facelens.api.aws.protocol.json_router` dispatches
    to), running each operation on ``tables`` for the signing key, whose item reads and
    writes go through ``profiles`` (the same store as the tables'), which records them."""

    def run(principal: Principal, name: str, params: Json) -> Json:
        try:
            t = tables()
            actor = actor_of(principal, via=ACCESS_KEY)
            caller = Caller(actor, profiles())
            return OPERATIONS[name].handler(t, params, caller)
        except ValidationException:
            raise
        except InvalidParameterException as exc:
            # The profile store's and converters' refusals (an id too long, an item over
            # 400 KB) are what DynamoDB calls ValidationException.
            raise ValidationException(exc.message) from exc

    return JsonService(
        name="dynamodb",
        target_prefix=TARGET_PREFIX,
        signing_name=SIGNING_NAME,
        content_type=CONTENT_TYPE,
        roles={name: operation.role for name, operation in OPERATIONS.items()},
        run=run,
        error_type=error_type,
        headers=crc32_header,
    )
