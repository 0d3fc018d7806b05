"""Subscribers and accounts in the admin: who may do what, search, the profile's timeline, export, erase,
and the rules that keep an admin."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Answer, AnswerSource, Question, Role, Subscriber, SubscriberStatus, User
from leadcapture.services.accounts import authenticate
from leadcapture.services.subscribers import SEARCH_PAGE_SIZE
from leadcapture.services.widgets import mail_reference
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_demo_widget, make_sequence
from tests.support.admin import ADMIN, ADMIN_PASSWORD, EDITOR, add_account, csrf_token, sign_in, signed_in
from tests.support.app import Client
from tests.support.interest import SUBJECT, click_and_read
from tests.support.submissions import post, valid_body

READER = "lezer@example.com"
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']

pytestmark = pytest.mark.settings(WTF_CSRF_ENABLED=True)


@pytest.fixture
def accounts(app: Flask) -> None:
    add_account(app, ADMIN, Role.ADMIN)
    add_account(app, EDITOR, Role.EDITOR)


@pytest.fixture
def reader(app: Flask, client: Client) -> int:
    """A reader who answered, changed an answer, confirmed with follow-up consent and got emails."""
    clock.freeze(START)
    with app.app_context():
        make_demo_widget()
        make_sequence("beginners", {"daytrading_experience": ["none", "some"]})
        db.session.commit()
    body = valid_body(
        email=READER,
        answers={"is_investor": "yes", "daytrading_experience": "none", "interests": ["stocks"]},
        consent={"report": True, "sequences": True},
    )
    post(client, body, environ_base={"REMOTE_ADDR": "203.0.113.77"})
    clock.freeze(START + timedelta(hours=2))
    with app.app_context():
        subscriber = db.session.scalars(select(Subscriber)).one()
        token = make_token(Purpose.CONFIRM, {"s": subscriber.id, "sub": subscriber.submissions[0].id})
        subscriber_id = subscriber.id
    assert client.post(f"/confirm/{token}").status_code == 200
    clock.freeze(START + timedelta(days=3))
    body["answers"] = {"is_investor": "yes", "daytrading_experience": "some", "interests": ["stocks"]}
    with app.test_request_context():
        body["ref"] = mail_reference(subscriber_id)  # back from a link in our email, so the change counts
    post(client, body)
    clock.freeze(START + timedelta(days=4))
    return subscriber_id


def token_for(client: Client, path: str) -> str:
    return csrf_token(client, path)


def subscriber_count(app: Flask) -> int:
    with app.app_context():
        return (
            db.session.scalar(
                select(func.count())
                .select_from(Subscriber)
                .where(Subscriber.status != SubscriberStatus.ERASED)
            )
            or 0
        )


def add_subscribers(app: Flask, *addresses: str) -> None:
    with app.app_context():
        for offset, address in enumerate(addresses):
            moment = START + timedelta(minutes=offset)
            db.session.add(
                Subscriber(
                    email=address,
                    status=SubscriberStatus.PENDING,
                    locale="nl",
                    created_at=moment,
                    status_changed_at=moment,
                )
            )
        db.session.commit()


def found(html: str) -> list[str]:
    """The addresses a search page lists."""
    return re.findall(r'<a href="/admin/subscribers/\d+">([^<]+)</a>', html)


# -- who may do what


@pytest.mark.parametrize(
    "path",
    ["/admin/subscribers/", "/admin/subscribers/1", "/admin/subscribers/1/erase", "/admin/accounts/",
     "/admin/accounts/1"],
)  # fmt: skip
def test_anonymous_visitors_are_sent_to_sign_in(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


@pytest.mark.usefixtures("accounts")
def test_editors_search_and_read_profiles_but_may_not_export_erase_or_manage_accounts(
    app: Flask, reader: int
) -> None:
    editor = signed_in(app, EDITOR)
    assert editor.get("/admin/subscribers/").status_code == 200
    profile = editor.get(f"/admin/subscribers/{reader}")
    assert profile.status_code == 200
    assert READER in profile.text
    assert "/export" not in profile.text
    assert "/erase" not in profile.text
    assert 'href="/admin/accounts/"' not in profile.text  # not in the navigation either
    token = token_for(editor, f"/admin/subscribers/{reader}")
    assert editor.post(f"/admin/subscribers/{reader}/export", data={"csrf_token": token}).status_code == 403
    assert editor.get(f"/admin/subscribers/{reader}/erase").status_code == 403
    erase = editor.post(f"/admin/subscribers/{reader}/erase", data={"csrf_token": token, "email": READER})
    assert erase.status_code == 403
    assert editor.get("/admin/accounts/").status_code == 403
    create = {
        "csrf_token": token,
        "email": "new@beleggen.example",
        "role": "admin",
        "password": ADMIN_PASSWORD * 2,
    }
    assert editor.post("/admin/accounts/", data=create).status_code == 403
    with app.app_context():
        editor_id = db.session.scalars(select(User.id).where(User.email == EDITOR)).one()
    assert (
        editor.post(
            f"/admin/accounts/{editor_id}/role", data={"csrf_token": token, "role": "admin"}
        ).status_code
        == 403
    )
    assert editor.post(f"/admin/accounts/{editor_id}/sessions", data={"csrf_token": token}).status_code == 403
    assert subscriber_count(app) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 2
        assert db.session.scalars(select(User.role).where(User.email == EDITOR)).one() is Role.EDITOR


@pytest.mark.usefixtures("accounts")
def test_every_post_without_a_csrf_token_fails_and_changes_nothing(app: Flask, reader: int) -> None:
    admin = signed_in(app, ADMIN)
    with app.app_context():
        editor_id = db.session.scalars(select(User.id).where(User.email == EDITOR)).one()
        version = db.session.get_one(User, editor_id).session_version
    for path, data in [
        (f"/admin/subscribers/{reader}/export", {}),
        (f"/admin/subscribers/{reader}/erase", {"email": READER}),
        ("/admin/accounts/", {"email": "new@beleggen.example", "role": "editor", "password": ADMIN_PASSWORD}),
        (f"/admin/accounts/{editor_id}/role", {"role": "admin"}),
        (f"/admin/accounts/{editor_id}/password", {"password": "another long password"}),
        (f"/admin/accounts/{editor_id}/sessions", {}),
    ]:
        assert admin.post(path, data=data).status_code == 400, path
        assert admin.post(path, data={**data, "csrf_token": "forged"}).status_code == 400, path
    assert subscriber_count(app) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 2
        editor = db.session.get_one(User, editor_id)
        assert editor.role is Role.EDITOR
        assert editor.session_version == version
        assert authenticate(EDITOR, ADMIN_PASSWORD) is not None


# -- search


@pytest.mark.usefixtures("accounts")
def test_search_finds_any_part_of_an_address_in_any_case(app: Flask) -> None:
    add_subscribers(app, "jan.jansen@example.com", "piet@voorbeeld.nl", "janneke@example.org")
    editor = signed_in(app, EDITOR)
    assert sorted(found(editor.get("/admin/subscribers/?q=JAN").text)) == [
        "jan.jansen@example.com",
        "janneke@example.org",
    ]
    assert found(editor.get("/admin/subscribers/?q=%20Voorbeeld.NL%20").text) == ["piet@voorbeeld.nl"]
    assert found(editor.get("/admin/subscribers/").text) == [  # no query: the newest first
        "janneke@example.org",
        "piet@voorbeeld.nl",
        "jan.jansen@example.com",
    ]
    nothing = editor.get("/admin/subscribers/?q=klaas")
    assert nothing.status_code == 200
    assert found(nothing.text) == []
    assert "No subscriber has an address containing “klaas”" in nothing.text


@pytest.mark.usefixtures("accounts")
def test_sql_wildcards_in_a_search_match_only_themselves(app: Flask) -> None:
    add_subscribers(app, "a_b@example.com", "axb@example.com", "100%@example.com", "plain@example.com")
    editor = signed_in(app, EDITOR)
    assert found(editor.get("/admin/subscribers/?q=_").text) == ["a_b@example.com"]
    assert found(editor.get("/admin/subscribers/?q=a_b").text) == ["a_b@example.com"]
    assert found(editor.get("/admin/subscribers/?q=%25").text) == ["100%@example.com"]
    assert found(editor.get("/admin/subscribers/?q=a%25b").text) == []
    assert found(editor.get("/admin/subscribers/?q=%5C").text) == []  # a backslash, the escape character


@pytest.mark.usefixtures("accounts")
@pytest.mark.parametrize(
    "query",
    [
        "' OR '1'='1",
        "'; DELETE FROM subscribers; --",
        '"',
        "\\'",
        "%'--",
        XSS[0],
        XSS[1],
        "ä" * 254,
        "x" * 254,
    ],
)
def test_hostile_searches_find_nothing_and_break_nothing(app: Flask, query: str) -> None:
    add_subscribers(app, "jan@example.com")
    editor = signed_in(app, EDITOR)
    response = editor.get("/admin/subscribers/", query_string={"q": query})
    assert response.status_code == 200
    assert found(response.text) == []
    for payload in XSS:
        assert payload not in response.text
    assert subscriber_count(app) == 1


@pytest.mark.usefixtures("accounts")
@pytest.mark.parametrize(("query", "message"), [("x" * 255, "at most 254"), ("x" * 10_000, "at most 254"),
                                                ("jan\x01", "printable")])  # fmt: skip
def test_oversized_or_unprintable_searches_are_refused_clearly(app: Flask, query: str, message: str) -> None:
    add_subscribers(app, "jan@example.com")
    editor = signed_in(app, EDITOR)
    response = editor.get("/admin/subscribers/", query_string={"q": query})
    assert response.status_code == 400
    assert message in response.text
    assert 'aria-invalid="true"' in response.text
    assert found(response.text) == []
    assert len(response.text) < 20_000  # the long query is not echoed in full


@pytest.mark.usefixtures("accounts")
def test_results_come_a_page_at_a_time(app: Flask) -> None:
    add_subscribers(app, *(f"lezer{n:03}@example.com" for n in range(SEARCH_PAGE_SIZE + 5)))
    editor = signed_in(app, EDITOR)
    first = editor.get("/admin/subscribers/?q=lezer")
    assert len(found(first.text)) == SEARCH_PAGE_SIZE
    assert found(first.text)[0] == f"lezer{SEARCH_PAGE_SIZE + 4:03}@example.com"
    assert 'rel="next"' in first.text
    assert 'rel="prev"' not in first.text
    second = editor.get("/admin/subscribers/?q=lezer&page=2")
    assert found(second.text) == [f"lezer{n:03}@example.com" for n in range(4, -1, -1)]
    assert 'rel="prev"' in second.text
    assert 'rel="next"' not in second.text
    for page in ("abc", "-3", "0", "1e9", ""):
        assert found(editor.get(f"/admin/subscribers/?q=lezer&page={page}").text) == found(first.text), page
    far = editor.get("/admin/subscribers/?q=lezer&page=99999999999999999999")
    assert far.status_code == 200
    assert found(far.text) == []


# -- the profile


@pytest.mark.usefixtures("accounts")
def test_the_profile_shows_the_answer_history_as_a_timeline_in_order(app: Flask, reader: int) -> None:
    page = signed_in(app, EDITOR).get(f"/admin/subscribers/{reader}").text
    timeline = page[page.index('<ol class="timeline"') : page.index("</ol>")]
    entries = timeline.split("<li")[1:]
    assert len(entries) == 6
    times = re.findall(r'<time datetime="([^"]+)"', timeline)
    assert times == sorted(times)
    assert times[0].startswith("2026-03-02T09:30")
    assert times[-1].startswith("2026-03-05T09:30")
    experience = [entry for entry in entries if "daytrading_experience" in entry]
    assert "Vraag daytrading_experience?" in experience[0]  # the wording the reader was shown
    assert "Nieuw (none)" in experience[0]
    assert "<del>" not in experience[0]
    assert re.search(r"<del>Nieuw \(none\)</del>.*→.*<ins>Geprobeerd \(some\)</ins>", experience[1], re.S)
    investor = [entry for entry in entries if "is_investor" in entry]
    assert "the same answer again" in investor[1]
    assert "from widget" in experience[1]
    assert "daytrading-report" in experience[1]
    assert "https://beleggen.example/artikel/daytraden" in experience[0]


@pytest.mark.drains_outbox
@pytest.mark.usefixtures("accounts")
def test_the_profile_shows_consent_requests_sequences_and_emails(app: Flask, reader: int) -> None:
    page = signed_in(app, EDITOR).get(f"/admin/subscribers/{reader}").text
    consent = page[page.index('id="consent"') : page.index('id="requests"')]
    assert "request" in consent
    assert "confirm" in consent
    assert "report, sequences" in consent
    assert "203.0.113.0/24" in consent
    assert "203.0.113.77" not in page
    requests = page[page.index('id="requests"') : page.index('id="sequences"')]
    assert requests.count("<tr>") == 3  # the header and two requests
    sequences = page[page.index('id="sequences"') : page.index('id="emails"')]
    assert "Sequence beginners" in sequences
    assert "active" in sequences
    assert "0 of 2" in sequences
    assert "01-welcome.md" in sequences
    assert "2026-03-03 11:30 UTC" in sequences  # the first step, a day after confirming
    emails = page[page.index('id="emails"') :]
    assert "confirm" in emails
    assert "report" in emails
    assert "sent" in emails


def text_of(html: str) -> str:
    """The words of a piece of the page, its tags left out and its spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", "", html).replace("&#34;", '"').split())


