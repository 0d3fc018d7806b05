"""Flask-Limiter's counters in the app's own database, for installs without Redis.

Registered with the `limits` library under the scheme `leadcapture+db://`. Counters are fixed windows: a row per
limit and key holding the count and the moment the window ends. Each write runs in a transaction of its own
(database.own_transaction), so a count survives the request's transaction being rolled back (a failed sign-in
writes nothing else). Time comes from leadcapture.clock, like every other rule.

On SQLite a counter write waits for the database's one write lock, so a request must not hold it (an open
writing transaction) when Flask-Limiter counts after the view: views that count afterwards (`deduct_when`)
end their transaction first, and rate-limit headers, which read counters after every view, stay off.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final, cast

from limits.storage import Storage
from sqlalchemy import Connection, Engine, Table, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from leadcapture import clock
from leadcapture.database import SQLITE_BEGIN_OPTION, own_transaction
from leadcapture.models import RateLimitCounter

SCHEME = "leadcapture+db"
_COUNTERS: Final = cast(Table, RateLimitCounter.__table__)


class DatabaseStorage(Storage):
    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    @staticmethod
    def _engine() -> Engine:
        from leadcapture.extensions import db

        return db.engine

    @property
    def storage(self) -> Engine:
        """What holds the counters, as every `limits` storage names its client: `leadcapture limiter config`
        shows it (an engine's name hides the password)."""
        return self._engine()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = clock.now()
        ends = now + timedelta(seconds=expiry)
        engine = self._engine()
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        expired = _COUNTERS.c.expires_at <= now
        statement = (
            insert(_COUNTERS)
            .values(key=key, count=amount, expires_at=ends)
            .on_conflict_do_update(
                index_elements=[_COUNTERS.c.key],
                set_={
                    "count": case((expired, amount), else_=_COUNTERS.c.count + amount),
                    "expires_at": case((expired, ends), else_=_COUNTERS.c.expires_at),
                },
            )
            .returning(_COUNTERS.c.count)
        )
        with own_transaction(engine) as connection:
            return int(connection.execute(statement).scalar_one())

    @classmethod
    def _reading(cls) -> Connection:
        """A connection for reads: on SQLite its transaction waits for no write lock."""
        return cls._engine().connect().execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})

    def get(self, key: str) -> int:
        with self._reading() as connection:
            count = connection.execute(
                select(_COUNTERS.c.count).where(_COUNTERS.c.key == key, _COUNTERS.c.expires_at > clock.now())
            ).scalar()
        return int(count or 0)

    def get_expiry(self, key: str) -> float:
        with self._reading() as connection:
            ends = connection.execute(select(_COUNTERS.c.expires_at).where(_COUNTERS.c.key == key)).scalar()
        return (ends if ends is not None else clock.now()).timestamp()

    def check(self) -> bool:
        try:
            with self._reading() as connection:
                connection.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with own_transaction(self._engine()) as connection:
            return connection.execute(delete(_COUNTERS)).rowcount

    def clear(self, key: str) -> None:
        with own_transaction(self._engine()) as connection:
            connection.execute(delete(_COUNTERS).where(_COUNTERS.c.key == key))


def purge_expired_counters() -> int:
    """Delete counters whose window has ended; returns how many."""
    with own_transaction(DatabaseStorage._engine()) as connection:
        return connection.execute(delete(_COUNTERS).where(_COUNTERS.c.expires_at <= clock.now())).rowcount
