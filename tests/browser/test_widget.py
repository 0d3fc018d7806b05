"""The embedded widget in real Chromium: a publisher's article on one origin, leadcapture on another."""

from __future__ import annotations

import gzip
import json
import re
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Locator, Page, Request, Route, expect
from sqlalchemy import select

from leadcapture.extensions import db
from leadcapture.i18n import translate
from leadcapture.models import Answer, ConsentEvent, Delivery, QuestionOption, Subscriber
from leadcapture.web.widget import EMBED_PATH, lean
from tests.factories import PDF_BYTES
from tests.fixtures.browser import HostPage, console_messages
from tests.fixtures.smtp import SmtpSink

pytestmark = pytest.mark.browser

EMAIL = "lezer@beleggen.nl"
WIDGET_HEIGHT = 400  # the box embed.js reserves before the definition arrives, in a column wider than 600px

# Records every layout shift from the first frame on, including those right after input (which CLS leaves out),
# with where each moved box lives: the page ("page") or the widget's shadow tree ("widget").
LAYOUT_SHIFT_OBSERVER = """
window.__shifts = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__shifts.push({
    value: e.value, input: e.hadRecentInput, time: e.startTime,
    moved: e.sources.map((s) => s.node && !s.node.closest?.("[data-leadcapture]") ? "page" : "widget"),
  });
}).observe({type: "layout-shift", buffered: true});
"""


def nl(key: str, **params: Any) -> str:
    return translate("nl", f"widget.{key}", **params)


def host_height(page: Page) -> float:
    """The height of the widget's host element, the box the page lays out around."""
    return float(page.evaluate("document.querySelector('[data-leadcapture]').getBoundingClientRect().height"))


def widget(page: Page) -> Locator:
    """The host element; Playwright's locators pierce its (open) shadow root."""
    return page.locator("[data-leadcapture]")


def button(page: Page, name: str) -> Locator:
    return widget(page).get_by_role("button", name=name, exact=True)


def open_widget(page: Page, host_page: HostPage, slug: str = "daytrading-report", lang: str = "nl") -> None:
    page.goto(host_page.url(slug, lang))
    expect(button(page, translate(lang, "widget.start"))).to_be_visible()


def answer_questions(page: Page) -> None:
    """Start, then answer the three demo questions with the mouse."""
    button(page, nl("start")).click()
    widget(page).get_by_role("radio", name="Ja").check()
    button(page, nl("next")).click()
    widget(page).get_by_role("radio", name="Nieuw").check()
    button(page, nl("next")).click()
    widget(page).get_by_role("checkbox", name="Aandelen").check()
    widget(page).get_by_role("checkbox", name="Crypto").check()
    button(page, nl("next")).click()


def email_field(page: Page) -> Locator:
    return widget(page).get_by_label(nl("email_label"), exact=True)


def report_box(page: Page) -> Locator:
    return widget(page).get_by_role("checkbox", name=re.compile("^Mail mij het rapport"))


def follow_up_box(page: Page) -> Locator:
    return widget(page).get_by_role("checkbox", name=nl("consent_sequences"))


def fill_email_step(page: Page, email: str = EMAIL) -> None:
    email_field(page).fill(email)
    report_box(page).check()


def error_for(field: Locator) -> str:
    """The error message among what a field's aria-describedby points at (ids resolve in the shadow root)."""
    return str(
        field.evaluate(
            """el => el.getAttribute('aria-describedby').split(' ')
                .map((id) => el.getRootNode().getElementById(id)).find((d) => d.classList.contains('e'))
                .textContent"""
        )
    )


def focused(page: Page) -> dict[str, Any]:
    """What has focus inside the widget: tag, type, value and text of the shadow root's active element."""
    result: dict[str, Any] = page.evaluate(
        """() => {
        const el = document.querySelector('[data-leadcapture]').shadowRoot.activeElement;
        return el && {tag: el.tagName.toLowerCase(), type: el.type || null, value: el.value || null,
                      text: el.textContent};
    }"""
    )
    return result


