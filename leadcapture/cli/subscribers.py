"""`leadcapture subscribers export|erase`."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from leadcapture.errors import NotFound
from leadcapture.services.subscribers import export_subscriber


@click.group()
def subscribers() -> None:
    """Data requests about one person."""


@subscribers.command("export")
@click.argument("email")
@with_appcontext
def export(email: str) -> None:
    """Print everything held on EMAIL as JSON."""
    try:
        data = export_subscriber(email)
    except NotFound as exc:
        raise click.ClickException(f"no subscriber with address {email!r}") from exc
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
