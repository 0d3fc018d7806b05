"""Progressive profiling in Chromium: a returning reader is asked only what is unanswered or stale."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Locator, Page, ViewportSize, expect
from sqlalchemy import select, update

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.i18n import translate
from leadcapture.models import (
    Answer,
    AnswerSource,
    Delivery,
    DeliveryKind,
    Question,
    Subscriber,
    SubscriberStatus,
    Widget,
)
from leadcapture.services.widgets import mail_reference
from tests.fixtures.browser import (
    DESKTOP,
    EMAIL,
    LAYOUT_SHIFT_OBSERVER,
    PHONE,
    SNUG,
    HostPage,
    answer_questions,
    assert_snug,
    button,
    describe,
    email_field,
    fill_email_step,
    focused,
    gaps,
    load_with_definition_held,
    nl,
    open_widget,
    report_box,
    run_axe,
    shifts_without_input,
    widget,
)

pytestmark = pytest.mark.browser

START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)
STORAGE = "leadcapture"
MASK = "l•••r@beleggen.nl"  # EMAIL as the widget shows it to its returning reader
VIEWPORTS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


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


def whose_address(page: Page, mask: str = MASK) -> Locator:
    """The line that tells a returning reader which address the widget uses for them."""
    return widget(page).get_by_text(nl("reader", email=mask))


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


def remembered_once(page: Page, condition: str) -> dict[str, Any]:
    """What the loader keeps, once the JavaScript `condition` on it (`kept`) holds: the loader stores what a
    submission's answer says just after it shows the success message."""
    page.wait_for_function(f"(kept => {condition})(JSON.parse(localStorage.getItem('{STORAGE}')) || {{}})")
    return remembered(page)


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
    stored = remembered_once(page, "kept.r")
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
    expect(whose_address(page)).to_be_visible()  # masked by the server: this browser never saw the address
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
    page.evaluate(
        f"localStorage.setItem('{STORAGE}', JSON.stringify({{...{json.dumps(stored)}, p: 'forged'}}))"
    )
    clock.freeze(START + 31 * DAY)
    open_widget(page, host)
    assert questions_shown(page) == ["Vraag daytrading_experience?"]
    report_box(page).check()
    body = posted_body(page)
    assert "ref" not in body  # the server did not know it: the widget dropped it
    assert len(latest_answers(app)) == 3
    assert "p" not in remembered_once(page, "!kept.p")


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


# --- who the widget takes a returning reader for -----------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_returning_reader_sees_which_address_is_used_and_can_say_it_is_not_theirs(
    page: Page, host: HostPage, viewport: ViewportSize
) -> None:
    app = host.live.app
    page.set_viewport_size(viewport)
    submit_everything(page, host)
    assert remembered_once(page, "kept.m")["m"] == MASK  # enough to recognise, not the address itself

    open_widget(page, host)
    start(page)
    expect(whose_address(page)).to_be_visible()
    expect(email_field(page)).to_have_count(0)
    assert_snug("the last step of a returning reader", gaps(page))
    assert run_axe(page) == [], describe(run_axe(page))

    # By keyboard: "Not you?" comes right before the report box, which has the focus.
    assert focused(page)["type"] == "checkbox"
    page.keyboard.press("Shift+Tab")
    assert focused(page)["text"] == nl("not_you")
    page.keyboard.press("Enter")
    # This browser forgets its reader, and shows the form anyone gets, from its first question.
    expect(widget(page).get_by_text(nl("progress", n=1, total=3))).to_be_visible()
    assert focused(page)["value"] == "yes"
    assert set(remembered(page)) <= {"h"}
    answer_questions(page, start=False)
    expect(whose_address(page)).to_have_count(0)
    fill_email_step(page, "ander@beleggen.nl")
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()
    assert remembered_once(page, "kept.m")["m"] == "a•••r@beleggen.nl"
    with app.app_context():
        assert set(db.session.scalars(select(Subscriber.email))) == {EMAIL, "ander@beleggen.nl"}


