"""Tracked links in marketing email: where one leads, and a click on it recorded, judged (leadcapture.scanners)
and, when a person made it, counted as interest in the link's topic.

A click is a redirect the reader waits for, so it costs few statements, run straight on the cursor
(leadcapture.prepared): on PostgreSQL one takes the email's turn (and lets the transaction commit without
waiting for the disk), one reads the link, the subscriber and a stamp of the content, one the email's earlier
clicks if it has any, and one writes the click; a person's click that counts writes the signal and the score
with it, in the same statement on PostgreSQL. The topics and the thresholds the active audiences name are
kept per process while the stamp (counts and versions of topics and sequences, which every change raises)
stays the same.
"""

from __future__ import annotations

import logging
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from flask import current_app
from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    select,
    update,
)

from leadcapture import clock, interest, scanners, urlrules
from leadcapture.config import current as current_settings
from leadcapture.database import commit_without_waiting
from leadcapture.errors import TokenInvalid
from leadcapture.extensions import db
from leadcapture.models import (
    Click,
    Delivery,
    DeliveryStatus,
    InterestEvent,
    Sequence,
    SignalSource,
    Subscriber,
    SubscriberStatus,
    Topic,
)
from leadcapture.prepared import Prepared, first_after
from leadcapture.services import interests
from leadcapture.services.interests import Signal, TopicRef, active_thresholds, crosses, record_signal
from leadcapture.services.sequences import switch_sequences
from leadcapture.tokens import Purpose, read_token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackedLink:
    """One link of one sent email: where it leads and the topic it names, if it names one; and whether its
    subscriber still receives marketing, with the stamp of the content when it was read."""

    delivery_id: int
    subscriber_id: int | None
    position: int
    target: str
    topic: str | None
    sent_at: datetime | None
    receives_marketing: bool = False
    clicked_before: bool = False
    stamp: tuple[Any, ...] = ()


def _stamp(model: Any, *more: ColumnElement[Any]) -> list[Any]:
    """Scalar subqueries that change whenever a row of `model` is added, removed or changed: how many there
    are, the highest id (a row added after one was removed), the sum of their versions (which every change
    raises), and `more`."""
    return [
        select(aggregate).select_from(model).scalar_subquery()
        for aggregate in (
            func.count(),
            func.coalesce(func.max(model.id), 0),
            func.coalesce(func.sum(model.version), 0),
            *more,
        )
    ]


_CONTENT_STAMP: Final = [
    *_stamp(Topic, func.coalesce(func.sum(func.length(cast(Topic.urls, String))), 0)),
    *_stamp(
        Sequence,
        func.coalesce(func.sum(case((Sequence.active.is_(True), 1), else_=0)), 0),
        func.coalesce(func.sum(func.length(cast(Sequence.audience, String))), 0),
    ),
]

# The link, its subscriber, the email's earlier clicks and the content's stamp.
_LINK: Final = Prepared(
    select(
        Delivery.subscriber_id,
        Delivery.links,
        Delivery.sent_at,
        Delivery.status,
        Subscriber.status.label("subscriber_status"),
        Subscriber.marketing_consent,
        select(func.count()).where(Click.delivery_id == Delivery.id).scalar_subquery(),
        *_CONTENT_STAMP,
    )
    .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
    .where(Delivery.id == bindparam("delivery_id"))
)

# PostgreSQL: the clicks of one email wait for each other until the transaction ends (SQLite's writing
# transactions do anyway). A lock on the email's id alone, not its row, which FOR UPDATE would write to. A
# statement of its own, before the reading one: a statement sees what had committed when it began, and one
# that waited for the lock would not see the click it waited for (prepared.first_after sends both in one round
# trip). The commit need not wait for the disk.
_CLICKS_LOCK_CLASS: Final = 0x6C6B  # the first key of pg_advisory_xact_lock(int, int): "lk", a tracked link
_TAKE_TURN: Final = Prepared(
    select(
        func.pg_advisory_xact_lock(
            literal(_CLICKS_LOCK_CLASS, Integer), bindparam("delivery_id", type_=Integer)
        ),
        commit_without_waiting(),
    )
)
_CLICKS: Final = typing.cast(Table, Click.__table__)
_CLICK: Final = insert(_CLICKS).values(
    {name: bindparam(name) for name in ("delivery_id", "subscriber_id", "position", "url", "topic_id", "automated")}
    | {"clicked_at": bindparam("now")}
)
_ADD_CLICK: Final = Prepared(_CLICK.returning(_CLICKS.c.id))


