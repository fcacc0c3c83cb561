"""Profiles in a DynamoDB table: the original recipe's profile table, through boto3.

Why DynamoDB: it is where the cloud recipe keeps its profiles, so a recognizer
running as a Lambda (or anywhere with AWS credentials) can read the very
table the recipe's users already fill by hand. boto3 is imported, and the
client made, on first use: opening a store costs nothing and needs no
network.

The table: a simple primary key, one string partition key and no sort key.
Its name is ``key`` (``FaceId`` by default, as in the recipe). Every
profile is stored under that attribute, whatever its id: a UserId item on a
FaceId-keyed table has ``FaceId`` = its UserId, plus its own ``UserId``
attribute. On the way back that table key is dropped again, so
``Profile.profile_id`` and ``Profile.item`` are exactly what the SQLite
store returns. Because the table key holds the id, a UserId item cannot also
carry an attribute named like the table key (``FaceId``): such a put is
refused rather than silently losing the attribute.

``updated_at`` is kept in the attribute ``_updated_at`` (ISO 8601, UTC),
hidden from the item; an item written by another tool without it reads as
updated at the Unix epoch. Numbers come back as ``int`` when integral
(DynamoDB has one number type), so a float ``2.0`` reads back as ``2``.

Listing differs from the SQL stores in one way: a DynamoDB Scan returns
items in the table's hash order, not in id order. Each page is sorted by
id, but pages are not ordered among themselves; together they hold every
item exactly once. Ordering the whole table would mean reading all of it for
every page. The page token is an opaque encoding of Scan's
``LastEvaluatedKey``. Scans and reads are strongly consistent
(``ConsistentRead``): twice the read capacity, but a profile just written is
always seen.

Errors: a missing table is ResourceNotFoundException; an unreachable
endpoint or DynamoDB asking us to slow down (after botocore's bounded
retries) is ServiceUnavailableException; an item DynamoDB refuses
(``ValidationException``: a number out of its range, nesting deeper than 32,
an item over 400 KB as DynamoDB counts) is InvalidParameterException;
anything else is StorageError naming the AWS error code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from facelens.aws_clients import AwsClient, AwsClientOptions
from facelens.errors import (
    ConfigurationError,
    InvalidParameterException,
    ResourceNotFoundException,
    ServiceUnavailableException,
    StorageError,
)
from facelens.pagination import decode_token, encode_token
from facelens.profiles.dynamo import from_dynamo_item, to_dynamo_item
from facelens.profiles.types import (
    Profile,
    ProfilePage,
    check_profile_id,
    key_attribute,
    make_item,
    served_item,
)
from facelens.urls import url_options

UPDATED_AT = "_updated_at"
"""The hidden attribute holding when the item was last written (ISO 8601, UTC)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "503",
    }
)
"""Error codes that say "later" (after botocore's own retries), not "never"."""
_URL_OPTIONS = frozenset({"region", "endpoint_url", "key"})

CLIENT_OPTIONS = AwsClientOptions(read_timeout=10.0)
"""boto3's chain for where; 10 s to read: DynamoDB answers a get, put or page of a scan in
milliseconds, so a longer wait is an endpoint in trouble, better retried than waited on."""


