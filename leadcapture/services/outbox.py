"""The outbox: write deliveries with the change that causes them, claim them, record what sending did."""

from __future__ import annotations

import logging
import random
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import cache
from typing import Any, Final, cast

from sqlalchemy import Connection, Table, bindparam, delete, select, text, update
from sqlalchemy.orm import selectinload

from leadcapture import clock
from leadcapture.config import current as current_settings
from leadcapture.database import Prepared, insert_or_ignore
from leadcapture.extensions import db
from leadcapture.mail import dkim
from leadcapture.mail.transport import FailureKind, SendFailure, is_international, verp_sender
from leadcapture.models import (
    ConsentEvent,
    ConsentKind,
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
from leadcapture.services import emails
from leadcapture.services.pacing import held_back_until

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "leadcapture_outbox"
LEASE = timedelta(minutes=5)
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=6)
POLICY_PAUSE = timedelta(minutes=15)
POLICY_PAUSE_CAP = timedelta(hours=6)


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
    delivery_id: int | None = _add_delivery(sql.dialect.name).scalar(
        sql,
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
    )
    if delivery_id is None:
        return None
    if sql.dialect.name == "postgresql":
        # Wakes a listening worker at commit (PostgreSQL sends one per channel and transaction);
        # elsewhere the worker's one-second tick picks the row up.
        sql.execute(_NOTIFY)
    # The caller logs the event that queued it; a line per queued email would double the busiest path's log.
    log.debug("delivery %s queued: %s to subscriber %s", delivery_id, key, subscriber_id)
    return delivery_id


_DELIVERIES: Final = cast(Table, Delivery.__table__)
_NOTIFY: Final = text(f"NOTIFY {OUTBOX_CHANNEL}")


@cache
def _add_delivery(dialect: str) -> Prepared:
    # Every web request that captures a submission runs it.
    return Prepared(insert_or_ignore(_DELIVERIES, dialect).returning(_DELIVERIES.c.id))


def make_message_id(kind: DeliveryKind) -> str:
    """A Message-ID in the sending domain, fixed when the delivery is written and kept across retries."""
    return f"<{secrets.token_hex(16)}.{kind.value}@{current_settings().mail_domain}>"


@dataclass
class ClaimedMessage:
    delivery_id: int
    message: EmailMessage
    envelope_from: str
    to: str
    keep_raw: bool
    kind: DeliveryKind
    enrollment_id: int | None
    # The kinds with a stream pause on record, shared by every message of one claim: the first message of
    # such a kind that goes through lifts its pause, and the others need not look for one.
    pauses: set[DeliveryKind] = field(default_factory=set)


def claim_deliveries(limit: int) -> list[ClaimedMessage]:
    """Lease up to `limit` due deliveries to this sender and render them. Flushes; the caller commits.

    Rows are locked with FOR UPDATE SKIP LOCKED on PostgreSQL; on SQLite the writing transaction itself
    (BEGIN IMMEDIATE) excludes other senders. A lease that runs out makes the row due again, so a sender
    that dies mid-batch loses nothing. Whatever would stop a message (an unsubscribe, a bounce, leaving a
    sequence, the frequency cap, sending hours, a paused stream) is checked here, inside the claim.
    """
    now = clock.now()
    pauses: dict[DeliveryKind, datetime] = dict(
        db.session.execute(select(StreamPause.kind, StreamPause.paused_until)).all()
    )
    query = (
        select(Delivery)
        .where(Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]), Delivery.due_at <= now)
        .order_by(Delivery.due_at, Delivery.priority.desc(), Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
        # Read in the claim's transaction, after the rows are locked, like the lazy loads they replace.
        .options(selectinload(Delivery.subscriber), selectinload(Delivery.enrollment))
    )
    paused = [kind for kind, until in pauses.items() if until > now]
    if paused:
        query = query.where(Delivery.kind.not_in(paused))
    settings = current_settings()
    signer = dkim.signer_for(settings)
    claimed: list[ClaimedMessage] = []
    marketing_in_batch: set[int] = set()
    known_pauses = set(pauses)
    deliveries = db.session.scalars(query).all()
    # Nothing read while claiming depends on the changes made while claiming: flush them once, at the end.
    with db.session.no_autoflush:
        rendering = emails.preload(deliveries)
        for delivery in deliveries:
            reason = _reason_not_to_send(delivery)
            if reason is not None:
                delivery.status = DeliveryStatus.CANCELLED
                delivery.last_error = reason
                continue
            if delivery.kind.is_marketing and delivery.subscriber_id is not None:
                wait = held_back_until(
                    delivery, now, also_sending=delivery.subscriber_id in marketing_in_batch
                )
                if wait is not None:
                    delivery.status = DeliveryStatus.PENDING
                    delivery.due_at = wait
                    continue
                marketing_in_batch.add(delivery.subscriber_id)
            delivery.status = DeliveryStatus.SENDING
            delivery.due_at = now + LEASE
            delivery.attempts += 1
            envelope_from = verp_sender(settings.return_path, delivery.id)
            try:
                message = emails.build_message(delivery)
                if signer is not None:  # last: the stored raw message and the sent one carry this signature
                    signer.sign(message, international=is_international(envelope_from, delivery.to_address))
            except Exception as exc:  # a template or data error must not block the rest of the batch
                log.exception("delivery %s could not be rendered", delivery.id)
                delivery.status = DeliveryStatus.FAILED
                delivery.last_error = f"render error: {exc}"[:2000]
                continue
            delivery.subject = str(message["Subject"])
            claimed.append(
                ClaimedMessage(
                    delivery_id=delivery.id,
                    message=message,
                    envelope_from=envelope_from,
                    to=delivery.to_address,
                    keep_raw=settings.mail.is_outbox,
                    kind=delivery.kind,
                    enrollment_id=delivery.enrollment_id,
                    pauses=known_pauses,
                )
            )
        del rendering
    db.session.flush()
    return claimed


