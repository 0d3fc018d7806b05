"""The `leadcapture` command: a Flask CLI group with the product's commands."""

from __future__ import annotations

import copy
import functools
import sys
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup, ScriptInfo
from flask_migrate.cli import db as db_commands
from sqlalchemy.exc import OperationalError

from leadcapture.cli import bounces, content, mail, subscribers, users, worker
from leadcapture.database import missing_tables
from leadcapture.errors import ConfigError
from leadcapture.extensions import db

# Commands that run on a database without our tables: `db` (Flask-Migrate) creates them, `demo` migrates its
# own, `content check` reads only files, `routes` and `shell` look at the app. Every other command, plugins'
# included, checks first.
WITHOUT_TABLES = frozenset({"content check", "db", "demo", "routes", "shell"})


class LeadcaptureGroup(FlaskGroup):
    """Flask's CLI group, reporting a configuration error as one line naming the variable."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:
            ctx.ensure_object(ScriptInfo).load_app()
        except ConfigError:
            # Help comes before configuration: the commands that need the settings report what is wrong.
            return sorted(self.commands)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        return None if command is None else _needing_tables(command, cmd_name)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().main(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"configuration error: {exc}", err=True)
            sys.exit(2)


def _create_app() -> Flask:
    from leadcapture import create_app

    return create_app()


@click.group(cls=LeadcaptureGroup, create_app=_create_app, add_version_option=False, set_debug_flag=False)
def main() -> None:
    """leadcapture: interest questions, reports and answer-keyed email sequences."""


for _command in (
    db_commands,
    content.content,
    worker.worker,
    users.users,
    subscribers.subscribers,
    bounces.bounces,
    mail.mail,
):
    main.add_command(_command)


@main.command("demo", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface for both servers.")
@click.option("--port", default=5000, show_default=True, help="Port of the app.")
@click.option(
    "--article-port", default=5001, show_default=True, help="Port of the demo article (a second origin)."
)
def demo(host: str, port: int, article_port: int) -> None:
    """Run the demo: SQLite, demo content, the app, the worker and a demo article, until Ctrl-C."""
    from leadcapture.cli.demo import run_demo

    run_demo(host, port, article_port)


def refuse_without_tables() -> None:
    """Stop with one line naming the remedy when the database lacks the app's tables or cannot be reached,
    rather than with the traceback of the first query that finds out."""
    app = click.get_current_context().ensure_object(ScriptInfo).load_app()
    with app.app_context():
        url = db.engine.url._replace(password=None).render_as_string()
        try:
            missing = missing_tables(db.engine, db.metadata)
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no answer"
            click.echo(f"error: cannot reach the database at {url}: {reason}", err=True)
            raise SystemExit(1) from None
    if not missing:
        return
    if len(missing) == len(db.metadata.tables):
        problem = "has no tables yet"
    else:
        problem = f"lacks the tables {', '.join(missing)}"
    click.echo(f"error: the database at {url} {problem}: run 'leadcapture db upgrade'", err=True)
    raise SystemExit(1)


def _needing_tables(command: click.Command, path: str) -> click.Command:
    """A copy of `command` whose every command first checks the database, unless listed in WITHOUT_TABLES.

    A copy, as Flask's and the plugins' commands are objects shared by every app in the process.
    """
    if path in WITHOUT_TABLES:
        return command
    command = copy.copy(command)
    if isinstance(command, click.Group):
        command.commands = {
            name: _needing_tables(subcommand, f"{path} {name}")
            for name, subcommand in command.commands.items()
        }
    elif command.callback is not None:
        run = command.callback

        @functools.wraps(run)
        def checked(*args: Any, **kwargs: Any) -> Any:
            refuse_without_tables()
            return run(*args, **kwargs)

        command.callback = checked
    return command
