"""Engine tuning per database: SQLite as a well-behaved embedded store, PostgreSQL as is."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import Flask, request
from sqlalchemy import Connection, Engine, MetaData, event, inspect
from sqlalchemy.dialects import postgresql, sqlite

# Writing transactions on SQLite start with BEGIN IMMEDIATE: a deferred transaction that reads and then
# writes can fail at once with SQLITE_BUSY instead of waiting for the lock. Safe requests opt into a
# plain deferred BEGIN, so reads never queue behind the writer.
SQLITE_BEGIN_OPTION = "sqlite_begin"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def engine_options(database_url: str) -> dict[str, Any]:
    """Engine keyword arguments for Flask-SQLAlchemy."""
    if database_url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}}
    return {"pool_pre_ping": True}


def configure_engine(engine: Engine) -> None:
    """Install the SQLite pragmas and transaction handling; nothing to do for PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module so the BEGIN below is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()
        _math_functions(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql("BEGIN DEFERRED" if mode == "DEFERRED" else "BEGIN IMMEDIATE")


def _math_functions(dbapi_connection: Any) -> None:
    """ln() and exp() (interest scores add up in SQL with them), where SQLite was built without its math
    functions."""
    try:
        dbapi_connection.execute("SELECT ln(1), exp(0)").fetchone()
    except sqlite3.OperationalError:
        dbapi_connection.create_function("ln", 1, math.log, deterministic=True)
        dbapi_connection.create_function("exp", 1, math.exp, deterministic=True)


def missing_tables(engine: Engine, metadata: MetaData) -> list[str]:
    """The tables of `metadata` the database does not have (all of them before `db upgrade`), by name."""
    # A deferred read on SQLite: a command may start while another connection holds the write lock.
    with engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"}) as connection:
        present = inspect(connection).get_table_names()
    return sorted(set(metadata.tables) - set(present))


def insert_or_ignore(target: Any, dialect: str | None = None) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into a model or table that skips rows colliding with a unique constraint (ON CONFLICT DO
    NOTHING), for `dialect` ("postgresql" or "sqlite"; by default the app's database).

    With RETURNING, a skipped row returns nothing, so callers learn whether they wrote it without a
    prior SELECT and without a failed statement aborting their transaction.
    """
    if dialect is None:
        from leadcapture.extensions import db

        dialect = db.engine.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(target).on_conflict_do_nothing()
    return sqlite.insert(target).on_conflict_do_nothing()


_View = TypeVar("_View", bound=Callable[..., Any])
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def defer_safe_requests(app: Flask) -> None:
    """On SQLite, let GET, HEAD and OPTIONS requests read in a deferred transaction: a GET never writes, but
    for the click redirect, whose GET records the click."""
    from leadcapture.extensions import db

    @app.before_request
    def _deferred_begin() -> None:
        view = app.view_functions.get(request.endpoint or "")
        if request.method == "GET" and getattr(view, "records_on_get", False):
            return
        if request.method in SAFE_METHODS and db.engine.dialect.name == "sqlite":
            db.session.connection(execution_options={SQLITE_BEGIN_OPTION: "DEFERRED"})


def records_on_get(view: _View) -> _View:
    """Mark a view whose GET writes (the click redirect, which SPEC names): on SQLite it begins a writing
    transaction at once rather than a deferred one that a write would have to upgrade."""
    view.records_on_get = True  # type: ignore[attr-defined]
    return view


@contextmanager
def own_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection of its own in a transaction of its own, committed on exit: for a count that must stand
    whatever becomes of the request's transaction (a rate-limit hit, counted even when the request fails).

    What counts often happens in GET requests, and on SQLite a GET reads in a deferred transaction: turning
    that into a writer fails at once with SQLITE_BUSY, whatever the busy timeout, when another connection has
    written since it began reading. A transaction apart begins IMMEDIATE (configure_engine) and so waits its
    turn. On PostgreSQL it runs in autocommit: each statement is its own transaction, without the BEGIN and
    COMMIT round trips.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        with connection.begin():
            yield connection
