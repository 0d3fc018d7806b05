"""The raw-cursor path: Core statements run straight on the DBAPI cursor, for the three hottest paths only.

A widget submission's intake (services/capture.py, and for a returning reader the look-up of their
reference), the statements the sender runs for every message (services/outbox.py: the look-up right before
the relay, and the sent mark), and a click on a tracked link (services/clicks.py, with the signal and score
it writes, services/interests.py). There SQLAlchemy's per-execution bookkeeping (execution context, events,
result wrapping) costs as much as the database does (bench/prepared.py; bench/capture.py, bench/sending.py
and bench/clicks.py show it end to end, through the noise of a shared machine). Everything else speaks Core
or the ORM; a statement joins these only with a bench that shows it pays. tests/test_prepared.py checks that
each writes the very rows Core writes and reads back what Core reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Dialect, Executable


class Prepared:
    """A Core statement compiled once per database and run straight on the DBAPI cursor of a connection.

    Parameters still pass through each
    column type's bind processor, and what comes back through each result column's processor, so values are
    stored and read exactly as SQLAlchemy would store and read them; values the statement holds itself (a
    status compared with, an IN list) are bound as compiled. The statement runs in the connection's
    transaction, or on its own on a connection in autocommit.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, frozenset[str]], _Compiled] = {}

    def _compile(self, dialect: Dialect, keys: frozenset[str]) -> _Compiled:
        compiled = self._compiled.get((dialect.name, keys))
        if compiled is None:
            sql = self.statement.compile(dialect=dialect, column_keys=sorted(keys))  # type: ignore[attr-defined]
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
            results = tuple(column.type for column in sql._result_columns)
            compiled = self._compiled[(dialect.name, keys)] = _Compiled(
                sql.string, order, processors, constants, dialect, results
            )
        return compiled

    def execute(self, connection: Connection, params: Mapping[str, Any]) -> None:
        """Run with one row of parameters."""
        with self._executed(connection, params):
            pass

    def scalar(self, connection: Connection, params: Mapping[str, Any]) -> Any:
        """Run with one row of parameters; the first value RETURNING gave, or None."""
        with self._executed(connection, params) as (cursor, compiled):
            row = cursor.fetchone() if cursor.description else None
            return None if row is None else compiled.read(cursor, row)[0]

    def first(self, connection: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run with one row of parameters; the first row, or None when there is none."""
        with self._executed(connection, params) as (cursor, compiled):
            row = cursor.fetchone()
            return None if row is None else compiled.read(cursor, row)

    def rowcount(self, connection: Connection, params: Mapping[str, Any]) -> int:
        """Run with one row of parameters; how many rows it changed."""
        with self._executed(connection, params) as (cursor, _):
            return int(cursor.rowcount)

    @contextmanager
    def _executed(self, connection: Connection, params: Mapping[str, Any]) -> Iterator[tuple[Any, _Compiled]]:
        compiled = self._compile(connection.dialect, frozenset(params))
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, compiled.bind(params))
            yield cursor, compiled
        finally:
            cursor.close()


def first_after(
    connection: Connection, before: tuple[Prepared, Mapping[str, Any]], then: tuple[Prepared, Mapping[str, Any]]
) -> tuple[Any, ...] | None:
    """Run `before`, then `then`, each a statement of its own, and return `then`'s first row (or None). On
    PostgreSQL both go in one round trip (psycopg's pipeline mode), with the BEGIN of a transaction not yet
    begun; the server still runs them one after the other, each seeing what had committed when it began."""
    if connection.dialect.name != "postgresql":
        before[0].execute(connection, before[1])
        return then[0].first(connection, then[1])
    raw: Any = connection.connection.dbapi_connection
    first, second = (
        (statement, statement._compile(connection.dialect, frozenset(params)), params)
        for statement, params in (before, then)
    )
    with raw.cursor() as waited, raw.cursor() as read:
        with raw.pipeline():
            waited.execute(first[1].sql, first[1].bind(first[2]))
            read.execute(second[1].sql, second[1].bind(second[2]))
        row = read.fetchone()
        return None if row is None else second[1].read(read, row)


@dataclass
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # parameter names in placeholder order, for positional paramstyles
    processors: Mapping[str, Callable[[Any], Any]]
    constants: Mapping[str, Any]  # the values the statement itself holds, as bound
    dialect: Dialect
    result_types: tuple[Any, ...]  # the type of each column a row comes back with
    # Each result column's processor (None: the value as the driver gives it), once the first row has shown
    # the driver's type of each column, which some processors depend on.
    readers: tuple[Callable[[Any], Any] | None, ...] | None = field(default=None)

    def read(self, cursor: Any, row: Sequence[Any]) -> tuple[Any, ...]:
        readers = self.readers
        if readers is None:
            readers = self.readers = tuple(
                kind.dialect_impl(self.dialect).result_processor(self.dialect, column[1])
                for kind, column in zip(self.result_types, cursor.description, strict=True)
            )
        return tuple(value if reader is None else reader(value) for reader, value in zip(readers, row, strict=True))

    def bind(self, params: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        processors = self.processors
        values = {
            **self.constants,
            **{name: processors[name](value) if name in processors else value for name, value in params.items()},
        }
        return values if self.order is None else [values[name] for name in self.order]
