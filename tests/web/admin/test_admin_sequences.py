"""The sequence editor in the admin: gates, the rule builder, steps, problems, previews and the live count."""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    OnChange,
    Sequence,
    SignalSource,
    Subscriber,
    Topic,
)
from leadcapture.services import editing, sequence_editing
from leadcapture.services.answers import answer_states
from leadcapture.services.audiences import count_audience
from leadcapture.services.interests import record_signal
from leadcapture.services.sequences import sequence_is_for, switch_sequences
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_question, make_sequence, make_subscriber
from tests.support.admin import add_account, csrf_token, reword_problems, sign_in
from tests.support.people import person

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'

pytestmark = pytest.mark.settings(WTF_CSRF_ENABLED=True)


@pytest.fixture
def questions(app: Flask) -> None:
    with app.app_context():
        make_question("is_investor", "yes_no")
        make_question("daytrading_experience", "choice")
        make_question("interests", "multi")
        db.session.commit()


@pytest.fixture
def editor(app: Flask, questions: None) -> None:
    add_account(app)


@pytest.fixture
def token(client: FlaskClient, editor: None) -> str:
    """Signed in as an editor; the session's CSRF token."""
    assert sign_in(client).status_code == 302
    return csrf_token(client, "/admin/sequences/new")


@pytest.fixture
def existing(app: Flask, questions: None) -> None:
    with app.app_context():
        make_sequence("beginners", {"daytrading_experience": ["none", "some"]}, locale="nl")
        db.session.commit()


def form(
    token: str | None,
    *,
    slug: str = "starters",
    name: str = "Starters",
    locale: str = "nl",
    on_change: str = "finish_step",
    priority: str = "5",
    fresh_only: bool = False,
    rule: dict[str, str | list[str]] | None = None,
    steps: list[dict[str, str]] | None = None,
    action: str = "save",
) -> dict[str, Any]:
    """The edit form as a browser posts it."""
    data: dict[str, Any] = {
        "slug": slug,
        "name": name,
        "locale": locale,
        "on_change": on_change,
        "priority": priority,
        "action": action,
    }
    if token is not None:
        data["csrf_token"] = token
    if fresh_only:
        data["fresh_only"] = "y"
    data.update(rule or {})
    if steps is None:
        steps = [
            {"after_number": "1", "after_unit": "days", "subject": "Welkom!", "body": "Hallo daar."},
            {"after_number": "3", "after_unit": "days", "subject": "Over risico", "body": "Lees dit."},
        ]
    for index, step in enumerate(steps):
        for name_, value in {"file": "", **step}.items():
            data[f"steps-{index}-{name_}"] = value
    return data


def sequence(app: Flask, slug: str) -> Sequence | None:
    with app.app_context():
        row = db.session.scalar(select(Sequence).where(Sequence.slug == slug))
        if row is not None:
            row.steps  # noqa: B018 - loaded before the session goes
            db.session.expunge_all()
        return row


def sequence_count(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count(Sequence.id))) or 0)