@pytest.fixture
def interest(app: Flask, client: Client, reader: int) -> int:
    """The reader follows links in a follow-up email, a scanner's burst among them, and reads an article."""
    click_and_read(client, reader, START + timedelta(days=4))
    clock.freeze(START + timedelta(days=4, hours=6))
    return reader


@pytest.mark.usefixtures("accounts")
def test_the_profile_draws_a_bar_per_topic_with_todays_score(app: Flask, interest: int) -> None:
    page = signed_in(app, EDITOR).get(f"/admin/subscribers/{interest}").text
    section = page[page.index('id="interest"') : page.index('id="answers"')]
    rows = re.findall(r"<tr>(.*?)</tr>", section, re.S)[1:]
    assert [text_of(row) for row in rows] == ["Daytrading daytrading 2 30 days", "ETFs etfs 1 30 days"]
    # Scaled to the highest score, drawn beside the number it shows and hidden from screen readers.
    assert re.findall(r'class="bar-fill" width="([\d.]+)"', section) == ["100.00", "50.00"]
    assert section.count('aria-hidden="true"') == 2

    clock.freeze(START + timedelta(days=4 + 60))  # two half-lives later: a quarter
    later = signed_in(app, EDITOR).get(f"/admin/subscribers/{interest}").text
    section = later[later.index('id="interest"') : later.index('id="answers"')]
    assert [text_of(row) for row in re.findall(r"<tr>(.*?)</tr>", section, re.S)[1:]] == [
        "Daytrading daytrading 0.5 30 days",
        "ETFs etfs 0.25 30 days",
    ]


