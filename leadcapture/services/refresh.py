"""Interest changes: stale answers to the questions that matter are re-asked by email, one at a time."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import func, select

from leadcapture import audience, clock
from leadcapture.config import current as current_settings
from leadcapture.extensions import db
from leadcapture.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Question,
    Subscriber,
    WidgetQuestion,
)
from leadcapture.models import Sequence as SequenceModel
from leadcapture.services.answers import CurrentAnswer, answer_states
from leadcapture.services.outbox import enqueue_delivery
from leadcapture.services.pacing import next_marketing_slot

log = logging.getLogger(__name__)


def questions_that_matter() -> list[Question]:
    """Questions an active sequence's audience looks at, then those a widget asks: the order to re-ask in."""
    keys: list[str] = []
    for rule in db.session.scalars(select(SequenceModel.audience).where(SequenceModel.active.is_(True))):
        keys.extend(sorted(audience.questions_in(rule)))
    by_key = {question.key: question for question in db.session.scalars(select(Question))}
    widget_keys = db.session.scalars(
        select(Question.key).join(WidgetQuestion, WidgetQuestion.question_id == Question.id).distinct()
    )
    ordered = dict.fromkeys([*keys, *sorted(widget_keys)])
    return [by_key[key] for key in ordered if key in by_key]


def stale_questions(
    states: Mapping[str, CurrentAnswer], now: datetime, matter: Sequence[Question] | None = None
) -> list[Question]:
    """The questions that matter whose current answer has gone stale, most important first."""
    return [
        question
        for question in (questions_that_matter() if matter is None else matter)
        if question.key in states and not states[question.key].is_fresh(now)
    ]


def schedule_refresh(subscriber: Subscriber, states: Mapping[str, CurrentAnswer], now: datetime) -> None:
    """Set when to look again for something to re-ask: when the first answer that matters goes stale,
    but never sooner than the refresh interval after the last refresh email."""
    if not subscriber.receives_marketing:
        subscriber.refresh_due_at = None
        return
    keys = {question.key for question in questions_that_matter()}
    moments = [state.stale_at for key, state in states.items() if key in keys]
    if not moments:
        subscriber.refresh_due_at = None
        return
    last = db.session.scalar(
        select(func.max(Delivery.created_at)).where(
            Delivery.subscriber_id == subscriber.id,
            Delivery.kind == DeliveryKind.REFRESH,
            Delivery.status != DeliveryStatus.CANCELLED,
        )
    )
    subscriber.refresh_due_at = refresh_due(moments, last, now)


def refresh_due(stale_moments: Sequence[datetime], last_refresh: datetime | None, now: datetime) -> datetime:
    """When to look for an answer to re-ask: the first going stale, but a refresh interval after the last
    refresh email."""
    floor = last_refresh + current_settings().refresh_every if last_refresh is not None else now
    return max(min(stale_moments), floor)


def enqueue_refresh_emails(limit: int) -> int:
    """Write a refresh email for up to `limit` subscribers whose answers are due a look. Flushes.

    One email per subscriber per refresh interval, asking the most important stale question; the frequency
    cap, sending hours and a pause apply as to any marketing email.
    """
    now = clock.now()
    due = db.session.scalars(
        select(Subscriber)
        .where(Subscriber.refresh_due_at <= now)
        .order_by(Subscriber.refresh_due_at, Subscriber.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Subscriber)
    ).all()
    matter = questions_that_matter()
    for subscriber in due:
        states = answer_states(subscriber.id)
        stale = stale_questions(states, now, matter) if subscriber.receives_marketing else []
        if stale:
            question = stale[0]
            enqueue_delivery(
                subscriber.id,
                subscriber.email,
                DeliveryKind.REFRESH,
                f"refresh:{subscriber.id}:{question.id}:{now.date().isoformat()}",
                {"question_id": question.id},
                due_at=next_marketing_slot(subscriber, now),
            )
            log.info("refresh email queued for subscriber %s about %s", subscriber.id, question.key)
        schedule_refresh(subscriber, states, now)
        if subscriber.refresh_due_at is not None and subscriber.refresh_due_at <= now:
            subscriber.refresh_due_at = now + current_settings().refresh_every
    db.session.flush()
    return len(due)
