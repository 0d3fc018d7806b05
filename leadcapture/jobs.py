"""The scheduler's sweeps: bounded batches, idempotent, committed per batch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from leadcapture import rate_limits
from leadcapture.config import current as current_settings
from leadcapture.database import SQLITE_BEGIN_OPTION
from leadcapture.extensions import db
from leadcapture.mail.transport import SendFailure, transport_for
from leadcapture.services import insights, intake, interests, outbox, refresh, retention, sequences

log = logging.getLogger(__name__)

SEND_BATCH = 100
# Submissions stored a batch at a time: big enough that a burst costs few transactions, small enough that
# one transaction stays short for the web processes writing intakes beside it.
INTAKE_BATCH = 200
# The database gone or locked: the next tick tries again, and no submission is to blame.
_UNAVAILABLE = (OperationalError, InterfaceError)


def send_due_deliveries(limit: int = SEND_BATCH) -> int:
    """Claim, render and send up to `limit` due deliveries; return how many were attempted.

    The claim commits before anything is rendered, and what rendering reads (the batch's rows, a statement a
    table) is read and committed before any SMTP traffic: no lock is held while templates render or DKIM signs,
    and no transaction is open while talking to the relay. Each message is rendered while the relay takes in the
    one before it (a stage while the relay answers RCPT TO, the next while it takes in the message), so
    rendering overlaps the relay's work instead of adding to it. Right before each message goes to the relay, a
    look-up of its own confirms that it is still wanted and still leased to this sender (renewing the lease of
    the rest of the batch as it runs down): an unsubscribe, suppression, erasure or sequence exit that committed
    before that look-up wins, and a batch that outlasts its lease is never sent twice by a sender that took it
    over.

    Each message is marked sent (where this sender still holds it) and committed before the next one goes to the
    relay, so a sender killed mid-batch re-sends, once its lease runs out, at most the message in flight: the
    mark and the next message's look-up are settled together (`outbox.SendLedger`; on PostgreSQL in one
    statement), while the relay answers that message's MAIL FROM. On PostgreSQL those commits do not wait for
    the write-ahead log to reach the disk (`synchronous_commit` off for the ledger's connection alone): a killed
    worker loses no mark, as the database server has it, and only a crash of the database server itself could
    forget the marks of its last fraction of a second, whose messages would then go out twice.
    """
    claim = outbox.claim_deliveries(limit)
    db.session.commit()
    # The claimed rows are not read again; left in the session, every commit below would expire them all.
    db.session.expunge_all()
    if not claim.delivery_ids:
        return 0
    session = db.session()
    # The rows read for rendering stay as read while the batch lasts: each message renders while the relay
    # takes in the one before it, and the commits of the sent marks in between must not make every row
    # read again. (The sweep's session is removed after it, and `record_failure` reads its row afresh.)
    session.expire_on_commit = False
    try:
        # Rendering only reads: on SQLite in a deferred transaction, so that it keeps no writer waiting.
        db.session.connection(execution_options={SQLITE_BEGIN_OPTION: "DEFERRED"})
        rendering = outbox.Rendering.load(claim)
        db.session.commit()
        _send(claim, rendering)
    finally:
        session.expire_on_commit = True
        db.session.expunge_all()
    return len(claim.messages)


def _send(claim: outbox.Claim, rendering: outbox.Rendering) -> None:
    transport = transport_for(current_settings().mail)
    following: list[outbox.ClaimedMessage | None] = []

    def render_a_stage() -> None:
        """Take the next message a stage further, until it is ready (and then do nothing)."""
        if following:
            return
        staged = rendering.step()
        if staged is not outbox.PENDING:
            following.append(cast("outbox.ClaimedMessage | None", staged))
        if db.session().in_transaction():  # a row rendering had to read: never hold it open while sending
            db.session.commit()

    def render_following() -> None:
        while not following:
            render_a_stage()

    # The look-ups and the sent marks run on one connection kept for the batch: the session would hand its
    # connection back to the pool at every commit, and check it out (and ping it) again for the next message.
    with _ledger_connection() as sql, transport.connect() as connection:
        ledger = outbox.SendLedger(claim, sql)
        render_following()
        sent: outbox.ClaimedMessage | None = None
        while (item := following.pop()) is not None:
            # The message before is marked and this one looked up while the relay answers MAIL FROM.
            settle = _Settling(ledger, sent, item)
            try:
                handed = connection.send(
                    item.payload,
                    envelope_from=item.envelope_from,
                    to=item.to,
                    meanwhile=render_a_stage,
                    go_ahead=settle,
                )
            except SendFailure as failure:
                if settle.wanted is None:  # the relay failed before the look-up was asked for
                    settle.before_only()
                if settle.wanted is not False:
                    outbox.record_failure(item, failure)
                    db.session.commit()
                handed = False
            sent = item if handed else None
            if not following:
                render_following()
        ledger.settle(sent, None)


class _Settling:
    """The go-ahead for one message: settles the one before it with the ledger, once."""

    def __init__(
        self, ledger: outbox.SendLedger, sent: outbox.ClaimedMessage | None, item: outbox.ClaimedMessage
    ) -> None:
        self._ledger = ledger
        self._sent = sent
        self._item = item
        self.wanted: bool | None = None

    def __call__(self) -> bool:
        self.wanted = self._ledger.settle(self._sent, self._item)
        return self.wanted

    def before_only(self) -> None:
        """Settle the message before, when this one never got as far as its look-up."""
        self._ledger.settle(self._sent, None)


@contextmanager
def _ledger_connection() -> Iterator[Connection]:
    """A connection for the look-ups and the sent marks; on PostgreSQL in autocommit (see outbox.SendLedger)
    with commits that do not wait for the disk (see send_due_deliveries), and back to the pool as it came."""
    with db.engine.connect() as sql:
        if sql.dialect.name != "postgresql":
            yield sql
            return
        sql = sql.execution_options(isolation_level="AUTOCOMMIT")  # see outbox.SendLedger
        sql.exec_driver_sql("SET synchronous_commit TO OFF")
        try:
            yield sql
        finally:
            sql.exec_driver_sql("RESET synchronous_commit")


def store_submissions(limit: int = INTAKE_BATCH) -> int:
    """Store the submissions the web processes accepted, a batch per transaction; return how many were taken.

    A batch that fails is taken again one submission at a time, and one that fails on its own is set aside
    (logged), so no submission can hold up those after it.
    """
    total = 0
    while True:
        try:
            done = intake.expand_intakes(limit)
            db.session.commit()
        except _UNAVAILABLE:
            raise
        except Exception:  # any other failure may be one submission's: see below
            db.session.rollback()
            log.warning("a batch of submissions failed to store; storing them one at a time", exc_info=True)
            done = _store_one_at_a_time(limit)
        total += done
        if done < limit:
            return total


def _store_one_at_a_time(limit: int) -> int:
    done = 0
    for intake_id in intake.waiting_intakes(limit):
        try:
            done += intake.expand_intake(intake_id)
            db.session.commit()
        except _UNAVAILABLE:
            raise
        except Exception as error:  # this submission's alone: the batch without it went through
            db.session.rollback()
            intake.fail_intake(intake_id, repr(error))
            db.session.commit()
            done += 1
    return done


def drain_outbox(limit: int = SEND_BATCH) -> int:
    """Send batches until nothing is due; return the number of deliveries attempted."""
    return _in_batches(send_due_deliveries, limit)


def enqueue_due_steps(limit: int = SEND_BATCH) -> int:
    """Write the outbox rows of every sequence step that has fallen due, a batch per transaction."""
    return _in_batches(sequences.enqueue_due_steps, limit)


def recheck_stale_answers(limit: int = SEND_BATCH) -> int:
    """Move subscribers out of fresh_only sequences as the answers those rely on go stale."""
    return _in_batches(sequences.recheck_stale, limit)


def recheck_fading_interest(limit: int = SEND_BATCH) -> int:
    """Move subscribers whose interest in a topic decayed past a threshold an audience names."""
    return _in_batches(interests.recheck_fading_interest, limit)


def enqueue_refresh_emails(limit: int = SEND_BATCH) -> int:
    """Write the refresh emails that have fallen due."""
    return _in_batches(refresh.enqueue_refresh_emails, limit)


def purge_unconfirmed_subscribers(limit: int = SEND_BATCH) -> int:
    """Remove the sign-ups never confirmed within the retention window, with everything held on them."""
    return _in_batches(retention.purge_unconfirmed, limit)


def purge_rate_limit_counters() -> int:
    """Delete rate-limit counters whose window has ended."""
    return rate_limits.purge_expired_counters()


def fold_impressions(limit: int = insights.FOLD_BATCH) -> int:
    """Fold the impressions appended since the last sweep into the daily tallies the dashboard reads."""
    return _in_batches(insights.fold_impressions, limit)


def _in_batches(sweep: Callable[[int], int], limit: int) -> int:
    total = 0
    while True:
        done = sweep(limit)
        db.session.commit()
        total += done
        if done < limit:
            return total
