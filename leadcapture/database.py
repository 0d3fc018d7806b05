"""Engine tuning per database: SQLite as a well-behaved embedded store, PostgreSQL as is."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from sqlalchemy import Connection, Engine, event
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

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql("BEGIN DEFERRED" if mode == "DEFERRED" else "BEGIN IMMEDIATE")


def insert_or_ignore(model: type[Any]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that skips rows colliding with a unique constraint (ON CONFLICT DO NOTHING).

    With RETURNING, a skipped row returns nothing, so callers learn whether they wrote it without a
    prior SELECT and without a failed statement aborting their transaction.
    """
    from leadcapture.extensions import db

    if db.engine.dialect.name == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing()
    return sqlite.insert(model).on_conflict_do_nothing()


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def defer_safe_requests(app: Flask) -> None:
    """On SQLite, let GET, HEAD and OPTIONS requests read in a deferred transaction: a GET never writes."""
    from leadcapture.extensions import db

    @app.before_request
    def _deferred_begin() -> None:
        if request.method in SAFE_METHODS and db.engine.dialect.name == "sqlite":
            db.session.connection(execution_options={SQLITE_BEGIN_OPTION: "DEFERRED"})