class DynamoDBProfileStore:
    """:class:`~facelens.profiles.store.ProfileStore` on one DynamoDB table; safe for threads.

    ``table``: the table's name; it must exist (facelens never creates it:
    capacity, encryption and backups are the owner's choice). ``key``: the
    name of its string partition key. ``aws.endpoint_url``: DynamoDB Local,
    LocalStack or moto; ``aws.region``: where the table is; its timeouts and
    attempts (see :mod:`facelens.aws_clients`): an unreachable endpoint fails
    after about ``max_attempts * connect_timeout`` plus the backoff.
    ``client``: a ready boto3 DynamoDB client (tests, special set-ups);
    endpoint and timeouts are then its own, and ``close`` leaves it open.
    """

    def __init__(
        self,
        table: str,
        *,
        key: str = "FaceId",
        aws: AwsClientOptions = CLIENT_OPTIONS,
        client: Any = None,
    ) -> None:
        self.aws = AwsClient("dynamodb", aws, client=client)
        if not _TABLE_NAME.fullmatch(table):
            raise ConfigurationError(
                f"Not a DynamoDB table name: {table!r} (3-255 of A-Z a-z 0-9 _ . -)"
            )
        if not key or len(key) > 255 or not key.isprintable() or key == UPDATED_AT:
            raise ConfigurationError(f"Not a DynamoDB key attribute name: {key!r}")
        self.table = table
        self.key = key

    @classmethod
    def from_url(cls, url: str) -> DynamoDBProfileStore:
        """The store for ``dynamodb://<table>?region=...&endpoint_url=...&key=FaceId``.

        Every query parameter is optional; an unknown or repeated one is a
        ConfigurationError (a typo must not silently select another table
        or endpoint).
        """
        parsed = urlparse(url)
        if parsed.scheme != "dynamodb":
            raise ConfigurationError(f"Not a dynamodb:// URL: {url!r}")
        if parsed.path not in ("", "/") or parsed.fragment or parsed.params:
            raise ConfigurationError(f"A dynamodb URL names only a table: {url!r}")
        options = url_options(url, known=_URL_OPTIONS)
        endpoint_url = options.get("endpoint_url")
        if endpoint_url is not None:
            endpoint = urlparse(endpoint_url)
            if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
                raise ConfigurationError(f"endpoint_url must be an http(s) URL: {endpoint_url!r}")
        return cls(
            parsed.netloc,
            key=options.get("key", "FaceId"),
            aws=replace(CLIENT_OPTIONS, region=options.get("region"), endpoint_url=endpoint_url),
        )

    # -- the port --
    def put(self, profile_id: str, attributes: Mapping[str, Any]) -> Profile:
        """PutItem: the item whole, replacing any earlier one."""
        item = self._checked_item(profile_id, attributes)
        now = datetime.now(UTC)
        stored = {**item, self.key: profile_id, UPDATED_AT: now.isoformat()}
        typed = _typed(stored)
        with self._errors(f"put {profile_id!r}"):
            self.aws.get().put_item(TableName=self.table, Item=typed)
        return Profile(profile_id, item, now)

    def update(self, profile_id: str, attributes: Mapping[str, Any]) -> Profile:
        """UpdateItem: SET of the given attributes (and the id's own), in one atomic request.

        Creates the item if absent. Two hosts updating different attributes
        never overwrite each other. Each attribute is one SET clause, and
        DynamoDB caps an expression at 4 KB: some 200 attributes per update.
        """
        item = self._checked_item(profile_id, attributes)
        values = {name: value for name, value in item.items() if name != self.key}
        values[UPDATED_AT] = datetime.now(UTC).isoformat()
        names = {f"#a{i}": name for i, name in enumerate(values)}
        typed = {f":v{i}": value for i, value in enumerate(_typed(values).values())}
        clauses = ", ".join(f"#a{i} = :v{i}" for i in range(len(values)))
        with self._errors(f"update {profile_id!r}"):
            response = self.aws.get().update_item(
                TableName=self.table,
                Key=self._key(profile_id),
                UpdateExpression=f"SET {clauses}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=typed,
                ReturnValues="ALL_NEW",
            )
        return self._profile(response["Attributes"])

    def get(self, profile_id: str) -> Profile | None:
        """GetItem, strongly consistent."""
        check_profile_id(profile_id)
        with self._errors(f"get {profile_id!r}"):
            response = self.aws.get().get_item(
                TableName=self.table, Key=self._key(profile_id), ConsistentRead=True
            )
        found = response.get("Item")
        return None if found is None else self._profile(found)

    def delete(self, profile_id: str) -> bool:
        """DeleteItem; whether there was an item (``ReturnValues=ALL_OLD``)."""
        check_profile_id(profile_id)
        with self._errors(f"delete {profile_id!r}"):
            response = self.aws.get().delete_item(
                TableName=self.table, Key=self._key(profile_id), ReturnValues="ALL_OLD"
            )
        return bool(response.get("Attributes"))

    def list(self, *, max_results: int = 100, next_token: str | None = None) -> ProfilePage:
        """One Scan: up to ``max_results`` items, sorted by id within the page (see the module).

        One item more than asked for is read, so that a page which ends the
        table has no token. A page may hold fewer items when DynamoDB stops
        at its 1 MB per Scan.
        """
        if max_results < 1:
            raise InvalidParameterException("MaxResults must be at least 1")
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Limit": max_results + 1,
            "ConsistentRead": True,
        }
        if next_token is not None:
            after = decode_token(next_token, scope=self._scope, key=self.key)
            kwargs["ExclusiveStartKey"] = self._key(after)
        with self._errors("scan"):
            response = self.aws.get().scan(**kwargs)
        items: list[dict[str, Any]] = response.get("Items", [])
        token: str | None = None
        last: Mapping[str, Any] | None = response.get("LastEvaluatedKey")
        if len(items) > max_results:
            items = items[:max_results]
            last = items[-1]
        if last:
            token = encode_token(self._scope, self.key, self._stored_id(last))
        profiles = sorted((self._profile(found) for found in items), key=lambda p: p.profile_id)
        return ProfilePage(tuple(profiles), token)

    def close(self) -> None:
        self.aws.close()

    # -- items --
    @property
    def _scope(self) -> str:
        return f"dynamodb:{self.table}"

    def _key(self, profile_id: str) -> dict[str, Any]:
        return {self.key: {"S": profile_id}}

    def _checked_item(self, profile_id: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
        item = make_item(profile_id, attributes)
        if UPDATED_AT in item:
            raise InvalidParameterException(f"{UPDATED_AT!r} is reserved by the DynamoDB store")
        if self.key in item and self.key != key_attribute(profile_id):
            raise InvalidParameterException(
                f"The table's key {self.key!r} holds the id {profile_id!r}: the item cannot"
                f" carry an attribute {self.key!r} of its own"
            )
        return item

    def _stored_id(self, typed: Mapping[str, Any]) -> str:
        value = typed.get(self.key, {})
        if not isinstance(value, Mapping) or not isinstance(value.get("S"), str):
            raise StorageError(
                f"DynamoDB table {self.table} has no string key {self.key!r}: facelens needs a"
                " table keyed by one string partition key (set ?key= to its name)"
            )
        stored_id: str = value["S"]
        return stored_id

    def _profile(self, typed: Mapping[str, Any]) -> Profile:
        profile_id = self._stored_id(typed)
        plain = from_dynamo_item(typed)
        stamp = plain.pop(UPDATED_AT, None)
        own_key = key_attribute(profile_id)
        if self.key != own_key:
            plain.pop(self.key, None)
        plain[own_key] = profile_id  # items written by other tools may lack it
        return Profile(profile_id, served_item(profile_id, plain), _timestamp(stamp))

    # -- the client and its errors --
    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Maps botocore's errors to ours, naming the table and what we were doing."""
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoRegionError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        where = f"DynamoDB table {self.table}"
        try:
            yield
        except (BotoConnectionError, HTTPClientError) as exc:
            # Refused, timed out (connect or read), closed mid-answer: all may pass.
            raise ServiceUnavailableException(f"{where} is unreachable ({action}): {exc}") from exc
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            message = str(exc.response.get("Error", {}).get("Message", exc))
            if code == "ResourceNotFoundException":
                raise ResourceNotFoundException(f"{where} does not exist") from exc
            if code in _UNAVAILABLE_CODES:
                raise ServiceUnavailableException(
                    f"{where} is unavailable ({action}): {code}: {message}"
                ) from exc
            if code == "ValidationException":
                raise InvalidParameterException(f"{where} refused {action}: {message}") from exc
            raise StorageError(f"{where}: {action} failed: {code}: {message}") from exc
        except NoRegionError as exc:
            raise ConfigurationError(
                f"No AWS region for {where}: add ?region= to the URL or set AWS_REGION"
            ) from exc
        except BotoCoreError as exc:
            raise StorageError(f"{where}: {action} failed: {exc}") from exc


def _typed(values: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB typed JSON; numbers DynamoDB cannot hold (over 38 digits) are the caller's fault."""
    try:
        return to_dynamo_item(values)
    except (TypeError, ValueError, ArithmeticError) as exc:  # decimal.Inexact, Overflow, ...
        raise InvalidParameterException(f"The item does not fit DynamoDB's types: {exc!r}") from exc


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        return _EPOCH
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return _EPOCH
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
