"""`facelens objects put|get|head|list|delete`: the crop store, S3's verbs.

``put`` goes through the notifying store, so a crop put here under
``faces/`` is recognised exactly as one from a camera.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

from facelens.cli.options import NextToken
from facelens.cli.output import run
from facelens.config import Settings
from facelens.errors import InvalidParameterException
from facelens.storage.types import ObjectInfo
from facelens.wiring.bus import open_event_sink, open_publication, sends_events_by_broker
from facelens.wiring.process import process_role
from facelens.wiring.stores import notifying_objects, open_raw_objects

app = typer.Typer(help="Objects: crops in the configured object store.", no_args_is_help=True)

Key = Annotated[str, typer.Argument(help="Object key, e.g. faces/11_26/10_30/1764150000_0.jpg")]
Bucket = Annotated[str | None, typer.Option("--bucket", help="Default: the 'bucket' setting.")]


def _info(info: ObjectInfo) -> dict[str, Any]:
    return {
        "Key": info.key,
        "Size": info.size,
        "ETag": f'"{info.etag}"',
        "LastModified": info.last_modified.isoformat(),
        "ContentType": info.content_type,
        "Metadata": dict(info.metadata),
    }


def _metadata(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidParameterException(f"--metadata wants NAME=VALUE, got {pair!r}")
        out[name.lower()] = value
    return out


@app.command()
def put(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="File to upload.")],
    key: Key,
    bucket: Bucket = None,
    content_type: Annotated[str, typer.Option("--content-type")] = "image/jpeg",
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", help="NAME=VALUE; repeatable.")
    ] = None,
) -> None:
    """Uploads a file (and, for crops, triggers the recognizer)."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        publication = None
        if sends_events_by_broker(settings):
            # Closed before the output: the event leaves the spool before the process exits.
            publication = open_publication(settings, stack, process_role(settings, "cli"))
        sink = open_event_sink(settings, stack, publication)
        objects = notifying_objects(settings, open_raw_objects(settings, stack), sink)
        info = objects.put_object(
            bucket or settings.bucket,
            key,
            file.read_bytes(),
            content_type=content_type,
            metadata=_metadata(metadata or []),
        )
        return {"ETag": f'"{info.etag}"', "Key": info.key, "Size": info.size}

    run(action)


@app.command()
def get(
    key: Key,
    out: Annotated[Path, typer.Argument(dir_okay=False, help="Where to write the body.")],
    bucket: Bucket = None,
) -> None:
    """Downloads an object into a file."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        stored = open_raw_objects(settings, stack).get_object(bucket or settings.bucket, key)
        out.write_bytes(stored.body)
        return _info(stored.info)

    run(action)


@app.command()
def head(key: Key, bucket: Bucket = None) -> None:
    """An object's size, ETag and metadata."""
    settings = Settings()
    run(
        lambda stack: _info(
            open_raw_objects(settings, stack).head_object(bucket or settings.bucket, key)
        )
    )


@app.command("list")
def list_(
    prefix: Annotated[str, typer.Option("--prefix")] = "",
    bucket: Bucket = None,
    max_keys: Annotated[int, typer.Option("--max-keys", min=1, max=1000)] = 1000,
    next_token: NextToken = None,
) -> None:
    """Objects under a prefix, in key order."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        page = open_raw_objects(settings, stack).list_objects(
            bucket or settings.bucket, prefix=prefix, max_keys=max_keys, next_token=next_token
        )
        document: dict[str, Any] = {"Contents": [_info(i) for i in page.objects]}
        if page.next_token:
            document["NextToken"] = page.next_token
        return document

    run(action)


@app.command()
def delete(key: Key, bucket: Bucket = None) -> None:
    """Deletes an object (a missing key is not an error, as in S3)."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        open_raw_objects(settings, stack).delete_object(bucket or settings.bucket, key)
        return {}

    run(action)
