"""Interest profiles: signals of interest in a topic recorded as events, each subscriber's decaying score per
topic kept current with them, and sequences moved the moment a score crosses a threshold an audience names.

A score only ever moves up at a signal (or down when a click turns out automated after all), and down by
decay, a whole day at a time: `recheck_fading_interest` finds the subscribers whose score fell past a
threshold since it last looked, by index ranges over (topic, level), and moves them too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, insert, or_, select

from leadcapture import audience, clock, interest
from leadcapture.extensions import db
from leadcapture.models import (
    InterestEvent,
    InterestScore,
    Sequence,
    SignalSource,
    Subscriber,
    SweepMark,
    Topic,
)
from leadcapture.services import rules
from leadcapture.services.sequences import switch_sequences
from leadcapture.services.states import Batch, load_content, load_states

log = logging.getLogger(__name__)

_FADING = "interest"


@dataclass(frozen=True)
class Signal:
    """What one signal changed: the subscriber's score on the topic before and after it, today."""

    topic: str
    before: float
    after: float


def record_signal(
    subscriber: Subscriber,
    topic: Topic,
    source: SignalSource,
    *,
    weight: float = 1.0,
    occurred_at: datetime | None = None,
    delivery_id: int | None = None,
    click_id: int | None = None,
    widget_id: int | None = None,
    url: str | None = None,
    moves: bool = True,
) -> Signal:
    """Append a signal of interest (a negative weight takes an earlier one back, dated as it was), bring the
    subscriber's score up to date, and (unless not `moves`: the caller moves them anyway) move their
    sequences when it crossed a threshold an active audience names, with each sequence's on_change policy.
    Flushes."""
    now = clock.now()
    moment = occurred_at or now
    db.session.add(
        InterestEvent(
            subscriber_id=subscriber.id,
            topic_id=topic.id,
            source=source,
            weight=weight,
            occurred_at=moment,
            recorded_at=now,
            delivery_id=delivery_id,
            click_id=click_id,
            widget_id=widget_id,
            url=url[:2048] if url else None,
        )
    )
    row = _score_row(subscriber.id, topic.id)
    before = interest.score(row.level if row else None, now, topic.half_life_days)
    level = interest.add_signal(row.level if row else None, weight, moment, topic.half_life_days)
    if row is None and level is not None:
        db.session.add(InterestScore(subscriber_id=subscriber.id, topic_id=topic.id, level=level, updated_at=now))
    elif row is not None and level is None:
        db.session.delete(row)
    elif row is not None and level is not None:
        row.level, row.updated_at = level, now
    after = interest.score(level, now, topic.half_life_days)
    log.info(
        "%s signal (%+g) on topic %s for subscriber %s: score %.2f -> %.2f",
        source.value,
        weight,
        topic.key,
        subscriber.id,
        before,
        after,
    )
    if moves and crosses(topic.key, before, after, active_thresholds()):
        switch_sequences(subscriber, reason=f"interest in {topic.key} changed")
    else:
        db.session.flush()
    return Signal(topic.key, before, after)


def record_answer_signals(
    subscriber: Subscriber, answered: Mapping[int, datetime], *, widget_id: int | None = None
) -> None:
    """Answering a topic's question shows interest in the topic: a signal for each topic about one of these
    questions (question id: when answered). Moves no sequence: the caller, recording answers, does. Flushes."""
    if not answered:
        return
    topics = db.session.scalars(select(Topic).where(Topic.question_id.in_(list(answered))).order_by(Topic.id))
    for topic in topics:
        record_signal(
            subscriber,
            topic,
            SignalSource.ANSWER,
            occurred_at=answered.get(topic.question_id or 0),
            widget_id=widget_id,
            moves=False,
        )


def _score_row(subscriber_id: int, topic_id: int) -> InterestScore | None:
    # Two signals for one person at once must not both add to the level they read: the row is locked
    # (PostgreSQL; SQLite's writing transactions are serial already).
    return db.session.scalar(
        select(InterestScore)
        .where(InterestScore.subscriber_id == subscriber_id, InterestScore.topic_id == topic_id)
        .with_for_update()
    )


def active_thresholds() -> set[tuple[str, float]]:
    """Every (topic key, score) an active sequence's audience compares with."""
    thresholds: set[tuple[str, float]] = set()
    for rule in db.session.scalars(select(Sequence.audience).where(Sequence.active.is_(True))):
        thresholds |= audience.interests_in(rule or {})
    return thresholds


def crosses(topic: str, before: float, after: float, thresholds: Iterable[tuple[str, float]]) -> bool:
    """Whether going from `before` to `after` changes which side of a threshold on `topic` a score is."""
    low, high = min(before, after), max(before, after)
    return any(key == topic and low < value * (1 - interest.EPSILON) <= high for key, value in thresholds)


