"""The raw-cursor path writes what SQLAlchemy writes and reads what it reads: each prepared statement run once
through Prepared and once through Connection.execute with the same values, and the two rows compared column by
column."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Connection, Table, bindparam, func, insert, select, update

from leadcapture import clock, interest
from leadcapture.extensions import db
from leadcapture.models import (
    Click,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Intake,
    InterestEvent,
    InterestScore,
    SignalSource,
    Submission,
    Subscriber,
    SubscriberStatus,
    Topic,
    Widget,
)
from leadcapture.prepared import Prepared, first_after
from leadcapture.services import capture, clicks, interests, outbox
from tests.factories import make_confirmed_subscriber, make_demo_widget

pytestmark = pytest.mark.usefixtures("app_context")


def row(sql: Connection, model: type[Any], row_id: int, *apart: str) -> dict[str, Any]:
    """A row as the database holds it, without its id and the columns that must differ between the two."""
    table = cast(Table, model.__table__)
    found = sql.execute(select(table).where(table.c.id == row_id)).mappings().one()
    return {name: value for name, value in found.items() if name not in {"id", *apart}}


def test_the_capture_and_sender_statements_do_what_core_does() -> None:
    widget = make_demo_widget()
    db.session.flush()
    sql = db.session.connection()
    now = clock.now()

    def intake(email: str) -> dict[str, Any]:
        return {
            "widget_id": widget.id,
            "received_at": now,
            "email": email,
            "data": {"email": email, "answers": {"interests": ["etfs", "stocks"]}, "first_name": "Zoë"},
        }

    capture._ADD_INTAKE.execute(sql, intake("raw@example.com"))
    sql.execute(capture._ADD_INTAKE.statement, [intake("core@example.com")])
    intakes = sql.execute(select(Intake.id).order_by(Intake.id)).scalars().all()
    assert row(sql, Intake, intakes[0], "email", "data") == row(sql, Intake, intakes[1], "email", "data")
    assert [row(sql, Intake, intake_id)["data"] for intake_id in intakes] == [
        intake(email)["data"] for email in ("raw@example.com", "core@example.com")
    ]

    people = sql.execute(
        insert(Subscriber).returning(Subscriber.id, sort_by_parameter_order=True),
        [
            {
                "email": email,
                "reader_ref": secrets.token_urlsafe(32),
                "status": SubscriberStatus.PENDING,
                "locale": "nl",
                "marketing_consent": False,
                "created_at": now,
                "status_changed_at": now,
            }
            for email in ("raw@example.com", "core@example.com")
        ],
    ).scalars().all()
    known = {"reader_ref": sql.execute(select(Subscriber.reader_ref).where(Subscriber.id == people[0])).scalar()}
    assert capture._READER_KNOWN.first(sql, known) == tuple(sql.execute(capture._READER_KNOWN.statement, known).one())
    assert capture._READER_KNOWN.first(sql, {"reader_ref": "nobody"}) is None
    submissions = sql.execute(
        insert(Submission).returning(Submission.id, sort_by_parameter_order=True),
        [
            {
                "subscriber_id": person,
                "widget_id": widget.id,
                "report_id": widget.report_id,
                "marketing_consent": False,
                "created_at": now,
            }
            for person in people
        ],
    ).scalars().all()

    def delivery(person: int, key: str) -> dict[str, Any]:
        return {
            "subscriber_id": person,
            "enrollment_id": None,
            "kind": DeliveryKind.CONFIRM,
            "idempotency_key": key,
            "message_id": f"<{key}@beleggen.example>",
            "to_address": "raw@example.com",
            "payload": {"submission_id": submissions[0], "proposed": {"first_name": "Zoë"}},
            "status": DeliveryStatus.PENDING,
            "due_at": now,
            "priority": 0,
            "attempts": 0,
            "created_at": now,
        }

    deliveries = sql.execute(
        insert(Delivery).returning(Delivery.id, sort_by_parameter_order=True),
        [delivery(people[0], "one"), delivery(people[1], "two")],
    ).scalars().all()

    # The sender's look-up right before the relay, on rows claimed alike.
    token = secrets.token_hex(16)
    for delivery_id in deliveries:
        claimed = db.session.get_one(Delivery, delivery_id)
        claimed.status, claimed.claim_token, claimed.due_at = DeliveryStatus.SENDING, token, now + timedelta(minutes=5)
    db.session.flush()
    look_up = [{"delivery_id": delivery_id, "token": token, "now": now} for delivery_id in deliveries]
    assert outbox._STILL_OURS.first(sql, look_up[0]) == tuple(
        sql.execute(outbox._STILL_OURS.statement, look_up[1]).one()
    )
    assert outbox._STILL_OURS.first(sql, {**look_up[0], "token": "0" * 32}) is None  # not ours

    # The sent mark, with the subject and the bytes kept for the dev inbox: only where the claim still holds.
    sent = {
        "rendered_subject": "Bevestig je adres, Zoë \u2013 nu",
        "rendered_links": [["https://x.example/a?b=1", "daytrading"], ["https://x.example/b", None]],
        "raw": b"From: x\r\n\r\n\xe2\x80\x93",
    }
    mark = [{**values, **sent} for values in look_up]
    assert outbox._MARK_SENT_KEEPING_RAW.first(sql, {**mark[0], "token": "0" * 32}) is None  # not ours
    assert outbox._MARK_SENT_KEEPING_RAW.first(sql, mark[0]) == (None, None)  # no enrollment, so none leaving
    assert sql.execute(outbox._MARK_SENT_KEEPING_RAW.statement, mark[1]).one() == (None, None)
    apart = ("subscriber_id", "idempotency_key", "message_id")
    assert row(sql, Delivery, deliveries[0], *apart) == row(sql, Delivery, deliveries[1], *apart)
    assert row(sql, Delivery, deliveries[0])["status"] is DeliveryStatus.SENT
    assert outbox._MARK_SENT.first(sql, mark[0]) is None  # marked already: no longer held

    # The usual mark: the same, unless the subscriber leaves their sequence after this step (none here).
    unsent = (
        Delivery.__table__.update()
        .where(Delivery.id.in_(deliveries))
        .values(status=DeliveryStatus.SENDING, subject=None, raw_message=None, sent_at=None)
    )
    sql.execute(unsent)
    settle = [{**values, "sent_id": values["delivery_id"]} for values in mark]
    assert outbox._MARK_UNLESS_LEAVING_KEEPING_RAW.first(sql, {**settle[0], "token": "0" * 32}) is None  # not ours
    assert outbox._MARK_UNLESS_LEAVING_KEEPING_RAW.first(sql, settle[0]) == (deliveries[0],)
    assert sql.execute(outbox._MARK_UNLESS_LEAVING_KEEPING_RAW.statement, settle[1]).one() == (deliveries[1],)
    assert row(sql, Delivery, deliveries[0], *apart) == row(sql, Delivery, deliveries[1], *apart)
    assert row(sql, Delivery, deliveries[0])["status"] is DeliveryStatus.SENT

    # PostgreSQL settles a message in one statement: that mark, and the look-up of the message after it.
    if sql.dialect.name != "postgresql":
        return
    sql.execute(unsent)
    assert outbox._SETTLE_KEEPING_RAW.first(sql, {**settle[0], "token": "0" * 32}) == (0, None, None)  # not ours
    assert outbox._SETTLE_KEEPING_RAW.first(sql, {**settle[0], "delivery_id": deliveries[1]}) == (1, True, None)
    assert sql.execute(
        outbox._SETTLE_KEEPING_RAW.statement, {**settle[1], "delivery_id": deliveries[0]}
    ).one() == (1, None, None)  # the message before it is no longer held: it was marked sent
    assert row(sql, Delivery, deliveries[0], *apart) == row(sql, Delivery, deliveries[1], *apart)
    assert row(sql, Delivery, deliveries[0])["status"] is DeliveryStatus.SENT
    assert outbox._SETTLE.first(sql, {**settle[0], "delivery_id": None}) == (0, None, None)  # marked already


def test_the_click_statements_do_what_core_does() -> None:
    widget = make_demo_widget()
    now = clock.now()
    clock.freeze(now)  # a click's signal is recorded when it is made
    topic = Topic(key="daytrading", name={"nl": "Daytraden"}, urls=[], half_life_days=30, created_at=now, updated_at=now)
    db.session.add(topic)
    people = [
        make_confirmed_subscriber(widget, email=f"{name}@example.com", marketing_consent=True)[0]
        for name in ("raw", "core")
    ]
    db.session.flush()
    sql = db.session.connection()
    links = [["https://beleggen.example/daytraden/risico", "daytrading"], ["https://elders.example/", None]]
    deliveries = sql.execute(
        insert(Delivery).returning(Delivery.id, sort_by_parameter_order=True),
        [
            {
                "subscriber_id": person.id,
                "kind": DeliveryKind.SEQUENCE,
                "idempotency_key": f"click:{person.id}",
                "message_id": f"<click.{person.id}@beleggen.example>",
                "to_address": person.email,
                "payload": {},
                "status": DeliveryStatus.SENT,
                "due_at": now - timedelta(days=1),
                "sent_at": now - timedelta(days=1),
                "created_at": now - timedelta(days=1),
                "subject": "Daytraden",
                "links": links,
            }
            for person in people
        ],
    ).scalars().all()

    # The link, read back as Core reads it: the links as a list, the statuses as enums, times aware.
    looked_up = clicks._LINK.first(sql, {"delivery_id": deliveries[0]})
    assert looked_up == tuple(sql.execute(clicks._LINK.statement, {"delivery_id": deliveries[0]}).one())
    assert looked_up is not None
    assert looked_up[:6] == (
        people[0].id,
        links,
        now - timedelta(days=1),
        DeliveryStatus.SENT,
        SubscriberStatus.CONFIRMED,
        True,
    )
    assert clicks._LINK.first(sql, {"delivery_id": -1}) is None

    # A counted click: through the raw path (one statement on PostgreSQL) for one, through Core for the other.
    ref = interests.TopicRef(topic.id, topic.key, topic.half_life_days)

    def click(index: int) -> dict[str, Any]:
        return {
            "delivery_id": deliveries[index],
            "subscriber_id": people[index].id,
            "position": 0,
            "url": links[0][0],
            "topic_id": topic.id,
            "now": now,
            "automated": None,
        }

    signal = clicks._add_counted_click(click(0), ref)
    assert (signal.before, signal.after) == (0.0, pytest.approx(1.0))
    click_id = sql.execute(clicks._CLICK.returning(Click.id), click(1)).scalar_one()
    sql.execute(
        insert(InterestEvent),
        {
            "subscriber_id": people[1].id,
            "topic_id": topic.id,
            "source": SignalSource.CLICK,
            "weight": 1.0,
            "occurred_at": now,
            "recorded_at": now,
            "delivery_id": deliveries[1],
            "click_id": click_id,
            "url": links[0][0],
        },
    )
    added = {"subscriber_id": people[1].id, "topic_id": topic.id, "now": now}
    added["added"] = interest.signal_level(1, now, topic.half_life_days)
    sql.execute(interests.adding_statement(sql.dialect.name), added)

    def written(model: type[Any], person: Subscriber) -> dict[str, Any]:
        table = cast(Table, model.__table__)
        found = sql.execute(select(table).where(table.c.subscriber_id == person.id)).mappings().one()
        return {name: value for name, value in found.items() if name not in {"id", "subscriber_id", "delivery_id", "click_id"}}

    for model in (Click, InterestEvent, InterestScore):
        assert written(model, people[0]) == written(model, people[1])
    event = sql.execute(
        select(InterestEvent.delivery_id, InterestEvent.click_id).where(InterestEvent.subscriber_id == people[0].id)
    ).one()
    assert tuple(event) == (
        deliveries[0],
        sql.execute(select(Click.id).where(Click.subscriber_id == people[0].id)).scalar_one(),
    )

    # A second counted click adds to the score: two today.
    second = clicks._add_counted_click({**click(0), "position": 1}, ref)
    assert (second.before, second.after) == (pytest.approx(1.0), pytest.approx(2.0))


def test_a_statement_run_after_another_sees_what_that_one_waited_for() -> None:
    """prepared.first_after: two statements in one round trip on PostgreSQL, still one after the other."""
    sql = db.session.connection()
    widget = make_demo_widget()
    db.session.flush()
    count = Prepared(select(func.count()).select_from(Widget).where(Widget.slug == bindparam("slug")))
    rename = Prepared(update(Widget).where(Widget.id == bindparam("widget_id")).values(slug=bindparam("slug")))
    assert first_after(sql, (rename, {"widget_id": widget.id, "slug": "hernoemd"}), (count, {"slug": "hernoemd"})) == (1,)
    assert sql.execute(select(Widget.slug).where(Widget.id == widget.id)).scalar_one() == "hernoemd"
