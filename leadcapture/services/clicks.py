"""Tracked links in marketing email: where one leads, and a click on it recorded, judged (leadcapture.scanners)
and, when a person made it, counted as interest in the link's topic."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from leadcapture import clock, scanners, urlrules
from leadcapture.config import current as current_settings
from leadcapture.errors import TokenInvalid
from leadcapture.extensions import db
from leadcapture.models import (
    Click,
    Delivery,
    DeliveryStatus,
    InterestEvent,
    SignalSource,
    Subscriber,
    SubscriberStatus,
    Topic,
)
from leadcapture.services.interests import record_signal
from leadcapture.tokens import Purpose, read_token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackedLink:
    """One link of one sent email: where it leads and the topic it names, if it names one."""

    delivery_id: int
    subscriber_id: int | None
    position: int
    target: str
    topic: str | None
    sent_at: Any


def tracked_link(token: str, *, lock: bool = False) -> TrackedLink:
    """The link a `/l/<token>` names, as it was sent; TokenInvalid for a token that names none. Only reads
    (with `lock`, it holds the email's row until the transaction ends, so clicks of one email are judged one
    after another)."""
    payload = read_token(Purpose.CLICK, token)
    delivery_id, position = payload.get("d"), payload.get("n")
    if type(delivery_id) is not int or type(position) is not int:
        raise TokenInvalid("token lacks its link")
    query = select(Delivery.subscriber_id, Delivery.links, Delivery.sent_at, Delivery.status).where(
        Delivery.id == delivery_id
    )
    row = db.session.execute(query.with_for_update() if lock else query).one_or_none()
    if row is None or row.status is not DeliveryStatus.SENT or not isinstance(row.links, list):
        raise TokenInvalid("no email sent with this link")
    if position == scanners.TRAP_POSITION:
        return TrackedLink(delivery_id, row.subscriber_id, position, current_settings().site_url, None, row.sent_at)
    if not 0 <= position < len(row.links):
        raise TokenInvalid("no such link in the email")
    target, topic = row.links[position]
    return TrackedLink(delivery_id, row.subscriber_id, position, str(target), topic, row.sent_at)


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
    earlier = db.session.execute(
        select(Click.id, Click.position, Click.clicked_at, Click.automated)
        .where(Click.delivery_id == link.delivery_id)
        .order_by(Click.id)
    ).all()
    seen = [scanners.Seen(row.position, row.clicked_at, row.automated) for row in earlier]
    judged = scanners.judge(
        link.position,
        now,
        sent_at=link.sent_at,
        earlier=seen,
        remote_address=remote_address,
        user_agent=user_agent,
    )
    topic = _topic(link)
    click = Click(
        delivery_id=link.delivery_id,
        subscriber_id=link.subscriber_id,
        position=link.position,
        url=link.target[:2048],
        topic_id=topic.id if topic is not None else None,
        clicked_at=now,
        automated=judged.reason,
    )
    db.session.add(click)
    db.session.flush()
    subscriber = db.session.get_one(Subscriber, link.subscriber_id)
    if judged.earlier is not None:
        caught = scanners.caught_by(judged.earlier, now, seen)
        ids = [row.id for row, one in zip(earlier, seen, strict=True) if one in caught]
        _judge_again(subscriber, ids, judged.earlier)
    if judged.reason is None and topic is not None and _receives_marketing(subscriber):
        record_signal(
            subscriber,
            topic,
            SignalSource.CLICK,
            occurred_at=now,
            delivery_id=link.delivery_id,
            click_id=click.id,
            url=link.target,
        )
    log.info(
        "click on link %s of delivery %s%s",
        link.position,
        link.delivery_id,
        f" judged automated ({judged.reason})" if judged.reason else "",
    )
    return link.target


def _topic(link: TrackedLink) -> Topic | None:
    if link.position == scanners.TRAP_POSITION:
        return None
    # A retired topic (its file gone, its history kept) has no URL rules left and counts nothing new.
    topics = [topic for topic in db.session.scalars(select(Topic)) if topic.urls]
    key = link.topic or urlrules.topic_for_url(((topic.key, topic.urls) for topic in topics), link.target)
    return next((topic for topic in topics if topic.key == key), None)


def _judge_again(subscriber: Subscriber, click_ids: list[int], reason: str) -> None:
    """Earlier clicks turn out automated: so marked, and the interest they counted taken back."""
    if not click_ids:
        return
    db.session.execute(
        update(Click).where(Click.id.in_(click_ids), Click.automated.is_(None)).values(automated=reason)
    )
    counted = db.session.scalars(
        select(InterestEvent).where(InterestEvent.click_id.in_(click_ids), InterestEvent.weight > 0)
    ).all()
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


def _receives_marketing(subscriber: Subscriber) -> bool:
    return subscriber.status is SubscriberStatus.CONFIRMED and bool(subscriber.marketing_consent)
