"""Interest changes: stale answers to the questions that matter are re-asked by email, one at a time, and a
subscriber's interest in a topic puts the topic's question first."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Question, Subscriber, Topic
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


def topic_questions() -> tuple[rules.TopicQuestion, ...]:
    """Every topic that is about a question, with that question's id and key, in one statement."""
    return tuple(
        rules.TopicQuestion(topic, question_id, question)
        for topic, question_id, question in db.session.execute(
            select(Topic.key, Question.id, Question.key)
            .join(Question, Question.id == Topic.question_id)
            .order_by(Topic.key)
        )
    )


def refresh_content() -> rules.Content:
    """The content as the refresh rules read it: load_content with the topics that are about a question."""
    return replace(load_content(), topics=topic_questions())


def enqueue_refresh_emails(limit: int) -> int:
    """Write a refresh email for up to `limit` subscribers whose answers are due a look. Flushes.

    One email per subscriber per refresh interval, asking the most important stale question: that of a topic
    the subscriber scores high on today if one is stale (rules.refresh_questions), else the first stale one
    that matters. The frequency cap, sending hours and a pause apply as to any marketing email.
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
    # Topics only reorder what is asked of someone who shows interest in one: a batch without is spared
    # reading them.
    keen = any(state.interests for state in batch.states.values())
    content = refresh_content() if keen else load_content()
    for subscriber_id in due:
        batch.decide(subscriber_id, rules.refresh(batch.states[subscriber_id], content, now))
    batch.write()
    return len(due)
