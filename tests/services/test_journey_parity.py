"""The journey preview and the real worker apply the same rules: for seeded random answer timelines (answers
changing, the same answer given again, answers going stale, an unsubscribe), the emails the preview predicts
from the subscriber's rows are the emails the worker sends, at the same moments.

Between two things the person does, the preview is asked from the rows as they are, and the worker is ticked
(with `leadcapture.clock` moved) at every moment something falls due, as a worker that never falls behind."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from leadcapture import clock, scheduler
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Question,
    SequenceStep,
    Subscriber,
)
from leadcapture.services.journeys import EventKind, preview_journey
from leadcapture.services.preferences import update_answers
from leadcapture.services.sequences import switch_sequences
from leadcapture.services.subscribers import unsubscribe
from leadcapture.tokens import Purpose, make_token
from tests.factories import give_answers, make_demo_widget, make_question, make_sequence, make_subscriber

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EMAIL = "lezer@example.com"
SEEDS = (1, 2, 3, 4, 5, 6)
Email = tuple[datetime, str, str]  # when, kind, what (sequence/step, or the question re-asked)

pytestmark = pytest.mark.settings(LEADCAPTURE_RATE_LIMITS="off")


def build(rng: random.Random) -> None:
    make_question("daytrading_experience", "choice", fresh_for_days=rng.choice((4, 6, 9)))
    make_demo_widget()
    policies = ("switch", "finish_step", "stay")

    def steps(count: int) -> tuple[tuple[str, timedelta], ...]:
        return tuple((f"{n:02}.md", timedelta(hours=rng.choice((3, 11, 20, 30, 52)))) for n in range(count))

    make_sequence(
        "beginners",
        {"daytrading_experience": ["none", "some"]},
        on_change=rng.choice(policies),
        steps=steps(3),
        priority=rng.choice((0, 5)),
    )
    make_sequence(
        "active", {"daytrading_experience": "active"}, on_change=rng.choice(policies), steps=steps(2)
    )
    make_sequence(
        "fresh",
        {"daytrading_experience": "none"},
        fresh_only=True,
        on_change="switch",
        steps=steps(3),
        priority=1,
    )


def sign_up(experience: str) -> None:
    """A confirmed subscriber with follow-up consent, placed in sequences as confirming places them."""
    subscriber = make_subscriber(
        email=EMAIL,
        timezone="Europe/Amsterdam",
        marketing_consent=True,
        answers={"is_investor": "yes", "daytrading_experience": experience},
    )
    switch_sequences(subscriber, reason="confirmed")


def act(action: str, value: str) -> None:
    """What the person does: change an answer on the preference page, give the same answer again in the
    widget (it becomes fresh again), or unsubscribe."""
    subscriber = db.session.scalars(select(Subscriber).where(Subscriber.email == EMAIL)).one()
    if action == "change":
        update_answers(subscriber, {"daytrading_experience": [value]})
    elif action == "again":
        current = db.session.scalars(
            select(Answer.value)
            .join(Answer.question)
            .where(Answer.subscriber_id == subscriber.id, Question.key == "daytrading_experience")
            .order_by(Answer.id.desc())
        ).first()
        give_answers(subscriber, {"daytrading_experience": str(current)})
        switch_sequences(subscriber, reason="answers from a widget")
    else:
        unsubscribe(make_token(Purpose.UNSUBSCRIBE, {"s": subscriber.id}), one_click=True)
    db.session.commit()


def timeline(rng: random.Random) -> list[tuple[datetime, str, str]]:
    moments, at = [], START
    for _ in range(rng.randint(3, 5)):
        at += timedelta(hours=rng.randint(5, 120), minutes=rng.choice((0, 17, 45)))
        moments.append(
            (at, rng.choice(("change", "change", "again")), rng.choice(("none", "some", "active")))
        )
    if rng.random() < 0.3:
        at += timedelta(hours=rng.randint(5, 60))
        moments.append((at, "unsubscribe", ""))
    return moments


def predicted(app: Flask, until: datetime) -> list[Email]:
    """The emails the preview gives the subscriber, from now until `until`."""
    weeks = (until - clock.now()).days // 7 + 1
    with app.app_context():
        journey = preview_journey(EMAIL, weeks=weeks)
    return [
        (
            event.at,
            event.kind.value,
            f"{event.sequence_slug}/{event.step_key}"
            if event.kind is EventKind.EMAIL
            else event.question or "",
        )
        for event in journey.emails
        if event.at < until
    ]


def next_due() -> datetime | None:
    """The first moment the worker has something to do for anyone."""
    moments = [
        db.session.scalar(
            select(func.min(Enrollment.next_due_at)).where(Enrollment.state == EnrollmentState.ACTIVE)
        ),
        db.session.scalar(
            select(func.min(Enrollment.recheck_at)).where(Enrollment.state == EnrollmentState.ACTIVE)
        ),
        db.session.scalar(select(func.min(Subscriber.refresh_due_at))),
        db.session.scalar(
            select(func.min(Delivery.due_at)).where(
                Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING])
            )
        ),
    ]
    return min((moment for moment in moments if moment is not None), default=None)


def run_worker(app: Flask, until: datetime) -> None:
    """Tick the worker at every moment something falls due before `until`."""
    for _ in range(500):
        with app.app_context():
            moment = next_due()
        if moment is None or moment >= until:
            return
        clock.freeze(max(moment, clock.now()))
        results = scheduler.run_once(app)
        assert None not in results.values(), results
    raise AssertionError("the worker kept finding work due")


def sent(app: Flask, since: datetime, until: datetime) -> list[Email]:
    with app.app_context():
        rows = db.session.execute(
            select(Delivery, SequenceStep.key)
            .outerjoin(SequenceStep, SequenceStep.id == Delivery.payload["step_id"].as_integer())
            .where(
                Delivery.status == DeliveryStatus.SENT,
                Delivery.kind.in_([DeliveryKind.SEQUENCE, DeliveryKind.REFRESH]),
                Delivery.sent_at >= since,
                Delivery.sent_at < until,
            )
            .order_by(Delivery.sent_at, Delivery.id)
        ).all()
        questions = dict(db.session.execute(select(Question.id, Question.key)).all())
        emails: list[Email] = []
        for delivery, step_key in rows:
            assert delivery.sent_at is not None
            if delivery.kind is DeliveryKind.SEQUENCE:
                slug = db.session.get_one(Enrollment, delivery.enrollment_id).sequence.slug
                emails.append((delivery.sent_at, "email", f"{slug}/{step_key}"))
            else:
                emails.append((delivery.sent_at, "refresh", questions[delivery.payload["question_id"]]))
        return emails


@pytest.mark.parametrize("seed", SEEDS)
def test_the_preview_predicts_what_the_worker_sends(app: Flask, seed: int) -> None:
    rng = random.Random(seed)
    clock.freeze(START)
    with app.app_context():
        build(rng)
        sign_up(rng.choice(("none", "some", "active")))
        db.session.commit()
    events = timeline(rng)
    end = events[-1][0] + timedelta(days=10)
    since = START
    total = 0
    for at, action, value in [*events, (end, "", "")]:
        expected = predicted(app, at)
        run_worker(app, at)
        assert sent(app, since, at) == expected, f"seed {seed}, from {since} until {action} {value} at {at}"
        total += len(expected)
        clock.freeze(at)
        since = at
        if action:
            with app.app_context():
                act(action, value)
    assert total > 0
