"""The `leadcapture` command: a Flask CLI group with the product's commands."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from leadcapture.errors import ConfigError


def _create_cli_app() -> Flask:
    from leadcapture import create_app

    try:
        return create_app()
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)


def register_app_commands(app: Flask) -> None:
    """Attach the product's command groups to the app's CLI (also reachable through `flask`)."""
    from leadcapture.cli import content, subscribers, users, worker

    app.cli.add_command(content.content)
    app.cli.add_command(worker.worker)
    app.cli.add_command(users.users)
    app.cli.add_command(subscribers.subscribers)


@click.group(cls=FlaskGroup, create_app=_create_cli_app, add_version_option=False, set_debug_flag=False)
def main() -> None:
    """leadcapture: interest questions, reports and answer-keyed email sequences."""


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface for both servers.")
@click.option("--port", default=5000, show_default=True, help="Port of the app.")
@click.option(
    "--article-port", default=5001, show_default=True, help="Port of the demo article (a second origin)."
)
def demo(host: str, port: int, article_port: int) -> None:
    """Run the demo: SQLite, demo content, the app, the worker and a demo article, until Ctrl-C."""
    from leadcapture.cli.demo import run_demo

    run_demo(host, port, article_port)
