"""Who is in which sequence, moved the moment their answers change, and the steps that fall due."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Exists, SQLColumnExpression, and_, func, or_, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Sequence,
    Subscriber,
)
from leadcapture.services import rules
from leadcapture.services.states import Batch, load_content, load_states, plan_of

log = logging.getLogger(__name__)


def switch_sequences(subscriber: Subscriber, *, reason: str) -> None:
    """Bring a subscriber's enrollments in line with their current answers and consent. Flushes.

    Called in the same transaction as whatever changed (an answer, a confirmation, an unsubscribe, an answer
    going stale), so the subscriber is in the right sequences before the next tick.
    """
    db.session.flush()
    batch = Batch(load_states([subscriber.id]), clock.now())
    batch.decide(subscriber.id, rules.switch(batch.states[subscriber.id], load_content(), batch.now, reason))
    batch.write()


def recheck_stale(limit: int) -> int:
    """Re-evaluate subscribers in fresh_only sequences whose answers have just gone stale. Flushes."""
    now = clock.now()
    due = db.session.execute(
        select(Enrollment.subscriber_id, Enrollment.sequence_id)
        .where(Enrollment.state == EnrollmentState.ACTIVE, Enrollment.recheck_at <= now)
        .order_by(Enrollment.recheck_at, Enrollment.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Enrollment)
    ).all()
    if not due:
        return 0
    sequence_ids: dict[int, list[int]] = {}
    for subscriber_id, sequence_id in due:
        sequence_ids.setdefault(subscriber_id, []).append(sequence_id)
    batch = Batch(load_states(sequence_ids), now)
    content = load_content()
    for subscriber_id, rechecked in sequence_ids.items():
        batch.decide(subscriber_id, rules.recheck(batch.states[subscriber_id], content, now, rechecked))
    batch.write()
    return len(due)


def sequence_is_for(sequence: Sequence, subscriber: Subscriber, answers: dict[str, Any]) -> bool:
    """Whether a subscriber belongs in a sequence: its language, and its audience over these answers."""
    return rules.sequence_is_for(plan_of(sequence), subscriber.locale, answers)


def _step_waiting(enrollment_id: SQLColumnExpression[int] | int) -> Exists:
    """Whether a step of that enrollment is scheduled in the outbox and not yet sent."""
    return (
        select(Delivery.id)
        .where(
            Delivery.enrollment_id == enrollment_id,
            Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]),
        )
        .exists()
    )


def in_sequence() -> ColumnElement[bool]:
    """Whether an enrollment holds its subscriber in its sequence now: it is active, or it completed with its
    last step still waiting in the outbox.

    An enrollment completes as its last step is queued, and that step may wait for sending hours, the
    frequency cap or a pause; until it goes out, the sequence still sends to them and an answer change under
    `switch` still cancels it. The admin's counts, the subscriber's profile and their preference page all
    ask this.
    """
    return or_(
        Enrollment.state == EnrollmentState.ACTIVE,
        and_(Enrollment.state == EnrollmentState.COMPLETED, _step_waiting(Enrollment.id)),
    )


def count_in_sequences(sequence_id: int | None = None) -> dict[int, int]:
    """How many subscribers each sequence (or only `sequence_id`) holds now, by sequence id; one statement."""
    query = select(Enrollment.sequence_id, func.count()).where(in_sequence()).group_by(Enrollment.sequence_id)
    if sequence_id is not None:
        query = query.where(Enrollment.sequence_id == sequence_id)
    return dict(db.session.execute(query).all())


def sequences_holding(subscriber_id: int) -> list[Enrollment]:
    """The enrollments that hold a subscriber in their sequences now, in the order they entered."""
    return list(
        db.session.scalars(
            select(Enrollment)
            .where(Enrollment.subscriber_id == subscriber_id, in_sequence())
            .order_by(Enrollment.id)
        )
    )


def enqueue_due_steps(limit: int) -> int:
    """Write the outbox rows for up to `limit` steps that have fallen due. Flushes; the caller commits.

    Enrollments are locked with FOR UPDATE SKIP LOCKED so concurrent workers take different rows, and the
    idempotency key (enrollment, step) makes a second enqueue of the same step impossible. Steps are decided
    in due order, each on the state the ones before it left, so the frequency cap spaces a subscriber's
    steps in one batch as it would across batches.
    """
    now = clock.now()
    due = db.session.execute(
        select(Enrollment.subscriber_id, Enrollment.sequence_id)
        .where(Enrollment.state == EnrollmentState.ACTIVE, Enrollment.next_due_at <= now)
        .order_by(Enrollment.next_due_at, Enrollment.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Enrollment)
    ).all()
    if not due:
        return 0
    batch = Batch(load_states(subscriber_id for subscriber_id, _ in due), now)
    content = load_content()
    for subscriber_id, sequence_id in due:
        batch.decide(subscriber_id, rules.step_due(batch.states[subscriber_id], content, sequence_id, now))
    batch.write()
    return len(due)


def exit_all(subscriber: Subscriber, reason: str) -> None:
    """Take a subscriber out of every sequence (unsubscribe, suppression). Flushes."""
    db.session.flush()
    batch = Batch(load_states([subscriber.id]), clock.now())
    batch.decide(subscriber.id, rules.leave_all(batch.states[subscriber.id], batch.now, reason))
    batch.write()


def sequences_of(subscribers: Iterable[Subscriber]) -> dict[int, list[Enrollment]]:
    """Enrollments per subscriber id, for exports and previews."""
    ids = [subscriber.id for subscriber in subscribers]
    result: dict[int, list[Enrollment]] = {subscriber_id: [] for subscriber_id in ids}
    for enrollment in db.session.scalars(
        select(Enrollment).where(Enrollment.subscriber_id.in_(ids)).order_by(Enrollment.id)
    ):
        result[enrollment.subscriber_id].append(enrollment)
    return result