def stored(app: Flask) -> tuple[Subscriber, dict[str, Any], list[ConsentEvent]]:
    with app.app_context():
        subscriber = db.session.scalars(select(Subscriber)).one()
        answers = db.session.scalars(select(Answer).where(Answer.subscriber_id == subscriber.id)).all()
        events = list(subscriber.consent_events)
        values = {answer.question.key: answer.value for answer in answers}
        db.session.expunge_all()
        return subscriber, values, events


def subscriber_count(app: Flask) -> int:
    with app.app_context():
        return len(db.session.scalars(select(Subscriber)).all())


def run_axe(page: Page) -> list[dict[str, Any]]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    violations: list[dict[str, Any]] = results.response["violations"]
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[node['target'] for node in v['nodes']]}"
        for v in violations
    )


# --- rendering and isolation ----------------------------------------------------------------------------------


def test_renders_in_a_shadow_root_untouched_by_page_css(page: Page, host_page: HostPage) -> None:
    open_widget(page, host_page)
    styles = page.evaluate(
        """() => {
        const host = document.querySelector('[data-leadcapture]');
        const root = host.shadowRoot;
        const style = (el) => { const s = getComputedStyle(el);
            return {font: s.fontFamily, transform: s.textTransform, background: s.backgroundColor,
                    spacing: s.letterSpacing}; };
        return {mode: root && root.mode, lang: root.querySelector('form').lang,
                inLightDom: host.children.length,
                widget: style(root.querySelector('button')), page: style(document.querySelector('aside button'))};
    }"""
    )
    assert styles["mode"] == "open"
    assert styles["lang"] == "nl"
    assert styles["inLightDom"] == 0  # nothing leaks into the page's own DOM either
    # The theme's global `button` rule (spaced uppercase Verdana on orange) styles its own button only.
    assert styles["page"]["transform"] == "uppercase"
    assert styles["page"]["background"] == "rgb(228, 87, 46)"
    assert styles["widget"]["transform"] == "none"
    assert styles["widget"]["background"] == "rgb(11, 87, 208)"
    assert "Verdana" not in styles["widget"]["font"]
    assert styles["widget"]["spacing"] == "normal"
    assert styles["page"]["spacing"] != "normal"
    # And the widget's styles stay inside: the article's paragraphs keep their serif face.
    assert "Georgia" in page.evaluate("getComputedStyle(document.querySelector('article p')).fontFamily")


def test_shows_prompt_then_the_questions_in_order(page: Page, host_page: HostPage) -> None:
    open_widget(page, host_page)
    root = widget(page)
    expect(root.get_by_role("heading", name="Rapport daytrading-report-report")).to_be_visible()
    expect(root.get_by_text("Wil je ons gratis rapport?")).to_be_visible()
    button(page, nl("start")).click()

    steps = [
        ("Vraag is_investor?", "radio", ["Ja", "Nee"]),
        ("Vraag daytrading_experience?", "radio", ["Nieuw", "Geprobeerd", "Actief"]),
        ("Vraag interests?", "checkbox", ["Aandelen", "ETF's", "Crypto"]),
    ]
    for number, (question, role, labels) in enumerate(steps, start=1):
        expect(root.get_by_text(f"Vraag {number} van 3", exact=True)).to_be_visible()
        group = root.get_by_role("group", name=question).or_(root.get_by_role("radiogroup", name=question))
        expect(group).to_be_visible()
        expect(group.get_by_role(role)).to_have_count(len(labels))
        assert [label.strip() for label in group.locator("label").all_inner_texts()] == labels
        group.get_by_role(role, name=labels[0], exact=True).check()
        button(page, nl("next")).click()

    expect(email_field(page)).to_be_visible()
    expect(email_field(page)).to_have_attribute("type", "email")
    expect(email_field(page)).to_have_attribute("autocomplete", "email")
    expect(report_box(page)).not_to_be_checked()
    expect(follow_up_box(page)).to_be_visible()
    expect(follow_up_box(page)).not_to_be_checked()  # marketing consent is never pre-ticked

    button(page, nl("back")).click()  # back keeps what was chosen
    expect(root.get_by_role("checkbox", name="Aandelen")).to_be_checked()