@pytest.mark.usefixtures("accounts")
def test_the_timeline_shows_clicks_reads_and_a_click_taken_back_among_the_answers(
    app: Flask, interest: int
) -> None:
    page = signed_in(app, EDITOR).get(f"/admin/subscribers/{interest}").text
    timeline = page[page.index('<ol class="timeline"') : page.index("</ol>")]
    entries = [text_of(entry) for entry in re.split(r"<li[^>]*>", timeline)[1:]]
    assert len(entries) == 6 + 5
    assert all("Vraag" in entry for entry in entries[:6])  # the answers came first
    signals = entries[6:]
    assert signals[0].startswith(f"2026-03-06 10:30 UTC Clicked a link about Daytrading in “{SUBJECT}”")
    assert "later judged automated (burst) and taken back" in signals[0]
    assert "https://beleggen.example/daytraden/wat-is-het" in signals[0]
    taken_back = f"Click taken back: a link about Daytrading in “{SUBJECT}”, judged automated (burst)"
    assert signals[1].startswith(f"2026-03-06 10:30 UTC {taken_back}")
    assert "weight -1" in signals[1]
    assert "taken back 2026-03-06 10:30 UTC" in signals[1]
    assert signals[2].startswith(f"2026-03-06 10:40 UTC Clicked a link about ETFs in “{SUBJECT}”")
    assert "topic etfs · weight +1" in signals[2]
    assert signals[3].startswith(f"2026-03-06 10:50 UTC Clicked a link about Daytrading in “{SUBJECT}”")
    assert "judged automated" not in signals[3]
    assert signals[4].startswith(
        "2026-03-06 11:00 UTC Read https://beleggen.example/daytraden/wat-is-het (Daytrading)"
    )
    assert '<li class="signal taken-back">' in timeline
    assert timeline.count('<li class="signal') == 5