def test_not_you_also_forgets_a_reader_from_our_email(page: Page, host: HostPage) -> None:
    app = host.live.app
    submit_everything(page, host)
    subscriber_id = confirm(app)
    page.evaluate("localStorage.clear()")
    with app.test_request_context():
        reference = mail_reference(subscriber_id)
    page.goto(host.url() + "&lc=" + reference)
    start(page)
    expect(whose_address(page)).to_be_visible()
    assert remembered(page)["p"] == reference

    with page.expect_request(lambda request: "/api/v1/widgets/" in request.url) as asked:
        button(page, nl("not_you")).click()
    assert "ref=" not in asked.value.url
    expect(widget(page).get_by_text(nl("progress", n=1, total=3))).to_be_visible()
    assert set(remembered(page)) <= {"h"}
    open_widget(page, host)  # and on the next page, too
    assert len(questions_shown(page)) == 3
    expect(email_field(page)).to_be_visible()


def test_a_reader_remembered_before_addresses_were_masked_is_told_too_in_english(
    page: Page, host: HostPage
) -> None:
    host.add_widget("daytrading-report-en", locale="en")
    submit_everything(page, host)
    kept = {key: value for key, value in remembered(page).items() if key != "m"}
    page.evaluate(f"localStorage.setItem('{STORAGE}', {json.dumps(json.dumps(kept))})")

    def en(key: str, **params: Any) -> str:
        return translate("en", f"widget.{key}", **params)

    open_widget(page, host, "daytrading-report-en", "en")
    button(page, en("start_ready")).click()  # the same questions, all answered here just now
    expect(widget(page).get_by_text(en("reader_unnamed"))).to_be_visible()
    widget(page).get_by_role("button", name="Not you?", exact=True).click()
    expect(widget(page).get_by_text(en("progress", n=1, total=3))).to_be_visible()
    assert set(remembered(page)) <= {"h"}


# --- what the intro promises ---------------------------------------------------------------------------------------


def test_with_nothing_left_to_ask_the_intro_promises_no_questions(page: Page, host: HostPage) -> None:
    """The editor's prompt and start label may speak of the questions; a reader with none left to answer sees
    neither, but what the report is and a start label that leads straight to it."""
    prompt, editor_start = "Beantwoord eerst drie korte vragen.", "Naar de vragen"
    with host.live.app.app_context():
        db.session.scalars(select(Widget)).one().texts = {
            "prompt": {"nl": prompt},
            "start": {"nl": editor_start},
        }
        db.session.commit()
    page.goto(host.url())
    expect(widget(page).get_by_text(prompt)).to_be_visible()
    button(page, editor_start).click()
    answer_questions(page, start=False)
    fill_email_step(page)
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()

    clock.freeze(START + 10 * DAY)
    page.goto(host.url())
    expect(button(page, nl("start_ready"))).to_be_visible()
    expect(widget(page).get_by_text(prompt)).to_have_count(0)
    expect(button(page, editor_start)).to_have_count(0)
    expect(widget(page).get_by_text("Een gratis rapport.")).to_be_visible()
    button(page, nl("start_ready")).click()
    expect(report_box(page)).to_be_visible()
    expect(widget(page).get_by_text(re.compile("^Vraag "))).to_have_count(0)

    clock.freeze(START + 31 * DAY)  # one answer has gone stale: there is a question again
    page.goto(host.url())
    expect(widget(page).get_by_text(prompt)).to_be_visible()
    expect(button(page, editor_start)).to_be_visible()


@pytest.mark.parametrize(
    "viewport",
    [
        pytest.param({"width": 1280, "height": 2600}, id="desktop"),
        pytest.param({"width": 390, "height": 6000}, id="phone"),
    ],
)
def test_a_returning_reader_s_shorter_intro_loads_without_moving_the_page(
    page: Page, host: HostPage, viewport: ViewportSize
) -> None:
    """The box is reserved as tall as the intro was last time; the shorter one shown when nothing is left to ask
    fits in it, grouped with its button, and the last step then fits its box."""
    page.set_viewport_size(viewport)
    page.add_init_script(LAYOUT_SHIFT_OBSERVER)
    submit_everything(page, host)
    reserved_at = load_with_definition_held(page, host.url())
    expect(button(page, nl("start_ready"))).to_be_visible()
    page.wait_for_timeout(100)  # let a frame or two be painted and their shifts reported

    cls, page_moved = shifts_without_input(page, after=reserved_at)
    assert cls == 0, page.evaluate("window.__shifts")
    assert page_moved == []
    intro = gaps(page)
    assert intro.before_buttons <= SNUG, intro
    start(page)
    assert_snug("the last step of a returning reader", gaps(page))