# --- keyboard, validation, submission --------------------------------------------------------------------------


def tab_into_widget(page: Page) -> None:
    """Tab from the top of the page until focus is inside the widget (at most 40 presses)."""
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.matches('[data-leadcapture]')"):
            return
    pytest.fail("Tab never reached the widget")


def test_keyboard_only_completion(page: Page, host_page: HostPage) -> None:
    open_widget(page, host_page)
    tab_into_widget(page)
    assert focused(page)["text"] == nl("start")
    page.keyboard.press("Enter")

    # Focus moves to the first answer of each step; Space picks, arrows move within a radio group.
    assert focused(page)["value"] == "yes"
    page.keyboard.press("Space")
    page.keyboard.press("Tab")  # Back
    page.keyboard.press("Tab")  # Next
    assert focused(page)["text"] == nl("next")
    page.keyboard.press("Enter")

    assert focused(page)["value"] == "none"
    page.keyboard.press("ArrowDown")  # selects "some"
    page.keyboard.press("Enter")  # submits the step from inside the group, like any form

    assert focused(page)["value"] == "stocks"
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # ETFs
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # Crypto
    page.keyboard.press("Enter")

    assert focused(page)["type"] == "email"
    page.keyboard.type(EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the report box
    page.keyboard.press("Tab")  # leave the follow-up box unticked
    page.keyboard.press("Tab")  # Back
    page.keyboard.press("Tab")  # Submit
    assert focused(page)["text"] == nl("submit")
    page.keyboard.press("Enter")

    expect(widget(page).get_by_text(nl("success"))).to_be_visible()
    assert focused(page)["text"] == nl("success")
    subscriber, answers, _ = stored(host_page.live.app)
    assert subscriber.email == EMAIL
    assert answers == {"is_investor": "yes", "daytrading_experience": "some", "interests": ["crypto", "etfs"]}


def test_client_side_validation_messages(page: Page, host_page: HostPage) -> None:
    open_widget(page, host_page)
    button(page, nl("start")).click()
    button(page, nl("next")).click()  # nothing chosen

    group = widget(page).get_by_role("radiogroup", name="Vraag is_investor?")
    expect(widget(page).get_by_text(nl("error_answer"))).to_be_visible()
    expect(group).to_have_attribute("aria-invalid", "true")
    assert error_for(group) == nl("error_answer")
    assert focused(page)["value"] == "yes"  # focus went to the group with the problem
    widget(page).get_by_role("radio", name="Nee").check()
    button(page, nl("next")).click()
    expect(widget(page).get_by_text("Vraag 2 van 3")).to_be_visible()
    widget(page).get_by_role("radio", name="Actief").check()
    button(page, nl("next")).click()
    button(page, nl("next")).click()  # a multi question needs at least one answer too
    expect(widget(page).get_by_text(nl("error_answer"))).to_be_visible()
    widget(page).get_by_role("checkbox", name="Crypto").check()
    button(page, nl("next")).click()

    email_field(page).fill("not-an-email")
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("error_email"))).to_be_visible()
    expect(widget(page).get_by_text(nl("error_consent"))).to_be_visible()
    expect(email_field(page)).to_have_attribute("aria-invalid", "true")
    expect(report_box(page)).to_have_attribute("aria-invalid", "true")
    assert error_for(email_field(page)) == nl("error_email")
    assert error_for(report_box(page)) == nl("error_consent")
    assert focused(page)["type"] == "email"
    expect(follow_up_box(page)).not_to_have_attribute("aria-invalid", "true")  # optional: never an error
    assert subscriber_count(host_page.live.app) == 0

    fill_email_step(page)
    with page.expect_request(lambda request: request.method == "POST"):
        button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()


