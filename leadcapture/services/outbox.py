"""The outbox: write deliveries with the change that causes them, claim them, record what sending did."""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, cast

from flask import current_app
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session, contains_eager, joinedload

from leadcapture import clock
from leadcapture.config import current as current_settings
from leadcapture.database import insert_or_ignore
from leadcapture.extensions import db
from leadcapture.mail import dkim
from leadcapture.mail.transport import FailureKind, SendFailure, is_international, verp_sender, wire_bytes
from leadcapture.models import (
    BounceEvent,
    BounceKind,
    BounceSource,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    SequenceStep,
    StreamPause,
    Subscriber,
    SubscriberStatus,
)
from leadcapture.models.delivery import MARKETING_KINDS
from leadcapture.models.people import SUPPRESSED_STATUSES
from leadcapture.prepared import Prepared
from leadcapture.services import bounces, emails, rules
from leadcapture.services.pacing import Pacing, hold_until, last_marketing_sent

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "leadcapture_outbox"
# How long a claim holds its deliveries; the app setting SEND_LEASE_SECONDS shortens it (tests). A sender
# renews the lease of what is left of its batch once half of it has run out, so a slow relay never lets the
# lease of the message in flight run out while one SMTP transaction (at most a few 30 s timeouts) lasts.
LEASE = timedelta(minutes=5)
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=6)
POLICY_PAUSE = timedelta(minutes=15)
POLICY_PAUSE_CAP = timedelta(hours=6)
# A policy refusal at RCPT or DATA names one recipient, and anyone can sign up an address whose server
# refuses us. The same refusal from this many different receiving domains within the window is about the
# sender instead (a blocklisted IP or domain, a failing DMARC): then the stream pauses. Three, because two
# domains sharing one filtering provider are common; minutes, because a listing shows at once across a
# batch, while refusals spread over hours are each receiver's own business.
SENDER_REFUSAL_DOMAINS: Final = 3
SENDER_REFUSAL_WINDOW: Final = timedelta(minutes=10)


def enqueue_delivery(
    subscriber_id: int,
    to_address: str,
    kind: DeliveryKind,
    key: str,
    payload: dict[str, Any],
    *,
    due_at: datetime | None = None,
    enrollment_id: int | None = None,
    priority: int = 0,
) -> int | None:
    """Write one email to the outbox; None if one with the same idempotency key exists already."""
    now = clock.now()
    sql = db.session.connection()
    delivery_id: int | None = sql.execute(
        insert_or_ignore(_DELIVERIES, sql.dialect.name).returning(_DELIVERIES.c.id),
        {
            "subscriber_id": subscriber_id,
            "enrollment_id": enrollment_id,
            "kind": kind,
            "idempotency_key": key,
            "message_id": make_message_id(kind),
            "to_address": to_address,
            "payload": payload,
            "status": DeliveryStatus.PENDING,
            "due_at": due_at or now,
            "priority": priority,
            "attempts": 0,
            "created_at": now,
        },
    ).scalar()
    if delivery_id is None:
        return None
    if sql.dialect.name == "postgresql":
        # Wakes a listening worker at commit (PostgreSQL sends one per channel and transaction);
        # elsewhere the worker's one-second tick picks the row up.
        sql.execute(_NOTIFY)
    # The caller logs the event that queued it; a line per queued email would double the busiest path's log.
    log.debug("delivery %s queued: %s to subscriber %s", delivery_id, key, subscriber_id)
    return delivery_id


def enqueue_many(emails: list[dict[str, Any]]) -> None:
    """Write many emails to the outbox in one statement, skipping any whose idempotency key exists already.

    Each row names `subscriber_id`, `to_address`, `kind`, `idempotency_key` and `payload`, and may set
    `due_at` (now), `priority` (0) and `enrollment_id`."""
    now = clock.now()
    sql = db.session.connection()
    rows = [
        {
            "enrollment_id": None,
            "due_at": now,
            "priority": 0,
            **email,
            "message_id": make_message_id(email["kind"]),
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "created_at": now,
        }
        for email in emails
    ]
    sql.execute(insert_or_ignore(_DELIVERIES, sql.dialect.name), rows)
    if sql.dialect.name == "postgresql":
        sql.execute(_NOTIFY)


