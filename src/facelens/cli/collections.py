"""`facelens collections create|describe|list|delete`."""

from __future__ import annotations

import typer

from facelens.api import shapes
from facelens.cli.context import Context
from facelens.cli.options import CollectionId, MaxResults, NextToken
from facelens.cli.output import run
from facelens.people.audit import AuditAction

app = typer.Typer(help="Face collections: create, describe, list, delete.", no_args_is_help=True)


@app.command()
def create(collection_id: CollectionId) -> None:
    """CreateCollection."""
    ctx = Context()
    run(lambda: shapes.create_collection(ctx.collections.create_collection(collection_id)))


@app.command()
def describe(collection_id: CollectionId) -> None:
    """DescribeCollection: face and user counts, model version, creation time."""
    ctx = Context()
    run(lambda: shapes.describe_collection(ctx.collections.describe_collection(collection_id)))


@app.command("list")
def list_(max_results: MaxResults = 1000, next_token: NextToken = None) -> None:
    """ListCollections."""
    ctx = Context()
    run(
        lambda: shapes.list_collections(
            ctx.collections.list_collections(max_results=max_results, next_token=next_token)
        )
    )


@app.command()
def delete(collection_id: CollectionId) -> None:
    """DeleteCollection, with every face and user in it."""
    ctx = Context()

    def action() -> dict[str, int]:
        ctx.collections.delete_collection(collection_id)
        ctx.audit_action(AuditAction.DELETE_COLLECTION, collection_id, collection_id=collection_id)
        return {"StatusCode": 200}

    run(action)