def test_an_error_goes_as_soon_as_its_field_is_put_right(page: Page, host_page: HostPage) -> None:
    open_widget(page, host_page)
    button(page, nl("start")).click()
    button(page, nl("next")).click()  # nothing chosen
    group = widget(page).get_by_role("radiogroup", name="Vraag is_investor?")
    expect(widget(page).get_by_text(nl("error_answer"))).to_be_visible()
    widget(page).get_by_role("radio", name="Nee").check()
    expect(widget(page).get_by_text(nl("error_answer"))).to_have_count(0)
    expect(group).not_to_have_attribute("aria-invalid", "true")
    button(page, nl("next")).click()
    widget(page).get_by_role("radio", name="Actief").check()
    button(page, nl("next")).click()

    # A question that takes several answers says so, and screen readers hear it with the question.
    hint = widget(page).get_by_text(nl("multi"))
    expect(hint).to_be_visible()
    assert nl("multi") in error_hint_texts(widget(page).locator("fieldset").filter(has_text=nl("multi")))
    widget(page).get_by_role("checkbox", name="Crypto").check()
    button(page, nl("next")).click()

    email_field(page).fill("not-an-email")
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("error_email"))).to_be_visible()
    email_field(page).fill("still-not")
    expect(widget(page).get_by_text(nl("error_email"))).to_be_visible()  # still wrong: still said
    email_field(page).fill(EMAIL)
    expect(widget(page).get_by_text(nl("error_email"))).to_have_count(0)
    expect(email_field(page)).not_to_have_attribute("aria-invalid", "true")
    report_box(page).check()
    expect(widget(page).get_by_text(nl("error_consent"))).to_have_count(0)


def error_hint_texts(field: Locator) -> list[str]:
    """The texts a field's aria-describedby points at."""
    texts: list[str] = field.evaluate(
        """el => el.getAttribute('aria-describedby').split(' ')
            .map((id) => el.getRootNode().getElementById(id).textContent)"""
    )
    return texts


def test_successful_submission_sends_the_contract_json(page: Page, host_page: HostPage) -> None:
    open_widget(page, host_page)
    answer_questions(page)
    fill_email_step(page, "  Lezer@Beleggen.NL ")
    # A cookie the API's origin set earlier must not travel with the submission (credentials: "omit").
    page.context.add_cookies([{"name": "tracking", "value": "1", "url": host_page.live.url}])
    with page.expect_request(lambda request: request.method == "POST") as posted:
        button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()

    request: Request = posted.value
    assert request.url == f"{host_page.live.url}/api/v1/widgets/daytrading-report/submissions"
    assert request.headers["content-type"] == "application/json"
    assert "cookie" not in request.all_headers()
    body = json.loads(request.post_data or "")
    token = body.pop("form_token")
    assert isinstance(token, str)
    assert token
    assert body == {
        "email": "Lezer@Beleggen.NL",
        "answers": {"is_investor": "yes", "daytrading_experience": "none", "interests": ["stocks", "crypto"]},
        "consent": {"report": True, "sequences": False},
        "page_url": host_page.url(),
        "timezone": "Europe/Amsterdam",
    }

    subscriber, answers, events = stored(host_page.live.app)
    assert subscriber.email == EMAIL
    assert subscriber.status.value == "pending"
    assert subscriber.timezone == "Europe/Amsterdam"
    assert subscriber.marketing_consent is False
    assert answers == {
        "is_investor": "yes",
        "daytrading_experience": "none",
        "interests": ["crypto", "stocks"],
    }
    assert [(event.kind.value, event.purposes) for event in events] == [("request", ["report"])]


def test_follow_up_consent_is_sent_only_when_ticked(page: Page, host_page: HostPage) -> None:
    open_widget(page, host_page)
    answer_questions(page)
    fill_email_step(page)
    follow_up_box(page).check()
    with page.expect_request(lambda request: request.method == "POST") as posted:
        button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()
    assert json.loads(posted.value.post_data or "")["consent"] == {"report": True, "sequences": True}
    _, _, events = stored(host_page.live.app)
    assert events[0].purposes == ["report", "sequences"]