_DELIVERIES: Final = cast(Table, Delivery.__table__)
_NOTIFY: Final = text(f"NOTIFY {OUTBOX_CHANNEL}")


def make_message_id(kind: DeliveryKind) -> str:
    """A Message-ID in the sending domain, fixed when the delivery is written and kept across retries."""
    return f"<{secrets.token_hex(16)}.{kind.value}@{current_settings().mail_domain}>"


@dataclass
class ClaimedMessage:
    delivery_id: int
    # The bytes handed to the relay (and kept for the dev inbox), serialised once while rendering.
    payload: bytes
    subject: str
    envelope_from: str
    to: str
    keep_raw: bool
    kind: DeliveryKind
    enrollment_id: int | None
    claim_token: str
    # Where each tracked link of the message leads, stored with the sent mark (emails.LinkTracker).
    links: list[list[str | None]] | None = None
    # The kinds with a stream pause on record, shared by every message of one claim: the first message of
    # such a kind that goes through lifts its pause, and the others need not look for one.
    pauses: set[DeliveryKind] = field(default_factory=set)


@dataclass
class Claim:
    """Deliveries leased to one sender: rows carrying `token` are its own until `lease_until`. `messages` are
    those of `delivery_ids` rendered so far (`Rendering`)."""

    token: str
    lease: timedelta
    lease_until: datetime
    delivery_ids: list[int]
    # The kinds with a stream pause on record when the claim was made (see ClaimedMessage.pauses).
    pauses: set[DeliveryKind]
    messages: list[ClaimedMessage] = field(default_factory=list)
    # Render failures by delivery id, written with the next sent mark (`SendLedger.settle`).
    failures: dict[int, str] = field(default_factory=dict)


def _stop_reason() -> ColumnElement[str | None]:
    """Why a delivery must not go out any more, or NULL; over deliveries outer-joined to their subscriber
    and enrollment. The one statement of this rule: the claim reads it, and so does the look-up right
    before each message is handed to the relay."""
    return case(
        (Subscriber.id.is_(None), "subscriber erased"),
        *[(Subscriber.status == status, f"subscriber {status.value}") for status in SUPPRESSED_STATUSES],
        (
            and_(
                or_(*(Delivery.kind == kind for kind in MARKETING_KINDS)),
                or_(
                    Subscriber.status != SubscriberStatus.CONFIRMED, Subscriber.marketing_consent.is_not(True)
                ),
            ),
            "no marketing consent",
        ),
        (
            and_(
                Delivery.kind == DeliveryKind.SEQUENCE,
                or_(Enrollment.id.is_(None), Enrollment.state == EnrollmentState.EXITED),
            ),
            "left the sequence",
        ),
        else_=None,
    )


def _with_people(query: Any) -> Any:
    return query.outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id).outerjoin(
        Enrollment, Enrollment.id == Delivery.enrollment_id
    )


def lease_length() -> timedelta:
    """How long a claim holds its deliveries before another sender may take them over."""
    return timedelta(seconds=float(current_app.config.get("SEND_LEASE_SECONDS", LEASE.total_seconds())))


