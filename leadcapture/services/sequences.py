"""Who is in which sequence, moved the moment their answers change, and the steps that fall due."""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Exists, SQLColumnExpression, and_, func, or_, select, update

from leadcapture import audience, clock
from leadcapture.extensions import db
from leadcapture.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    OnChange,
    Sequence,
    SequenceStep,
    Subscriber,
)
from leadcapture.services.answers import CurrentAnswer, answer_states
from leadcapture.services.outbox import enqueue_delivery
from leadcapture.services.pacing import next_marketing_slot
from leadcapture.services.refresh import schedule_refresh

log = logging.getLogger(__name__)


def switch_sequences(subscriber: Subscriber, *, reason: str) -> None:
    """Bring a subscriber's enrollments in line with their current answers and consent. Flushes.

    Called in the same transaction as whatever changed (an answer, a confirmation, an unsubscribe, an answer
    going stale), so the subscriber is in the right sequences before the next tick.
    """
    now = clock.now()
    enrollments = {
        enrollment.sequence_id: enrollment
        for enrollment in db.session.scalars(
            select(Enrollment).where(Enrollment.subscriber_id == subscriber.id)
        )
    }
    if not subscriber.receives_marketing:
        for enrollment in enrollments.values():
            if enrollment.state is EnrollmentState.ACTIVE:
                _exit(enrollment, now, f"no marketing consent ({reason})")
        db.session.flush()
        return
    states = answer_states(subscriber.id)
    sequences = db.session.scalars(
        select(Sequence).where(Sequence.active.is_(True)).order_by(Sequence.priority.desc(), Sequence.id)
    ).all()
    for sequence in sequences:
        current = enrollments.get(sequence.id)
        if sequence_is_for(sequence, subscriber, audience_answers(sequence, states, now)):
            current = _enter(subscriber, sequence, current, now)
        elif current is not None and current.state is EnrollmentState.ACTIVE:
            _answers_no_longer_match(current, sequence, now)
        elif current is not None and current.state is EnrollmentState.COMPLETED:
            _completed_no_longer_matches(current, sequence, now)
        if current is not None:
            current.recheck_at = (
                goes_stale_at(sequence, states) if current.state is EnrollmentState.ACTIVE else None
            )
    schedule_refresh(subscriber, states, now)
    db.session.flush()


def audience_answers(
    sequence: Sequence, states: Mapping[str, CurrentAnswer], now: datetime
) -> dict[str, Any]:
    """The answers a sequence's audience is judged on: every current one, or only fresh ones if fresh_only."""
    return {
        key: state.value for key, state in states.items() if not sequence.fresh_only or state.is_fresh(now)
    }


def goes_stale_at(sequence: Sequence, states: Mapping[str, CurrentAnswer]) -> datetime | None:
    """For a fresh_only sequence: when the first answer its audience looks at goes stale."""
    if not sequence.fresh_only:
        return None
    moments = [states[key].stale_at for key in audience.questions_in(sequence.audience) if key in states]
    return min(moments, default=None)


def recheck_stale(limit: int) -> int:
    """Re-evaluate subscribers in fresh_only sequences whose answers have just gone stale. Flushes."""
    now = clock.now()
    due = db.session.scalars(
        select(Enrollment)
        .where(Enrollment.state == EnrollmentState.ACTIVE, Enrollment.recheck_at <= now)
        .order_by(Enrollment.recheck_at, Enrollment.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Enrollment)
    ).all()
    for enrollment in due:
        switch_sequences(enrollment.subscriber, reason="answers went stale")
        if enrollment.recheck_at is not None and enrollment.recheck_at <= now:
            enrollment.recheck_at = None  # still in: nothing further to look at until answers change
    db.session.flush()
    return len(due)


def sequence_is_for(sequence: Sequence, subscriber: Subscriber, answers: dict[str, Any]) -> bool:
    """Whether a subscriber belongs in a sequence: its language, and its audience over current answers."""
    if sequence.locale is not None and sequence.locale != subscriber.locale:
        return False
    return audience.matches(sequence.audience, answers)


def _enter(
    subscriber: Subscriber, sequence: Sequence, enrollment: Enrollment | None, now: datetime
) -> Enrollment:
    if enrollment is None:
        enrollment = Enrollment(
            subscriber=subscriber,
            sequence=sequence,
            state=EnrollmentState.ACTIVE,
            steps_done=0,
            entered_at=now,
        )
        db.session.add(enrollment)
        _schedule_next(enrollment, sequence, after=now)
        log.info("subscriber %s entered sequence %s", subscriber.id, sequence.slug)
    elif enrollment.state is EnrollmentState.EXITED:
        # Coming back resumes where they left off: nothing already sent is sent again.
        enrollment.state = EnrollmentState.ACTIVE
        enrollment.leaving = False
        enrollment.left_at = None
        enrollment.exit_reason = None
        _schedule_next(enrollment, sequence, after=now)
        log.info(
            "subscriber %s re-entered sequence %s at step %s",
            subscriber.id,
            sequence.slug,
            enrollment.steps_done,
        )
    elif enrollment.state is EnrollmentState.ACTIVE and enrollment.leaving:
        enrollment.leaving = False
        if enrollment.next_due_at is None:
            _schedule_next(enrollment, sequence, after=max(now, enrollment.last_step_at or now))
    return enrollment


class Mismatch(enum.Enum):
    """What an enrollment does once the answers stop matching its sequence's audience."""

    STAY = "stay"
    LEAVE_AFTER_STEP = "leave_after_step"  # the step waiting in the outbox still goes out
    LEAVE = "leave"  # now; a waiting step is cancelled