@pytest.mark.usefixtures("accounts")
def test_each_email_shows_clicks_by_people_and_those_judged_automated(app: Flask, interest: int) -> None:
    page = signed_in(app, EDITOR).get(f"/admin/subscribers/{interest}").text
    emails = page[page.index('id="emails"') :]
    rows = {text_of(row).split(" ")[3]: row for row in re.findall(r"<tr>(.*?)</tr>", emails, re.S)[1:]}
    assert set(rows) == {"sequence", "report", "confirm"}
    clicks = rows["sequence"][rows["sequence"].index('data-label="Clicks"') :]
    assert text_of(clicks).endswith("2 by people 2 judged automated (burst 2)")
    assert 'title="burst: several links of the email within two seconds"' in clicks
    for direct in ("confirm", "report"):  # their links are direct: nothing to count
        assert text_of(rows[direct][rows[direct].index('data-label="Clicks"') :]).endswith("—")


@pytest.mark.usefixtures("accounts")
def test_a_profile_without_interest_says_so(app: Flask, reader: int) -> None:
    page = signed_in(app, EDITOR).get(f"/admin/subscribers/{reader}").text
    assert "No interest shown in any topic yet" in page
    assert '<li class="signal' not in page
    assert "Answer history and interest" in page


@pytest.mark.usefixtures("accounts")
def test_a_profile_with_nothing_yet_says_so(app: Flask) -> None:
    add_subscribers(app, "leeg@example.com")
    page = signed_in(app, EDITOR).get("/admin/subscribers/1").text
    assert "No interest shown in any topic yet" in page
    assert "No answers and no signals of interest." in page
    assert "No emails." in page