def test_server_side_errors_appear_next_to_their_fields(page: Page, host_page: HostPage) -> None:
    open_widget(page, host_page)
    answer_questions(page)  # chose "Nieuw" (value "none") for daytrading_experience
    # While the reader types, an editor retires that option; and ".invalid" is not a domain mail can reach.
    with host_page.live.app.app_context():
        option = db.session.scalars(select(QuestionOption).where(QuestionOption.value == "none")).one()
        option.retired = True
        db.session.commit()
    fill_email_step(page, "lezer@beleggen.invalid")
    with page.expect_response(lambda response: response.request.method == "POST") as answered:
        button(page, nl("submit")).click()
    assert answered.value.status == 422
    errors = answered.value.json()["errors"]
    assert set(errors) == {"email", "answers.daytrading_experience"}

    # The widget moves to the earliest step with a problem and focuses it.
    group = widget(page).get_by_role("radiogroup", name="Vraag daytrading_experience?")
    expect(group).to_be_visible()
    expect(group).to_have_attribute("aria-invalid", "true")
    assert error_for(group) == errors["answers.daytrading_experience"]
    assert focused(page)["value"] == "none"
    group.get_by_role("radio", name="Geprobeerd").check()
    button(page, nl("next")).click()
    button(page, nl("next")).click()
    expect(email_field(page)).to_have_attribute("aria-invalid", "true")
    assert error_for(email_field(page)) == errors["email"]
    expect(email_field(page)).to_have_value("lezer@beleggen.invalid")
    assert subscriber_count(host_page.live.app) == 0


def test_network_failure_keeps_everything_and_allows_a_retry(page: Page, host_page: HostPage) -> None:
    open_widget(page, host_page)
    answer_questions(page)
    fill_email_step(page)
    follow_up_box(page).check()
    submissions = "**/api/v1/widgets/*/submissions"
    page.route(submissions, lambda route: route.abort("internetdisconnected"))
    button(page, nl("submit")).click()

    expect(widget(page).get_by_role("alert").filter(has_text=nl("error_network"))).to_be_visible()
    expect(email_field(page)).to_have_value(EMAIL)
    expect(report_box(page)).to_be_checked()
    expect(follow_up_box(page)).to_be_checked()
    submit = button(page, nl("submit"))
    expect(submit).to_be_enabled()
    expect(submit).not_to_have_attribute("aria-disabled", "true")
    assert subscriber_count(host_page.live.app) == 0

    page.unroute(submissions)
    submit.click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()
    _, answers, _ = stored(host_page.live.app)
    assert answers["interests"] == ["crypto", "stocks"]


def test_a_dead_api_server_shows_the_network_message(page: Page, host_page: HostPage) -> None:
    open_widget(page, host_page)
    answer_questions(page)
    fill_email_step(page)
    host_page.live.stop()  # also cuts the connections Chromium keeps alive
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("error_network"))).to_be_visible(timeout=20_000)
    expect(email_field(page)).to_have_value(EMAIL)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limit_and_server_errors_show_the_server_message(
    page: Page, host_page: HostPage, status: int
) -> None:
    open_widget(page, host_page)
    answer_questions(page)
    fill_email_step(page)

    def fail(route: Route) -> None:
        origin = route.request.headers.get("origin", "*")
        route.fulfill(status=status, json={"errors": {}}, headers={"Access-Control-Allow-Origin": origin})

    page.route("**/api/v1/widgets/*/submissions", fail)
    button(page, nl("submit")).click()
    message = nl("error_busy" if status == 429 else "error_server")  # rate-limited: try again later
    expect(widget(page).get_by_role("alert").filter(has_text=message)).to_be_visible()
    expect(email_field(page)).to_have_value(EMAIL)
    expect(button(page, nl("submit"))).not_to_have_attribute("aria-disabled", "true")


# --- locales, accessibility, layout ----------------------------------------------------------------------------


