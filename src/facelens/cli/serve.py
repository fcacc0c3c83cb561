"""`facelens serve`: the HTTP API, the Rekognition endpoint and the dashboard, until Ctrl-C.

`facelens keys create|list|delete` issues the credentials it checks: API
keys (bearer tokens, for the REST API and the dashboard login) and access
keys (for AWS SDKs and the AWS CLI, signed with SigV4).
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import ExitStack
from typing import Annotated, Any

import typer

from facelens.access.keys import Role
from facelens.cli.output import run
from facelens.config import Settings
from facelens.wiring.process import process_role
from facelens.wiring.server import open_keys, open_server_bundles

keys_app = typer.Typer(help="API keys and AWS access keys for `facelens serve`.")


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Default: serve.host.")] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="Default: serve.port.")
    ] = None,
) -> None:
    """Serves the REST API (/api/v1, /docs), the Rekognition endpoint (POST /) and /ui/."""
    from facelens.api.serve import build_server

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def action(stack: ExitStack) -> dict[str, Any]:
        # Its own spool, status topic and MQTT client ids.
        role = process_role(settings, "serve")
        server, _ = build_server(open_server_bundles(settings, stack, role), host=host, port=port)
        server.start()
        typer.echo(f"facelens serving on {server.url} (dashboard: {server.url}/ui/)", err=True)
        stop.wait()
        server.stop()
        return {"Stopped": True}

    run(action)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what the key is for.")],
    role: Annotated[Role, typer.Option("--role", help="'read' or 'admin'.")] = Role.READ,
    access_key: Annotated[
        bool,
        typer.Option("--access-key", help="An AWS access key (SigV4) instead of an API key."),
    ] = False,
) -> None:
    """Creates a key; its secret is shown this once."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        keys = open_keys(settings, stack)
        if access_key:
            made = keys.create_access_key(name, role)
            return {
                "AccessKeyId": made.access_key_id,
                "SecretAccessKey": made.secret_access_key.get_secret_value(),
                "Role": role.value,
            }
        key = keys.create_api_key(name, role)
        return {"KeyId": key.key_id, "ApiKey": key.token.get_secret_value(), "Role": role.value}

    run(action)


@keys_app.command("list")
def list_() -> None:
    """Lists keys (never their secrets)."""
    settings = Settings()
    run(
        lambda stack: {
            "Keys": [
                {"KeyId": k.key_id, "Kind": k.kind, "Name": k.name, "Role": k.role.value}
                for k in open_keys(settings, stack).list_keys()
            ]
        }
    )


@keys_app.command("delete")
def delete(key_id: Annotated[str, typer.Argument(help="KeyId or AccessKeyId.")]) -> None:
    """Deletes a key: requests with it are refused from now on."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        open_keys(settings, stack).delete(key_id)
        return {}

    run(action)
