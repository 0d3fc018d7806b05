"""The worker's sweeps over enrollments and subscribers are set-based: a batch of forty costs the same number
of SQL statements as a batch of five."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    Delivery,
    DeliveryKind,
    Enrollment,
    EnrollmentState,
)
from leadcapture.services import outbox, refresh, sequences
from tests.factories import make_demo_widget, make_question, make_sequence, make_subscriber
from tests.support.sql import statements

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SMALL, LARGE = 5, 40


def people(count: int) -> None:
    """Confirmed subscribers answering `none` (fresh for one day), each placed in its sequences."""
    for n in range(count):
        subscriber = make_subscriber(
            email=f"lezer{n}@example.com",
            timezone="Europe/Amsterdam",
            marketing_consent=True,
            answers={"is_investor": "yes", "daytrading_experience": "none"},
        )
        sequences.switch_sequences(subscriber, reason="confirmed")
    db.session.commit()


def cost(sweep: Callable[[int], int], limit: int) -> int:
    """The statements of one batch of `limit`, in a transaction of its own as the worker runs it."""
    db.session.commit()
    with statements() as seen:
        done = sweep(limit)
        db.session.flush()
    db.session.commit()
    assert done == limit
    return len(seen)


def send_cost(limit: int) -> tuple[int, int]:
    """The statements of claiming one batch of `limit` emails, and of rendering it, as the sender does."""
    with statements() as claiming:
        claim = outbox.claim_deliveries(limit)
    db.session.commit()
    with statements() as rendering_seen:
        rendering = outbox.Rendering.load(claim)
        while rendering.step() is not None:
            pass
    assert len(claim.messages) == limit, claim.failures
    db.session.rollback()
    return len(claiming), len(rendering_seen)


def test_a_sweep_costs_the_same_statements_for_five_as_for_forty(app: Flask) -> None:
    clock.freeze(START)
    with app.app_context():
        make_question("daytrading_experience", "choice", fresh_for_days=1)
        make_demo_widget()
        make_sequence("plain", {"is_investor": "yes"}, steps=(("01.md", timedelta(hours=1)),))
        make_sequence(
            "fresh",
            {"daytrading_experience": "none"},
            fresh_only=True,
            steps=(("01.md", timedelta(hours=2)), ("02.md", timedelta(days=1))),
        )
        db.session.commit()
        people(SMALL + LARGE)

        # Every subscriber has two steps due: forty-five in the first two batches.
        clock.freeze(START + timedelta(hours=3))
        small, large = cost(sequences.enqueue_due_steps, SMALL), cost(sequences.enqueue_due_steps, LARGE)
        assert small == large <= 17
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == SMALL + LARGE

        # A day on, the answer has gone stale: out of the fresh_only sequence, and asked again.
        clock.freeze(START + timedelta(days=1, hours=1))
        small, large = cost(sequences.recheck_stale, SMALL), cost(sequences.recheck_stale, LARGE)
        assert small == large <= 17
        left = select(func.count()).where(Enrollment.state == EnrollmentState.EXITED)
        assert db.session.scalar(left) == SMALL + LARGE

        small, large = (
            cost(refresh.enqueue_refresh_emails, SMALL),
            cost(refresh.enqueue_refresh_emails, LARGE),
        )
        assert small == large <= 17
        refreshes = select(func.count()).where(Delivery.kind == DeliveryKind.REFRESH)
        assert db.session.scalar(refreshes) == SMALL + LARGE

        # Claiming reads the pauses, the due rows, their steps and the frequency cap a statement each, and
        # writes an UPDATE per kind of change (sent on, held back, cancelled); rendering reads what the
        # emails need a table at a time, the askers' current answers included.
        (claim_small, render_small), (claim_large, render_large) = send_cost(SMALL), send_cost(LARGE)
        assert claim_small <= claim_large <= 7
        assert render_small == render_large