def rebuild_scores(topic: Topic) -> None:
    """Recompute every score on `topic` from its events (after its half-life changed). Flushes."""
    now = clock.now()
    db.session.execute(delete(InterestScore).where(InterestScore.topic_id == topic.id))
    levels: dict[int, float | None] = {}
    for subscriber_id, weight, moment in db.session.execute(
        select(InterestEvent.subscriber_id, InterestEvent.weight, InterestEvent.occurred_at)
        .where(InterestEvent.topic_id == topic.id)
        .order_by(InterestEvent.subscriber_id, InterestEvent.id)
    ):
        levels[subscriber_id] = interest.add_signal(levels.get(subscriber_id), weight, moment, topic.half_life_days)
    rows = [
        {"subscriber_id": subscriber_id, "topic_id": topic.id, "level": level, "updated_at": now}
        for subscriber_id, level in levels.items()
        if level is not None
    ]
    if rows:
        db.session.execute(insert(InterestScore), rows)
    db.session.flush()


def recheck_fading_interest(limit: int) -> int:
    """Move the subscribers whose score on a topic decayed past a threshold an active audience names since
    the last look, up to `limit` of them; 0 once everyone up to today has been looked at. Flushes.

    The look covers whole days from where the last one ended (everyone below a threshold, the first time)
    up to today, in subscriber order, keeping its place in `sweep_marks` between batches.
    """
    now = clock.now()
    mark = db.session.get(SweepMark, _FADING, with_for_update=True)
    if mark is None:
        mark = SweepMark(name=_FADING, at=None, until=None, after_id=0)
        db.session.add(mark)
    until = mark.until or now
    since = mark.at
    thresholds = _thresholds_by_topic()
    found: list[int] = []
    if thresholds and (since is None or interest.day_number(since) < interest.day_number(until)):
        ranges = [
            and_(
                InterestScore.topic_id == topic_id,
                InterestScore.level < interest.threshold(value, until, half_life),
                *([InterestScore.level >= interest.threshold(value, since, half_life)] if since else []),
            )
            for topic_id, half_life, value in thresholds
        ]
        found = list(
            db.session.scalars(
                select(InterestScore.subscriber_id)
                .where(or_(*ranges), InterestScore.subscriber_id > mark.after_id)
                .group_by(InterestScore.subscriber_id)
                .order_by(InterestScore.subscriber_id)
                .limit(limit)
            )
        )
    if found:
        batch = Batch(load_states(found), now)
        content = load_content()
        for subscriber_id in found:
            if subscriber_id in batch.states:
                batch.decide(
                    subscriber_id, rules.switch(batch.states[subscriber_id], content, now, "interest faded")
                )
        batch.write()
    if len(found) < limit:
        mark.at, mark.until, mark.after_id = until, None, 0
    else:
        mark.until, mark.after_id = until, found[-1]
    db.session.flush()
    return len(found)


def _thresholds_by_topic() -> list[tuple[int, int, float]]:
    """(topic id, half-life, score) of every threshold an active audience names."""
    wanted = active_thresholds()
    if not wanted:
        return []
    topics = {
        key: (topic_id, half_life)
        for topic_id, key, half_life in db.session.execute(select(Topic.id, Topic.key, Topic.half_life_days))
    }
    return sorted((*topics[key], value) for key, value in wanted if key in topics)


def profile(subscriber_id: int, now: datetime | None = None) -> list[TopicScore]:
    """A subscriber's score on every topic they showed interest in, highest first."""
    moment = now or clock.now()
    rows = db.session.execute(
        select(Topic, InterestScore.level)
        .join(InterestScore, InterestScore.topic_id == Topic.id)
        .where(InterestScore.subscriber_id == subscriber_id)
    ).all()
    scores = [TopicScore(topic, interest.score(level, moment, topic.half_life_days)) for topic, level in rows]
    return sorted(scores, key=lambda item: (-item.score, item.topic.key))


@dataclass(frozen=True)
class TopicScore:
    topic: Topic
    score: float


def events_of(subscriber_id: int) -> list[InterestEvent]:
    """A subscriber's interest events, oldest first."""
    return list(
        db.session.scalars(
            select(InterestEvent)
            .where(InterestEvent.subscriber_id == subscriber_id)
            .order_by(InterestEvent.occurred_at, InterestEvent.id)
        )
    )


def topics_by_key() -> Mapping[str, Topic]:
    return {topic.key: topic for topic in db.session.scalars(select(Topic))}