def _reason_not_to_send(delivery: Delivery) -> str | None:
    """Why this delivery must not go out any more, checked inside the claim."""
    subscriber = delivery.subscriber
    if subscriber is None:
        return "subscriber erased"
    if subscriber.is_suppressed:
        return f"subscriber {subscriber.status.value}"
    if delivery.kind.is_marketing and not (
        subscriber.status is SubscriberStatus.CONFIRMED and subscriber.marketing_consent
    ):
        return "no marketing consent"
    if delivery.kind is DeliveryKind.SEQUENCE:
        enrollment = delivery.enrollment
        if enrollment is None or enrollment.state is EnrollmentState.EXITED:
            return "left the sequence"
        if db.session.get(SequenceStep, delivery.payload.get("step_id")) is None:
            return "the step was removed from its sequence"
    return None


def record_sent(claimed: ClaimedMessage, sql: Connection) -> None:
    """Mark a claimed delivery as sent; a subscriber finishing a step before leaving now leaves.

    Most marks are one UPDATE, written on `sql`: a connection the sender keeps for its batch, in autocommit,
    as a statement on its own is a transaction already (on PostgreSQL that saves the BEGIN and COMMIT round
    trips). A mark that also ends an enrollment or lifts a stream pause takes several statements, written in
    the session's transaction. The caller commits both.
    """
    values: dict[str, Any] = {"delivery_id": claimed.delivery_id, "now": clock.now()}
    statement = _MARK_SENT
    if claimed.keep_raw:
        statement, values["raw"] = _MARK_SENT_KEEPING_RAW, bytes(claimed.message)
    if claimed.enrollment_id is None and claimed.kind not in claimed.pauses:
        sql.execute(statement, values)
        return
    db.session.connection().execute(statement, values)
    if claimed.enrollment_id is not None:
        enrollment = db.session.get(Enrollment, claimed.enrollment_id)
        if enrollment is not None and enrollment.leaving and enrollment.state is EnrollmentState.ACTIVE:
            enrollment.mark_left(values["now"], "answers changed (after finishing the step)")
    if claimed.kind in claimed.pauses:
        db.session.execute(delete(StreamPause).where(StreamPause.kind == claimed.kind))
        claimed.pauses.discard(claimed.kind)
    db.session.flush()


# By primary key, without loading the row first: the claim leased it to this sender.
_MARK_SENT: Final = (
    update(Delivery)
    .where(Delivery.id == bindparam("delivery_id"))
    .values(status=DeliveryStatus.SENT, sent_at=bindparam("now"), last_error=None)
)
_MARK_SENT_KEEPING_RAW: Final = _MARK_SENT.values(raw_message=bindparam("raw"))


def record_failure(claimed: ClaimedMessage, failure: SendFailure) -> None:
    """Apply what the SMTP reply means: retry later, give up, pause the stream or suppress the address. Flushes."""
    delivery = db.session.get_one(Delivery, claimed.delivery_id)
    now = clock.now()
    delivery.last_error = f"{failure.kind.value} {failure.code or ''} {failure.detail}".strip()[:2000]
    if failure.kind is FailureKind.TRANSIENT:
        if now - delivery.created_at > current_settings().retry_for:
            delivery.status = DeliveryStatus.FAILED
        else:
            delivery.status = DeliveryStatus.PENDING
            delivery.due_at = now + retry_delay(delivery.attempts)
    elif failure.kind is FailureKind.POLICY:
        delivery.status = DeliveryStatus.PENDING
        delivery.due_at = pause_stream(delivery.kind, now, failure)
        claimed.pauses.add(delivery.kind)
    elif failure.kind is FailureKind.RECIPIENT:
        delivery.status = DeliveryStatus.FAILED
        if delivery.subscriber is not None:
            suppress_subscriber(delivery.subscriber, SubscriberStatus.BOUNCED, reason=delivery.last_error)
    else:
        delivery.status = DeliveryStatus.FAILED
    log.warning("delivery %s not sent (%s): %s", delivery.id, delivery.status.value, delivery.last_error)
    db.session.flush()


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


def suppress_subscriber(subscriber: Subscriber, status: SubscriberStatus, *, reason: str) -> None:
    """Stop all mail to an address: set its status, cancel what is queued, record the suppression."""
    if subscriber.status is status:
        return
    now = clock.now()
    subscriber.status = status
    subscriber.status_changed_at = now
    db.session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber.id, Delivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.CANCELLED, last_error=f"subscriber {status.value}")
    )
    for enrollment in db.session.scalars(
        select(Enrollment).where(
            Enrollment.subscriber_id == subscriber.id, Enrollment.state == EnrollmentState.ACTIVE
        )
    ):
        enrollment.mark_left(now, f"subscriber {status.value}")
    db.session.add(
        ConsentEvent(
            subscriber=subscriber,
            kind=ConsentKind.SUPPRESS,
            purposes=["report", "sequences"],
            wording={"reason": reason},
            wording_version="-",
            created_at=now,
        )
    )
    db.session.flush()
    log.info("subscriber %s suppressed: %s (%s)", subscriber.id, status.value, reason)
