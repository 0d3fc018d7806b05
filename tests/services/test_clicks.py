"""Clicks on the links of marketing email: recorded through the redirect, judged, and counted as interest that
moves sequences at once, and decays."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    Click,
    Delivery,
    DeliveryKind,
    EnrollmentState,
    InterestEvent,
    InterestScore,
    Subscriber,
    SubscriberStatus,
    Topic,
)
from leadcapture.services import interests
from leadcapture.services.sequences import switch_sequences
from leadcapture.services.widgets import referenced_subscriber
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_confirmed_subscriber, make_demo_widget, make_sequence
from tests.support.app import Client
from tests.support.mail import sent
from tests.support.sequences import START, enrollments, tick

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"
NEWS = (
    "Drie stukken over daytraden:\n\n"
    "- [Wat is daytraden?](https://beleggen.example/daytraden/wat-is-het)\n"
    "- [Risico](https://beleggen.example/daytraden/risico)\n"
    "- [Kosten](https://beleggen.example/daytraden/kosten)\n"
    '- [Een ETF kiezen](https://elders.example/etf "topic:etfs")\n'
    '- [Nieuws](https://elders.example/nieuws "topic:crypto")\n\n'
    "[Pas je antwoorden aan]({{ links.preferences }})"
)
HOT = {"interest": {"topic": "daytrading", "at_least": 3}}


def build(app: Flask, *, hot_on_change: str = "switch") -> None:
    """The demo widget, two topics, a news sequence everyone gets, a sequence for the keen, and one confirmed
    subscriber in the news sequence."""
    with app.app_context():
        widget = make_demo_widget()
        now = clock.now()
        for key, urls in (
            ("daytrading", ["https://beleggen.example/daytraden/"]),
            ("etfs", ["https://beleggen.example/etf/"]),
            ("crypto", []),  # retired: its file is gone
        ):
            db.session.add(
                Topic(key=key, name={"nl": key}, urls=urls, half_life_days=30, created_at=now, updated_at=now)
            )
        make_sequence("news", {}, steps=[("01-news.md", timedelta(hours=1))], body=NEWS)
        make_sequence(
            "hot", HOT, on_change=hot_on_change, steps=[("01.md", timedelta(days=5)), ("02.md", timedelta(days=5))]
        )
        person, _ = make_confirmed_subscriber(widget, timezone="Europe/Amsterdam", marketing_consent=True)
        switch_sequences(person, reason="test")
        db.session.commit()


def news_email(app: Flask, runner: FlaskCliRunner) -> EmailMessage:
    """The news step, sent by the worker."""
    tick(runner, START + timedelta(hours=2))  # queued, and sent on the next pass
    tick(runner, START + timedelta(hours=2, minutes=1))
    (message,) = sent(app, DeliveryKind.SEQUENCE)
    return message


def tracked(message: EmailMessage, part: str = "plain") -> list[str]:
    body = message.get_body((part,))
    assert body is not None
    return re.findall(r"http://127\.0\.0\.1:5000(/l/[\w.\-]+)", str(body.get_content()))


def without_reference(url: str) -> str:
    return re.sub(r"\?lc=[\w.\-]+$", "", url)


def score(app: Flask, topic: str = "daytrading") -> float:
    with app.app_context():
        return {item.topic.key: item.score for item in interests.profile(1)}.get(topic, 0.0)


def click(client: Client, path: str, *, after: timedelta = timedelta(minutes=1), agent: str = BROWSER) -> str:
    """A GET of a tracked link `after` the previous moment; where it leads."""
    clock.freeze(clock.now() + after)
    response = client.get(path, headers={"User-Agent": agent})
    assert response.status_code == 302, response.text
    return str(response.headers["Location"])


def judged(app: Flask) -> list[str | None]:
    with app.app_context():
        return list(db.session.scalars(select(Click.automated).order_by(Click.id)))


@pytest.fixture
def message(app: Flask, runner: FlaskCliRunner) -> EmailMessage:
    clock.freeze(START)
    build(app)
    found = news_email(app, runner)
    clock.freeze(START + timedelta(hours=3))
    return found


def test_every_outside_link_goes_through_the_redirect_to_exactly_where_it_was_written(
    app: Flask, client: Client, message: EmailMessage
) -> None:
    text_links, html_links = tracked(message), tracked(message, "html")
    # Five links in the step and the hidden one in the HTML; our own preference and unsubscribe pages stay direct.
    assert len(text_links) == 5
    assert len(html_links) == 6
    assert set(text_links) < set(html_links)
    text = str(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "http://127.0.0.1:5000/preferences/" in text
    assert "http://127.0.0.1:5000/unsubscribe/" in text
    assert "beleggen.example/" not in text
    targets = [click(client, path) for path in text_links]
    assert [without_reference(target) for target in targets] == [
        "https://beleggen.example/daytraden/wat-is-het",
        "https://beleggen.example/daytraden/risico",
        "https://beleggen.example/daytraden/kosten",
        "https://elders.example/etf",
        "https://elders.example/nieuws",
    ]
    # Pages on an origin that embeds a widget keep the reader's reference, so the widget there knows them.
    references = [parse_qs(urlsplit(target).query).get("lc", [None])[0] for target in targets]
    with app.test_request_context():
        assert [referenced_subscriber(ref) if ref else None for ref in references] == [1, 1, 1, None, None]


def test_the_third_daytrading_click_moves_the_subscriber_into_the_keen_sequence_in_that_request(
    app: Flask, client: Client, message: EmailMessage
) -> None:
    links = tracked(message)
    click(client, links[0])
    click(client, links[1])
    assert score(app) == pytest.approx(2)
    assert "hot" not in enrollments(app)
    click(client, links[2])
    assert score(app) == pytest.approx(3)
    assert enrollments(app)["hot"] is EnrollmentState.ACTIVE
    # A link naming its topic counts for that topic; one outside every topic counts for none.
    click(client, links[3])
    click(client, links[4])
    assert score(app, "etfs") == pytest.approx(1)
    assert judged(app) == [None] * 5
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(InterestEvent)) == 4


def test_a_topic_changed_between_two_clicks_counts_as_it_is_now(
    app: Flask, client: Client, message: EmailMessage
) -> None:
    links = tracked(message)
    click(client, links[0])
    assert score(app) == pytest.approx(1)
    # The link titled crypto counted nothing while crypto was retired; its file is back with a rule.
    with app.app_context():
        crypto = db.session.scalars(select(Topic).where(Topic.key == "crypto")).one()
        crypto.urls = ["https://elders.example/crypto/"]
        crypto.version = Topic.version + 1
        db.session.commit()
    click(client, links[4])
    assert score(app, "crypto") == pytest.approx(1)


def test_a_scanner_fetching_every_link_at_once_moves_nothing(
    app: Flask, client: Client, message: EmailMessage
) -> None:
    for path in tracked(message, "html"):
        click(client, path, after=timedelta(milliseconds=300))
    assert score(app) == 0
    assert "hot" not in enrollments(app)
    reasons = judged(app)
    assert None not in reasons
    assert "burst" in reasons
    assert "trap" in reasons
    with app.app_context():
        # The first click counted until the second showed the burst: taken back by an event of its own.
        weights = list(db.session.scalars(select(InterestEvent.weight).order_by(InterestEvent.id)))
        assert sum(weights) == 0
        assert db.session.scalar(select(func.count()).select_from(InterestScore)) == 0


def test_a_scanner_fetching_every_link_in_parallel_moves_nothing(app: Flask, message: EmailMessage) -> None:
    """Gateways fetch an email's links all at once, on as many connections: each click is judged against
    every click of the email that committed before it, however long it waited for them."""
    paths = tracked(message)[:4]
    clock.freeze(clock.now() + timedelta(minutes=1))
    start = threading.Barrier(len(paths))
    statuses: list[int] = []

    def fetch(path: str) -> None:
        client = app.test_client()
        start.wait()
        statuses.append(client.get(path, headers={"User-Agent": BROWSER}).status_code)

    fetchers = [threading.Thread(target=fetch, args=(path,)) for path in paths]
    for fetcher in fetchers:
        fetcher.start()
    for fetcher in fetchers:
        fetcher.join(timeout=30)
    assert statuses == [302] * len(paths)
    reasons = judged(app)
    assert len(reasons) == len(paths)
    assert None not in reasons
    assert score(app) == 0
    assert "hot" not in enrollments(app)


def test_the_hidden_link_marks_the_clicks_around_it_as_automated(
    app: Flask, client: Client, message: EmailMessage
) -> None:
    text_links = tracked(message)
    (trap,) = set(tracked(message, "html")) - set(text_links)
    click(client, text_links[0])
    assert score(app) == pytest.approx(1)
    click(client, trap, after=timedelta(seconds=30))
    assert score(app) == 0
    click(client, text_links[1], after=timedelta(seconds=30))
    assert judged(app) == ["trap", "trap", "trap"]
    # Well after the scanner, a person's click counts again.
    click(client, text_links[2], after=timedelta(minutes=10))
    assert judged(app)[-1] is None
    assert score(app) == pytest.approx(1)


@pytest.mark.parametrize(
    ("agent", "after", "reason"),
    [
        ("curl/8.5.0", timedelta(minutes=1), "agent"),
        ("", timedelta(minutes=1), "agent"),
        ("Mozilla/5.0 (compatible; Barracuda Sentinel)", timedelta(minutes=1), "agent"),
        (BROWSER, timedelta(seconds=-3 * 3600 + 66), "early"),
    ],
)
def test_scanner_agents_and_clicks_too_soon_after_sending_do_not_count(
    app: Flask, client: Client, message: EmailMessage, agent: str, after: timedelta, reason: str
) -> None:
    click(client, tracked(message)[0], agent=agent, after=after)
    assert judged(app) == [reason]
    assert score(app) == 0


def test_a_second_click_on_the_same_link_is_a_repeat(app: Flask, client: Client, message: EmailMessage) -> None:
    link = tracked(message)[0]
    click(client, link)
    click(client, link, after=timedelta(hours=1))
    assert judged(app) == [None, "repeat"]
    assert score(app) == pytest.approx(1)


def test_head_leads_the_same_way_and_records_nothing(app: Flask, client: Client, message: EmailMessage) -> None:
    link = tracked(message)[0]
    response = client.head(link, headers={"User-Agent": BROWSER})
    assert response.status_code == 302
    assert without_reference(response.headers["Location"]) == "https://beleggen.example/daytraden/wat-is-het"
    assert response.data == b""
    assert judged(app) == []


@pytest.mark.parametrize(
    "forge",
    [
        lambda path: path[:-3] + "xyz",
        lambda path: "/l/" + make_token(Purpose.CLICK, {"d": 1, "n": 99}),
        lambda path: "/l/" + make_token(Purpose.CLICK, {"d": 999, "n": 0}),
        lambda path: "/l/" + make_token(Purpose.CLICK, {"d": "1 OR 1=1", "n": 0}),
        lambda path: "/l/" + make_token(Purpose.CLICK, {"d": 1, "n": True}),
        lambda path: "/l/" + make_token(Purpose.UNSUBSCRIBE, {"s": 1}),
        lambda path: "/l/" + "x" * 5000,
        lambda path: "/l/%00%ff",
    ],
)
def test_a_link_that_was_not_sent_leads_nowhere_and_records_nothing(
    app: Flask, client: Client, message: EmailMessage, forge: object
) -> None:
    with app.test_request_context():
        path = forge(tracked(message)[0])  # type: ignore[operator]
    for method in ("GET", "HEAD"):
        response = client.open(path, method=method)
        assert response.status_code in (400, 404), (path, response.status_code)
        assert "Location" not in response.headers
    assert judged(app) == []


def test_the_confirmation_and_the_report_keep_their_direct_links(
    app: Flask, client: Client, message: EmailMessage
) -> None:
    with app.app_context():
        transactional = db.session.scalars(
            select(Delivery.raw_message).where(Delivery.kind.in_([DeliveryKind.CONFIRM, DeliveryKind.REPORT]))
        ).all()
        links = db.session.scalars(
            select(Delivery.links).where(Delivery.kind.in_([DeliveryKind.CONFIRM, DeliveryKind.REPORT]))
        ).all()
    assert all(b"/l/" not in raw for raw in transactional if raw)
    assert all(found is None for found in links)


def test_a_subscriber_who_unsubscribed_gets_where_the_link_leads_and_nothing_counts(
    app: Flask, client: Client, message: EmailMessage
) -> None:
    with app.app_context():
        db.session.get_one(Subscriber, 1).status = SubscriberStatus.UNSUBSCRIBED
        db.session.commit()
    assert without_reference(click(client, tracked(message)[0])) == "https://beleggen.example/daytraden/wat-is-het"
    assert judged(app) == [None]
    assert score(app) == 0


@pytest.mark.settings(LEADCAPTURE_TRACKING="off")
def test_with_tracking_off_links_go_straight_to_their_target(app: Flask, message: EmailMessage) -> None:
    assert tracked(message) == []
    assert tracked(message, "html") == []
    body = message.get_body(("html",))
    assert body is not None
    assert 'href="https://elders.example/nieuws"' in str(body.get_content())
    assert 'href="https://beleggen.example/daytraden/risico?lc=' in str(body.get_content())


@pytest.mark.parametrize(("on_change", "leaves"), [("switch", True), ("stay", False)])
def test_interest_fades_and_the_subscriber_leaves_at_the_next_tick_by_the_sequences_policy(
    app: Flask, client: Client, runner: FlaskCliRunner, on_change: str, leaves: bool
) -> None:
    clock.freeze(START)
    build(app, hot_on_change=on_change)
    message = news_email(app, runner)
    clock.freeze(START + timedelta(hours=3))
    for path in tracked(message)[:3]:
        click(client, path)
    assert enrollments(app)["hot"] is EnrollmentState.ACTIVE
    # Two half-lives on: the score is a quarter of what it was.
    later = START + timedelta(days=60, hours=3)
    clock.freeze(later)
    assert score(app) == pytest.approx(0.75)
    tick(runner, later)
    assert enrollments(app)["hot"] is (EnrollmentState.EXITED if leaves else EnrollmentState.ACTIVE)