@pytest.mark.usefixtures("accounts")
def test_the_erase_page_counts_clicks_and_signals_of_interest(app: Flask, interest: int) -> None:
    page = signed_in(app, ADMIN).get(f"/admin/subscribers/{interest}/erase").text
    assert "4 clicks on links in emails," in page
    assert "5 signals of interest and 2 topic scores," in page


@pytest.mark.usefixtures("accounts")
def test_hostile_answers_page_addresses_and_browsers_are_shown_as_text(app: Flask, client: Client) -> None:
    with app.app_context():
        widget = make_demo_widget()
        widget.texts = {**widget.texts, "consent_report": {"nl": XSS[0], "en": XSS[0]}}
        db.session.commit()
    body = valid_body(page_url=f"https://beleggen.example/a?x={XSS[1]}&y={XSS[0]}")
    response = client.post(
        "/api/v1/widgets/daytrading-report/submissions",
        json=body,
        headers={"Origin": "https://beleggen.example", "User-Agent": XSS[0] + XSS[1]},
    )
    assert response.status_code == 202
    with app.app_context():
        subscriber = db.session.scalars(select(Subscriber)).one()
        question = db.session.scalars(select(Question).where(Question.key == "is_investor")).one()
        db.session.add(  # an imported answer may hold anything
            Answer(
                subscriber=subscriber,
                question=question,
                value=XSS[1],
                source=AnswerSource.IMPORT,
                page_url="javascript:alert(1)",
                question_text=XSS[0],
                locale="nl",
                answered_at=clock.now(),
            )
        )
        db.session.commit()
        subscriber_id = subscriber.id
    page = signed_in(app, EDITOR).get(f"/admin/subscribers/{subscriber_id}").text
    for payload in XSS:
        assert payload not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript:' not in page
    assert "<img" not in page


@pytest.mark.usefixtures("accounts")
def test_an_unknown_or_erased_subscriber_is_not_found(app: Flask) -> None:
    editor = signed_in(app, EDITOR)
    assert editor.get("/admin/subscribers/999").status_code == 404
    assert editor.get("/admin/subscribers/abc").status_code == 404


# -- export


@pytest.mark.usefixtures("accounts")
def test_admins_download_the_same_document_as_the_cli_export_uncached(
    app: Flask, reader: int, runner: FlaskCliRunner
) -> None:
    admin = signed_in(app, ADMIN)
    token = token_for(admin, f"/admin/subscribers/{reader}")
    response = admin.post(f"/admin/subscribers/{reader}/export", data={"csrf_token": token})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == f'attachment; filename="subscriber-{reader}.json"'
    assert "no-store" in response.headers["Cache-Control"]
    document = json.loads(response.data)
    cli = runner.invoke(args=["subscribers", "export", READER])
    assert cli.exit_code == 0, cli.output
    assert document == json.loads(cli.output)
    assert document["profile"]["email"] == READER
    assert [a["value"] for a in document["answers"] if a["question"] == "daytrading_experience"] == [
        "none",
        "some",
    ]
    assert {e["kind"] for e in document["consent_events"]} == {"request", "confirm"}
    assert document["enrollments"][0]["sequence"] == "beginners"
    assert document["enrollments"][0]["next_step"] == "01-welcome.md"
    assert {d["kind"] for d in document["deliveries"]} == {"confirm", "report"}
    assert all(d["to_address"] == READER for d in document["deliveries"])


