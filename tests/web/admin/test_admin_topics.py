"""The admin's topic pages: gates, the list and its URL look-up, creating and editing a topic through the same
checks as `content check`, problems shown at their field, edits by two editors, and a retired topic."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select

from leadcapture.config import BUNDLED_CONTENT_DIR
from leadcapture.definitions import read_content
from leadcapture.extensions import db
from leadcapture.models import Topic
from leadcapture.services.content import load_content
from tests.support.admin import add_account, csrf_token, sign_in

pytestmark = pytest.mark.settings(WTF_CSRF_ENABLED=True)

XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')


@pytest.fixture
def demo(app: Flask) -> None:
    """The demo content, as `content load` stores it: three questions, three topics and the rest."""
    with app.app_context():
        load_content(read_content(BUNDLED_CONTENT_DIR))
        db.session.commit()


@pytest.fixture
def editor(app: Flask, client: FlaskClient) -> FlaskClient:
    """The client, signed in as an editor (not an admin)."""
    add_account(app)
    assert sign_in(client).status_code == 302
    return client


def topic_row(app: Flask, key: str) -> tuple[Any, ...] | None:
    """(name, URL rules, half-life, the question's key, version) of a stored topic; None if there is none."""
    with app.app_context():
        topic = db.session.scalar(select(Topic).where(Topic.key == key))
        if topic is None:
            return None
        question = topic.question.key if topic.question else None
        return (dict(topic.name), list(topic.urls), topic.half_life_days, question, topic.version)


def save(client: FlaskClient, path: str, data: dict[str, Any]) -> Any:
    """POST the page's form with its CSRF token."""
    return client.post(path, data={"csrf_token": csrf_token(client, path), "action": "save", **data})


def form_of(page: str) -> dict[str, str]:
    """The values of the topic form on `page`, as a browser sends them back unchanged."""
    data: dict[str, str] = {}
    for tag in re.findall(r"<input [^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and name.group(1) not in ("csrf_token", "url"):
            data[name.group(1)] = html.unescape(value.group(1)) if value else ""
    for name, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>\r?\n?([^<]*)</textarea>', page):
        data[name] = html.unescape(body)
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.DOTALL):
        chosen = re.search(r'<option selected value="([^"]*)"', options) or re.search(
            r'<option value="([^"]*)" selected', options
        )
        data[name] = html.unescape(chosen.group(1)) if chosen else ""
    return data


def flashed(client: FlaskClient, response: Any) -> list[str]:
    """The messages shown on the page a save redirects to."""
    assert response.status_code == 302, response.text
    page = client.get(response.headers["Location"]).text
    shown = re.findall(r'<p class="flash [a-z]+" role="[a-z]+">([^<]*)</p>', page)
    return [html.unescape(text) for text in shown]


def field_error(page: str, field_id: str) -> str:
    """The error shown at a field, checking that the field points at it for screen readers."""
    match = re.search(rf'<p class="error" id="{field_id}-error">([^<]*)</p>', page)
    assert match, f"no error at {field_id}"
    assert re.search(rf'aria-describedby="[^"]*{field_id}-error', page), f"{field_id} does not point at it"
    return html.unescape(match.group(1))


# --- gates and the list ------------------------------------------------------------------------------------

PAGES = ("/admin/topics/", "/admin/topics/new", "/admin/topics/daytrading")


@pytest.mark.usefixtures("demo")
def test_every_topic_page_needs_a_signed_in_account(client: FlaskClient) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/admin/login?next=" + path)


@pytest.mark.usefixtures("demo")
def test_an_editor_finds_the_topics_in_the_navigation_and_sees_every_page(editor: FlaskClient) -> None:
    assert '<a href="/admin/topics/">Topics</a>' in editor.get("/admin/").text
    for path in PAGES:
        assert editor.get(path).status_code == 200, path
    assert editor.get("/admin/topics/no_such_topic").status_code == 404
    assert editor.get("/admin/topics/" + "x" * 5000).status_code == 404


@pytest.mark.usefixtures("demo")
def test_the_list_shows_each_topic_its_rules_and_question(editor: FlaskClient) -> None:
    page = html.unescape(editor.get("/admin/topics/").text)
    for key in ("daytrading", "etfs", "investing"):
        assert f'<a href="/admin/topics/{key}"><code>{key}</code></a>' in page
    assert '<span lang="nl">Daytraden</span>' in page
    assert "<code>https://beleggen.example/daytraden/</code>" in page
    assert "and 3 more" in page  # six rules, three shown
    assert "<code>daytrading_experience</code>" in page
    assert "90 days" in page


@pytest.mark.usefixtures("demo")
@pytest.mark.parametrize(
    ("url", "answer"),
    [
        ("https://beleggen.example/daytraden/zo-begin-je?lc=x", "falls under topic"),
        ("http://127.0.0.1:5001/en/investing/", "falls under topic"),
        ("https://elsewhere.example/daytraden/", "falls under no topic"),
        ("javascript:alert(1)", "falls under no topic"),
        ("https://beleggen.example/daytraden/" + "a" * 10_000, "falls under no topic"),
    ],
)
def test_the_list_says_which_topic_a_url_falls_under(editor: FlaskClient, url: str, answer: str) -> None:
    response = editor.get("/admin/topics/", query_string={"url": url})
    assert response.status_code == 200
    status = re.search(r'<p role="status">(.*?)</p>', response.text, re.DOTALL)
    assert status
    assert answer in status.group(1)
    if "daytraden" in url and answer == "falls under topic":
        assert '<a href="/admin/topics/daytrading"><code>daytrading</code></a>' in status.group(1)
    if "investing" in url:
        assert "<code>investing</code>" in status.group(1)


# --- creating and editing -------------------------------------------------------------------------------


def new_topic(**overrides: str) -> dict[str, str]:
    data = {
        "key": "crypto",
        "name_nl": "Crypto",
        "name_en": "Crypto",
        "urls": "https://beleggen.example/crypto/\n\nhttps://*.beleggen.example/*/crypto/\n",
        "half_life_days": "14",
        "question": "investment_interests",
    }
    data.update(overrides)
    return data


@pytest.mark.usefixtures("demo")
def test_an_editor_creates_a_topic(app: Flask, editor: FlaskClient) -> None:
    response = save(editor, "/admin/topics/new", new_topic())
    assert flashed(editor, response) == ["created topic crypto"]
    assert response.headers["Location"] == "/admin/topics/crypto"
    assert topic_row(app, "crypto") == (
        {"nl": "Crypto", "en": "Crypto"},
        ["https://beleggen.example/crypto/", "https://*.beleggen.example/*/crypto/"],
        14,
        "investment_interests",
        1,
    )


@pytest.mark.usefixtures("demo")
def test_a_new_topic_with_a_stored_key_changes_nothing(app: Flask, editor: FlaskClient) -> None:
    before = topic_row(app, "etfs")
    response = save(editor, "/admin/topics/new", new_topic(key="etfs"))
    assert response.status_code == 200
    assert field_error(response.text, "key") == (
        "A topic with the key 'etfs' exists already; open it from the list to edit it."
    )
    assert topic_row(app, "etfs") == before


@pytest.mark.usefixtures("demo")
def test_an_editor_edits_a_topic_and_an_unchanged_save_changes_nothing(
    app: Flask, editor: FlaskClient
) -> None:
    path = "/admin/topics/etfs"
    data = form_of(editor.get(path).text)
    assert data["urls"].splitlines()[0] == "https://beleggen.example/etf*/"
    assert (data["half_life_days"], data["question"]) == ("30", "")
    data["urls"] = "https://beleggen.example/etfs/\nhttps://beleggen.example/indexfondsen/"
    data["half_life_days"] = "60"
    assert flashed(editor, save(editor, path, data)) == ["updated topic etfs (urls, half_life_days)"]
    _, urls, half_life, question, version = topic_row(app, "etfs") or ()
    assert (urls, half_life, question, version) == (
        ["https://beleggen.example/etfs/", "https://beleggen.example/indexfondsen/"],
        60,
        None,
        2,
    )
    assert flashed(editor, save(editor, path, form_of(editor.get(path).text))) == ["Nothing changed."]


@pytest.mark.usefixtures("demo")
def test_problems_are_shown_at_their_field_and_nothing_is_saved(app: Flask, editor: FlaskClient) -> None:
    path = "/admin/topics/daytrading"
    before = topic_row(app, "daytrading")
    data = form_of(editor.get(path).text)
    data.update(
        urls="\n".join(
            [
                "https://beleggen.example/daytraden/",
                "",
                "ftp://beleggen.example/x/",
                "https://beleggen.example/?q=1",
            ]
        ),
        half_life_days="0",
        name_nl="",
        name_en="",
    )
    response = save(editor, path, data)
    assert response.status_code == 200
    assert field_error(response.text, "urls") == (
        "Line 3: 'ftp://beleggen.example/x/' must be a URL starting with https:// or http:// "
        "(e.g. https://beleggen.example/daytraden/). "
        "Line 4: 'https://beleggen.example/?q=1' must not have a query (?…) or fragment (#…): a rule "
        "matches a URL's path."
    )
    assert field_error(response.text, "half_life_days") == "Must be between 1 and 3650, not 0."
    assert "Is required." in html.unescape(response.text)  # the name
    assert "ftp://beleggen.example/x/" in html.unescape(response.text)  # the input is kept
    assert topic_row(app, "daytrading") == before

    data = form_of(editor.get(path).text)
    data.update(urls="", half_life_days="99999")
    response = save(editor, path, data)
    assert field_error(response.text, "urls") == (
        "A topic has 1 to 100 URL rules (e.g. https://beleggen.example/daytraden/), not 0."
    )
    assert field_error(response.text, "half_life_days") == "Must be between 1 and 3650, not 99999."
    assert topic_row(app, "daytrading") == before


@pytest.mark.usefixtures("demo")
def test_a_new_topic_with_a_bad_key_or_an_unknown_question_is_refused(
    app: Flask, editor: FlaskClient
) -> None:
    response = save(editor, "/admin/topics/new", new_topic(key="Crypto Coins", question="no_such_question"))
    assert response.status_code == 200
    assert "is not valid: use a lowercase letter" in field_error(response.text, "key")
    assert field_error(response.text, "question") == "Unknown question 'no_such_question'."
    assert topic_row(app, "crypto") is None


@pytest.mark.usefixtures("demo")
def test_a_hostile_form_is_refused_without_saving(app: Flask, editor: FlaskClient) -> None:
    lines = "\n".join(f"https://beleggen.example/{index}/" for index in range(20_000))
    response = save(editor, "/admin/topics/new", new_topic(urls=lines, half_life_days="9" * 50))
    assert response.status_code == 200
    assert field_error(response.text, "urls") == (
        "A topic has 1 to 100 URL rules (e.g. https://beleggen.example/daytraden/), not 500."
    )
    assert topic_row(app, "crypto") is None


@pytest.mark.usefixtures("demo")
def test_saving_without_a_csrf_token_fails_and_changes_nothing(app: Flask, editor: FlaskClient) -> None:
    before = topic_row(app, "etfs")
    for path, data in (("/admin/topics/etfs", new_topic(key="etfs")), ("/admin/topics/new", new_topic())):
        assert editor.post(path, data={**data, "action": "save"}).status_code == 400, path
    assert topic_row(app, "etfs") == before
    assert topic_row(app, "crypto") is None


@pytest.mark.usefixtures("demo")
def test_a_topic_changed_by_someone_else_since_it_was_opened_is_not_overwritten(
    app: Flask, editor: FlaskClient
) -> None:
    path = "/admin/topics/investing"
    mine = {**form_of(editor.get(path).text), "name_en": "Investing, broadly", "half_life_days": "120"}
    theirs = {**form_of(editor.get(path).text), "name_en": "Their name"}
    assert flashed(editor, save(editor, path, theirs)) == ["updated topic investing (name)"]

    response = save(editor, path, mine)
    assert response.status_code == 200
    page = html.unescape(response.text)
    assert "someone else saved this topic since you opened it" in page
    assert field_error(response.text, "name") == "Changed by someone else since you opened it."
    assert 'value="Investing, broadly"' in page  # the editor's input is kept
    assert 'value="120"' in page
    assert (topic_row(app, "investing") or ())[0]["en"] == "Their name"

    # Saved again from that page, knowingly: the editor's version replaces theirs.
    assert flashed(editor, save(editor, path, form_of(response.text))) == [
        "updated topic investing (name, half_life_days)"
    ]
    assert (topic_row(app, "investing") or ())[0]["en"] == "Investing, broadly"


@pytest.mark.usefixtures("demo")
@pytest.mark.parametrize("payload", XSS)
def test_topic_names_and_rules_are_inert_in_the_admin(app: Flask, editor: FlaskClient, payload: str) -> None:
    path = "/admin/topics/etfs"
    data = {**form_of(editor.get(path).text), "name_nl": payload}
    assert flashed(editor, save(editor, path, data)) == ["updated topic etfs (name)"]
    for page in (editor.get(path).text, editor.get("/admin/topics/").text):
        assert payload not in page
        assert str(escape(payload)) in page
    looked_up = editor.get("/admin/topics/", query_string={"url": payload}).text
    assert payload not in looked_up


def test_a_retired_topic_says_so_and_comes_back_with_rules(app: Flask, editor: FlaskClient) -> None:
    with app.app_context():
        bundle = read_content(BUNDLED_CONTENT_DIR)
        load_content(bundle)
        topic = db.session.scalars(select(Topic).where(Topic.key == "etfs")).one()
        topic.urls = []  # as `content load` leaves a topic whose file went while interest in it was on record
        db.session.commit()
    assert '<code>etfs</code></a> <span class="badge">retired</span>' in editor.get("/admin/topics/").text
    path = "/admin/topics/etfs"
    page = editor.get(path).text
    assert "Retired: its file left the content folder" in page
    data = form_of(page)
    assert data["urls"] == ""
    data["urls"] = "https://beleggen.example/etfs/"
    assert flashed(editor, save(editor, path, data)) == ["updated topic etfs (urls)"]
    assert "Retired" not in editor.get(path).text
    assert (topic_row(app, "etfs") or ())[1:3] == (["https://beleggen.example/etfs/"], 30)
