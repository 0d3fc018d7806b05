"""Shared fixtures: one app per test on SQLite and on PostgreSQL, a client, a CLI runner, a frozen clock."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher, profiles
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import make_url, text

from leadcapture import clock, create_app
from leadcapture.config import BUNDLED_CONTENT_DIR
from leadcapture.extensions import db
from leadcapture.services import accounts
from tests.factories import make_demo_widget
from tests.support.app import (
    FROZEN_AT,
    Client,
    CliRunner,
    DrainingClient,
    IntakeClient,
    app_settings,
    require,
)

pytest_plugins = ["tests.fixtures.smtp", "tests.fixtures.browser"]

POSTGRES_ADMIN_URL = os.environ.get(
    "LEADCAPTURE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | None]:
    """A throwaway PostgreSQL database for this test run, or None when no server answers."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        yield None
        return
    name = f"leadcapture_test_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'leadcapture.sqlite'}"
    url: str | None = request.getfixturevalue("postgres_database")
    require(url is not None, f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}")
    assert url is not None
    return url


@pytest.fixture
def empty_url(database_url: str) -> Iterator[str]:
    """A database with no tables: this test's SQLite file, or a PostgreSQL database of its own (the session's
    shared one keeps the tables other tests created)."""
    if database_url.startswith("sqlite"):
        yield database_url
        return
    url = make_url(database_url)
    name = f"{url.database}_empty_{uuid.uuid4().hex[:8]}"
    server = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "settings(**extra): settings the test app starts with besides the usual"
    )
    config.addinivalue_line(
        "markers", "drains_outbox: the test client sends what is due after each request, as a worker would"
    )
    config.addinivalue_line(
        "markers", "keeps_intakes: the test client leaves accepted submissions for the worker to store"
    )


@pytest.fixture
def settings(request: pytest.FixtureRequest, database_url: str) -> dict[str, Any]:
    """Override or extend before the app fixture is first used, or mark the test (or its module) with
    `pytest.mark.settings(NAME=value)`."""
    marker = request.node.get_closest_marker("settings")
    return app_settings(database_url, **(marker.kwargs if marker else {}))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding the schema, copied for each test: a copy costs far less than create_all."""
    path = tmp_path_factory.mktemp("template") / "leadcapture.sqlite"
    app = create_app(app_settings(f"sqlite:///{path}"))
    with app.app_context():
        db.create_all()
        # Closing the last connection checkpoints the WAL into the file, so the file alone is the copy.
        db.engine.dispose()
    return path


def _start_from_template(database_url: str, request: pytest.FixtureRequest) -> None:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return
    path = Path(url.database)
    if not path.exists():
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)


def _empty_postgresql_tables() -> None:
    """Delete every row and restart every sequence: the effect of TRUNCATE … RESTART IDENTITY at a tiny
    fraction of its cost, since TRUNCATE gives each table and index new files (about 0.6 s per test)."""
    with db.engine.begin() as connection:
        # Children first, so no foreign key is ever left pointing at a deleted row.
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())
        connection.execute(
            text(
                "SELECT setval(quote_ident(schemaname) || '.' || quote_ident(sequencename), 1, false)"
                " FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL"
            )
        )


@pytest.fixture
def app(settings: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[Flask]:
    _start_from_template(settings["LEADCAPTURE_DATABASE_URL"], request)
    app = create_app(settings)
    app.test_client_class = (
        IntakeClient
        if request.node.get_closest_marker("keeps_intakes")
        else DrainingClient
        if request.node.get_closest_marker("drains_outbox")
        else Client
    )
    with app.app_context():
        db.create_all()
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            if db.engine.dialect.name == "postgresql":
                _empty_postgresql_tables()
            db.engine.dispose()


@pytest.fixture
def app_context(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


@pytest.fixture
def client(app: Flask) -> Client:
    return app.test_client()  # type: ignore[return-value]


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return CliRunner(app)


@pytest.fixture
def widget(app: Flask) -> None:
    """The demo widget, its report and questions, committed."""
    with app.app_context():
        make_demo_widget()
        db.session.commit()


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    """A private copy of the demo content, to edit freely."""
    directory = tmp_path / "content"
    shutil.copytree(BUNDLED_CONTENT_DIR, directory)
    return directory


@pytest.fixture
def frozen_clock() -> Iterator[datetime]:
    clock.freeze(FROZEN_AT)
    try:
        yield FROZEN_AT
    finally:
        clock.reset()


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashes() -> Iterator[None]:
    """argon2's profile for tests: the production parameters cost about 0.3 s per hash or check here, paid at
    every account a test adds and every sign-in. Hashes still carry their parameters, so any hasher verifies
    them; what tests check is who gets in, not how slowly."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
        yield


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    yield
    clock.reset()
