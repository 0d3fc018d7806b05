"""Interest changes: stale answers to the questions that matter are re-asked by email, one at a time."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Question, Subscriber
from leadcapture.services import rules
from leadcapture.services.answers import CurrentAnswer
from leadcapture.services.states import Batch, load_content, load_states, questions_that_matter

log = logging.getLogger(__name__)


def stale_questions(states: Mapping[str, CurrentAnswer], now: datetime) -> list[Question]:
    """The questions that matter whose current answer has gone stale, most important first."""
    matter = questions_that_matter()
    stale = {question_id for question_id, _key in rules.stale_questions(states, now, _keys(matter))}
    return [question for question in matter if question.id in stale]


def _keys(questions: Sequence[Question]) -> list[tuple[int, str]]:
    return [(question.id, question.key) for question in questions]


def enqueue_refresh_emails(limit: int) -> int:
    """Write a refresh email for up to `limit` subscribers whose answers are due a look. Flushes.

    One email per subscriber per refresh interval, asking the most important stale question; the frequency
    cap, sending hours and a pause apply as to any marketing email.
    """
    now = clock.now()
    due = db.session.scalars(
        select(Subscriber.id)
        .where(Subscriber.refresh_due_at <= now)
        .order_by(Subscriber.refresh_due_at, Subscriber.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Subscriber)
    ).all()
    if not due:
        return 0
    batch = Batch(load_states(due), now)
    content = load_content()
    for subscriber_id in due:
        batch.decide(subscriber_id, rules.refresh(batch.states[subscriber_id], content, now))
    batch.write()
    return len(due)