def claim_deliveries(limit: int) -> Claim:
    """Lease up to `limit` due deliveries to this sender. Flushes; the caller commits, and then renders them
    (`Rendering`).

    Rows are locked with FOR UPDATE SKIP LOCKED on PostgreSQL; on SQLite the writing transaction itself
    (BEGIN IMMEDIATE) excludes other senders. Each claimed row carries the claim's token; a lease that runs
    out makes the row due again, so a sender that dies mid-batch loses nothing. Whatever would stop a message
    (an unsubscribe, a bounce, leaving a sequence, the frequency cap, sending hours, a paused stream) is
    checked here, and the first of these again right before each message is sent (`SendLedger.settle`).
    """
    now = clock.now()
    lease = lease_length()
    token = secrets.token_hex(16)
    pauses: dict[DeliveryKind, datetime] = dict(
        db.session.execute(select(StreamPause.kind, StreamPause.paused_until)).all()
    )
    query = (
        _with_people(select(Delivery, _stop_reason()))
        .where(Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]), Delivery.due_at <= now)
        .order_by(Delivery.due_at, Delivery.priority.desc(), Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
        .options(contains_eager(Delivery.subscriber), contains_eager(Delivery.enrollment))
    )
    paused = [kind for kind, until in pauses.items() if until > now]
    if paused:
        query = query.where(Delivery.kind.not_in(paused))
    claim = Claim(token=token, lease=lease, lease_until=now + lease, delivery_ids=[], pauses=set(pauses))
    marketing_in_batch: set[int] = set()
    # Nothing read while claiming depends on the changes made while claiming: flush them once, at the end.
    with db.session.no_autoflush:
        rows = db.session.execute(query).all()
        # What the rules below read, for the whole batch: the steps still there, and when each marketing
        # recipient was last sent one.
        steps = _existing_steps([delivery for delivery, _ in rows])
        last_sent = last_marketing_sent(
            delivery.subscriber_id
            for delivery, _ in rows
            if delivery.kind.is_marketing and delivery.subscriber_id is not None
        )
        pacing = Pacing.current()
        for delivery, stop_reason in rows:
            reason = stop_reason or _removed_step(delivery, steps)
            if reason is not None:
                delivery.status = DeliveryStatus.CANCELLED
                delivery.last_error = reason
                continue
            subscriber = delivery.subscriber
            if delivery.kind.is_marketing and subscriber is not None:
                wait = hold_until(
                    now,
                    last_sent=last_sent.get(subscriber.id),
                    also_sending=subscriber.id in marketing_in_batch,
                    paused_until=subscriber.marketing_paused_until,
                    timezone=subscriber.timezone,
                    pacing=pacing,
                )
                if wait is not None:
                    delivery.status = DeliveryStatus.PENDING
                    delivery.due_at = wait
                    continue
                marketing_in_batch.add(subscriber.id)
            delivery.status = DeliveryStatus.SENDING
            delivery.due_at = claim.lease_until
            delivery.claim_token = token
            delivery.attempts += 1
            claim.delivery_ids.append(delivery.id)
    db.session.flush()
    return claim


# What `Rendering.step` gives while the next message is not ready yet.
PENDING: Final = object()


