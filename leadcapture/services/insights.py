"""What the dashboard counts: widget impressions and report downloads as they happen, and the funnel and
answer distributions it shows editors."""

from __future__ import annotations

import logging

from sqlalchemy import Executable, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Submission, WidgetImpressions

log = logging.getLogger(__name__)


def record_impression(widget_id: int) -> None:
    """Count one showing of a widget on today's (UTC) tally: one upsert, however many pages ask at once."""
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(WidgetImpressions).values(widget_id=widget_id, day=clock.now().date(), count=1)
    _write_apart(
        insert.on_conflict_do_update(
            index_elements=[WidgetImpressions.widget_id, WidgetImpressions.day],
            set_={"count": WidgetImpressions.count + 1},
        ),
        f"impression of widget {widget_id}",
    )


def record_download(submission_id: int) -> None:
    """Note when a submission's report was first downloaded; later downloads leave it as it is."""
    if _write_apart(
        update(Submission)
        .where(Submission.id == submission_id, Submission.downloaded_at.is_(None))
        .values(downloaded_at=clock.now()),
        f"download of submission {submission_id}",
    ):
        log.info("report of submission %s downloaded for the first time", submission_id)


def _write_apart(statement: Executable, what: str) -> int:
    """Run one counting statement in a transaction of its own, on a connection of its own.

    The requests that count (a page fetching a widget, a reader fetching a report) are GETs, and on SQLite a
    GET reads in a deferred transaction: turning that into a writer fails at once with SQLITE_BUSY, whatever
    the busy timeout, when another connection has written since it began reading. A statement apart begins
    IMMEDIATE and so waits its turn; on PostgreSQL, in autocommit, it costs one round trip. A count that still
    cannot be written is logged and lost rather than failing the page that was being served.

    The number of rows written, 0 when none was (or it could not be).
    """
    try:
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            written = connection.execute(statement).rowcount
            connection.commit()  # SQLite's BEGIN IMMEDIATE (see database.py) still needs its COMMIT
    except (OperationalError, IntegrityError):  # a busy database, or a widget deleted meanwhile
        log.warning("could not record the %s", what, exc_info=True)
        return 0
    return written
