"""`leadcapture subscribers export|erase`."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from leadcapture.errors import NotFound
from leadcapture.extensions import db
from leadcapture.services.subscribers import erase_subscriber, export_subscriber, find_subscriber, was_erased


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
        raise click.ClickException(_unknown(email)) from exc
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@subscribers.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def erase(email: str, yes: bool) -> None:
    """Erase EMAIL: every answer, consent record, request, sequence and email of that person.

    Only a keyed hash of the address stays, on the suppression list. Nothing still queued for the person
    is sent. Signing up again later starts afresh, with a new double opt-in.
    """
    try:
        address = find_subscriber(email).email
    except NotFound as exc:
        raise click.ClickException(_unknown(email)) from exc
    if not yes:
        click.confirm(f"Erase {address} and everything held on them? This cannot be undone", abort=True)
    erasure = erase_subscriber(address)
    db.session.commit()
    removed = ", ".join(f"{count} {label}" for label, count in erasure.removed.items())
    click.echo(f"erased {address}: {removed}; its keyed hash is on the suppression list")


def _unknown(email: str) -> str:
    shown = email if len(email) <= 80 else email[:80] + "…"
    if was_erased(email):
        return f"no subscriber with address {shown!r}: it was erased before"
    return f"no subscriber with address {shown!r}"
