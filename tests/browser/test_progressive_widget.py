"""Progressive profiling in Chromium: a returning reader is asked only what is unanswered or stale."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select, update

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    AnswerSource,
    Delivery,
    DeliveryKind,
    Question,
    Subscriber,
    SubscriberStatus,
)
from leadcapture.services.widgets import mail_reference
from tests.fixtures.browser import (
    EMAIL,
    HostPage,
    answer_questions,
    button,
    describe,
    email_field,
    fill_email_step,
    nl,
    open_widget,
    report_box,
    run_axe,
    widget,
)

pytestmark = pytest.mark.browser

START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)
STORAGE = "leadcapture"


@pytest.fixture
def host(host_page: HostPage) -> HostPage:
    """The demo widget, with daytrading experience going stale after 30 days and the rest after 90."""
    clock.freeze(START)
    with host_page.live.app.app_context():
        db.session.execute(
            update(Question).where(Question.key == "daytrading_experience").values(fresh_for_days=30)
        )
        db.session.commit()
    return host_page


def submit_everything(page: Page, host: HostPage) -> None:
    open_widget(page, host)
    answer_questions(page)
    fill_email_step(page)
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()


def confirm(app: Flask) -> int:
    with app.app_context():
        subscriber = db.session.scalars(select(Subscriber)).one()
        subscriber.status = SubscriberStatus.CONFIRMED
        db.session.commit()
        return subscriber.id


def start(page: Page) -> None:
    button(page, nl("start")).or_(button(page, nl("start_ready"))).click()


def questions_shown(page: Page) -> list[str]:
    """Start, then walk the questions, answering each with its first option; returns their legends."""
    start(page)
    legends = []
    while not report_box(page).is_visible():
        group = widget(page).locator("fieldset:not([hidden] fieldset)").filter(has=page.locator(":visible"))
        legend = group.locator("legend").first
        legends.append(legend.inner_text())
        group.locator("input").first.check()
        button(page, nl("next")).click()
    return legends


def remembered(page: Page) -> dict[str, Any]:
    """What the loader keeps in this browser."""
    kept: dict[str, Any] = json.loads(page.evaluate(f"localStorage.getItem('{STORAGE}')") or "{}")
    return kept


def posted_body(page: Page) -> dict[str, Any]:
    with page.expect_request(lambda request: request.method == "POST") as posted:
        button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()
    body: dict[str, Any] = json.loads(posted.value.post_data or "")
    return body


def latest_answers(app: Flask) -> list[tuple[str, Any, AnswerSource]]:
    with app.app_context():
        rows = db.session.execute(
            select(Question.key, Answer.value, Answer.source).join(Answer.question).order_by(Answer.id)
        ).all()
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_returning_browser_is_asked_only_the_stale_question_and_not_its_address(
    page: Page, host: HostPage
) -> None:
    """A browser that only ever typed the address proves nothing (anyone can type it): what it answers is
    proposed to the address's owner by email, and the current answers stay theirs."""
    app = host.live.app
    submit_everything(page, host)
    stored = json.loads(page.evaluate(f"localStorage.getItem('{STORAGE}')"))
    assert EMAIL not in json.dumps(stored)  # the browser keeps a stand-in, never the address
    confirm(app)

    clock.freeze(START + 10 * DAY)
    open_widget(page, host)
    assert questions_shown(page) == []  # everything fresh: straight to the report
    expect(email_field(page)).to_have_count(0)
    report_box(page).check()
    body = posted_body(page)
    assert "email" not in body
    assert body["reader"] == stored["r"]
    assert body["answers"] == {}

    clock.freeze(START + 31 * DAY)
    answered = latest_answers(app)
    open_widget(page, host)
    assert questions_shown(page) == ["Vraag daytrading_experience?"]
    expect(email_field(page)).to_have_count(0)
    report_box(page).check()
    body = posted_body(page)
    assert body["answers"] == {"daytrading_experience": "none"}
    assert "ref" not in body
    # A browser's reader does not prove the address: the stored answers wait for the owner (this one, the
    # same as before, proposes nothing), and the report goes out all the same.
    assert latest_answers(app) == answered
    with app.app_context():
        kinds = list(db.session.scalars(select(Delivery.kind).order_by(Delivery.id)))
    assert kinds == [DeliveryKind.CONFIRM, DeliveryKind.REPORT, DeliveryKind.REPORT]

    # Three weeks on, the day-31 answer is still fresh; by day 95 every answer has gone stale.
    clock.freeze(START + 52 * DAY)
    open_widget(page, host)
    assert questions_shown(page) == []
    clock.freeze(START + 95 * DAY)
    open_widget(page, host)
    assert len(questions_shown(page)) == 3