# --- gates ----------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("existing", "editor")
@pytest.mark.parametrize(
    "path",
    ["/admin/sequences/", "/admin/sequences/new", "/admin/sequences/beginners",
     "/admin/sequences/beginners/switch-off", "/admin/sequences/audience-count"],
)  # fmt: skip
def test_every_sequence_page_needs_a_signed_in_account(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")


@pytest.mark.usefixtures("existing", "editor")
def test_an_anonymous_post_saves_nothing(app: Flask, client: FlaskClient) -> None:
    anonymous = csrf_token(client)  # a genuine token of a session that is not signed in
    response = client.post("/admin/sequences/new", data=form(anonymous))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")
    response = client.post("/admin/sequences/beginners/switch-off", data={"csrf_token": anonymous})
    assert response.status_code == 302
    assert sequence(app, "starters") is None
    found = sequence(app, "beginners")
    assert found is not None
    assert found.active


@pytest.mark.usefixtures("existing")
def test_posts_without_a_csrf_token_fail_and_change_nothing(
    app: Flask, client: FlaskClient, token: str
) -> None:
    assert client.post("/admin/sequences/new", data=form(None)).status_code == 400
    edited = form(None, slug="beginners", name="Renamed")
    assert client.post("/admin/sequences/beginners", data=edited).status_code == 400
    assert client.post("/admin/sequences/beginners/switch-off").status_code == 400
    assert sequence(app, "starters") is None
    found = sequence(app, "beginners")
    assert found is not None
    assert found.active
    assert found.name == "Sequence beginners"


# --- creating and editing -------------------------------------------------------------------------------


def test_an_editor_creates_a_sequence(app: Flask, client: FlaskClient, token: str) -> None:
    rule = {"rule-is_investor": "answered", "rule-daytrading_experience": "any_of",
            "rule-daytrading_experience-values": ["some", "none"]}  # fmt: skip
    response = client.post("/admin/sequences/new", data=form(token, rule=rule))
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/sequences/starters"
    created = sequence(app, "starters")
    assert created is not None
    assert (created.name, created.locale, created.on_change, created.priority, created.fresh_only) == (
        "Starters", "nl", OnChange.FINISH_STEP, 5, False
    )  # fmt: skip
    assert created.active
    assert created.audience == {"is_investor": {"answered": True}, "daytrading_experience": ["none", "some"]}
    assert [(step.key, step.delay_seconds, step.subject, step.body) for step in created.steps] == [
        ("01-welkom.md", 86400, "Welkom!", "Hallo daar."),
        ("02-over-risico.md", 3 * 86400, "Over risico", "Lees dit."),
    ]
    page = client.get(response.headers["Location"]).text
    assert "Saved: created sequence starters." in page
    listing = client.get("/admin/sequences/").text
    assert 'href="/admin/sequences/starters">Starters</a>' in listing
    assert "daytrading_experience: any of these none, some; is_investor: answered" in listing


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {}),
        (
            {"rule-is_investor": "any_of", "rule-is_investor-values": "yes"},
            {"is_investor": ["yes"]},
        ),
        (
            {"rule-daytrading_experience": "none_of", "rule-daytrading_experience-values": ["active", "none"]},
            {"daytrading_experience": {"none_of": ["none", "active"]}},
        ),
        (
            {"rule-interests": "all_of", "rule-interests-values": ["etfs", "stocks"],
             "rule-is_investor": "unanswered"},
            {"is_investor": {"answered": False}, "interests": {"all_of": ["stocks", "etfs"]}},
        ),
        (
            # values ticked under a question without a condition do not count
            {"rule-interests": "", "rule-interests-values": ["crypto"], "rule-daytrading_experience": "answered"},
            {"daytrading_experience": {"answered": True}},
        ),
    ],
)  # fmt: skip
def test_the_rule_builder_produces_exactly_the_rule(
    app: Flask, client: FlaskClient, token: str, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    response = client.post("/admin/sequences/new", data=form(token, rule=fields))
    assert response.status_code == 302, response.text
    created = sequence(app, "starters")
    assert created is not None
    assert created.audience == expected
    # Shown again, the builder holds the same rule: saving it unchanged changes nothing.
    page = client.get("/admin/sequences/starters").text
    again = form(token, rule=_rule_fields(page), steps=_step_fields(page))
    response = client.post("/admin/sequences/starters", data=again, follow_redirects=True)
    assert "Nothing changed." in response.text
    saved = sequence(app, "starters")
    assert saved is not None
    assert saved.audience == expected


def _rule_fields(page: str) -> dict[str, list[str]]:
    """The rule builder's fields as the page fills them in."""
    fields: dict[str, list[str]] = {}
    for tag in re.findall(r"<input [^>]*name=\"rule-[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        assert name
        assert value
        if 'type="hidden"' in tag or " checked" in tag:
            fields.setdefault(name.group(1), []).append(unescape(value.group(1)))
    return fields


def _step_fields(page: str) -> list[dict[str, str]]:
    steps = []
    for index in range(50):
        file = re.search(rf'name="steps-{index}-file" value="([^"]*)"', page)
        if file is None:
            break
        number = re.search(rf'name="steps-{index}-after_number" value="([^"]*)"', page)
        unit = re.search(
            rf'name="steps-{index}-after_unit".*?<option value="(\w+)" selected', page, re.DOTALL
        )
        subject = re.search(rf'name="steps-{index}-subject" value="([^"]*)"', page)
        body = re.search(rf'name="steps-{index}-body"[^>]*>\n(.*?)</textarea>', page, re.DOTALL)
        assert number
        assert unit
        assert subject
        assert body
        steps.append(
            {
                "file": unescape(file.group(1)),
                "after_number": number.group(1),
                "after_unit": unit.group(1),
                "subject": unescape(subject.group(1)),
                "body": unescape(body.group(1)),
            }
        )
    return steps


@pytest.mark.usefixtures("existing")
def test_an_editor_edits_reorders_and_adds_steps(app: Flask, client: FlaskClient, token: str) -> None:
    before = sequence(app, "beginners")
    assert before is not None
    page = client.get("/admin/sequences/beginners").text
    assert 'value="none" checked' in page
    assert 'value="some" checked' in page
    assert 'value="active" checked' not in page
    steps = _step_fields(page)
    assert [step["file"] for step in steps] == ["01-welcome.md", "02-next.md"]
    assert [(step["after_number"], step["after_unit"]) for step in steps] == [("1", "days"), ("3", "days")]

    steps[1]["body"] = "Nieuwe tekst voor **stap twee**."
    data = form(
        token, slug="beginners", name="Beginners", rule=_rule_fields(page), steps=steps, action="up-1"
    )
    moved = client.post("/admin/sequences/beginners", data=data)
    assert moved.status_code == 200
    assert [step["file"] for step in _step_fields(moved.text)] == ["02-next.md", "01-welcome.md"]
    assert "Nieuwe tekst voor **stap twee**." in moved.text  # kept while not yet saved
    added = client.post(
        "/admin/sequences/beginners",
        data=form(token, slug="beginners", name="Beginners", rule=_rule_fields(page),
                  steps=_step_fields(moved.text), action="add-step"),
    )  # fmt: skip
    steps = _step_fields(added.text)
    assert len(steps) == 3
    assert steps[2]["file"] == ""
    untouched = sequence(app, "beginners")
    assert untouched is not None
    assert [step.key for step in untouched.steps] == ["01-welcome.md", "02-next.md"]

    steps[2].update(after_number="2", after_unit="weeks", subject="Een laatste tip", body="Tot ziens.")
    response = client.post(
        "/admin/sequences/beginners",
        data=form(token, slug="beginners", name="Beginners", rule=_rule_fields(page), steps=steps),
    )
    assert response.status_code == 302
    after = sequence(app, "beginners")
    assert after is not None
    assert after.name == "Beginners"
    assert [(step.key, step.delay_seconds) for step in after.steps] == [
        ("02-next.md", 3 * 86400),
        ("01-welcome.md", 86400),
        ("03-een-laatste-tip.md", 14 * 86400),
    ]
    assert after.steps[0].body == "Nieuwe tekst voor **stap twee**."
    # Steps keep their rows (who received what) when moved or edited.
    assert {step.key: step.id for step in before.steps} == {
        step.key: step.id for step in after.steps if step.key in ("01-welcome.md", "02-next.md")
    }

    removed = client.post(
        "/admin/sequences/beginners",
        data=form(token, slug="beginners", name="Beginners", rule=_rule_fields(page),
                  steps=_step_fields(client.get("/admin/sequences/beginners").text), action="remove-0"),
    )  # fmt: skip
    assert [step["file"] for step in _step_fields(removed.text)] == ["01-welcome.md", "03-een-laatste-tip.md"]


@pytest.mark.usefixtures("existing")
def test_a_new_sequence_cannot_take_an_existing_slug(app: Flask, client: FlaskClient, token: str) -> None:
    response = client.post("/admin/sequences/new", data=form(token, slug="beginners", name="Overwrite"))
    assert response.status_code == 422
    assert "a sequence with the slug &#39;beginners&#39; exists already" in response.text
    found = sequence(app, "beginners")
    assert found is not None
    assert found.name == "Sequence beginners"


@pytest.mark.usefixtures("existing")
def test_a_slug_taken_between_the_check_and_the_insert_is_a_form_error(
    app: Flask, client: FlaskClient, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if another editor created 'beginners' just after this save looked the slug up.
    monkeypatch.setattr(sequence_editing, "slug_taken", lambda slug: False)
    response = client.post("/admin/sequences/new", data=form(token, slug="beginners", name="Overwrite"))
    assert response.status_code == 422
    assert "a sequence with the slug &#39;beginners&#39; exists already" in response.text
    found = sequence(app, "beginners")
    assert found is not None
    assert found.name == "Sequence beginners"


# --- problems -------------------------------------------------------------------------------------------


def _error(page: str, element_id: str) -> str:
    match = re.search(rf'<p class="error" id="{re.escape(element_id)}">(.*?)</p>', page, re.DOTALL)
    assert match, f"no error #{element_id} in the page"
    return unescape(match.group(1))


SEQUENCE_PROBLEMS = [
    (
        {"rule": {"rule-is_investor": "any_of", "rule-is_investor-values": ["yes", "maybe"]}},
        "audience-error",
        "is_investor: unknown option 'maybe' (options: no, yes)",
    ),
    (
        {"rule": {"rule-daytrading_experience": "none_of"}},
        "audience-error",
        "daytrading_experience.none_of: needs at least one value",
    ),
    ({"steps": []}, "steps-error", "a sequence has 1 to 50 steps, not 0"),
    (
        {"steps": [{"after_number": "1", "after_unit": "days", "subject": "Hoi",
                    "body": "Hallo,\n\n{{ first_nam }} daar."}]},
        "steps-0-body-error",
        "line 3: unknown name 'first_nam'",
    ),
    (
        {"steps": [{"after_number": "1", "after_unit": "days", "subject": "Hoi {{ answers.x.y.z }",
                    "body": "Hallo."}]},
        "steps-0-subject-error",
        "unexpected '}'",
    ),
    (
        {"steps": [{"after_number": "1", "after_unit": "days", "subject": "Hoi", "body": "x" * 300_000}]},
        "steps-0-body-error",
        "is larger than 256 KiB",
    ),
    (
        {"steps": [{"after_number": "", "after_unit": "days", "subject": "Hoi", "body": "Hallo."}]},
        "steps-0-after-error",
        "is not a delay",
    ),
    (
        {"steps": [{"after_number": "1", "after_unit": "days", "subject": "Hoi",
                    "body": "[klik](javascript:alert(1))"}]},
        "steps-0-body-error",
        "link 'javascript:alert(1)' would not be clickable",
    ),
    ({"name": "  "}, "name-error", "must not be empty"),
    ({"slug": "Not A Slug"}, "slug-error", "'Not A Slug' is not valid"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "element_id", "message"), SEQUENCE_PROBLEMS)
def test_bad_input_is_shown_at_its_field_and_nothing_is_saved(
    app: Flask, client: FlaskClient, token: str, changes: dict[str, Any], element_id: str, message: str
) -> None:
    response = client.post("/admin/sequences/new", data=form(token, **changes))
    assert response.status_code == 422
    assert message in _error(response.text, element_id)
    assert "Nothing was saved" in response.text
    assert sequence_count(app) == 0


@pytest.mark.parametrize(("changes", "element_id", "message"), SEQUENCE_PROBLEMS)
def test_problems_are_placed_by_their_field_and_line_whatever_their_wording(
    client: FlaskClient,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    changes: dict[str, Any],
    element_id: str,
    message: str,
) -> None:
    reword_problems(monkeypatch)
    response = client.post("/admin/sequences/new", data=form(token, **changes))
    assert response.status_code == 422
    shown = _error(response.text, element_id)
    assert message not in shown
    assert "Reworded" in shown
    if message.startswith("line "):  # a step body's own line number, from the problem's line
        assert shown.startswith(message.split(":")[0] + ": ")


@pytest.mark.usefixtures("existing")
def test_a_failed_edit_keeps_what_was_typed_and_the_stored_sequence(
    app: Flask, client: FlaskClient, token: str
) -> None:
    steps = [{"file": "01-welcome.md", "after_number": "1", "after_unit": "days", "subject": "Nieuw onderwerp",
              "body": "{% for %}"}]  # fmt: skip
    response = client.post(
        "/admin/sequences/beginners", data=form(token, slug="beginners", name="Nieuwe naam", steps=steps)
    )
    assert response.status_code == 422
    assert 'value="Nieuwe naam"' in response.text
    assert 'value="Nieuw onderwerp"' in response.text
    assert "line 1:" in _error(response.text, "steps-0-body-error")
    found = sequence(app, "beginners")
    assert found is not None
    assert found.name == "Sequence beginners"
    assert len(found.steps) == 2


def test_a_priority_that_is_no_number_is_refused(app: Flask, client: FlaskClient, token: str) -> None:
    response = client.post("/admin/sequences/new", data=form(token, priority="high"))
    assert response.status_code == 422
    assert "Not a valid integer value" in response.text
    assert sequence_count(app) == 0


# --- hostile text ---------------------------------------------------------------------------------------


def test_editor_text_is_inert_in_the_admin_and_in_the_preview(
    app: Flask, client: FlaskClient, token: str
) -> None:
    steps = [{"after_number": "1", "after_unit": "days", "subject": f"Hoi {IMG}",
              "body": f"{SCRIPT}\n\n{IMG}\n\n[klik]({IMG})"}]  # fmt: skip
    response = client.post("/admin/sequences/new", data=form(token, name=f"Naam {SCRIPT}", steps=steps))
    assert response.status_code == 302, re.findall(r'class="error"[^>]*>(.*?)</p>', response.text)
    pages = [client.get("/admin/sequences/").text, client.get("/admin/sequences/starters").text]
    page = pages[1]
    preview = client.post(
        "/admin/sequences/starters",
        data=form(token, name=f"Naam {SCRIPT}", steps=_step_fields(page), action="preview-0"),
    )
    assert preview.status_code == 200
    pages.append(preview.text)
    for html in pages:
        assert SCRIPT not in html
        assert "<img" not in html
        assert "onerror=alert(1)>" not in html.replace("&gt;", "")  # only ever inside an escaped text
    assert "Naam &lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    srcdoc = _srcdoc(preview.text)
    # Inside the email, the payload is text too.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in srcdoc
    assert "<script" not in srcdoc
    assert "<img" not in srcdoc


def _srcdoc(page: str) -> str:
    """The HTML the preview's iframe shows, after checking that the frame may run no script."""
    frame = re.search(r"<iframe ([^>]*)></iframe>", page)
    assert frame
    attributes = frame.group(1)
    sandbox = re.search(r'(?:^| )sandbox(?:="([^"]*)")?(?: |$)', attributes)
    assert sandbox is not None
    assert "allow-scripts" not in (sandbox.group(1) or "")
    srcdoc = re.search(r'srcdoc="([^"]*)"', attributes)
    assert srcdoc
    return unescape(srcdoc.group(1))


def _pre(page: str) -> str:
    found = re.search(r'<pre class="email-text">(.*?)</pre>', page, re.DOTALL)
    assert found
    return unescape(found.group(1))


# --- previews -------------------------------------------------------------------------------------------

BODY = (
    "Hallo{% if first_name %} {{ first_name }}{% endif %},\n\n"
    '{% if answers.is_investor == "yes" %}Je belegt al, mooi.{% else %}Nog niet beleggen?{% endif %}\n\n'
    "[Pas je antwoorden aan]({{ links.preferences }})"
)


@pytest.fixture
def with_body(app: Flask, questions: None) -> None:
    with app.app_context():
        make_sequence("beginners", {}, locale="nl", body=BODY)
        db.session.commit()


def preview_form(token: str, page: str, **extra: Any) -> dict[str, Any]:
    data = form(token, slug="beginners", name="Beginners", rule=_rule_fields(page), steps=_step_fields(page),
                action="preview-0")  # fmt: skip
    data.update(extra)
    return data


@pytest.mark.usefixtures("with_body")
def test_a_step_previews_for_chosen_answers_without_saving(
    app: Flask, client: FlaskClient, token: str
) -> None:
    page = client.get("/admin/sequences/beginners").text
    data = preview_form(token, page, **{"preview-for": "answers", "preview-first_name": "Anna",
                                        "preview-answer-is_investor": "yes"})  # fmt: skip
    data["steps-0-subject"] = "Een onderwerp dat nog niet bewaard is"
    response = client.post("/admin/sequences/beginners", data=data)
    assert response.status_code == 200
    html, text = _srcdoc(response.text), _pre(response.text)
    assert "Hallo Anna," in html
    assert "Je belegt al, mooi." in html
    assert "Hallo Anna," in text
    assert "Je belegt al, mooi." in text
    # The same message sending builds: the list headers, the preference and unsubscribe links, the footer.
    assert "List-Unsubscribe-Post" in response.text
    assert "Een onderwerp dat nog niet bewaard is" in response.text
    assert re.search(r"Pas je antwoorden aan <http://127\.0\.0\.1:5000/preferences/[\w.\-]+>", text)
    assert "/unsubscribe/" in html
    assert "/unsubscribe/" in text
    # Nothing saved, nothing queued.
    stored = sequence(app, "beginners")
    assert stored is not None
    assert stored.steps[0].subject == "beginners 01-welcome.md"
    with app.app_context():
        assert db.session.scalar(select(func.count(Delivery.id))) == 0

    unanswered = client.post("/admin/sequences/beginners", data=preview_form(token, page))
    assert "Nog niet beleggen?" in _srcdoc(unanswered.text)
    assert "Hallo," in _pre(unanswered.text)


@pytest.mark.usefixtures("with_body")
def test_a_step_previews_for_a_subscriber(app: Flask, client: FlaskClient, token: str) -> None:
    with app.app_context():
        person("bram@example.com", first_name="Bram", answers=[("is_investor", "yes", 1)])
        db.session.commit()
    page = client.get("/admin/sequences/beginners").text
    response = client.post(
        "/admin/sequences/beginners",
        data=preview_form(
            token, page, **{"preview-for": "subscriber", "preview-email": " Bram@Example.com "}
        ),
    )
    html = _srcdoc(response.text)
    assert "Hallo Bram," in html
    assert "Je belegt al, mooi." in html
    assert "bram@example.com" in response.text  # To:

    unknown = client.post(
        "/admin/sequences/beginners",
        data=preview_form(
            token, page, **{"preview-for": "subscriber", "preview-email": "nobody@example.com"}
        ),
    )
    assert "Cannot preview: no subscriber has the address nobody@example.com" in unknown.text
    assert "<iframe" not in unknown.text


@pytest.mark.usefixtures("with_body")
def test_a_broken_step_is_not_previewed(client: FlaskClient, token: str) -> None:
    page = client.get("/admin/sequences/beginners").text
    data = preview_form(token, page)
    data["steps-0-body"] = "{{ links.nowhere }"
    response = client.post("/admin/sequences/beginners", data=data)
    assert response.status_code == 200
    assert "Cannot preview:" in response.text
    assert "<iframe" not in response.text


# --- the live count -------------------------------------------------------------------------------------


@pytest.fixture
def crowd(app: Flask, questions: None, frozen_clock: object) -> Iterator[None]:
    """Hand-made subscribers; is_investor is fresh for 90 days."""
    with app.app_context():
        person("a@example.com", answers=[("is_investor", "yes", 1), ("interests", ["etfs", "stocks"], 1)])
        person(
            "b@example.com", locale="en", answers=[("is_investor", "yes", 1), ("interests", ["crypto"], 1)]
        )
        person("c@example.com", consent=False, answers=[("is_investor", "yes", 1)])
        person("d@example.com", status="pending", answers=[("is_investor", "yes", 1)])
        person("e@example.com", answers=[("is_investor", "yes", 200)])  # stale
        person("f@example.com", answers=[("is_investor", "no", 300), ("is_investor", "yes", 2)])
        person("g@example.com", answers=[("is_investor", "yes", 300), ("is_investor", "no", 2)])
        person("h@example.com")
        person("i@example.com", status="unsubscribed", answers=[("is_investor", "yes", 1)])
        db.session.commit()
    return


COUNTS = [
    # (rule, locale, fresh_only, expected)
    ({}, None, False, 6),  # a b e f g h
    ({}, "nl", False, 5),
    ({"is_investor": ["yes"]}, None, False, 4),  # a b e f
    ({"is_investor": "yes"}, "nl", False, 3),  # a e f
    ({"is_investor": ["yes"]}, "nl", True, 2),  # a f: e's answer is stale
    ({"is_investor": {"none_of": ["yes"]}}, "nl", False, 2),  # g, and h who did not answer
    ({"is_investor": {"none_of": ["yes"]}}, "nl", True, 3),  # g h e
    ({"is_investor": {"answered": False}}, None, True, 2),  # h e
    ({"is_investor": {"answered": True}, "interests": ["crypto", "etfs"]}, None, False, 2),  # a b
    ({"interests": {"all_of": ["stocks", "etfs"]}}, None, False, 1),  # a
    ({"interests": {"none_of": ["crypto"]}, "is_investor": "yes"}, None, False, 3),  # a e f
]


@pytest.mark.usefixtures("crowd")
@pytest.mark.parametrize(("rule", "locale", "fresh_only", "expected"), COUNTS)
def test_the_count_is_who_sequences_would_take_now(
    app: Flask, rule: dict[str, Any], locale: str | None, fresh_only: bool, expected: int
) -> None:
    with app.app_context():
        assert count_audience(rule, locale, fresh_only) == expected
        # The way switch_sequences decides, subscriber by subscriber, agrees.
        probe = Sequence(slug="probe", name="probe", audience=rule, locale=locale, fresh_only=fresh_only)
        now = clock.now()
        decided = 0
        for subscriber in db.session.scalars(select(Subscriber)):
            states = answer_states(subscriber.id)
            answers = {
                key: state.value for key, state in states.items() if not fresh_only or state.is_fresh(now)
            }
            decided += subscriber.receives_marketing and sequence_is_for(probe, subscriber, answers)
        assert decided == expected


@pytest.mark.usefixtures("crowd", "editor")
def test_the_live_count_endpoint_and_the_page_show_the_count(client: FlaskClient, token: str) -> None:
    query = {"rule-is_investor": "any_of", "rule-is_investor-values": "yes", "locale": "nl"}
    response = client.get("/admin/sequences/audience-count", query_string=query)
    assert response.status_code == 200
    assert response.get_json() == {"count": 3, "text": "3 subscribers match now"}
    fresh = client.get("/admin/sequences/audience-count", query_string={**query, "fresh_only": "y"})
    assert fresh.get_json()["count"] == 2
    bad = client.get(
        "/admin/sequences/audience-count",
        query_string={"rule-is_investor": "any_of", "rule-is_investor-values": "maybe"},
    )
    assert bad.status_code == 422
    assert "unknown option 'maybe'" in bad.get_json()["errors"][0]
    page = client.post("/admin/sequences/new", data=form(token, rule=query, action="count"))
    assert page.status_code == 200
    assert re.search(r'<output id="audience-count"[^>]*>3 subscribers match now</output>', page.text)


# --- switching off --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("existing")
def test_switching_off_asks_first_then_switches_off(app: Flask, client: FlaskClient, token: str) -> None:
    page = client.get("/admin/sequences/beginners/switch-off")
    assert page.status_code == 200
    assert "Switch off Sequence beginners" in page.text
    found = sequence(app, "beginners")
    assert found is not None
    assert found.active
    response = client.post("/admin/sequences/beginners/switch-off", data={"csrf_token": token})
    assert response.status_code == 302
    off = sequence(app, "beginners")
    assert off is not None
    assert not off.active
    listing = client.get("/admin/sequences/").text
    assert "Switched off Sequence beginners." in listing
    assert "switched off" in listing
    # Saving it again switches it back on.
    edit = client.get("/admin/sequences/beginners").text
    assert "This sequence is switched off" in edit
    data = form(
        token, slug="beginners", name="Sequence beginners", rule=_rule_fields(edit), steps=_step_fields(edit)
    )
    assert client.post("/admin/sequences/beginners", data=data).status_code == 302
    back = sequence(app, "beginners")
    assert back is not None
    assert back.active


def test_an_unknown_sequence_is_not_found(client: FlaskClient, token: str) -> None:
    assert client.get("/admin/sequences/nope").status_code == 404
    assert client.post("/admin/sequences/nope/switch-off", data={"csrf_token": token}).status_code == 404


# --- who is in a sequence -------------------------------------------------------------------------------

# 21:30 in Amsterdam, past the sending hours: a step falling due now waits in the outbox until 08:00.
EVENING = datetime(2026, 3, 2, 20, 30, tzinfo=UTC)
NEXT_MORNING = datetime(2026, 3, 3, 7, 5, tzinfo=UTC)


@pytest.fixture
def last_step_waiting(app: Flask, questions: None, runner: FlaskCliRunner) -> int:
    """A subscriber in a one-step sequence whose only step was queued in the evening and waits for morning;
    the enrollment completed as the step was queued. Returns the subscriber's id."""
    clock.freeze(EVENING - timedelta(hours=1))
    with app.app_context():
        make_sequence("short", {"is_investor": "yes"}, steps=[("01-only.md", timedelta(hours=1))])
        person("waiting@example.com", answers=[("is_investor", "yes", 1)])
        person("elsewhere@example.com", answers=[("is_investor", "no", 1)])
        for subscriber in db.session.scalars(select(Subscriber)):
            switch_sequences(subscriber, reason="test")
        db.session.commit()
    tick(runner, EVENING)
    with app.app_context():
        waiting = db.session.scalars(
            select(Subscriber).where(Subscriber.email == "waiting@example.com")
        ).one()
        enrollment = db.session.scalars(select(Enrollment).where(Enrollment.subscriber == waiting)).one()
        assert enrollment.state is EnrollmentState.COMPLETED
        delivery = db.session.scalars(select(Delivery).where(Delivery.enrollment_id == enrollment.id)).one()
        assert delivery.status is DeliveryStatus.PENDING
        return waiting.id


def tick(runner: FlaskCliRunner, at: datetime) -> None:
    result = runner.invoke(args=["worker", "--once", "--at", at.isoformat()])
    assert result.exit_code == 0, result.output


def listed_count(client: FlaskClient, slug: str) -> str:
    """The "Subscribers in it" cell of a sequence's row on the sequence list."""
    page = client.get("/admin/sequences/").text
    (row,) = [row for row in re.findall(r"<tr.*?</tr>", page, re.S) if f">{slug}</code>" in row]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    return unescape(cells[5]).strip()


def preference_page(app: Flask, client: FlaskClient, subscriber_id: int) -> str:
    with app.app_context():
        path = "/preferences/" + make_token(Purpose.PREFERENCES, {"s": subscriber_id})
    page = client.get(path).text
    return page[page.index("<h2") :]


def profile_sequences(client: FlaskClient, subscriber_id: int) -> str:
    page = client.get(f"/admin/subscribers/{subscriber_id}").text
    return " ".join(
        re.sub(r"<[^>]+>", " ", page[page.index('id="sequences"') : page.index('id="emails"')]).split()
    )


def test_a_subscriber_whose_last_step_waits_is_in_the_sequence_on_every_page(
    app: Flask, client: FlaskClient, token: str, runner: FlaskCliRunner, last_step_waiting: int
) -> None:
    # Until the step goes out the sequence still mails them, and an answer change under switch would still
    # cancel it: the list, the switch-off page, the profile and the preference page all count them in.
    assert listed_count(client, "short") == "1"
    assert "the 1 subscriber in it now" in client.get("/admin/sequences/short/switch-off").text
    assert "Sequence short short yes (completed, its last step waiting to go out)" in profile_sequences(
        client, last_step_waiting
    )
    assert "<li>Sequence short</li>" in preference_page(app, client, last_step_waiting)

    tick(runner, NEXT_MORNING)
    with app.app_context():
        assert db.session.scalars(
            select(Delivery.status).where(Delivery.enrollment_id.is_not(None))
        ).all() == [DeliveryStatus.SENT]
    assert listed_count(client, "short") == "0"
    assert "the 0 subscribers in it now" in client.get("/admin/sequences/short/switch-off").text
    assert "Sequence short short no (completed)" in profile_sequences(client, last_step_waiting)
    assert "Sequence short" not in preference_page(app, client, last_step_waiting)


def test_leaving_before_the_waiting_last_step_goes_out_takes_them_out_everywhere(
    app: Flask, client: FlaskClient, token: str, last_step_waiting: int
) -> None:
    preferences = "/preferences/"
    with app.app_context():
        preferences += make_token(Purpose.PREFERENCES, {"s": last_step_waiting})
    assert client.post(preferences, data={"q:is_investor": "no"}).status_code == 200
    with app.app_context():
        assert db.session.scalars(
            select(Delivery.status).where(Delivery.enrollment_id.is_not(None))
        ).all() == [DeliveryStatus.CANCELLED]
    assert listed_count(client, "short") == "0"
    assert "Sequence short short no (exited)" in profile_sequences(client, last_step_waiting)
    assert "Sequence short" not in preference_page(app, client, last_step_waiting)


# --- a reader who has not answered ----------------------------------------------------------------------

BRANCHES = (
    '{% if answers.is_investor == "yes" %}You invest already.'
    '{% elif answers.is_investor == "no" %}You do not invest yet.'
    "{% else %}Do you invest? Tell us.{% endif %}\n\n"
    "[Pas je antwoorden aan]({{ links.preferences }})"
)
BRANCHING_SUBJECT = (
    "{% if answers.is_investor %}Investor: {{ answers.is_investor }}{% else %}Welcome{% endif %}"
)


def _worker_sent(app: Flask) -> tuple[str, str, str]:
    """Subject, HTML and text part of the one sequence email the worker sent."""
    with app.app_context():
        raw = db.session.scalars(
            select(Delivery.raw_message).where(
                Delivery.enrollment_id.is_not(None), Delivery.status == DeliveryStatus.SENT
            )
        ).one()
    message = email.message_from_bytes(raw or b"", policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None
    assert text is not None
    return str(message["Subject"]), str(html.get_content()), str(text.get_content())


def _previewed(page: str) -> tuple[str, str, str]:
    subject = re.search(r"<dt>Subject</dt><dd>(.*?)</dd>", page)
    assert subject
    return unescape(subject.group(1)), _srcdoc(page), _pre(page)


def _same_links(part: str) -> str:
    """A part with its signed links (minted per rendering) reduced to where they lead, and plain newlines; without
    the hidden link for scanners that only a sent email carries."""
    part = re.sub(r'<a href="[^"]*/l/[\w.\-]+" style="display:none;"[^>]*></a>\n?', "", part)
    return re.sub(r"/(preferences|unsubscribe)/[\w.\-]+", r"/\1/…", part.replace("\r\n", "\n"))


def _answers_used(page: str) -> dict[str, str]:
    section = page[page.index('id="preview-answers-heading"') : page.index("HTML part</h4>")]
    pairs = re.findall(r"<dt><code>(\w+)</code></dt>\s*<dd>(.*?)</dd>", section, re.S)
    return {key: re.sub(r"<[^>]+>", "", value) for key, value in pairs}


def test_a_step_previewed_for_a_reader_who_has_not_answered_is_what_the_worker_sends_them(
    app: Flask, client: FlaskClient, token: str, runner: FlaskCliRunner
) -> None:
    clock.freeze(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))  # 10:30 in Amsterdam
    with app.app_context():
        make_sequence("branches", {}, locale="nl", steps=[("01-only.md", timedelta(hours=1))], body=BRANCHES)
        db.session.scalars(select(Sequence)).one().steps[0].subject = BRANCHING_SUBJECT
        person("quiet@example.com", answers=[("daytrading_experience", "none", 1)])
        switch_sequences(db.session.scalars(select(Subscriber)).one(), reason="test")
        db.session.commit()
    tick(runner, datetime(2026, 3, 2, 10, 31, tzinfo=UTC))  # queues the step, due now
    tick(runner, datetime(2026, 3, 2, 10, 32, tzinfo=UTC))  # sends it
    subject, html, text = _worker_sent(app)
    assert subject == "Welcome"
    assert "Do you invest? Tell us." in text
    assert "You do not invest yet." not in text

    page = client.get("/admin/sequences/branches").text
    base = form(token, slug="branches", name="Sequence branches", rule=_rule_fields(page),
                steps=_step_fields(page), action="preview-0")  # fmt: skip
    for_them = client.post(
        "/admin/sequences/branches",
        data={**base, "preview-for": "subscriber", "preview-email": "quiet@example.com"},
    ).text
    for_answers = client.post(
        "/admin/sequences/branches",
        data={
            **base,
            "preview-for": "answers",
            "preview-locale": "nl",
            "preview-answer-daytrading_experience": "none",
        },
    ).text
    for preview in (for_them, for_answers):
        shown_subject, shown_html, shown_text = _previewed(preview)
        assert shown_subject == subject
        assert _same_links(shown_text) == _same_links(text)
        assert _same_links(shown_html) == _same_links(html)
        assert _answers_used(preview) == {
            "daytrading_experience": "none",
            "interests": "not answered",
            "is_investor": "not answered",
        }

    # A reader who did answer no is told something else, in the preview as in the worker's email.
    answered_no = client.post(
        "/admin/sequences/branches",
        data={**base, "preview-for": "answers", "preview-answer-is_investor": "no"},
    ).text
    assert _previewed(answered_no)[0] == "Investor: no"
    assert "You do not invest yet." in _previewed(answered_no)[2]
    assert _answers_used(answered_no)["is_investor"] == "no"

    # The journey preview names the same subject for each of them.
    def journey_subjects(**answers: str) -> list[str]:
        query = {"locale": "nl", "weeks": "1", **{f"answer-{key}": value for key, value in answers.items()}}
        page = client.get("/admin/journey", query_string=query).text
        return [unescape(found) for found in re.findall(r'<q class="journey-subject">(.*?)</q>', page)]

    assert journey_subjects(daytrading_experience="none") == ["Welcome"]
    assert journey_subjects(is_investor="no") == ["Investor: no"]


@pytest.mark.usefixtures("existing")
def test_a_sequence_changed_by_someone_else_since_it_was_opened_is_not_overwritten(
    app: Flask, client: FlaskClient, token: str
) -> None:
    page = client.get("/admin/sequences/beginners").text
    opened = re.search(r'name="version" type="hidden" value="(\d+)"', page)
    assert opened is not None
    version = opened.group(1)
    rule, steps = _rule_fields(page), _step_fields(page)
    theirs = form(token, slug="beginners", name="Their name", rule=rule, steps=steps)
    assert client.post("/admin/sequences/beginners", data={**theirs, "version": version}).status_code == 302

    mine = form(token, slug="beginners", name="My name", priority="7", rule=rule, steps=steps)
    response = client.post("/admin/sequences/beginners", data={**mine, "version": version})
    assert response.status_code == 409
    text = unescape(response.text)
    assert "someone else saved this sequence since you opened it" in text
    assert re.search(
        r'<p class="error" id="name-error">Changed by someone else since you opened it\.</p>', text
    )
    assert 'value="My name"' in text
    stored = sequence(app, "beginners")
    assert stored is not None
    assert stored.name == "Their name"


# --- interest conditions and groups in the rule builder -------------------------------------------------


@pytest.fixture
def topics(app: Flask, questions: None) -> None:
    """Two topics, saved as the admin saves them."""
    with app.app_context():
        for key, name in (("daytrading", "Daytrading"), ("etfs", "ETFs")):
            editing.save_topic({"key": key, "name": {"en": name}, "urls": [f"https://beleggen.example/{key}/"]})
        db.session.commit()


def _builder_fields(page: str) -> dict[str, list[str]]:
    """Every rule builder field as the browser would post the page: inputs checked or with a value, and
    each select's selected option."""
    fields = _rule_fields(page)
    for tag in re.findall(r'<input type="text" [^>]*name="rule-interest-[^>]*>', page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        assert name
        assert value
        fields.setdefault(name.group(1), []).append(unescape(value.group(1)))
    for name, options in re.findall(r'<select id="[^"]*" name="(rule-[^"]+)">(.*?)</select>', page, re.DOTALL):
        selected = re.search(r'<option value="([^"]*)" selected>', options)
        first = re.search(r'<option value="([^"]*)"', options)
        assert first
        fields[name] = [unescape((selected or first).group(1))]
    return fields


INTEREST_RULES = [
    (
        {"rule-interest-0-topic": "daytrading", "rule-interest-0-bound": "at_least", "rule-interest-0-value": "3"},
        {"interest": {"topic": "daytrading", "at_least": 3}},
    ),
    (
        {"rule-is_investor": "any_of", "rule-is_investor-values": "yes",
         "rule-interest-0-topic": "daytrading", "rule-interest-0-bound": "at_least", "rule-interest-0-value": "2.5",
         "rule-interest-1-topic": "", "rule-interest-1-bound": "below", "rule-interest-1-value": "",
         "rule-interest-2-topic": "etfs", "rule-interest-2-bound": "below", "rule-interest-2-value": " 1 "},
        {"is_investor": ["yes"],
         "interest": [{"topic": "daytrading", "at_least": 2.5}, {"topic": "etfs", "below": 1}]},
    ),
]  # fmt: skip


@pytest.mark.usefixtures("topics")
@pytest.mark.parametrize(("fields", "expected"), INTEREST_RULES)
def test_interest_rows_make_interest_conditions_and_show_them_again(
    app: Flask, client: FlaskClient, token: str, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    response = client.post("/admin/sequences/new", data=form(token, rule=fields))
    assert response.status_code == 302, response.text
    created = sequence(app, "starters")
    assert created is not None
    assert created.audience == expected
    page = client.get("/admin/sequences/starters").text
    assert '<option value="daytrading" selected>daytrading</option>' in page
    # The rows hold the same rule, with one empty row to add a condition: saving it changes nothing.
    again = form(token, rule=_builder_fields(page), steps=_step_fields(page))
    empty = max(int(name.split("-")[2]) for name in again if name.startswith("rule-interest-"))
    assert again[f"rule-interest-{empty}-topic"] == [""]
    response = client.post("/admin/sequences/starters", data=again, follow_redirects=True)
    assert "Nothing changed." in response.text
    saved = sequence(app, "starters")
    assert saved is not None
    assert saved.audience == expected
    listing = client.get("/admin/sequences/").text
    assert "interest in daytrading at least " + ("3" if len(fields) == 3 else "2.5") in listing


@pytest.mark.usefixtures("topics")
@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"rule-interest-0-topic": "daytrading", "rule-interest-0-value": "veel"}, "must be a number above 0"),
        ({"rule-interest-0-topic": "daytrading", "rule-interest-0-value": ""}, "must be a number above 0"),
        ({"rule-interest-0-topic": "daytrading", "rule-interest-0-value": "0"}, "must be a number above 0"),
        ({"rule-interest-0-topic": "beleggen", "rule-interest-0-value": "2"}, "unknown topic 'beleggen'"),
        ({"rule-interest-0-topic": "", "rule-interest-0-value": "2"}, "unknown topic ''"),
    ],
)
def test_an_interest_row_goes_through_the_content_checks(
    app: Flask, client: FlaskClient, token: str, row: dict[str, str], message: str
) -> None:
    fields = {"rule-interest-0-bound": "at_least", **row}
    response = client.post("/admin/sequences/new", data=form(token, rule=fields))
    assert response.status_code == 422
    assert message in _error(response.text, "audience-error")
    assert sequence_count(app) == 0
    # What was typed stays in the row.
    assert f'name="rule-interest-0-value" value="{row["rule-interest-0-value"]}"' in response.text


GROUPED = {
    "daytrading_experience": ["none", "some"],
    "any_of": [
        {"interest": {"topic": "daytrading", "at_least": 3}},
        {"is_investor": "yes", "none_of": [{"interests": ["crypto"]}, {"interest": {"topic": "etfs", "at_least": 5}}]},
    ],
}


@pytest.mark.usefixtures("topics")
def test_a_rule_with_groups_is_shown_as_written_and_kept_intact_on_save(
    app: Flask, client: FlaskClient, token: str
) -> None:
    with app.app_context():
        make_sequence("grouped", GROUPED)
        db.session.commit()
    page = client.get("/admin/sequences/grouped").text
    assert "Also in the rule, as written in the file" in page
    shown = re.search(r'<pre class="as-written"><code>(.*?)</code></pre>', page, re.DOTALL)
    assert shown
    block = unescape(shown.group(1))
    assert block.startswith("any_of:\n")
    assert "  none_of:\n" in block
    assert "topic: daytrading" in block
    assert "daytrading_experience" not in block
    assert "sequences/grouped/sequence.yaml" in page
    # The answer condition outside the groups is in its row; the groups stay as they are when saving.
    fields = _builder_fields(page)
    assert fields["rule-daytrading_experience"] == ["any_of"]
    changed = {**fields, "rule-interest-0-topic": ["etfs"], "rule-interest-0-bound": ["below"],
               "rule-interest-0-value": ["2"]}  # fmt: skip
    response = client.post(
        "/admin/sequences/grouped", data=form(token, name="Grouped", rule=changed, steps=_step_fields(page))
    )
    assert response.status_code == 302, response.text
    saved = sequence(app, "grouped")
    assert saved is not None
    assert saved.name == "Grouped"
    assert saved.audience == {**GROUPED, "interest": {"topic": "etfs", "below": 2}}
    listing = client.get("/admin/sequences/").text
    assert (
        "any of (interest in daytrading at least 3 | is_investor: any of these yes; "
        "none of (interests: any of these crypto | interest in etfs at least 5))" in unescape(listing)
    )


@pytest.mark.usefixtures("topics")
def test_a_group_posted_back_goes_through_the_content_checks(
    app: Flask, client: FlaskClient, token: str
) -> None:
    bad = {"any_of": [{"interest": {"topic": "goud", "at_least": 1}}]}
    fields = {"rule-as-written": json.dumps(bad)}
    response = client.post("/admin/sequences/new", data=form(token, rule=fields))
    assert response.status_code == 422
    assert "any_of[0].interest.topic: unknown topic 'goud'" in _error(response.text, "audience-error")
    # Shown again as written, for the editor to see what was refused.
    assert "topic: goud" in unescape(response.text)
    tampered = client.post("/admin/sequences/new", data=form(token, rule={"rule-as-written": "[1, 2]"}))
    assert tampered.status_code == 422
    assert sequence_count(app) == 0


@pytest.mark.usefixtures("topics")
def test_a_condition_on_a_topic_that_is_gone_is_shown_and_reported(
    app: Flask, client: FlaskClient, token: str
) -> None:
    with app.app_context():
        make_sequence("orphan", {"interest": {"topic": "goud", "at_least": 2}})
        db.session.commit()
    page = client.get("/admin/sequences/orphan").text
    assert '<option value="goud" selected>goud (no such topic)</option>' in page
    again = form(token, rule=_builder_fields(page), steps=_step_fields(page))
    response = client.post("/admin/sequences/orphan", data=again)
    assert response.status_code == 422
    assert "unknown topic 'goud'" in _error(response.text, "audience-error")


@pytest.mark.usefixtures("topics")
def test_the_live_count_takes_interest_rows_and_groups(app: Flask, client: FlaskClient, token: str) -> None:
    with app.app_context():
        keen = make_subscriber(email="keen@example.com", marketing_consent=True)
        make_subscriber(email="calm@example.com", marketing_consent=True)
        daytrading = db.session.scalars(select(Topic).where(Topic.key == "daytrading")).one()
        for _ in range(3):
            record_signal(keen, daytrading, SignalSource.CLICK)
        db.session.commit()
    row = {"rule-interest-0-topic": "daytrading", "rule-interest-0-bound": "at_least",
           "rule-interest-0-value": "3"}  # fmt: skip
    response = client.get("/admin/sequences/audience-count", query_string=row)
    assert response.get_json() == {"count": 1, "text": "1 subscriber matches now"}
    below = {**row, "rule-interest-0-bound": "below"}
    assert client.get("/admin/sequences/audience-count", query_string=below).get_json()["count"] == 1
    fading = {"none_of": [{"interest": {"topic": "daytrading", "at_least": 1}}]}
    grouped = {"rule-as-written": json.dumps(fading)}
    assert client.get("/admin/sequences/audience-count", query_string=grouped).get_json()["count"] == 1
