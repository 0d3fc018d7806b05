"""Interest made by hand: topics, sent emails with tracked links, clicks through the real redirect, and a
dashboard history of clicks and reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask.testing import FlaskClient
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    Click,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    InterestEvent,
    InterestScore,
    SignalSource,
    Subscriber,
    Topic,
)
from leadcapture.services.widgets import mail_reference
from leadcapture.tokens import Purpose, make_token

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"
DAYTRADING = "https://beleggen.example/daytraden/"
# Every model holding a person's interest, by the column naming them.
INTEREST = (Click, InterestEvent, InterestScore)


def add_topic(
    key: str, urls: Sequence[str] = (), *, name: str | None = None, half_life_days: int = 30
) -> Topic:
    """A topic; without URL rules of its own, one for pages no test links to (a topic without any is one
    whose file is gone, which counts nothing new)."""
    now = clock.now()
    topic = Topic(
        key=key,
        name={"en": name or key.capitalize(), "nl": name or key.capitalize()},
        urls=list(urls) or [f"https://topics.example/{key}/"],
        half_life_days=half_life_days,
        created_at=now,
        updated_at=now,
    )
    db.session.add(topic)
    db.session.flush()
    return topic


def sent_email(
    subscriber: Subscriber, links: Sequence[tuple[str, str | None]], *, subject: str, sent_at: datetime
) -> Delivery:
    """A follow-up email sent to `subscriber` at `sent_at`, with these tracked links ([target, topic key])."""
    number = db.session.scalar(select(func.count()).select_from(Delivery)) or 0
    delivery = Delivery(
        subscriber_id=subscriber.id,
        kind=DeliveryKind.SEQUENCE,
        idempotency_key=f"test:interest:{number}",
        message_id=f"<interest-{number}@beleggen.example>",
        to_address=subscriber.email,
        payload={},
        status=DeliveryStatus.SENT,
        due_at=sent_at,
        attempts=1,
        created_at=sent_at,
        sent_at=sent_at,
        subject=subject,
        links=[list(link) for link in links],
    )
    db.session.add(delivery)
    db.session.flush()
    return delivery


def link_path(delivery_id: int, position: int) -> str:
    """The tracked link `/l/<token>` of one link of a sent email (in an app context)."""
    return "/l/" + make_token(Purpose.CLICK, {"d": delivery_id, "n": position})


def follow(client: FlaskClient, path: str, at: datetime, *, agent: str = BROWSER) -> str:
    """A GET of a tracked link at `at`, as a browser makes it; where it leads."""
    clock.freeze(at)
    response = client.get(path, headers={"User-Agent": agent})
    assert response.status_code == 302, response.text
    return str(response.headers["Location"])


def read(client: FlaskClient, reference: str, url: str, at: datetime) -> None:
    """The loader's beacon from the page at `url`, for the reader our email's `reference` names, at `at`."""
    clock.freeze(at)
    parts = urlsplit(url)
    response = client.post(
        "/api/v1/reads",
        json={"ref": reference, "url": url, "topics": []},
        headers={"Origin": f"{parts.scheme}://{parts.netloc}"},
    )
    assert response.status_code == 204


def topic(key: str, urls: Sequence[str] = (), *, name: str | None = None) -> Topic:
    """The topic with this key, added first if there is none."""
    found = db.session.scalar(select(Topic).where(Topic.key == key))
    return found or add_topic(key, urls, name=name)


@dataclass(frozen=True)
class Story:
    """What `click_and_read` did: the email, and when it was sent."""

    delivery_id: int
    subject: str
    sent_at: datetime


SUBJECT = "Drie stukken over daytraden"


def click_and_read(client: FlaskClient, subscriber_id: int, sent_at: datetime) -> Story:
    """A follow-up email with two daytrading links and one on ETFs, sent at `sent_at`; an hour later a scanner
    opens the first two links within a second (a burst: both judged automated, the first click's interest
    taken back), then the person clicks the ETF link and the first link again, and reads its article.

    Afterwards: daytrading scores 2 today and ETFs 1; 4 clicks (2 by the person, 2 judged `burst`); 5 interest
    events (click, the click taken back, click, click, read). Needs a widget embedded on beleggen.example."""
    app = client.application
    with app.app_context():
        topic("daytrading", [DAYTRADING], name="Daytrading")
        topic("etfs", name="ETFs")
        subscriber = db.session.get_one(Subscriber, subscriber_id)
        links: list[tuple[str, str | None]] = [
            (DAYTRADING + "wat-is-het", None),
            (DAYTRADING + "risico", None),
            ("https://elders.example/etf", "etfs"),
        ]
        email = sent_email(subscriber, links, subject=SUBJECT, sent_at=sent_at)
        db.session.commit()
        paths = [link_path(email.id, position) for position in range(len(links))]
        story = Story(email.id, SUBJECT, sent_at)
    with app.test_request_context():
        reference = mail_reference(subscriber_id)
    first = sent_at + timedelta(hours=1)
    follow(client, paths[0], first)
    follow(client, paths[1], first + timedelta(seconds=1))
    follow(client, paths[2], first + timedelta(minutes=10))
    follow(client, paths[0], first + timedelta(minutes=20))
    read(client, reference, DAYTRADING + "wat-is-het", first + timedelta(minutes=30))
    return story


def interest_rows(subscriber_id: int) -> dict[str, int]:
    """How many clicks, interest events and scores are held on one person (in an app context)."""
    return {
        model.__tablename__: db.session.scalar(
            select(func.count()).select_from(model).where(model.subscriber_id == subscriber_id)
        )
        or 0
        for model in INTEREST
    }


# A dashboard history seen from NOW (2 March 2026, 09:30 UTC): the last 7 days are 24 Feb to 2 Mar, the last
# 30 from 1 Feb, the last 90 from 3 Dec 2025.
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _click(
    person: Subscriber, delivery: Delivery, topic: Topic | None, at: datetime, automated: str | None = None
) -> None:
    db.session.add(
        Click(
            delivery_id=delivery.id,
            subscriber_id=person.id,
            position=0,
            url=DAYTRADING + "artikel",
            topic_id=topic.id if topic else None,
            clicked_at=at,
            automated=automated,
        )
    )


def _event(person: Subscriber, topic: Topic, source: SignalSource, at: datetime, weight: float = 1.0) -> None:
    db.session.add(
        InterestEvent(
            subscriber_id=person.id,
            topic_id=topic.id,
            source=source,
            weight=weight,
            occurred_at=at,
            recorded_at=at,
            url=DAYTRADING + "artikel",
        )
    )


def build_interest_history(people: Sequence[Subscriber]) -> dict[str, Topic]:
    """Three topics; clicks by three people and by scanners, and reads, inside and outside every period."""
    first, second, third = people
    daytrading = add_topic("daytrading", name="Daytrading")
    etfs, crypto = add_topic("etfs", name="ETFs"), add_topic("crypto")
    long_ago = NOW - timedelta(days=120)
    email = {person.id: sent_email(person, [], subject="Nieuws", sent_at=long_ago) for person in people}
    for person, topic, at, automated in (
        (first, daytrading, NOW - timedelta(hours=1), None),
        (first, daytrading, NOW - timedelta(days=2), None),
        (second, daytrading, datetime(2026, 2, 24, 0, 0, tzinfo=UTC), None),  # the first moment of the 7 days
        (second, daytrading, datetime(2026, 2, 23, 23, 59, 59, tzinfo=UTC), None),  # the last before them
        (third, daytrading, NOW - timedelta(days=60), None),  # within 90 days only
        (first, daytrading, datetime(2026, 3, 3, 0, 0, tzinfo=UTC), None),  # a day that has not come yet
        (first, daytrading, NOW - timedelta(hours=1), "trap"),
        (second, daytrading, NOW - timedelta(hours=1), "trap"),
        (first, daytrading, NOW - timedelta(days=3), "burst"),
        (third, daytrading, NOW - timedelta(days=40), "early"),
        (third, etfs, NOW - timedelta(days=5), None),
        (third, etfs, NOW - timedelta(days=5), "agent"),
        (second, None, NOW - timedelta(days=1), None),  # a link in no topic
        (second, None, NOW - timedelta(days=100), "network"),  # before every period
    ):
        _click(person, email[person.id], topic, at, automated)
    for person, topic, source, at, weight in (
        (third, daytrading, SignalSource.READ, NOW - timedelta(days=1), 1.0),
        (first, daytrading, SignalSource.READ, NOW - timedelta(days=20), 1.0),
        (first, etfs, SignalSource.READ, NOW - timedelta(days=10), 1.0),
        (first, daytrading, SignalSource.CLICK, NOW - timedelta(hours=1), 1.0),  # a click's signal: no read
        (first, daytrading, SignalSource.CLICK, NOW - timedelta(hours=1), -1.0),
        (second, crypto, SignalSource.ANSWER, NOW - timedelta(days=1), 1.0),
    ):
        _event(person, topic, source, at, weight)
    db.session.flush()
    return {"daytrading": daytrading, "etfs": etfs, "crypto": crypto}
