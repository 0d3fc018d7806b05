"""Engine tuning per database: SQLite as a well-behaved embedded store, PostgreSQL as is."""

from __future__ import annotations

import fcntl
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import Flask, request
from sqlalchemy import Connection, Engine, MetaData, event, func, inspect, literal_column, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.functions import Function

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

    writers = _Writers(engine.url.database)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        if mode == "DEFERRED":
            connection.exec_driver_sql("BEGIN DEFERRED")
            return
        connection.info[_HOLDS_WRITER_TURN] = writers.wait()
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release(connection)
            raise

    @event.listens_for(engine, "commit")
    def _on_commit(connection: Connection) -> None:
        # The event comes before SQLAlchemy commits: commit here, so the next writer is let in after it.
        # SQLAlchemy's own commit then finds no transaction open and does nothing.
        try:
            if connection.info.get(_HOLDS_WRITER_TURN):
                connection.connection.dbapi_connection.commit()  # type: ignore[union-attr]
        finally:
            _release(connection)

    @event.listens_for(engine, "rollback")
    def _on_rollback(connection: Connection) -> None:
        try:
            if connection.info.get(_HOLDS_WRITER_TURN):
                connection.connection.dbapi_connection.rollback()  # type: ignore[union-attr]
        finally:
            _release(connection)

    def _release(connection: Connection) -> None:
        if connection.info.pop(_HOLDS_WRITER_TURN, False):
            writers.done()


_HOLDS_WRITER_TURN = "leadcapture.holds_writer_turn"


class _Writers:
    """The writing transactions of every process on one SQLite database, let in one at a time.

    SQLite lets one writer in at a time and makes the others wait in its busy handler, which sleeps 1, 2, 5,
    10, 25, 50 and then 100 ms between tries: a waiting writer sleeps long past the moment the lock came
    free, and while writes keep coming, the writers of one process keep taking the lock from those of
    another (bench/clicks.py saw clicks wait a second). Here they wait their turn instead: the threads of a
    process on a lock, the processes on an flock() of a file beside the database, tried at most every
    millisecond. A writer that has waited the busy timeout goes on and lets SQLite decide.
    """

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        # No file for an in-memory database: only this process can reach it.
        self._path = f"{database}-writers" if database and database != ":memory:" else None
        self._file: tuple[int, int] | None = None  # (pid, descriptor): a forked process opens its own
        self._flocked: int | None = None  # the descriptor this process's writer holds the flock() of

    def wait(self) -> bool:
        """Wait for this writer's turn; False when it did not come within the busy timeout."""
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        if not self._threads.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            return False
        descriptor = self._descriptor()
        pause = 0.00005
        while descriptor is not None:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
            else:
                self._flocked = descriptor
                break
        return True

    def done(self) -> None:
        if self._flocked is not None:
            fcntl.flock(self._flocked, fcntl.LOCK_UN)
            self._flocked = None
        self._threads.release()

    def _descriptor(self) -> int | None:
        if self._path is None:
            return None
        pid = os.getpid()
        if self._file is None or self._file[0] != pid:
            self._file = (pid, os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600))
        return self._file[1]


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


def commit_without_waiting() -> Function[Any]:
    """PostgreSQL: set_config() that lets the transaction whose statement calls it commit without waiting for
    the write-ahead log to reach the disk (synchronous_commit off, for that transaction only). That flush takes
    2 to 3 ms here, more than the rest of a short request; a crash of the database server itself can then lose
    the last fraction of a second of what committed, whole transactions at a time, never part of one. For
    writes that can bear it (counts, clicks), in a statement the transaction runs anyway: no round trip."""
    return func.set_config(literal_column("'synchronous_commit'"), literal_column("'off'"), true())


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