def _counted_click_statement() -> Prepared:
    """PostgreSQL: a person's click, the signal it is and the score it adds to, in one statement that returns
    the new level (interests.append_signal writes the same two rows)."""
    click = _CLICK.returning(_CLICKS.c.id).cte("click")
    events = interests.EVENTS
    signal = insert(events).from_select(
        ["subscriber_id", "topic_id", "source", "weight", "occurred_at", "recorded_at", "delivery_id", "click_id", "url"],
        select(
            bindparam("subscriber_id", type_=events.c.subscriber_id.type),
            bindparam("topic_id", type_=events.c.topic_id.type),
            literal(SignalSource.CLICK, events.c.source.type),
            literal(1.0, events.c.weight.type),
            bindparam("now", type_=events.c.occurred_at.type),
            bindparam("now", type_=events.c.recorded_at.type),
            bindparam("delivery_id", type_=events.c.delivery_id.type),
            click.c.id,
            bindparam("url", type_=events.c.url.type),
        ),
    ).cte("signal")
    return Prepared(interests.adding_statement("postgresql").add_cte(click, signal))


_ADD_COUNTED_CLICK: Final = _counted_click_statement()


def _add_counted_click(click: dict[str, Any], topic: TopicRef) -> Signal:
    """Record a person's click that counts as interest in `topic` (`click`: the values of its row), with the
    signal it is. On PostgreSQL one statement, one round trip; elsewhere (SQLite, in process) one for each row."""
    sql = db.session.connection()
    if sql.dialect.name != "postgresql":
        click_id = _ADD_CLICK.scalar(sql, click)
        return interests.append_signal(
            click["subscriber_id"],
            topic,
            SignalSource.CLICK,
            occurred_at=click["now"],
            delivery_id=click["delivery_id"],
            click_id=click_id,
            url=click["url"],
        )
    now = click["now"]
    added = interest.signal_level(1, now, topic.half_life_days)
    level = _ADD_COUNTED_CLICK.scalar(sql, {**click, "added": added})
    return interests.signal_change(topic, 1, now, now, level)


def tracked_link(token: str, *, lock: bool = False) -> TrackedLink:
    """The link a `/l/<token>` names, as it was sent; TokenInvalid for a token that names none. Only reads
    (with `lock`, other clicks of the email wait for this one's transaction to end, and it for theirs, so each
    is judged knowing every one before it)."""
    payload = read_token(Purpose.CLICK, token)
    delivery_id, position = payload.get("d"), payload.get("n")
    if type(delivery_id) is not int or type(position) is not int:
        raise TokenInvalid("token lacks its link")
    sql = db.session.connection()
    looked_up = (_LINK, {"delivery_id": delivery_id})
    if lock and sql.dialect.name == "postgresql":
        row = first_after(sql, (_TAKE_TURN, {"delivery_id": delivery_id}), looked_up)
    else:
        row = _LINK.first(sql, looked_up[1])
    if row is None:
        raise TokenInvalid("no email sent with this link")
    subscriber_id, links, sent_at, status, subscriber_status, marketing_consent, clicked_before, *stamp = row
    if status is not DeliveryStatus.SENT or not isinstance(links, list):
        raise TokenInvalid("no email sent with this link")
    if position == scanners.TRAP_POSITION:
        target, topic = current_settings().site_url, None
    elif 0 <= position < len(links):
        target, topic = links[position]
    else:
        raise TokenInvalid("no such link in the email")
    return TrackedLink(
        delivery_id,
        subscriber_id,
        position,
        str(target),
        topic,
        sent_at,
        receives_marketing=subscriber_status is SubscriberStatus.CONFIRMED and bool(marketing_consent),
        clicked_before=bool(clicked_before),
        stamp=tuple(stamp),
    )


