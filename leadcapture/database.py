"""Engine tuning per database: SQLite as a well-behaved embedded store, PostgreSQL as is."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask import Flask, request
from sqlalchemy import Connection, Dialect, Engine, Executable, MetaData, event, inspect
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


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def defer_safe_requests(app: Flask) -> None:
    """On SQLite, let GET, HEAD and OPTIONS requests read in a deferred transaction: a GET never writes."""
    from leadcapture.extensions import db

    @app.before_request
    def _deferred_begin() -> None:
        if request.method in SAFE_METHODS and db.engine.dialect.name == "sqlite":
            db.session.connection(execution_options={SQLITE_BEGIN_OPTION: "DEFERRED"})


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


class Prepared:
    """A Core statement compiled once per database and run straight on the DBAPI cursor of a connection.

    For the busiest paths only (a widget submission, and the statements the sender runs for every message):
    SQLAlchemy's per-execution bookkeeping (execution context, events, result wrapping) costs several times
    what the database spends on a small INSERT or a look-up by primary key. Parameters still pass through each
    column type's bind processor, so values are stored exactly as SQLAlchemy would store them; values the
    statement holds itself (a status compared with, an IN list) are bound as compiled. The statement runs in
    the connection's transaction, or on its own on a connection in autocommit.
    """

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._compiled: dict[tuple[str, frozenset[str]], _Compiled] = {}

    def _compile(self, dialect: Dialect, keys: frozenset[str]) -> _Compiled:
        compiled = self._compiled.get((dialect.name, keys))
        if compiled is None:
            sql = self._statement.compile(dialect=dialect, column_keys=sorted(keys))  # type: ignore[attr-defined]
            if "__[POSTCOMPILE_" in sql.string:
                raise TypeError("an IN list is bound when executed: write the comparisons out instead")
            processors = {
                name: processor
                for name, bind in sql.binds.items()
                if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
            }
            constants = {
                name: processors[name](value) if name in processors else value
                for bind, name in sql.bind_names.items()
                if name not in keys and not bind.required
                for value in (bind.effective_value,)
            }
            order = tuple(sql.positiontup) if sql.positional else None
            compiled = self._compiled[(dialect.name, keys)] = _Compiled(sql.string, order, processors, constants)
        return compiled

    def scalar(self, connection: Connection, params: Mapping[str, Any]) -> Any:
        """Run with one row of parameters; the first value RETURNING gave, or None."""
        with self._executed(connection, params) as cursor:
            row = cursor.fetchone() if cursor.description else None
            return None if row is None else row[0]

    def first(self, connection: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run with one row of parameters; the first row, or None when there is none."""
        with self._executed(connection, params) as cursor:
            row = cursor.fetchone()
            return None if row is None else tuple(row)

    def rowcount(self, connection: Connection, params: Mapping[str, Any]) -> int:
        """Run with one row of parameters; how many rows it changed."""
        with self._executed(connection, params) as cursor:
            return int(cursor.rowcount)

    @contextmanager
    def _executed(self, connection: Connection, params: Mapping[str, Any]) -> Iterator[Any]:
        compiled = self._compile(connection.dialect, frozenset(params))
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, compiled.bind(params))
            yield cursor
        finally:
            cursor.close()

    def execute_many(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per row of parameters, every row with the same keys."""
        compiled = self._compile(connection.dialect, frozenset(rows[0]))
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(compiled.sql, [compiled.bind(row) for row in rows])  # type: ignore[arg-type]
        finally:
            cursor.close()


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # parameter names in placeholder order, for positional paramstyles
    processors: Mapping[str, Callable[[Any], Any]]
    constants: Mapping[str, Any]  # the values the statement itself holds, as bound

    def bind(self, params: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        processors = self.processors
        values = {
            **self.constants,
            **{name: processors[name](value) if name in processors else value for name, value in params.items()},
        }
        return values if self.order is None else [values[name] for name in self.order]
