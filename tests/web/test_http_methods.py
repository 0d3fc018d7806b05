"""Every route acts only on POST: a GET or HEAD of any URL the app has changes no row (HEAD answers as GET
does, without the body). Link scanners and prefetchers send both to every link they see. And every response
carries the one Date header its HTTP server writes."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.jobs import drain_outbox
from leadcapture.models import (
    Answer,
    AnswerSource,
    BounceEvent,
    BounceKind,
    BounceSource,
    Click,
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryKind,
    Enrollment,
    EnrollmentState,
    Impression,
    Intake,
    InterestEvent,
    InterestScore,
    RateLimitCounter,
    Role,
    SignalSource,
    StreamPause,
    Suppression,
    SweepMark,
    Topic,
    User,
    WidgetImpressions,
)
from leadcapture.services.accounts import create_user
from leadcapture.services.insights import count_impressions
from leadcapture.services.outbox import enqueue_delivery
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_confirmed_subscriber, make_demo_widget, make_sequence
from tests.fixtures.browser import ServerThread
from tests.support.app import IntakeClient

# Rules the sweep does not request, each with the reason. Every other rule of the map must be visited.
SKIPPED: dict[str, str] = {}
# The one GET that writes, as SPEC 3.7 names it: the click redirect records the click (its HEAD records nothing).
RECORDED_BY_GET: dict[str, set[str]] = {"links.follow": {"clicks"}}


@dataclass(frozen=True)
class World:
    """A subscriber with a row in every table, and the ids the admin's URLs take."""

    subscriber_id: int
    user_id: int
    delivery_id: int
    question_key: str
    topic_key: str
    report_slug: str
    widget_slug: str
    sequence_slug: str
    tokens: dict[str, str]