# -- erase


@pytest.mark.usefixtures("accounts")
def test_an_admin_erases_a_subscriber_after_typing_the_address(app: Flask, reader: int) -> None:
    add_subscribers(app, "ander@example.com")
    admin = signed_in(app, ADMIN)
    confirm_page = admin.get(f"/admin/subscribers/{reader}/erase")
    assert confirm_page.status_code == 200
    assert "6 answers" in confirm_page.text
    token = token_for(admin, f"/admin/subscribers/{reader}/erase")
    path = f"/admin/subscribers/{reader}/erase"

    for typed in ("", "lezer@example", "ander@example.com", "x" * 5000, XSS[1]):
        refused = admin.post(path, data={"csrf_token": token, "email": typed})
        assert refused.status_code == 422, typed
        assert 'aria-invalid="true"' in refused.text
        assert subscriber_count(app) == 2
        for payload in XSS:
            assert payload not in refused.text

    erased = admin.post(path, data={"csrf_token": token, "email": " LEZER@Example.com "})
    assert erased.status_code == 302
    assert erased.headers["Location"] == "/admin/subscribers/"
    after = admin.get("/admin/subscribers/")
    assert "The subscriber was erased" in after.text
    assert found(after.text) == ["ander@example.com"]
    assert admin.get(f"/admin/subscribers/{reader}").status_code == 404
    assert admin.get(path).status_code == 404
    assert subscriber_count(app) == 1


# -- accounts


@pytest.mark.usefixtures("accounts")
def test_the_accounts_page_lists_everyone_with_role_and_sign_ins(app: Flask) -> None:
    admin = signed_in(app, ADMIN)
    page = admin.get("/admin/accounts/")
    assert page.status_code == 200
    rows = re.findall(r"<tr>\s*<td><a [^>]*>([^<]+)</a>.*?<td[^>]*>(\w+)</td>", page.text, re.S)
    assert rows == [(ADMIN, "admin"), (EDITOR, "editor")]
    assert "(you)" in page.text
    assert 'href="/admin/accounts/"' in page.text  # in the navigation for admins


@pytest.mark.usefixtures("accounts")
def test_an_admin_adds_an_account_that_can_sign_in(app: Flask) -> None:
    admin = signed_in(app, ADMIN)
    token = token_for(admin, "/admin/accounts/")
    data = {
        "csrf_token": token,
        "email": "Nieuw@Beleggen.example",
        "role": "editor",
        "password": "twelve chars",
    }
    response = admin.post("/admin/accounts/", data=data)
    assert response.status_code == 302
    assert "Account nieuw@beleggen.example created as editor" in admin.get("/admin/accounts/").text
    newcomer = app.test_client()
    assert sign_in(newcomer, "nieuw@beleggen.example", "twelve chars").status_code == 302
    assert newcomer.get("/admin/subscribers/").status_code == 200
    assert newcomer.get("/admin/accounts/").status_code == 403


@pytest.mark.usefixtures("accounts")
@pytest.mark.parametrize(
    ("email", "role", "password", "message"),
    [
        ("nieuw@beleggen.example", "editor", "eleven char", "at least 12 characters"),
        ("not an address", "editor", ADMIN_PASSWORD, "not a valid email address"),
        (EDITOR.upper(), "editor", ADMIN_PASSWORD, "an account with this address exists"),
        ("nieuw@beleggen.example", "emperor", ADMIN_PASSWORD, "Not a valid choice"),
        (XSS[0], "editor", ADMIN_PASSWORD, "not a valid email address"),
        ("nieuw@beleggen.example", "editor", "", "Give a password."),
    ],
)
def test_a_bad_new_account_is_refused_clearly_and_nothing_is_stored(
    app: Flask, email: str, role: str, password: str, message: str
) -> None:
    admin = signed_in(app, ADMIN)
    token = token_for(admin, "/admin/accounts/")
    response = admin.post(
        "/admin/accounts/", data={"csrf_token": token, "email": email, "role": role, "password": password}
    )
    assert response.status_code == 422
    assert message in response.text
    assert XSS[0] not in response.text
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 2


