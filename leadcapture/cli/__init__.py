"""The `leadcapture` command: a Flask CLI group with the product's commands."""

from __future__ import annotations

import sys
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup, ScriptInfo
from flask_migrate.cli import db as db_commands

from leadcapture.cli import bounces, content, mail, subscribers, users, worker
from leadcapture.errors import ConfigError


class LeadcaptureGroup(FlaskGroup):
    """Flask's CLI group, reporting a configuration error as one line naming the variable."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:
            ctx.ensure_object(ScriptInfo).load_app()
        except ConfigError:
            # Help comes before configuration: the commands that need the settings report what is wrong.
            return sorted(self.commands)
        return super().list_commands(ctx)

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