def test_a_stranger_sees_every_question_and_the_address(page: Page, host: HostPage) -> None:
    submit_everything(page, host)  # someone else, earlier, in another browser
    page.context.clear_cookies()
    page.evaluate("localStorage.clear()")
    open_widget(page, host)
    assert len(questions_shown(page)) == 3
    expect(email_field(page)).to_be_visible()


def test_a_reader_from_our_email_is_asked_only_what_is_left(page: Page, host: HostPage) -> None:
    app = host.live.app
    submit_everything(page, host)
    subscriber_id = confirm(app)
    page.evaluate("localStorage.clear()")  # they read our email on another device
    with app.test_request_context():
        reference = mail_reference(subscriber_id)

    clock.freeze(START + 31 * DAY)
    page.goto(host.url() + "&lc=" + reference)
    expect(button(page, nl("start"))).to_be_visible()
    assert "lc=" not in page.url  # a shared link does not carry the reader along
    assert questions_shown(page) == ["Vraag daytrading_experience?"]
    expect(email_field(page)).to_have_count(0)
    assert run_axe(page) == [], describe(run_axe(page))
    report_box(page).check()
    body = posted_body(page)
    assert "email" not in body
    assert latest_answers(app)[-1] == ("daytrading_experience", "none", AnswerSource.WIDGET)
    # From now on this browser knows its reader too.
    assert json.loads(page.evaluate(f"localStorage.getItem('{STORAGE}')"))["r"] == body["reader"]


def test_a_browser_that_came_from_our_email_stays_proven_and_its_answers_count_at_once(
    page: Page, host: HostPage
) -> None:
    app = host.live.app
    submit_everything(page, host)
    subscriber_id = confirm(app)
    with app.test_request_context():
        reference = mail_reference(subscriber_id)
    page.goto(host.url() + "&lc=" + reference)
    expect(button(page, nl("start_ready"))).to_be_visible()
    assert json.loads(page.evaluate(f"localStorage.getItem('{STORAGE}')"))["p"] == reference

    clock.freeze(START + 31 * DAY)
    open_widget(page, host)  # no lc in the address this time
    assert questions_shown(page) == ["Vraag daytrading_experience?"]
    report_box(page).check()
    body = posted_body(page)
    assert body["ref"] == reference
    assert latest_answers(app)[-1] == ("daytrading_experience", "none", AnswerSource.WIDGET)
    assert len(latest_answers(app)) == 4


def test_a_forged_reference_in_storage_proves_nothing(page: Page, host: HostPage) -> None:
    app = host.live.app
    submit_everything(page, host)
    confirm(app)
    stored = json.loads(page.evaluate(f"localStorage.getItem('{STORAGE}')"))
    page.evaluate(f"localStorage.setItem('{STORAGE}', JSON.stringify({{...{json.dumps(stored)}, p: 'forged'}}))")
    clock.freeze(START + 31 * DAY)
    open_widget(page, host)
    assert questions_shown(page) == ["Vraag daytrading_experience?"]
    report_box(page).check()
    body = posted_body(page)
    assert "ref" not in body  # the server did not know it: the widget dropped it
    assert len(latest_answers(app)) == 3
    assert "p" not in json.loads(page.evaluate(f"localStorage.getItem('{STORAGE}')"))


def test_a_reader_the_server_no_longer_knows_is_asked_for_the_address(page: Page, host: HostPage) -> None:
    open_widget(page, host)
    page.evaluate(f"localStorage.setItem('{STORAGE}', JSON.stringify({{r: 'A'.repeat(43), a: {{}}}}))")
    open_widget(page, host)
    questions_shown(page)
    expect(email_field(page)).to_have_count(0)
    report_box(page).check()
    button(page, nl("submit")).click()
    # The server answered 422 for that reader: the widget forgets it and starts over as for a stranger.
    expect(widget(page).get_by_text(nl("progress", n=1, total=3))).to_be_visible()
    assert set(remembered(page)) <= {"h"}
    answer_questions(page, start=False)
    expect(email_field(page)).to_be_visible()
    fill_email_step(page)
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()


def test_storage_that_is_switched_off_means_a_stranger(page: Page, host: HostPage) -> None:
    page.add_init_script(
        "Object.defineProperty(window, 'localStorage', {get() { throw new Error('denied'); }})"
    )
    submit_everything(page, host)
    open_widget(page, host)
    assert len(questions_shown(page)) == 3
    expect(email_field(page)).to_be_visible()