def user_id(app: Flask, email: str) -> int:
    with app.app_context():
        return db.session.scalars(select(User.id).where(User.email == email)).one()


def role_of(app: Flask, email: str) -> Role:
    with app.app_context():
        return db.session.scalars(select(User.role).where(User.email == email)).one()


@pytest.mark.usefixtures("accounts")
def test_the_last_admin_cannot_be_demoted(app: Flask) -> None:
    admin = signed_in(app, ADMIN)
    me = user_id(app, ADMIN)
    token = token_for(admin, f"/admin/accounts/{me}")
    refused = admin.post(f"/admin/accounts/{me}/role", data={"csrf_token": token, "role": "editor"})
    assert refused.status_code == 422
    assert "the only admin" in refused.text
    assert role_of(app, ADMIN) is Role.ADMIN

    editor = user_id(app, EDITOR)
    promoted = admin.post(f"/admin/accounts/{editor}/role", data={"csrf_token": token, "role": "admin"})
    assert promoted.status_code == 302
    assert role_of(app, EDITOR) is Role.ADMIN
    # Now there are two, an admin may step down, and lands where an editor may be.
    stepped_down = admin.post(f"/admin/accounts/{me}/role", data={"csrf_token": token, "role": "editor"})
    assert stepped_down.status_code == 302
    assert stepped_down.headers["Location"] == "/admin/"
    assert role_of(app, ADMIN) is Role.EDITOR
    assert admin.get("/admin/accounts/").status_code == 403
    other = signed_in(app, EDITOR)  # the remaining admin cannot leave the role either
    token = token_for(other, f"/admin/accounts/{editor}")
    last = other.post(f"/admin/accounts/{editor}/role", data={"csrf_token": token, "role": "editor"})
    assert last.status_code == 422
    assert role_of(app, EDITOR) is Role.ADMIN


@pytest.mark.usefixtures("accounts")
def test_resetting_a_password_ends_the_accounts_sessions(app: Flask) -> None:
    admin = signed_in(app, ADMIN)
    editor = signed_in(app, EDITOR)
    target = user_id(app, EDITOR)
    token = token_for(admin, f"/admin/accounts/{target}")
    short = admin.post(
        f"/admin/accounts/{target}/password", data={"csrf_token": token, "password": "too short"}
    )
    assert short.status_code == 422
    assert "at least 12 characters" in short.text
    assert editor.get("/admin/").status_code == 200

    reset = admin.post(
        f"/admin/accounts/{target}/password", data={"csrf_token": token, "password": "a brand new secret"}
    )
    assert reset.status_code == 302
    assert editor.get("/admin/").status_code == 302  # signed out
    with app.app_context():
        assert authenticate(EDITOR, ADMIN_PASSWORD) is None
        assert authenticate(EDITOR, "a brand new secret") is not None


@pytest.mark.usefixtures("accounts")
def test_ending_sessions_signs_an_account_out_everywhere_but_keeps_your_own_browser(app: Flask) -> None:
    admin = signed_in(app, ADMIN)
    admin_elsewhere = signed_in(app, ADMIN)
    editor = signed_in(app, EDITOR)
    token = token_for(admin, "/admin/accounts/")
    assert (
        admin.post(f"/admin/accounts/{user_id(app, EDITOR)}/sessions", data={"csrf_token": token}).status_code
        == 302
    )
    assert editor.get("/admin/").status_code == 302
    assert admin_elsewhere.get("/admin/").status_code == 200

    own = admin.post(f"/admin/accounts/{user_id(app, ADMIN)}/sessions", data={"csrf_token": token})
    assert own.status_code == 302
    assert "except this one" in admin.get(own.headers["Location"]).text
    assert admin_elsewhere.get("/admin/").status_code == 302
    assert admin.get("/admin/accounts/").status_code == 200


@pytest.mark.usefixtures("accounts")
def test_an_unknown_account_is_not_found(app: Flask) -> None:
    admin = signed_in(app, ADMIN)
    assert admin.get("/admin/accounts/999").status_code == 404
    token = token_for(admin, "/admin/accounts/")
    assert (
        admin.post("/admin/accounts/999/role", data={"csrf_token": token, "role": "admin"}).status_code == 404
    )
