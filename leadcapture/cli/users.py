"""`leadcapture users create`."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from leadcapture.errors import InvalidInput
from leadcapture.extensions import db
from leadcapture.models import Role
from leadcapture.services.accounts import create_user


@click.group()
def users() -> None:
    """Editor and admin accounts."""


@users.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice([role.value for role in Role]), required=True)
@with_appcontext
def create(email: str, role: str) -> None:
    """Create an account; the password is read from stdin or prompted for."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        user = create_user(email, password, Role(role))
    except InvalidInput as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"created {user.role.value} {user.email}")