def test_dutch_and_english_widgets_show_their_texts(page: Page, host_page: HostPage) -> None:
    host_page.add_widget("daytrading-report-en", locale="en")
    for slug, lang in (("daytrading-report", "nl"), ("daytrading-report-en", "en")):
        open_widget(page, host_page, slug, lang)
        assert (
            page.evaluate(
                "document.querySelector('[data-leadcapture]').shadowRoot.querySelector('form').lang"
            )
            == lang
        )
        prompt = "Want our free report?" if lang == "en" else "Wil je ons gratis rapport?"
        expect(widget(page).get_by_text(prompt, exact=True)).to_be_visible()
        button(page, translate(lang, "widget.start")).click()
        expect(widget(page).get_by_text(translate(lang, "widget.progress", n=1, total=3))).to_be_visible()
        expect(widget(page).get_by_role("radio", name="Yes" if lang == "en" else "Ja")).to_be_visible()
        button(page, translate(lang, "widget.next")).click()
        expect(widget(page).get_by_text(translate(lang, "widget.error_answer"))).to_be_visible()
        expect(button(page, translate(lang, "widget.back"))).to_be_visible()
        for _ in range(3):
            widget(page).get_by_role("radio").or_(widget(page).get_by_role("checkbox")).first.check()
            button(page, translate(lang, "widget.next")).click()
        expect(widget(page).get_by_label(translate(lang, "widget.email_label"), exact=True)).to_be_visible()
        sequences = translate(lang, "widget.consent_sequences")
        expect(widget(page).get_by_role("checkbox", name=sequences)).not_to_be_checked()
        expect(button(page, translate(lang, "widget.submit"))).to_be_visible()


def test_no_axe_violations_at_any_step(page: Page, host_page: HostPage) -> None:
    open_widget(page, host_page)
    checked: list[str] = []

    def audit(state: str) -> None:
        violations = run_axe(page)
        assert not violations, f"axe-core at {state}:\n{describe(violations)}"
        checked.append(state)

    audit("prompt")
    button(page, nl("start")).click()
    button(page, nl("next")).click()
    expect(widget(page).get_by_text(nl("error_answer"))).to_be_visible()
    audit("question 1 with its error")
    widget(page).get_by_role("radio", name="Ja").check()
    button(page, nl("next")).click()
    audit("question 2")
    widget(page).get_by_role("radio", name="Nieuw").check()
    button(page, nl("next")).click()
    audit("question 3 (checkboxes)")
    widget(page).get_by_role("checkbox", name="Crypto").check()
    button(page, nl("next")).click()
    audit("email step")
    email_field(page).fill("nope")
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("error_consent"))).to_be_visible()
    audit("email step with errors")
    page.route("**/api/v1/widgets/*/submissions", lambda route: route.abort("internetdisconnected"))
    fill_email_step(page)
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("error_network"))).to_be_visible()
    audit("network error")
    page.unroute("**/api/v1/widgets/*/submissions")
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()
    audit("success")
    assert len(checked) == 8

    # The audits did look inside the shadow root: an unlabelled field slipped into it is caught.
    page.evaluate(
        "document.querySelector('[data-leadcapture]').shadowRoot.querySelector('form')"
        ".append(document.createElement('input'))"
    )
    assert "label" in {violation["id"] for violation in run_axe(page)}


def walk_through_every_state(page: Page, measure: Any) -> None:
    """Prompt, each question (one with its error), the email step with every message, then success."""
    measure()
    button(page, nl("start")).click()
    button(page, nl("next")).click()
    measure()
    widget(page).get_by_role("radio", name="Ja").check()
    button(page, nl("next")).click()
    widget(page).get_by_role("radio", name="Nieuw").check()
    button(page, nl("next")).click()
    widget(page).get_by_role("checkbox", name="Crypto").check()
    button(page, nl("next")).click()
    measure()
    email_field(page).fill("nope")
    button(page, nl("submit")).click()
    measure()
    fill_email_step(page)
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()
    measure()