class Rendering:
    """A claim's deliveries, loaded for rendering in a few statements, rendered one at a time as the sender
    asks for them, a stage at a time (`step`): so the next message renders while the relay works.

    `load` runs after the claim has committed, so no lock is held while templates render and DKIM signs
    (on SQLite, the caller reads in a deferred transaction, and commits it before sending). Rows are read
    again by primary key in one statement, the claim's commit having expired them; the caller keeps them
    from expiring again while the batch lasts (see jobs.send_due_deliveries).
    """

    def __init__(self, claim: Claim, deliveries: list[Delivery], preloaded: emails.Preloaded) -> None:
        self.claim = claim
        self._waiting = iter(deliveries)
        self._preloaded = preloaded
        settings = current_settings()
        self._signer = dkim.signer_for(settings)
        self._return_path = settings.return_path
        self._keep_raw = settings.mail.is_outbox
        self._stages = self._staged()

    @classmethod
    def load(cls, claim: Claim) -> Rendering:
        """Read the claim's deliveries and what their messages need. Only reads."""
        found = {
            delivery.id: delivery
            for delivery in db.session.scalars(
                select(Delivery)
                .where(Delivery.id.in_(claim.delivery_ids))
                .options(joinedload(Delivery.subscriber))
            )
        }
        deliveries = [found[delivery_id] for delivery_id in claim.delivery_ids if delivery_id in found]
        return cls(claim, deliveries, emails.preload(deliveries))

    def step(self) -> ClaimedMessage | object | None:
        """Take rendering one stage further: the next message once it is ready (rendered and signed, and
        appended to `claim.messages`), PENDING while it is not yet, None when none is left. A delivery that
        cannot be rendered goes to `claim.failures` instead (written with the next sent mark)."""
        return next(self._stages, None)

    def _staged(self) -> Iterator[ClaimedMessage | object]:
        claim = self.claim
        for delivery in self._waiting:
            envelope_from = verp_sender(self._return_path, delivery.id)
            tracker = emails.tracker_for(delivery)
            try:
                message = emails.build_message(delivery, self._preloaded, tracker)
                yield PENDING
                payload = wire_bytes(
                    message, international=is_international(envelope_from, delivery.to_address)
                )
                if self._signer is not None:  # the stored raw message and the sent one carry this signature
                    payload = self._signer.signed(payload, message)
            except Exception as exc:  # a template or data error must not block the rest of the batch
                log.exception("delivery %s could not be rendered", delivery.id)
                claim.failures[delivery.id] = f"render error: {exc}"[:2000]
                continue
            item = ClaimedMessage(
                delivery_id=delivery.id,
                payload=payload,
                subject=str(message["Subject"]),
                envelope_from=envelope_from,
                to=delivery.to_address,
                keep_raw=self._keep_raw,
                kind=delivery.kind,
                enrollment_id=delivery.enrollment_id,
                claim_token=claim.token,
                links=tracker.links if tracker is not None else None,
                pauses=claim.pauses,
            )
            claim.messages.append(item)
            yield item


def _existing_steps(deliveries: list[Delivery]) -> set[int]:
    """The ids of the sequence steps these deliveries send that still exist, in one statement."""
    wanted = {
        step_id
        for delivery in deliveries
        if delivery.kind is DeliveryKind.SEQUENCE
        and isinstance(step_id := delivery.payload.get("step_id"), int)
    }
    if not wanted:
        return set()
    return set(db.session.scalars(select(SequenceStep.id).where(SequenceStep.id.in_(wanted))))


def _removed_step(delivery: Delivery, steps: set[int]) -> str | None:
    if delivery.kind is DeliveryKind.SEQUENCE and delivery.payload.get("step_id") not in steps:
        return "the step was removed from its sequence"
    return None


def _wanted(
    item: ClaimedMessage, row: tuple[Any, ...] | None, values: dict[str, Any], sql: Connection
) -> bool:
    if row is None:
        log.warning("delivery %s not sent: no longer leased to this sender", item.delivery_id)
        return False
    (reason,) = row
    if reason is None:
        return True
    sql.execute(_CANCEL_CLAIMED, {**values, "reason": reason, "rendered_subject": item.subject})
    log.info("delivery %s cancelled right before sending: %s", item.delivery_id, reason)
    return False


def _look_up(delivery_id: str) -> Select[tuple[str | None]]:
    return _with_people(select(_stop_reason().label("reason")).select_from(Delivery)).where(  # type: ignore[no-any-return]
        Delivery.id == bindparam(delivery_id), *_HELD, Delivery.due_at > bindparam("now")
    )


# The rows a claim still holds: its token, not yet sent or cancelled. A row another sender took over once this
# one's lease ran out carries that sender's token, and keeps that sender's lease.
_HELD: Final = (Delivery.claim_token == bindparam("token"), Delivery.status == DeliveryStatus.SENDING)
_HELD_ROW: Final = update(Delivery).where(Delivery.id == bindparam("delivery_id"), *_HELD)
# Run for every message: straight on the cursor (leadcapture.prepared).
_STILL_OURS: Final = Prepared(_look_up("delivery_id"))
_RENEW_LEASE: Final = (
    update(Delivery)
    .where(Delivery.id.in_(bindparam("ids", expanding=True)), *_HELD)
    .values(due_at=bindparam("until"))
)
_CANCEL_CLAIMED: Final = _HELD_ROW.values(
    status=DeliveryStatus.CANCELLED, last_error=bindparam("reason"), subject=bindparam("rendered_subject")
)
_RENDER_FAILED: Final = _HELD_ROW.values(status=DeliveryStatus.FAILED, last_error=bindparam("reason"))


