"""Commands tell the operator what is wrong in one line: a database without its tables names `db upgrade`,
a failing sweep makes `worker --once` exit non-zero, and the running worker says so once a minute."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import inspect, text

from leadcapture import clock, create_app
from leadcapture.cli import main
from leadcapture.config import BUNDLED_CONTENT_DIR
from leadcapture.extensions import db
from leadcapture.models import RateLimitCounter
from leadcapture.scheduler import SEND_SWEEP, SWEEPS, FailureLog, run_sweep
from tests.support.cli import leaf_commands, minimal_args

# Commands that must work on a database without tables, each with the reason, and how the test runs them.
WITHOUT_TABLES = {
    "content check": "reads only the content files",
    "routes": "lists the app's URLs",
    "demo": "migrates its own database, then serves until Ctrl-C (not run here)",
    "shell": "an interactive shell to look at whatever is there (not run here)",
}
# Flask-Migrate's commands create and inspect the tables themselves.
MIGRATIONS_GROUP = "db"


@pytest.fixture
def empty_app(settings: dict[str, Any], empty_url: str) -> Iterator[Flask]:
    app = create_app({**settings, "LEADCAPTURE_DATABASE_URL": empty_url})
    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()


def hint(app: Flask) -> str:
    with app.app_context():
        url = db.engine.url._replace(password=None).render_as_string()
    return f"error: the database at {url} has no tables yet: run 'leadcapture db upgrade'"


def test_every_command_that_needs_the_database_names_db_upgrade_in_one_line(
    empty_app: Flask, tmp_path: Path
) -> None:
    runner = FlaskCliRunner(empty_app)
    commands = leaf_commands(empty_app)
    assert {"worker", "subscribers export", "users create", "content load", "run", "db upgrade"} <= set(
        commands
    )
    checked = []
    for path, command in sorted(commands.items()):
        if path in WITHOUT_TABLES or path.split()[0] == MIGRATIONS_GROUP:
            continue
        result = runner.invoke(main, [*path.split(), *minimal_args(command, tmp_path)], input="")
        assert result.exit_code == 1, (path, result.output)
        assert result.stderr.splitlines() == [hint(empty_app)], path
        assert result.stdout == "", path
        checked.append(path)
    assert "worker" in checked
    with empty_app.app_context():
        assert inspect(db.engine).get_table_names() == []


def test_the_commands_that_need_no_tables_work_on_an_empty_database(empty_app: Flask) -> None:
    runner = FlaskCliRunner(empty_app)
    for path in (*leaf_commands(empty_app), ""):
        result = runner.invoke(main, [*path.split(), "--help"])
        assert result.exit_code == 0, (path, result.output)
    assert runner.invoke(main, ["routes"]).exit_code == 0
    assert runner.invoke(main, ["content", "check", str(BUNDLED_CONTENT_DIR)]).exit_code == 0

    result = runner.invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["subscribers", "export", "reader@example.com"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: no subscriber with address 'reader@example.com'"


@pytest.fixture
def without_counter_expiry(app: Flask) -> Iterator[None]:
    """The rate-limit counters lose the column their purge sweep filters on, as after a botched hand edit; the
    table is made afresh afterwards, as the PostgreSQL database is shared by the session's tests."""
    table = RateLimitCounter.__table__
    with app.app_context(), db.engine.begin() as connection:
        for index in table.indexes:  # SQLite drops no indexed column
            index.drop(connection)
        connection.execute(text(f"ALTER TABLE {table.name} DROP COLUMN expires_at"))
    try:
        yield
    finally:
        with app.app_context(), db.engine.begin() as connection:
            table.drop(connection)
            table.create(connection)


@pytest.mark.usefixtures("without_counter_expiry")
def test_worker_once_exits_non_zero_when_a_sweep_fails(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 1
    assert "purge-rate-limit-counters: failed" in result.stdout
    assert "send-deliveries: 0" in result.stdout
    assert result.stderr.splitlines()[-1] == "error: 1 of 9 sweeps failed: purge-rate-limit-counters"


def test_the_running_worker_says_a_failing_sweep_once_a_minute(
    empty_app: Flask, frozen_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sweeps = {sweep.name: sweep for sweep in SWEEPS}
    failures = FailureLog()  # one per running worker, as build_scheduler makes it
    caplog.set_level(logging.ERROR, logger="leadcapture.scheduler")
    for _tick in range(90):  # the send sweep ticks every second
        assert run_sweep(empty_app, sweeps[SEND_SWEEP], failures) is None
        clock.advance(timedelta(seconds=1))
    assert run_sweep(empty_app, sweeps["enqueue-steps"], failures) is None

    said = [record.getMessage() for record in caplog.records]
    assert said == [
        "sweep send-deliveries failed",
        "sweep send-deliveries failed (and 59 more times since it was last said)",
        "sweep enqueue-steps failed",
    ]
    assert all(record.exc_info for record in caplog.records)
