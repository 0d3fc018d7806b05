"""The dashboard at /admin/: who may see it, the numbers it shows, inert editor text, a hostile period."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from flask import Flask
from flask.testing import FlaskClient

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Role
from tests.support.admin import add_account, sign_in
from tests.support.insights import NOW, add_person, build_answers, build_funnels
from tests.support.interest import add_topic, build_interest_history

NONE = "\N{EN DASH}"  # no rate for the first step
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']

pytestmark = pytest.mark.settings(WTF_CSRF_ENABLED=True)


@pytest.fixture
def history(app: Flask) -> None:
    clock.freeze(NOW)
    with app.app_context():
        build_funnels()
        build_answers()
        db.session.commit()


def sign_in_as(client: FlaskClient, app: Flask, role: Role = Role.EDITOR) -> None:
    email = f"{role.value}@beleggen.example"
    add_account(app, email, role)
    assert sign_in(client, email).status_code == 302


class Charts(HTMLParser):
    """Each chart section of the page: its heading, and its table's rows as lists of cell texts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.charts: dict[str, list[list[str]]] = {}
        self._heading: list[str] | None = None
        self._current = ""
        self._cell: list[str] | None = None
        self._in_body = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h3":
            self._heading = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.charts[self._current].append([])
        elif tag in ("th", "td") and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h3" and self._heading is not None:
            self._current = "".join(self._heading).strip()
            self.charts[self._current] = []
            self._heading = None
        elif tag == "tbody":
            self._in_body = False
        elif tag in ("th", "td") and self._cell is not None:
            self.charts[self._current][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        for collector in (self._heading, self._cell):
            if collector is not None:
                collector.append(data)


def charts(client: FlaskClient, query: str = "", status: int = 200) -> dict[str, list[list[str]]]:
    response = client.get("/admin/" + query)
    assert response.status_code == status
    return Charts(response.text).charts


def test_anonymous_visitors_are_sent_to_sign_in(client: FlaskClient) -> None:
    response = client.get("/admin/?period=7")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize("role", [Role.EDITOR, Role.ADMIN])
def test_the_dashboard_shows_each_funnel_and_the_current_answers(
    app: Flask, client: FlaskClient, role: Role
) -> None:
    sign_in_as(client, app, role)
    shown = charts(client)
    assert shown["alpha"] == [
        ["Impressions", "115", NONE],
        ["Submissions", "4", "3.5%"],
        ["Confirmations", "3", "75.0%"],
        ["Downloads", "2", "66.7%"],
    ]
    assert shown["beta"] == [
        ["Impressions", "0", NONE],
        ["Submissions", "1", "n/a"],
        ["Confirmations", "1", "100.0%"],
        ["Downloads", "0", "0.0%"],
    ]
    assert shown["Question is_investor?"] == [["Yes", "2", "66.7%"], ["No", "1", "33.3%"]]
    assert shown["Question interests?"] == [
        ["Stocks", "1", "33.3%"],
        ["ETFs", "0", "0.0%"],
        ["Crypto", "2", "66.7%"],
    ]
    assert shown["Question experience?"] == [
        ["New", "0", "0.0%"],
        ["Tried", "1", "33.3%"],
        ["Veteran retired", "1", "33.3%"],
        ["legacy retired", "1", "33.3%"],
    ]


@pytest.mark.usefixtures("history")
def test_the_period_selector_changes_the_funnels(app: Flask, client: FlaskClient) -> None:
    sign_in_as(client, app)
    page = client.get("/admin/?period=7").text
    assert '<option selected value="7">Last 7 days</option>' in page
    assert "24 Feb 2026 to\n  2 Mar 2026" in page
    shown = Charts(page).charts
    assert [row[1] for row in shown["alpha"]] == ["15", "3", "2", "1"]
    assert [row[1] for row in charts(client, "?period=90")["alpha"]] == ["1,115", "5", "4", "2"]


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize(
    "period", ["abc", "-7", "0", "14", "99999999999999999999999", "7.5", "", XSS[0], XSS[1], "7%00"]
)
def test_a_hostile_period_is_refused_clearly_and_the_default_shown(
    app: Flask, client: FlaskClient, period: str
) -> None:
    sign_in_as(client, app)
    response = client.get("/admin/", query_string={"period": period})
    assert response.status_code == 400
    assert "Choose one of the periods offered" in response.text
    assert 'aria-describedby="period-error"' in response.text
    assert '<option selected value="30">Last 30 days</option>' in response.text
    assert [row[1] for row in Charts(response.text).charts["alpha"]] == ["115", "4", "3", "2"]
    for payload in XSS:
        assert payload not in response.text


def test_editor_text_is_rendered_inert(app: Flask, client: FlaskClient) -> None:
    from tests.factories import make_question, make_widget

    with app.app_context():
        widget = make_widget("xss")
        widget.report.title = {"nl": XSS[0], "en": XSS[1]}
        question = make_question("hostile", "choice")
        question.text = {"en": XSS[0]}
        question.options[0].label = {"en": XSS[1]}
        question.options[1].label = {"en": XSS[0]}
        db.session.commit()
    sign_in_as(client, app)
    page = client.get("/admin/").text
    for payload in XSS:
        assert payload not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert Charts(page).charts[XSS[0]][0][0] == XSS[1]  # shown as the text it is


def test_nothing_to_show_yet(app: Flask, client: FlaskClient) -> None:
    sign_in_as(client, app)
    page = client.get("/admin/").text
    assert "No widgets yet." in page
    assert "No questions yet." in page
    assert "No topics yet." in page
    assert "Clicks and reads per topic" not in page


TOPICS = "Clicks and reads per topic"


@pytest.mark.usefixtures("history")
def test_clicks_and_reads_per_topic_follow_the_period_with_scanners_counted_apart(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        build_interest_history([add_person(f"reader{number}@beleggen.example") for number in (1, 2, 3)])
        db.session.commit()
    sign_in_as(client, app)
    assert charts(client, "?period=7")[TOPICS] == [
        ["Crypto crypto", "0", "0", "0", "0"],
        ["Daytrading daytrading", "3", "1", "3", "3 (burst 1, trap 2)"],
        ["ETFs etfs", "1", "0", "1", "1 (agent 1)"],
        ["Links in no topic", "1", "0", "1", "0"],
    ]
    assert charts(client)[TOPICS] == [
        ["Crypto crypto", "0", "0", "0", "0"],
        ["Daytrading daytrading", "4", "2", "3", "3 (burst 1, trap 2)"],
        ["ETFs etfs", "1", "1", "2", "1 (agent 1)"],
        ["Links in no topic", "1", "0", "1", "0"],
    ]
    page = client.get("/admin/?period=90").text
    daytrading = ["Daytrading daytrading", "5", "2", "3", "4 (burst 1, early 1, trap 2)"]
    assert Charts(page).charts[TOPICS][1] == daytrading
    assert "Last 90 days · people: subscribers who clicked or read at least once" in page
    assert "No topics yet." not in page


@pytest.mark.usefixtures("history")
def test_topics_without_any_clicks_or_reads_show_zeros(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        add_topic("daytrading", name=XSS[0])
        db.session.commit()
    sign_in_as(client, app)
    page = client.get("/admin/").text
    assert Charts(page).charts[TOPICS] == [[f"{XSS[0]} daytrading", "0", "0", "0", "0"]]
    assert XSS[0] not in page
