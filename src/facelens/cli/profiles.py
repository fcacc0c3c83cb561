"""`facelens profiles put|get|delete|list`: free-form items about a face or a person.

``--attr K=V`` sets a string; ``--attr K:=JSON`` a typed value (number,
list, map: the httpie convention); ``--item`` takes DynamoDB's typed JSON,
so the original recipe's ``aws dynamodb put-item`` items paste in as they are.
Every read and write goes through :class:`facelens.people.profiles.ProfileService`,
which records it in the audit log as ``cli:<os user>``.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated, Any

import typer

from facelens import json_limits
from facelens.cli.options import NextToken
from facelens.cli.output import run
from facelens.config import Settings
from facelens.errors import InvalidParameterException, ResourceNotFoundException
from facelens.history.audit import cli_actor
from facelens.profiles.dynamo import from_dynamo_item, to_dynamo_item
from facelens.profiles.types import Profile
from facelens.wiring.people import open_profile_service

app = typer.Typer(help="Profiles: what we know about each FaceId or UserId.", no_args_is_help=True)

ProfileId = Annotated[str, typer.Argument(help="A FaceId (UUID) or a UserId.")]
_MAX_JSON_DEPTH = 100
"""Most arrays and objects a JSON option may nest; refused unparsed beyond (deep enough
for any item the profile store takes: 32 levels are some 66 in typed JSON)."""


def parse_attrs(pairs: list[str]) -> dict[str, Any]:
    """`Bio=Hello` -> {"Bio": "Hello"}; `Age:=42` -> {"Age": 42} (the value is JSON)."""
    attributes: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidParameterException(f"--attr wants NAME=VALUE or NAME:=JSON, got {pair!r}")
        if name.endswith(":"):
            name = name[:-1]
            try:
                attributes[name] = json_limits.loads(value, max_depth=_MAX_JSON_DEPTH)
            except ValueError as exc:  # json's errors, and TooDeepError
                message = f"--attr {name}:= value is not JSON: {exc}"
                raise InvalidParameterException(message) from exc
        else:
            attributes[name] = value
    return attributes


def _item_option(text: str) -> dict[str, Any]:
    try:
        document = json_limits.loads(text, max_depth=_MAX_JSON_DEPTH)
    except ValueError as exc:  # json's errors, and TooDeepError
        raise InvalidParameterException(f"--item is not JSON: {exc}") from exc
    return from_dynamo_item(document)


def _shape(profile: Profile, *, dynamodb: bool) -> dict[str, Any]:
    item = dict(profile.item)
    return {"Item": to_dynamo_item(item)} if dynamodb else item


@app.command()
def put(
    profile_id: Annotated[
        str | None, typer.Argument(help="FaceId or UserId; optional when --item carries it.")
    ] = None,
    attr: Annotated[
        list[str] | None, typer.Option("--attr", help="NAME=VALUE or NAME:=JSON; repeatable.")
    ] = None,
    item: Annotated[
        str | None, typer.Option("--item", help="A DynamoDB item in typed JSON.")
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Keep attributes not given (default: replace).")
    ] = False,
) -> None:
    """Stores a profile (replacing the old one unless --merge)."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        attributes = _item_option(item) if item is not None else {}
        attributes.update(parse_attrs(attr or []))
        target = profile_id or attributes.get("FaceId") or attributes.get("UserId")
        if not isinstance(target, str):
            raise InvalidParameterException("Give the id, or a FaceId or UserId in --item")
        profile = open_profile_service(settings, stack).put(
            cli_actor(), target, attributes, merge=merge
        )
        return dict(profile.item)

    run(action)


@app.command()
def get(
    profile_id: ProfileId,
    dynamodb: Annotated[
        bool, typer.Option("--dynamodb", help="Print DynamoDB's {'Item': typed JSON}.")
    ] = False,
) -> None:
    """Prints a profile; an unknown id is ResourceNotFoundException."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        profile = open_profile_service(settings, stack).get(cli_actor(), profile_id)
        if profile is None:
            raise ResourceNotFoundException(f"No profile for {profile_id}")
        return _shape(profile, dynamodb=dynamodb)

    run(action)


@app.command()
def delete(profile_id: ProfileId) -> None:
    """Deletes a profile; an unknown id is ResourceNotFoundException."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        if not open_profile_service(settings, stack).delete(cli_actor(), profile_id):
            raise ResourceNotFoundException(f"No profile for {profile_id}")
        return {}

    run(action)


@app.command("list")
def list_(
    max_results: Annotated[int, typer.Option("--max-results", min=1, max=1000)] = 100,
    next_token: NextToken = None,
) -> None:
    """Lists profiles in id order."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        page = open_profile_service(settings, stack).list(
            cli_actor(), max_results=max_results, next_token=next_token
        )
        out: dict[str, Any] = {"Items": [dict(p.item) for p in page.profiles]}
        if page.next_token:
            out["NextToken"] = page.next_token
        return out

    run(action)
