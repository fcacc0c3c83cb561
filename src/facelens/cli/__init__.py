"""The facelens command line: `facelens <group> <command>`, AWS CLI names and flags."""

from __future__ import annotations

import typer

from facelens.cli import (
    audit,
    bench,
    collections,
    corrections,
    edge,
    enrol,
    faces,
    forget,
    models,
    objects,
    profiles,
    recognizer,
    retention,
    serve,
    strangers,
    up,
    users,
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="facelens",
        help="Open person identification with Rekognition's vocabulary.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    app.add_typer(collections.app, name="collections")
    app.add_typer(faces.app, name="faces")
    app.add_typer(users.app, name="users")
    app.add_typer(profiles.app, name="profiles")
    app.add_typer(objects.app, name="objects")
    app.add_typer(recognizer.app, name="recognizer")
    app.command("edge")(edge.edge)
    app.command("serve")(serve.serve)
    app.command("enroll")(enrol.enroll)
    app.command("up")(up.up)
    app.add_typer(serve.keys_app, name="keys")
    app.add_typer(bench.app, name="bench")
    app.command("forget")(forget.forget)
    app.add_typer(retention.app, name="retention")
    app.command("audit")(audit.audit)
    app.add_typer(corrections.app, name="corrections")
    app.add_typer(corrections.thresholds_app, name="thresholds")
    app.add_typer(strangers.app, name="strangers")
    app.add_typer(models.app, name="models")
    return app


def main() -> None:
    build_app()()