def on_mismatch(on_change: OnChange, *, step_waiting: bool) -> Mismatch:
    """The sequence's on_change rule applied, given whether one of its steps waits in the outbox."""
    if on_change is OnChange.STAY:
        return Mismatch.STAY
    if on_change is OnChange.FINISH_STEP and step_waiting:
        return Mismatch.LEAVE_AFTER_STEP
    return Mismatch.LEAVE


def _answers_no_longer_match(enrollment: Enrollment, sequence: Sequence, now: datetime) -> None:
    waiting = sequence.on_change is OnChange.FINISH_STEP and _waiting_step(enrollment)
    outcome = on_mismatch(sequence.on_change, step_waiting=waiting)
    if outcome is Mismatch.STAY:
        return
    if outcome is Mismatch.LEAVE_AFTER_STEP:
        enrollment.leaving = True
        enrollment.next_due_at = None
        log.info(
            "subscriber %s leaves sequence %s after the waiting step", enrollment.subscriber_id, sequence.slug
        )
        return
    _exit(enrollment, now, "answers changed")


def _completed_no_longer_matches(enrollment: Enrollment, sequence: Sequence, now: datetime) -> None:
    # An enrollment completes when its last step is queued; under switch that step, if it still waits in the
    # outbox (sending hours, the frequency cap, a paused stream), is cancelled like any other.
    if sequence.on_change is OnChange.SWITCH and _waiting_step(enrollment):
        _exit(enrollment, now, "answers changed")


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


def _waiting_step(enrollment: Enrollment) -> bool:
    return bool(db.session.scalar(select(_step_waiting(enrollment.id))))


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


def _exit(enrollment: Enrollment, now: datetime, reason: str) -> None:
    enrollment.mark_left(now, reason)
    if enrollment.id is not None:
        db.session.execute(
            update(Delivery)
            .where(Delivery.enrollment_id == enrollment.id, Delivery.status == DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.CANCELLED, last_error=f"left the sequence: {reason}")
        )
    log.info("subscriber %s left sequence %s: %s", enrollment.subscriber_id, enrollment.sequence_id, reason)


def _schedule_next(enrollment: Enrollment, sequence: Sequence, *, after: datetime) -> None:
    """Set when the next step falls due, or complete the enrollment when there is none."""
    due = next_step_due(sequence, enrollment.steps_done, after=after)
    if due is None:
        enrollment.state = EnrollmentState.COMPLETED
    enrollment.next_due_at = due


def next_step_due(sequence: Sequence, steps_done: int, *, after: datetime) -> datetime | None:
    """When the step after `steps_done` falls due, counting its delay from `after`; None when none is left."""
    steps = sequence.steps
    if steps_done >= len(steps):
        return None
    return after + timedelta(seconds=steps[steps_done].delay_seconds)


def enqueue_due_steps(limit: int) -> int:
    """Write the outbox rows for up to `limit` steps that have fallen due. Flushes; the caller commits.

    Enrollments are locked with FOR UPDATE SKIP LOCKED so concurrent workers take different rows, and the
    idempotency key (enrollment, step) makes a second enqueue of the same step impossible.
    """
    now = clock.now()
    due = db.session.scalars(
        select(Enrollment)
        .where(Enrollment.state == EnrollmentState.ACTIVE, Enrollment.next_due_at <= now)
        .order_by(Enrollment.next_due_at, Enrollment.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Enrollment)
    ).all()
    for enrollment in due:
        _enqueue_step(enrollment, now)
    db.session.flush()
    return len(due)


def _enqueue_step(enrollment: Enrollment, now: datetime) -> None:
    subscriber, sequence = enrollment.subscriber, enrollment.sequence
    if not subscriber.receives_marketing or not sequence.active:
        _exit(enrollment, now, "no marketing consent" if sequence.active else "sequence switched off")
        return
    steps = sequence.steps
    if enrollment.steps_done >= len(steps):
        _schedule_next(enrollment, sequence, after=now)
        return
    step: SequenceStep = steps[enrollment.steps_done]
    earliest = enrollment.next_due_at or now
    due_at = next_marketing_slot(subscriber, earliest)
    enqueue_delivery(
        subscriber.id,
        subscriber.email,
        DeliveryKind.SEQUENCE,
        f"sequence:{enrollment.id}:{step.key}",
        {"enrollment_id": enrollment.id, "step_id": step.id},
        due_at=due_at,
        enrollment_id=enrollment.id,
        priority=sequence.priority,
    )
    log.info("step %s of sequence %s queued for subscriber %s", step.key, sequence.slug, subscriber.id)
    enrollment.steps_done += 1
    enrollment.last_step_at = due_at
    if enrollment.leaving:
        enrollment.next_due_at = None
    else:
        _schedule_next(enrollment, sequence, after=due_at)


def exit_all(subscriber: Subscriber, reason: str) -> None:
    """Take a subscriber out of every sequence (unsubscribe, suppression). Flushes."""
    now = clock.now()
    for enrollment in db.session.scalars(
        select(Enrollment).where(
            Enrollment.subscriber_id == subscriber.id, Enrollment.state == EnrollmentState.ACTIVE
        )
    ):
        _exit(enrollment, now, reason)
    db.session.flush()


def sequences_of(subscribers: Iterable[Subscriber]) -> dict[int, list[Enrollment]]:
    """Enrollments per subscriber id, for exports and previews."""
    ids = [subscriber.id for subscriber in subscribers]
    result: dict[int, list[Enrollment]] = {subscriber_id: [] for subscriber_id in ids}
    for enrollment in db.session.scalars(
        select(Enrollment).where(Enrollment.subscriber_id.in_(ids)).order_by(Enrollment.id)
    ):
        result[enrollment.subscriber_id].append(enrollment)
    return result
