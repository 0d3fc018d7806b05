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
    SignalSource,
    Subscriber,
    Topic,
)
from leadcapture.services.interests import record_signal
from leadcapture.services.journeys import Behaviour, EventKind, preview_journey
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


# Behaviour: clicks and reads as decaying interest, in the preview's what-ifs and in the worker's sweeps


def build_interest(rng: random.Random) -> None:
    """The answer sequences, a daytrading topic about daytrading_experience and an etfs topic, and
    sequences whose audiences look at interest: a threshold, a `below`, and a group mixing both kinds."""
    build(rng)
    policies = ("switch", "finish_step", "stay")

    def steps(count: int) -> tuple[tuple[str, timedelta], ...]:
        return tuple((f"{n:02}.md", timedelta(hours=rng.choice((5, 20, 30, 70)))) for n in range(count))

    question = db.session.scalars(select(Question.id).where(Question.key == "daytrading_experience")).one()
    for key, half_life, about in (("daytrading", rng.choice((3, 10, 30)), question), ("etfs", 4, None)):
        db.session.add(
            Topic(
                key=key,
                name={"en": key},
                urls=[f"https://beleggen.example/{key}/"],
                half_life_days=half_life,
                question_id=about,
                created_at=START,
                updated_at=START,
            )
        )
    keen = {"interest": {"topic": "daytrading", "at_least": rng.choice((2, 3))}}
    make_sequence("keen", keen, on_change=rng.choice(policies), steps=steps(3), priority=rng.choice((0, 7)))
    make_sequence("quiet", {"interest": {"topic": "etfs", "below": 1}}, on_change="switch", steps=steps(2))
    mixed = {"any_of": [{"daytrading_experience": "active"}, {"interest": {"topic": "etfs", "at_least": 2}}]}
    make_sequence("mixed", mixed, on_change=rng.choice(policies), steps=steps(2), priority=3)


def signal(topic: str, source: SignalSource, count: int) -> None:
    """What the person does: `count` clicks (or reads) of the topic, each its own request."""
    for _ in range(count):
        subscriber = db.session.scalars(select(Subscriber).where(Subscriber.email == EMAIL)).one()
        record_signal(subscriber, db.session.scalars(select(Topic).where(Topic.key == topic)).one(), source)
        db.session.commit()


def next_tick(after: datetime) -> datetime | None:
    """The worker's next moment: something falling due, or the next UTC day, when interest fades."""
    midnight = datetime.combine(after.date(), datetime.min.time(), UTC) + timedelta(days=1)
    due = next_due()
    return min(due, midnight) if due is not None else midnight


def run_worker_daily(app: Flask, until: datetime) -> None:
    """Tick the worker at every moment something falls due before `until`, and at every UTC midnight."""
    for _ in range(1000):
        with app.app_context():
            moment = next_tick(clock.now())
        if moment is None or moment >= until:
            clock.freeze(until)
            return
        clock.freeze(max(moment, clock.now()))
        results = scheduler.run_once(app)
        assert None not in results.values(), results
    raise AssertionError("the worker kept finding work due")


@pytest.mark.parametrize("seed", SEEDS)
def test_the_preview_predicts_fading_interest_as_the_worker_moves_it(app: Flask, seed: int) -> None:
    """Between the things the person does (clicks, reads, answers), the preview from their rows, scores
    included, says what the worker then sends, fading interest and all."""
    rng = random.Random(seed)
    clock.freeze(START)
    with app.app_context():
        build_interest(rng)
        sign_up(rng.choice(("none", "some", "active")))
        db.session.commit()
    moments, at = [], START
    for _ in range(rng.randint(3, 6)):
        at += timedelta(hours=rng.randint(10, 150), minutes=rng.choice((0, 17, 45)))
        moments.append((at, rng.choice(("click", "click", "read", "change")), rng.randint(1, 4)))
    end = at + timedelta(days=20)
    since, total = START, 0
    for at, action, count in [*moments, (end, "", 0)]:
        expected = predicted(app, at)
        run_worker_daily(app, at)
        assert sent(app, since, at) == expected, f"seed {seed}, from {since} until {action} {count} at {at}"
        total += len(expected)
        since = at
        with app.app_context():
            if action == "click":
                signal("daytrading", SignalSource.CLICK, count)
            elif action == "read":
                signal("etfs", SignalSource.READ, count)
            elif action == "change":
                act("change", rng.choice(("none", "some", "active")))
    assert total > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_behaviour_what_ifs_predict_what_the_worker_sends_when_they_happen(app: Flask, seed: int) -> None:
    """The preview's timeline with behaviour what-ifs is what the worker sends when the person does just
    that: the clicks and reads recorded at those moments, the worker ticking through the weeks."""
    rng = random.Random(seed)
    clock.freeze(START)
    with app.app_context():
        build_interest(rng)
        sign_up(rng.choice(("none", "some", "active")))
        db.session.commit()
    behaviour = sorted(
        (
            Behaviour(
                rng.choice(("daytrading", "daytrading", "etfs")),
                day=rng.randint(0, 20),
                count=rng.randint(1, 4),
                source=rng.choice((SignalSource.CLICK, SignalSource.READ)),
            )
            for _ in range(rng.randint(1, 4))
        ),
        key=lambda item: item.day,
    )
    weeks = 5
    with app.app_context():
        journey = preview_journey(EMAIL, weeks=weeks, behaviour=behaviour)
    expected = [
        (
            event.at,
            event.kind.value,
            f"{event.sequence_slug}/{event.step_key}" if event.kind is EventKind.EMAIL else event.question or "",
        )
        for event in journey.changed_emails
    ]
    for item in behaviour:
        run_worker_daily(app, START + timedelta(days=item.day))
        with app.app_context():
            signal(item.topic, item.source, item.count)
    end = START + timedelta(weeks=weeks)
    run_worker_daily(app, end)
    assert sent(app, START, end) == expected, f"seed {seed}: {[item.text for item in behaviour]}"
    signals = [event for event in journey.changed_timeline or [] if event.kind is EventKind.SIGNAL]
    assert len(signals) == sum(item.count for item in behaviour)