class SendLedger:
    """What the sender of one claim tells the database and asks it between two messages, on `sql`: a
    connection the sender keeps for its batch (the session would check a connection out of the pool, and
    ping it, for every message).

    A message is usually settled by two statements straight on the driver's cursor (leadcapture.prepared):
    the mark, unless the subscriber leaves their sequence after this step, and the look-up. On PostgreSQL they
    are one statement (`_SETTLE`) on a connection in autocommit: there a round trip to the server costs more
    than the statement itself, and a transaction would take three (BEGIN, the statement, COMMIT). On SQLite
    they are one transaction begun and committed on the driver's connection. What they do not do (write
    render failures, renew the lease, end a stream's pause, let a subscriber leave their sequence after this
    step, cancel a message not wanted any more) takes a transaction through SQLAlchemy, on PostgreSQL on a
    connection of its own.
    """

    def __init__(self, claim: Claim, sql: Connection) -> None:
        self.claim = claim
        self.sql = sql
        self._autocommit = sql.dialect.name == "postgresql"

    def settle(self, sent: ClaimedMessage | None, following: ClaimedMessage | None) -> bool:
        """Mark `sent`, which the relay accepted, as sent where this sender still holds it, write the render
        failures, and say whether `following` may be handed to the relay now; committed.

        `following` may go when it is still leased to this sender and still wanted: an unsubscribe,
        suppression, erasure or sequence exit that committed before this look-up wins, and so does another
        sender that took over after this one's lease ran out (a batch can take minutes with a slow relay;
        once half the lease has run out the look-up renews the lease of every row the claim still holds).
        One that is not wanted any more is cancelled. The mark and what follows from it are one transaction,
        and the look-up runs in it or right after it.
        """
        claim = self.claim
        now = clock.now()
        held: dict[str, Any] = {"token": claim.token, "now": now}
        renew = following is not None and claim.lease_until - now < claim.lease / 2
        paused = sent is not None and sent.kind in claim.pauses
        if not (claim.failures or renew or paused):
            return self._settle_at_once(sent, following, held)
        with self._transaction() as sql:
            self._write_failures(sql)
            if renew:
                claim.lease_until = now + claim.lease
                sql.execute(
                    _RENEW_LEASE,
                    {"ids": claim.delivery_ids, "token": claim.token, "until": claim.lease_until},
                )
            if sent is not None:
                self._after_mark(sent, self._mark(sql, sent, held), now, sql)
            if following is None:
                return False
            values = {**held, "delivery_id": following.delivery_id}
            return _wanted(following, _STILL_OURS.first(sql, values), values, sql)

    def _settle_at_once(
        self, sent: ClaimedMessage | None, following: ClaimedMessage | None, held: dict[str, Any]
    ) -> bool:
        marked, still_ours, reason = self._mark_and_look_up(sent, following, held)
        if sent is not None and not marked:
            # Leaving the sequence after this step, or taken over by another sender: `_mark` tells which.
            with self._transaction() as sql:
                self._after_mark(sent, self._mark(sql, sent, held), held["now"], sql)
        if following is None:
            return False
        values = {**held, "delivery_id": following.delivery_id}
        found = (reason,) if still_ours else None
        if reason is None:
            return _wanted(following, found, values, self.sql)
        with self._transaction() as sql:  # cancelled: not wanted any more
            return _wanted(following, found, values, sql)

    def _mark_and_look_up(
        self, sent: ClaimedMessage | None, following: ClaimedMessage | None, held: dict[str, Any]
    ) -> tuple[bool, bool, str | None]:
        """Mark `sent` unless its subscriber leaves their sequence after it, and look `following` up: whether
        it marked, whether `following` is still held, and why it must not go out any more (or None)."""
        values = {
            **held,
            "sent_id": None if sent is None else sent.delivery_id,
            "rendered_subject": None if sent is None else sent.subject,
            "rendered_links": None if sent is None else sent.links,
            "delivery_id": None if following is None else following.delivery_id,
        }
        if sent is not None and sent.keep_raw:
            values["raw"] = sent.payload
        keeping_raw = "raw" in values
        if self._autocommit:
            row = (_SETTLE_KEEPING_RAW if keeping_raw else _SETTLE).first(self.sql, values)
            marked, still_ours, reason = row or (0, None, None)
            return bool(marked), bool(still_ours), reason
        with _immediate(self.sql):
            marked_row = None
            if sent is not None:
                marked_row = (_MARK_UNLESS_LEAVING_KEEPING_RAW if keeping_raw else _MARK_UNLESS_LEAVING).first(
                    self.sql, values
                )
            looked_up = None if following is None else _STILL_OURS.first(self.sql, values)
        return marked_row is not None, looked_up is not None, looked_up[0] if looked_up else None

    def _transaction(self) -> AbstractContextManager[Connection]:
        """A transaction: on the ledger's connection, or where that is in autocommit, on one of its own."""
        if self._autocommit:
            return self.sql.engine.begin()
        return _begun(self.sql)

    def _write_failures(self, sql: Connection) -> None:
        failures, self.claim.failures = self.claim.failures, {}
        if failures:
            sql.execute(
                _RENDER_FAILED,
                [
                    {"delivery_id": delivery_id, "token": self.claim.token, "reason": reason}
                    for delivery_id, reason in failures.items()
                ],
            )

    @staticmethod
    def _mark(sql: Connection, sent: ClaimedMessage, held: dict[str, Any]) -> tuple[Any, ...] | None:
        values = {
            **held,
            "delivery_id": sent.delivery_id,
            "rendered_subject": sent.subject,
            "rendered_links": sent.links,
        }
        if sent.keep_raw:
            return _MARK_SENT_KEEPING_RAW.first(sql, {**values, "raw": sent.payload})
        return _MARK_SENT.first(sql, values)

    def _after_mark(
        self, sent: ClaimedMessage, marked: tuple[Any, ...] | None, now: datetime, sql: Connection
    ) -> None:
        """A subscriber finishing a step before leaving now leaves, and a stream that went through again is
        no longer paused; in the mark's transaction."""
        if marked is None:
            # Only a message that outlasted half the lease gets here; the sender that took over sends again.
            log.warning("delivery %s was sent after its lease had been taken over", sent.delivery_id)
            return
        enrollment_id, leaving = marked
        if enrollment_id is not None and leaving:
            # Rare (an answer changed while a step waited): the model's own rule, in this transaction.
            with Session(bind=sql) as session:
                enrollment = session.get_one(Enrollment, enrollment_id)
                left = rules.step_sent(rules.Enrolled.of(enrollment), now)
                if left is not None:
                    enrollment.mark_left(now, left.reason)
                session.flush()
        if sent.kind in self.claim.pauses:
            sql.execute(delete(StreamPause).where(StreamPause.kind == sent.kind))
            self.claim.pauses.discard(sent.kind)


