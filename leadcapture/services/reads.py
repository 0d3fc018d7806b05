"""Articles read: a page that embeds the loader, opened by a reader who came from one of our emails, counts
as interest in the page's topics."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from leadcapture import clock, interest, urlrules
from leadcapture.config import current as current_settings
from leadcapture.extensions import db
from leadcapture.models import InterestEvent, SignalSource, Subscriber, SubscriberStatus, Topic
from leadcapture.services.interests import record_signal
from leadcapture.services.widgets import embedding_origins, referenced_subscriber

log = logging.getLogger(__name__)

MAX_TOPICS = 10
MAX_URL = 2048


def record_read(
    reference: object, url: object, topics: object, *, origin: str | None, opted_out: bool
) -> int:
    """Record that the reader our email's reference names read the page at `url`, as interest in its topics
    (those it names, else those its URL falls under); how many topics were counted. Flushes.

    Nothing is counted with read tracking off, when the browser asks not to be tracked (`opted_out`: Global
    Privacy Control or Do Not Track), for a reference that is not genuine or names no confirmed subscriber
    with marketing consent, for a page on an origin no widget may be embedded on or that the request did not
    come from, or for the same page read again the same day. A reader the widget remembers from a submission
    alone proves nothing (anyone can type an address), so only our email's reference counts.
    """
    if not current_settings().track_reads or opted_out:
        return 0
    if not isinstance(reference, str) or not isinstance(url, str) or len(url) > MAX_URL:
        return 0
    page = urlrules.origin(url)
    if page is None or origin is None or origin.rstrip("/").lower() != page or page not in embedding_origins():
        return 0
    subscriber_id = referenced_subscriber(reference)
    subscriber = db.session.get(Subscriber, subscriber_id) if subscriber_id is not None else None
    if (
        subscriber is None
        or subscriber.status is not SubscriberStatus.CONFIRMED
        or not subscriber.marketing_consent
    ):
        return 0
    # A retired topic (its file gone, its history kept) has no URL rules left and counts nothing new.
    known = {topic.key: topic for topic in db.session.scalars(select(Topic)) if topic.urls}
    named = [key for key in _names(topics) if key in known]
    if not named:
        found = urlrules.topic_for_url(((topic.key, topic.urls) for topic in known.values()), url)
        named = [found] if found else []
    counted = 0
    for key in dict.fromkeys(named):
        if _read_today(subscriber.id, known[key], url):
            continue
        record_signal(subscriber, known[key], SignalSource.READ, url=url)
        counted += 1
    log.info("subscriber %s read a page: %d topics counted", subscriber.id, counted)
    return counted


def _names(topics: object) -> list[str]:
    if isinstance(topics, str):
        topics = topics.split(",")
    if not isinstance(topics, list):
        return []
    return [item.strip().lower() for item in topics[:MAX_TOPICS] if isinstance(item, str) and len(item) <= 64]


def _read_today(subscriber_id: int, topic: Topic, url: str) -> bool:
    now = clock.now()
    start = now - timedelta(days=1)
    moments = db.session.scalars(
        select(InterestEvent.occurred_at).where(
            InterestEvent.subscriber_id == subscriber_id,
            InterestEvent.topic_id == topic.id,
            InterestEvent.source == SignalSource.READ,
            InterestEvent.url == url[:MAX_URL],
            InterestEvent.occurred_at > start,
        )
    ).all()
    today = interest.day_number(now)
    return any(interest.day_number(moment) == today for moment in moments)
