"""Interest profiles: signals of interest in a topic recorded as events, each subscriber's decaying score per
topic kept current with them, and sequences moved the moment a score crosses a threshold an audience names.

A score only ever moves up at a signal (or down when a click turns out automated after all), and down by
decay, a whole day at a time: `recheck_fading_interest` finds the subscribers whose score fell past a
threshold since it last looked, by index ranges over (topic, level), and moves them too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple, cast

from sqlalchemy import Table, and_, bindparam, case, delete, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from leadcapture import audience, clock, interest
from leadcapture.database import insert_or_ignore
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
from leadcapture.prepared import Prepared
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


class TopicRef(NamedTuple):
    """What a signal needs of its topic."""

    id: int
    key: str
    half_life_days: int


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
    db.session.flush()
    signal = append_signal(
        subscriber.id,
        TopicRef(topic.id, topic.key, topic.half_life_days),
        source,
        weight=weight,
        occurred_at=occurred_at,
        delivery_id=delivery_id,
        click_id=click_id,
        widget_id=widget_id,
        url=url,
    )
    if moves and crosses(topic.key, signal.before, signal.after, active_thresholds()):
        switch_sequences(subscriber, reason=f"interest in {topic.key} changed")
    return signal


def append_signal(
    subscriber_id: int,
    topic: TopicRef,
    source: SignalSource,
    *,
    weight: float = 1.0,
    occurred_at: datetime | None = None,
    delivery_id: int | None = None,
    click_id: int | None = None,
    widget_id: int | None = None,
    url: str | None = None,
) -> Signal:
    """The event appended and the score brought up to date, moving no sequence (`record_signal` does): for
    the click redirect, which decides on moving from thresholds it holds already (on PostgreSQL it writes the
    same rows in one statement with the click). A signal adds to the score in one statement that concurrent
    signals cannot interleave with. Both run straight on the cursor of the
    session's connection (leadcapture.prepared: a click waits for them), without flushing the session."""
    now = clock.now()
    moment = occurred_at or now
    sql = db.session.connection()
    _ADD_EVENT.execute(
        sql,
        {
            "subscriber_id": subscriber_id,
            "topic_id": topic.id,
            "source": source,
            "weight": weight,
            "occurred_at": moment,
            "recorded_at": now,
            "delivery_id": delivery_id,
            "click_id": click_id,
            "widget_id": widget_id,
            "url": url[:2048] if url else None,
        },
    )
    key = {"subscriber_id": subscriber_id, "topic_id": topic.id}
    if weight > 0:
        level: float | None = adding_to_score(sql.dialect.name).scalar(
            sql, {**key, "added": interest.signal_level(weight, moment, topic.half_life_days), "now": now}
        )
    else:
        # Taking a signal back (rare: a click judged automated after it counted) reads the score under lock.
        row = db.session.execute(
            select(InterestScore.level).filter_by(**key).with_for_update()
        ).scalar_one_or_none()
        level = interest.add_signal(row, weight, moment, topic.half_life_days)
        if level is None:
            db.session.execute(delete(InterestScore).filter_by(**key))
        else:
            db.session.execute(update(InterestScore).filter_by(**key).values(level=level, updated_at=now))
    signal = signal_change(topic, weight, moment, now, level)
    log.debug(
        "%s signal (%+g) on topic %s for subscriber %s: score %.2f -> %.2f",
        source.value,
        weight,
        topic.key,
        subscriber_id,
        signal.before,
        signal.after,
    )
    return signal


def signal_change(topic: TopicRef, weight: float, moment: datetime, now: datetime, level: float | None) -> Signal:
    """What a signal of `weight` on `moment` did to a score that is `level` after it, as of `now`."""
    after = interest.score(level, now, topic.half_life_days)
    # What this signal adds to today's score; without it the score was what it was before.
    counted = weight * interest.score(interest.signal_level(1, moment, topic.half_life_days), now, topic.half_life_days)
    return Signal(topic.key, max(0.0, after - counted), after)


def adding_to_score(dialect: str) -> Prepared:
    """INSERT the score of one signal (`added`: its level), or add it to the score there is:
    log2(2^level + 2^added), as leadcapture.interest adds, returning the new level."""
    found = _ADDING.get(dialect)
    if found is None:
        found = _ADDING[dialect] = Prepared(adding_statement(dialect))
    return found


_ADDING: dict[str, Prepared] = {}
EVENTS: Final = cast(Table, InterestEvent.__table__)
_ADD_EVENT: Final = Prepared(insert(EVENTS))


def adding_statement(dialect: str) -> Any:
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(InterestScore).values(
        subscriber_id=bindparam("subscriber_id"),
        topic_id=bindparam("topic_id"),
        level=bindparam("added"),
        updated_at=bindparam("now"),
    )
    old, new = InterestScore.__table__.c.level, statement.excluded.level
    high = case((old > new, old), else_=new)
    low = case((old > new, new), else_=old)
    # 2^(low - high) underflows to nothing below -60 (and PostgreSQL's exp() refuses to underflow).
    power = case((low - high < -60, literal(0.0)), else_=func.exp((low - high) * _LN2))
    return statement.on_conflict_do_update(
        index_elements=[InterestScore.subscriber_id, InterestScore.topic_id],
        set_={"level": high + func.ln(literal(1.0) + power) / _LN2, "updated_at": statement.excluded.updated_at},
    ).returning(InterestScore.level)


_LN2 = literal(math.log(2))


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
    # Several workers may look at once: the first one's row is the mark, and each waits its turn on it.
    db.session.execute(insert_or_ignore(SweepMark).values(name=_FADING, at=None, until=None, after_id=0))
    mark = db.session.get_one(SweepMark, _FADING, with_for_update=True, populate_existing=True)
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


def topics_by_key() -> Mapping[str, Topic]:
    """Every topic by its key, retired ones too."""
    return {topic.key: topic for topic in db.session.scalars(select(Topic))}