def box_heights(page: Page) -> tuple[list[float], Any]:
    heights: list[float] = []

    def measure() -> None:
        page.wait_for_timeout(100)  # let a frame or two be painted and their shifts reported
        heights.append(host_height(page))

    return heights, measure


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (360, 740)])
def test_cumulative_layout_shift_is_zero(page: Page, host_page: HostPage, width: int, height: int) -> None:
    """The demo article as readers get it, on a desktop and a phone: CLS over load and a whole submission is
    exactly 0, and the widget's box keeps one height through every state."""
    page.set_viewport_size({"width": width, "height": height})
    page.add_init_script(LAYOUT_SHIFT_OBSERVER)
    open_widget(page, host_page)
    heights, measure = box_heights(page)
    walk_through_every_state(page, measure)

    shifts = page.evaluate("window.__shifts")
    assert sum(shift["value"] for shift in shifts if not shift["input"]) == 0, shifts
    assert not [shift for shift in shifts if "page" in shift["moved"]], shifts
    assert heights == [heights[0]] * len(heights)
    assert heights[0] >= WIDGET_HEIGHT


def test_page_content_never_moves_once_the_box_is_reserved(page: Page, host_page: HostPage) -> None:
    """Worst case: the widget and the text after it are on screen while the page loads (tall viewport).

    The box is reserved in the same task that finds the div; from then on, the definition arriving and every
    step, message and the success text stay inside it. Only the reservation itself can shift the page, and only
    when the browser painted the empty div before the async script ran (a race this page does not control).
    """
    page.set_viewport_size({"width": 1280, "height": 2600})
    page.add_init_script(LAYOUT_SHIFT_OBSERVER)
    held: list[Route] = []
    page.route("**/api/v1/widgets/*", lambda route: held.append(route))
    page.goto(host_page.url())
    page.wait_for_function("document.querySelector('[data-leadcapture]').shadowRoot !== null")
    assert page.evaluate(
        "document.querySelector('[data-leadcapture]').getBoundingClientRect().bottom < innerHeight - 200"
    )
    page.wait_for_timeout(200)
    reserved_at = page.evaluate("performance.now()")
    assert len(held) == 1
    held[0].continue_()
    expect(button(page, nl("start"))).to_be_visible()
    heights, measure = box_heights(page)
    walk_through_every_state(page, measure)

    shifts = page.evaluate("window.__shifts")
    later = [shift for shift in shifts if shift["time"] > reserved_at]
    assert sum(shift["value"] for shift in later if not shift["input"]) == 0, later
    assert not [shift for shift in later if "page" in shift["moved"]], later
    assert heights == [WIDGET_HEIGHT] * len(heights)
    reservation = sum(shift["value"] for shift in shifts if shift["time"] <= reserved_at)
    print(f"layout shift from reserving the box after first paint: {reservation:.4f}")


def test_the_box_is_reserved_before_the_definition_arrives(page: Page, host_page: HostPage) -> None:
    """The loader reserves the widget's box synchronously; the definition (held back here) only fills it."""
    held: list[Route] = []
    page.route("**/api/v1/widgets/*", lambda route: held.append(route))
    page.goto(host_page.url())
    page.wait_for_function("document.querySelector('[data-leadcapture]').shadowRoot !== null")
    assert host_height(page) == WIDGET_HEIGHT
    page.wait_for_timeout(50)
    assert len(held) == 1
    held[0].continue_()
    expect(button(page, nl("start"))).to_be_visible()
    assert host_height(page) == WIDGET_HEIGHT


# --- what the loader does when things go wrong -------------------------------------------------------------------


@pytest.mark.parametrize("case", ["origin not allowed", "unknown widget"])
def test_a_widget_that_cannot_be_shown_renders_nothing(page: Page, host_page: HostPage, case: str) -> None:
    if case == "origin not allowed":
        host_page.add_widget("elsewhere", allowed_origins=["https://beleggen.example"])
        slug = "elsewhere"
    else:
        slug = "no-such-widget"
    messages = console_messages(page)
    page.goto(host_page.url(slug))
    page.wait_for_function(
        "document.querySelector('[data-leadcapture]').shadowRoot.querySelector('.w') === null"
    )
    assert host_height(page) == 0
    warnings = [m.text for m in messages if m.type == "warning"]
    assert any(f'widget "{slug}" not shown' in text for text in warnings), warnings
    # (The page fixture fails the test on any uncaught exception in the page.)