@pytest.fixture
def world(app: Flask, frozen_clock: object) -> World:
    with app.app_context():
        widget = make_demo_widget()
        sequence = make_sequence("beginners", {})
        now = clock.now()
        person, submission = make_confirmed_subscriber(
            widget, timezone="Europe/Amsterdam", marketing_consent=True
        )
        enrollment = Enrollment(
            subscriber=person,
            sequence=sequence,
            state=EnrollmentState.ACTIVE,
            next_due_at=now + timedelta(days=1),
            entered_at=now,
        )
        questions = [link.question for link in widget.widget_questions]
        db.session.add(enrollment)
        db.session.add_all(
            Answer(
                subscriber=person,
                question=question,
                value=["stocks"] if question.key == "interests" else question.options[0].value,
                source=AnswerSource.WIDGET,
                widget=widget,
                question_text=question.text["nl"],
                locale="nl",
                answered_at=now,
            )
            for question in questions
        )
        db.session.add_all(
            ConsentEvent(
                subscriber=person,
                kind=kind,
                purposes=["report", "sequences"],
                widget=widget,
                wording={"report": "Stuur mij het rapport"},
                wording_version="1",
                created_at=now,
            )
            for kind in (ConsentKind.REQUEST, ConsentKind.CONFIRM)
        )
        db.session.flush()
        enqueue_delivery(
            person.id,
            person.email,
            DeliveryKind.REPORT,
            f"report:submission:{submission.id}",
            {"submission_id": submission.id},
        )
        db.session.commit()
        drain_outbox()  # the report is sent now, so the dev inbox has a message to show
        widget, sequence, person, submission, enrollment = (
            db.session.merge(row, load=True) for row in (widget, sequence, person, submission, enrollment)
        )
        questions = [link.question for link in widget.widget_questions]
        # A sequence step still waiting: an unsubscribe would cancel it.
        enqueue_delivery(
            person.id,
            person.email,
            DeliveryKind.SEQUENCE,
            f"step:{enrollment.id}:0",
            {"step_id": sequence.steps[0].id},
            due_at=now + timedelta(days=1),
            enrollment_id=enrollment.id,
        )
        report_delivery = db.session.scalars(
            select(Delivery).where(Delivery.kind == DeliveryKind.REPORT)
        ).one()
        db.session.add_all(
            [
                BounceEvent(
                    delivery_id=report_delivery.id,
                    subscriber_id=person.id,
                    kind=BounceKind.DELAYED,
                    source=BounceSource.WEBHOOK,
                    received_at=now,
                    event_key="delayed:1",
                ),
                Suppression(email_hash="x" * 43, reason="erased", created_at=now),
                StreamPause(kind=DeliveryKind.REFRESH, paused_until=now + timedelta(hours=1), reason="5.7.1"),
                RateLimitCounter(key="LIMITS:test", count=1, expires_at=now + timedelta(minutes=10)),
                WidgetImpressions(widget_id=widget.id, day=now.date(), count=3),
                Impression(widget_id=widget.id, day=now.date()),
                # A submission accepted and not stored yet.
                Intake(widget_id=widget.id, received_at=now, email="wachtend@example.com", data={}),
                SweepMark(name="interest", at=now, until=None, after_id=0),
            ]
        )
        report_delivery.links = [["https://beleggen.example/daytraden/", None]]
        topic = Topic(
            key="daytrading",
            name={"nl": "Daytraden"},
            urls=["https://beleggen.example/daytraden/"],
            half_life_days=30,
            created_at=now,
            updated_at=now,
        )
        db.session.add(topic)
        db.session.flush()
        click = Click(
            delivery_id=report_delivery.id,
            subscriber_id=person.id,
            position=0,
            url="https://beleggen.example/daytraden/",
            topic_id=topic.id,
            clicked_at=now,
        )
        db.session.add(click)
        db.session.flush()
        db.session.add_all(
            [
                InterestEvent(
                    subscriber_id=person.id,
                    topic_id=topic.id,
                    source=SignalSource.CLICK,
                    weight=1.0,
                    occurred_at=now,
                    recorded_at=now,
                    delivery_id=report_delivery.id,
                    click_id=click.id,
                ),
                InterestScore(subscriber_id=person.id, topic_id=topic.id, level=1.0, updated_at=now),
            ]
        )
        user = create_user("admin@beleggen.example", "correct horse battery staple", Role.ADMIN)
        db.session.commit()
        subject = {"s": person.id}
        link = {"s": person.id, "sub": submission.id}
        made = World(
            subscriber_id=person.id,
            user_id=user.id,
            delivery_id=report_delivery.id,
            question_key=questions[0].key,
            topic_key=topic.key,
            report_slug=widget.report.slug,
            widget_slug=widget.slug,
            sequence_slug=sequence.slug,
            tokens={
                "pages.confirm": make_token(Purpose.CONFIRM, link),
                "pages.download": make_token(Purpose.DOWNLOAD, {**link, "r": widget.report_id}),
                "pages.unsubscribe": make_token(Purpose.UNSUBSCRIBE, subject),
                "pages.preferences": make_token(Purpose.PREFERENCES, subject),
                "links.follow": make_token(Purpose.CLICK, {"d": report_delivery.id, "n": 0}),
                "pages.answer": make_token(
                    Purpose.ANSWER, {**subject, "q": questions[0].id, "v": questions[0].options[1].value}
                ),
            },
        )
        db.session.rollback()  # on SQLite, an open transaction would hold the write lock the requests need
    return made