@contextmanager
def _immediate(sql: Connection) -> Iterator[None]:
    """SQLite: BEGIN IMMEDIATE … COMMIT straight on the driver's connection, around statements run on its
    cursor (SQLAlchemy's begin costs as much as they do)."""
    raw: Any = sql.connection.dbapi_connection
    raw.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if raw.in_transaction:  # some errors end the transaction themselves
            raw.execute("ROLLBACK")
        raise
    raw.execute("COMMIT")


@contextmanager
def _begun(sql: Connection) -> Iterator[Connection]:
    """`sql` in a transaction, committed at the end of the block (rolled back on an error)."""
    with sql.begin():
        yield sql


# By primary key, without loading the row first, only while this sender's claim still holds it, with the
# subject it went out with (and, for the dev inbox, its bytes); run for every message sent, straight on the
# cursor (leadcapture.prepared). It returns the enrollment, and whether it is leaving after this step.
def _sent_mark(delivery_id: str) -> Update:
    return (
        update(Delivery)
        .where(Delivery.id == bindparam(delivery_id), *_HELD)
        .values(
            status=DeliveryStatus.SENT,
            sent_at=bindparam("now"),
            last_error=None,
            subject=bindparam("rendered_subject"),
            links=bindparam("rendered_links", type_=Delivery.links.type),
        )
    )