def test_a_definition_that_cannot_be_loaded_offers_a_retry(page: Page, host_page: HostPage) -> None:
    page.route("**/api/v1/widgets/*", lambda route: route.abort("internetdisconnected"))
    page.goto(host_page.url())
    expect(widget(page).get_by_role("alert")).to_have_text("Laden is niet gelukt.")
    page.unroute("**/api/v1/widgets/*")
    button(page, "Opnieuw proberen").click()
    expect(button(page, nl("start"))).to_be_visible()


def test_loaded_twice_and_late_widgets_render_once_each(page: Page, host_page: HostPage) -> None:
    url = host_page.serve(
        "/twice",
        """<!doctype html><html lang="nl"><head><title>Twee keer</title></head><body><main>
        <script async src="{base_url}/embed.js"></script><div data-leadcapture="daytrading-report"></div>
        <script async src="{base_url}/embed.js"></script><div data-leadcapture="daytrading-report"></div>
        <script>setTimeout(() => {
          const late = document.createElement('div');
          late.setAttribute('data-leadcapture', 'daytrading-report');
          document.querySelector('main').append(late);
        }, 300);</script>
        </main></body></html>""",
    )
    page.goto(url)
    expect(page.locator("[data-leadcapture] form")).to_have_count(3)
    page.wait_for_timeout(300)
    assert page.evaluate(
        "[...document.querySelectorAll('[data-leadcapture]')].map(h => h.shadowRoot.querySelectorAll('form').length)"
    ) == [1, 1, 1]


# --- the acceptance: article → confirmation email → confirm → report email → download ------------------


def link_in(message: EmailMessage, route: str) -> str:
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    links = re.findall(rf"https?://\S+/{route}/[^\s<>\"']+", str(text.get_content()))
    assert links, f"no /{route}/ link in:\n{text.get_content()}"
    return str(links[0])


def test_journey_from_article_to_downloaded_report(
    page: Page, host_page: HostPage, smtp_sink: SmtpSink
) -> None:
    live = host_page.live
    open_widget(page, host_page)
    answer_questions(page)
    fill_email_step(page)
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()

    confirm_mail = smtp_sink.wait_for(1)[0].message
    assert confirm_mail["X-Leadcapture-Kind"] == "confirm"
    assert EMAIL in str(confirm_mail["To"])
    confirm_link = link_in(confirm_mail, "confirm")
    assert confirm_link.startswith(live.url)

    page.goto(confirm_link)  # a GET shows a page and changes nothing
    assert stored(live.app)[0].status.value == "pending"
    with live.app.app_context():
        assert len(db.session.scalars(select(Delivery)).all()) == 1
    page.get_by_role("button", name=translate("nl", "page.confirm.button")).click()
    report_mail = smtp_sink.wait_for(2)[1].message
    assert report_mail["X-Leadcapture-Kind"] == "report"
    download_link = link_in(report_mail, "download")

    page.goto(download_link)  # a GET shows the page with the button
    with page.expect_download() as started:
        page.get_by_role("button", name=translate("nl", "page.download.button")).click()
    download = started.value
    assert download.suggested_filename.endswith(".pdf")
    with open(download.path(), "rb") as file:
        assert file.read() == PDF_BYTES
    subscriber, _, _ = stored(live.app)
    assert subscriber.status.value == "confirmed"


# --- GET /embed.js (no browser needed) ----------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_embed_js_is_served_for_any_page(client: FlaskClient) -> None:
    plain = client.get("/embed.js")
    assert plain.status_code == 200
    assert plain.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert plain.headers["Cache-Control"] == "public, max-age=300"
    assert plain.headers["Access-Control-Allow-Origin"] == "*"
    assert plain.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Encoding" not in plain.headers
    assert plain.data == lean(EMBED_PATH.read_bytes())

    zipped = client.get("/embed.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(zipped.data) == plain.data
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    assert client.get("/embed.js", headers={"Accept-Encoding": "gzip;q=0"}).data == plain.data

    for response in (plain, zipped):
        again = client.get("/embed.js", headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304
        assert again.data == b""
        assert again.headers["ETag"] == plain.headers["ETag"]
    assert client.get("/embed.js", headers={"If-None-Match": '"stale"'}).status_code == 200