def arguments(endpoint: str, names: set[str], world: World) -> dict[str, Any]:
    """Valid arguments for a rule: real ids and slugs, genuine tokens."""
    by_name: dict[str, Any] = {
        "token": world.tokens.get(endpoint),
        "delivery_id": world.delivery_id,
        "user_id": world.user_id,
        "subscriber_id": world.subscriber_id,
        "key": world.topic_key if endpoint == "admin.edit_topic" else world.question_key,
        "filename": "admin.css",
        "slug": {
            "admin.edit_report": world.report_slug,
            "admin.report_file": world.report_slug,
            "admin.edit_sequence": world.sequence_slug,
            "admin.switch_off_sequence": world.sequence_slug,
        }.get(endpoint, world.widget_slug),
    }
    found = {name: by_name[name] for name in names}
    assert None not in found.values(), f"no valid arguments for {endpoint}: add them to this test"
    return found


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, every column."""
    db.session.rollback()  # a fresh read, not what this session has cached
    tables = {}
    for table in db.metadata.sorted_tables:
        order = list(table.primary_key.columns) or list(table.columns)
        tables[table.name] = [tuple(row) for row in db.session.execute(select(table).order_by(*order))]
    db.session.rollback()
    return tables


def test_get_and_head_of_every_route_change_no_row(app: Flask, world: World) -> None:
    # Only the request itself may show in the snapshot: the worker must not store or send anything in between.
    app.test_client_class = IntakeClient
    client: FlaskClient = app.test_client()
    with client.session_transaction() as session, app.app_context():
        session["user_id"] = world.user_id
        session["session_version"] = db.session.get_one(User, world.user_id).session_version
    visited: set[str] = set()
    with app.app_context():
        before = snapshot()
        assert all(before.values()), [name for name, rows in before.items() if not rows]
        rules = list(app.url_map.iter_rules())
        for rule in rules:
            if rule.endpoint in SKIPPED:
                continue
            with app.test_request_context():
                url = url_for(rule.endpoint, **arguments(rule.endpoint, set(rule.arguments), world))
            # The report email went out at this very moment, so the download GET is what a mail scanner
            # does and counts nothing (tests/test_downloads.py has what does count).
            statuses = {}
            for method in ("GET", "HEAD"):
                with client.open(url, method=method) as response:
                    statuses[method] = response.status_code
                    assert response.status_code < 500, (method, url)
                    if method == "HEAD":
                        assert response.data == b"", url
                after = snapshot()
                changed = [name for name in before if before[name] != after[name]]
                if method == "GET" and rule.endpoint in RECORDED_BY_GET:
                    assert set(changed) == RECORDED_BY_GET[rule.endpoint], (rule.rule, changed)
                    before = after
                    continue
                assert not changed, f"{method} {rule.rule} changed {changed}"
            # Valid arguments reach every view: a page for each GET route, 405 where only POST is routed, and
            # the click redirect's redirect.
            expected = 302 if rule.endpoint in RECORDED_BY_GET else 200 if "GET" in rule.methods else 405
            assert statuses == dict.fromkeys(statuses, expected), (url, statuses)
            visited.add(rule.endpoint)
    assert visited | set(SKIPPED) == {rule.endpoint for rule in rules}


def test_an_allowed_page_reading_a_widget_counts_nothing_and_its_post_counts_one_impression(
    app: Flask, world: World
) -> None:
    client: FlaskClient = app.test_client()
    allowed = {"Origin": "https://beleggen.example"}
    definition = f"/api/v1/widgets/{world.widget_slug}"
    with app.app_context():
        before = snapshot()
    for method in ("GET", "HEAD"):
        response = client.open(definition, method=method, headers=allowed)
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "https://beleggen.example"
        refused = client.open(definition + "/impressions", method=method, headers=allowed)
        assert refused.status_code == 405
        assert set(refused.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
    with app.app_context():
        assert snapshot() == before
    assert client.post(definition + "/impressions", headers=allowed).status_code == 204
    with app.app_context():
        # The world's 3 tallied and 1 appended, and this one.
        assert sum(count_impressions(date.min, date.max).values()) == 5


def date_headers(server: ServerThread, method: str, url: str, cookie: str) -> tuple[int, list[str]]:
    """The status and the Date headers of one request, as a raw HTTP client reads them off the wire."""
    connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=30)
    try:
        connection.request(method, url, headers={"Cookie": f"leadcapture_session={cookie}"})
        response = connection.getresponse()
        response.read()
        return response.status, response.headers.get_all("Date") or []
    finally:
        connection.close()


def test_every_route_answers_with_one_date_header(app: Flask, world: World) -> None:
    """Werkzeug's server writes a Date header into every response, as gunicorn's does; one the app set (as
    send_file and static files do) would make two."""
    with app.app_context():
        user = db.session.get_one(User, world.user_id)
        session = {"user_id": user.id, "session_version": user.session_version}
        cookie = app.session_interface.get_signing_serializer(app).dumps(session)  # type: ignore[attr-defined]
        db.session.rollback()
    server = ServerThread(app)
    server.start()
    try:
        requests = []
        for rule in app.url_map.iter_rules():
            with app.test_request_context():
                url = url_for(rule.endpoint, **arguments(rule.endpoint, set(rule.arguments), world))
            requests += [("GET", url), ("HEAD", url)]
            if rule.endpoint == "pages.download":
                requests.append(("POST", url))  # the button: the report's file
        # What made two: static files and send_file, which date themselves.
        paths = {(method, urlsplit(url).path) for method, url in requests}
        assert ("GET", "/admin/static/admin.css") in paths
        assert ("POST", "/download/" + world.tokens["pages.download"]) in paths
        for method, url in requests:
            status, dates = date_headers(server, method, url, cookie)
            assert status < 500, (method, url)
            assert len(dates) == 1, (method, url, dates)
    finally:
        server.stop()