_SENT: Final = _sent_mark("delivery_id").returning(
    Delivery.enrollment_id,
    select(Enrollment.leaving).where(Enrollment.id == Delivery.enrollment_id).scalar_subquery(),
)
_MARK_SENT: Final = Prepared(_SENT)
_MARK_SENT_KEEPING_RAW: Final = Prepared(_SENT.values(raw_message=bindparam("raw")))


def _settling(marking: Update) -> Select[tuple[int, bool | None, str | None]]:
    """PostgreSQL: the sent mark (`marking`, of `sent_id`) and the look-up of `delivery_id`, in one statement,
    which says how many it marked, whether the look-up found the delivery still held, and its stop reason."""
    marked = marking.cte("marked")
    following = _look_up("delivery_id").add_columns(true().label("held")).subquery("following")
    one = select(literal_column("1").label("one")).subquery("one")
    return select(
        select(func.count()).select_from(marked).scalar_subquery(), following.c.held, following.c.reason
    ).select_from(one.outerjoin(following, true()))


# The usual sent mark: not where the subscriber is leaving their sequence after this step (the model's rule
# does that, in a transaction with the mark). On PostgreSQL one statement with the look-up (`_settling`).
_SENT_UNLESS_LEAVING: Final = (
    _sent_mark("sent_id")
    .where(~exists().where(Enrollment.id == Delivery.enrollment_id, Enrollment.leaving))
    .returning(Delivery.id)
)
_MARK_UNLESS_LEAVING: Final = Prepared(_SENT_UNLESS_LEAVING)
_MARK_UNLESS_LEAVING_KEEPING_RAW: Final = Prepared(_SENT_UNLESS_LEAVING.values(raw_message=bindparam("raw")))
_SETTLE: Final = Prepared(_settling(_SENT_UNLESS_LEAVING))
_SETTLE_KEEPING_RAW: Final = Prepared(_settling(_SENT_UNLESS_LEAVING.values(raw_message=bindparam("raw"))))


def record_failure(claimed: ClaimedMessage, failure: SendFailure) -> None:
    """Apply what the SMTP reply means: retry later, give up, count a refusal, pause the stream or suppress
    the address. Flushes."""
    # Read afresh: the sender keeps the rows it rendered from in the session, unexpired, for the whole batch.
    delivery = db.session.get_one(Delivery, claimed.delivery_id, populate_existing=True)
    if delivery.claim_token != claimed.claim_token or delivery.status is not DeliveryStatus.SENDING:
        log.warning("delivery %s failed after its lease had been taken over: %s", delivery.id, failure)
        return
    now = clock.now()
    delivery.subject = claimed.subject
    delivery.last_error = f"{failure.kind.value} {failure.code or ''} {failure.detail}".strip()[:2000]
    if failure.kind is FailureKind.TRANSIENT:
        _retry_later(delivery, now)
    elif failure.kind is FailureKind.REFUSED:
        _retry_later(delivery, now)
        db.session.flush()
        _record_refusal(delivery, failure, now, claimed)
    elif failure.kind is FailureKind.POLICY:
        delivery.status = DeliveryStatus.PENDING
        delivery.due_at = pause_stream(delivery.kind, now, failure)
        claimed.pauses.add(delivery.kind)
    elif failure.kind is FailureKind.RECIPIENT:
        delivery.status = DeliveryStatus.FAILED
        if delivery.subscriber is not None:
            # Imported here: suppressing takes the subscriber out of their sequences, which queue their steps
            # through this module.
            from leadcapture.services.subscribers import suppress_subscriber

            suppress_subscriber(delivery.subscriber, SubscriberStatus.BOUNCED, reason=delivery.last_error)
    else:
        delivery.status = DeliveryStatus.FAILED
    log.warning("delivery %s not sent (%s): %s", delivery.id, delivery.status.value, delivery.last_error)
    db.session.flush()


