"""What the dashboard counts: widget impressions and report downloads as they happen, and the funnel and
answer distributions it shows editors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Final, cast

from sqlalchemy import Connection, Date, Integer, Table, bindparam, func, literal_column, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError

from leadcapture import clock
from leadcapture.database import Prepared
from leadcapture.extensions import db
from leadcapture.models import Submission, WidgetImpressions

log = logging.getLogger(__name__)


_IMPRESSIONS: Final = cast(Table, WidgetImpressions.__table__)


@cache
def _count_impression(dialect: str) -> Prepared:
    """INSERT one impression for (widget_id, day), or add it to the row already there."""
    table = _IMPRESSIONS
    insert: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        # The commit does not wait for the WAL to reach disk (synchronous_commit off, for this statement's
        # transaction only): that wait was ten times the rest of the GET, and a crash of the database server
        # can lose at most the last fraction of a second of counts, never corrupt them.
        asynchronous = select(
            func.set_config(literal_column("'synchronous_commit'"), literal_column("'off'"), true())
        ).subquery("asynchronous_commit")
        insert = postgresql.insert(table).from_select(
            ["widget_id", "day", "count"],
            select(
                bindparam("widget_id", type_=Integer()), bindparam("day", type_=Date()), literal_column("1")
            ).select_from(asynchronous),
        )
    else:
        insert = sqlite.insert(table).values(
            widget_id=bindparam("widget_id"), day=bindparam("day"), count=literal_column("1")
        )
    return Prepared(
        insert.on_conflict_do_update(
            index_elements=[table.c.widget_id, table.c.day],
            set_={"count": table.c.count + insert.excluded.count},
        )
    )


def record_impression(widget_id: int) -> None:
    """Count one showing of a widget on today's (UTC) tally: one upsert, however many pages ask at once."""
    params = {"widget_id": widget_id, "day": clock.now().date()}
    try:
        with _apart() as connection:
            _count_impression(connection.dialect.name).scalar(connection, params)
    except (OperationalError, IntegrityError):  # a database that stays busy, a widget deleted meanwhile
        log.warning("could not count an impression of widget %s", widget_id, exc_info=True)


def record_download(submission_id: int) -> None:
    """Note when a submission's report was first downloaded; later downloads leave it as it is."""
    try:
        with _apart() as connection:
            first = connection.execute(
                update(Submission)
                .where(Submission.id == submission_id, Submission.downloaded_at.is_(None))
                .values(downloaded_at=clock.now())
            ).rowcount
    except OperationalError:  # the reader gets the report all the same
        log.warning("could not note the download of submission %s", submission_id, exc_info=True)
        return
    if first:
        log.info("report of submission %s downloaded for the first time", submission_id)


@contextmanager
def _apart() -> Iterator[Connection]:
    """A connection of its own in a transaction of its own, for one counting statement, committed on exit.

    What counts (a page fetching a widget, a reader fetching a report) happens in GET requests, and on
    SQLite a GET reads in a deferred transaction: turning that into a writer fails at once with SQLITE_BUSY,
    whatever the busy timeout, when another connection has written since it began reading. A transaction
    apart begins IMMEDIATE (see database.py) and so waits its turn. On PostgreSQL it runs in autocommit: the
    statement is its own transaction, one round trip.
    """
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        with connection.begin():
            yield connection