def follow_link(token: str, *, remote_address: str | None, user_agent: str | None) -> str:
    """Record a click on a tracked link (a GET) and say where it leads. Flushes.

    The click is judged by leadcapture.scanners; one a person made counts as interest in the link's topic
    (named on the link, else found by the topics' URL rules) for a subscriber who still receives marketing,
    which may move their sequences at once. A click that shows earlier ones were automated (the trap link,
    a burst) takes back what those counted. With click tracking off, nothing is recorded.
    """
    if not current_settings().track_clicks:
        return tracked_link(token).target
    link = tracked_link(token, lock=True)
    if link.subscriber_id is None:
        return link.target
    now = clock.now()
    earlier = (
        db.session.execute(
            select(Click.id, Click.position, Click.clicked_at, Click.automated)
            .where(Click.delivery_id == link.delivery_id)
            .order_by(Click.id)
        ).all()
        if link.clicked_before
        else []
    )
    seen = [scanners.Seen(row.position, row.clicked_at, row.automated) for row in earlier]
    judged = scanners.judge(
        link.position,
        now,
        sent_at=link.sent_at,
        earlier=seen,
        remote_address=remote_address,
        user_agent=user_agent,
    )
    content = _content(link.stamp)
    topic = content.topic_of(link)
    click = {
        "delivery_id": link.delivery_id,
        "subscriber_id": link.subscriber_id,
        "position": link.position,
        "url": link.target[:2048],
        "topic_id": topic.id if topic is not None else None,
        "now": now,
        "automated": judged.reason,
    }
    if judged.earlier is not None:
        caught = scanners.caught_by(judged.earlier, now, seen)
        ids = [row.id for row, one in zip(earlier, seen, strict=True) if one in caught]
        _judge_again(link.subscriber_id, ids, judged.earlier)
    if judged.reason is None and topic is not None and link.receives_marketing:
        signal = _add_counted_click(click, topic)
        if crosses(topic.key, signal.before, signal.after, content.thresholds):
            subscriber = db.session.get_one(Subscriber, link.subscriber_id)
            switch_sequences(subscriber, reason=f"interest in {topic.key} changed")
    else:
        _ADD_CLICK.execute(db.session.connection(), click)
    log.info(
        "click on link %s of delivery %s by subscriber %s%s",
        link.position,
        link.delivery_id,
        link.subscriber_id,
        f" judged automated ({judged.reason})" if judged.reason else f" on topic {topic.key}" if topic else "",
    )
    return link.target


@dataclass(frozen=True)
class _Content:
    """What judging a click needs of the content: the topics that count (a retired one, its file gone and
    its URL rules cleared, counts nothing new) and the thresholds the active audiences name."""

    topics: dict[str, tuple[TopicRef, tuple[str, ...]]]
    thresholds: frozenset[tuple[str, float]]

    def topic_of(self, link: TrackedLink) -> TopicRef | None:
        if link.position == scanners.TRAP_POSITION:
            return None
        key = link.topic or urlrules.topic_for_url(
            ((key, urls) for key, (_, urls) in self.topics.items()), link.target
        )
        found = self.topics.get(key) if key else None
        return found[0] if found else None


_HELD = "leadcapture.click_content"


def _content(stamp: tuple[Any, ...]) -> _Content:
    """The content as of `stamp`, read once per app while the stamp holds."""
    held: tuple[tuple[Any, ...], _Content] | None = current_app.extensions.get(_HELD)
    if held is not None and held[0] == stamp:
        return held[1]
    topics = {
        row.key: (TopicRef(row.id, row.key, row.half_life_days), tuple(row.urls))
        for row in db.session.execute(select(Topic.id, Topic.key, Topic.half_life_days, Topic.urls))
        if row.urls
    }
    found = _Content(topics, frozenset(active_thresholds()))
    current_app.extensions[_HELD] = (stamp, found)
    return found


def _judge_again(subscriber_id: int, click_ids: list[int], reason: str) -> None:
    """Earlier clicks turn out automated: so marked, and the interest they counted taken back."""
    if not click_ids:
        return
    db.session.execute(
        update(Click).where(Click.id.in_(click_ids), Click.automated.is_(None)).values(automated=reason)
    )
    counted = db.session.scalars(
        select(InterestEvent).where(InterestEvent.click_id.in_(click_ids), InterestEvent.weight > 0)
    ).all()
    if not counted:
        return
    subscriber = db.session.get_one(Subscriber, subscriber_id)
    for event in counted:
        record_signal(
            subscriber,
            event.topic,
            SignalSource.CLICK,
            weight=-event.weight,
            occurred_at=event.occurred_at,
            delivery_id=event.delivery_id,
            click_id=event.click_id,
            url=event.url,
        )