def _retry_later(delivery: Delivery, now: datetime) -> None:
    if now - delivery.created_at > current_settings().retry_for:
        delivery.status = DeliveryStatus.FAILED
    else:
        delivery.status = DeliveryStatus.PENDING
        delivery.due_at = now + retry_delay(delivery.attempts)


def _record_refusal(delivery: Delivery, failure: SendFailure, now: datetime, claimed: ClaimedMessage) -> None:
    """A policy refusal of one recipient is a soft bounce of that recipient (the bounce rules decide what
    follows); the same refusal from several receiving domains within minutes also pauses the stream."""
    bounces.record_bounce(
        bounces.BounceReport(
            kind=BounceKind.SOFT,
            source=BounceSource.SMTP,
            reference=f"attempt {delivery.attempts}",
            received_at=now,
            delivery_id=delivery.id,
            recipients=frozenset({delivery.to_address.lower()}),
            status_code=failure.status,
            diagnostic=failure.detail,
        )
    )
    refused_by = db.session.scalars(
        select(Delivery.to_address)
        .join(BounceEvent, BounceEvent.delivery_id == Delivery.id)
        .where(
            BounceEvent.source == BounceSource.SMTP,
            BounceEvent.status_code == failure.status,
            BounceEvent.received_at > now - SENDER_REFUSAL_WINDOW,
            Delivery.kind == delivery.kind,
        )
    )
    domains = {address.rpartition("@")[2].lower() for address in refused_by}
    if len(domains) >= SENDER_REFUSAL_DOMAINS:
        until = pause_stream(delivery.kind, now, failure)
        claimed.pauses.add(delivery.kind)
        if delivery.status is DeliveryStatus.PENDING:
            delivery.due_at = max(delivery.due_at, until)


def pause_stream(kind: DeliveryKind, now: datetime, failure: SendFailure) -> datetime:
    """Hold back a whole stream after a policy rejection, longer each time in a row; return when it resumes.

    The relay refuses *us* (authentication, DMARC, reputation), not the recipient: sending on would only
    burn more reputation, and suppressing the recipient would punish the wrong party.
    """
    pause = db.session.get(StreamPause, kind)
    strikes = 1 if pause is None else pause.strikes + 1
    until: datetime = now + min(POLICY_PAUSE * 2 ** min(strikes - 1, 10), POLICY_PAUSE_CAP)
    if pause is None:
        db.session.add(
            StreamPause(kind=kind, paused_until=until, strikes=strikes, reason=failure.detail[:2000])
        )
    else:
        pause.paused_until, pause.strikes, pause.reason = until, strikes, failure.detail[:2000]
    log.error(
        "ALERT: the mail relay refused the %s stream on policy grounds (%s %s); paused until %s",
        kind.value,
        failure.code or "",
        failure.detail,
        until.isoformat(),
    )
    return until


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with jitter, so a relay coming back is not hit by every retry at once."""
    delay = min(RETRY_BASE * 2 ** min(max(attempts - 1, 0), 20), RETRY_CAP)
    return timedelta(seconds=delay.total_seconds() * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
