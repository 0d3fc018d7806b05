"""`leadcapture mail check`: every email kind rendered, checked and scored, without storing or sending anything."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from leadcapture.cli.mail import (
    check_alternative,
    check_headers,
    check_links,
    parse_spam_status,
    render_samples,
    spam_score,
    text_links,
)
from leadcapture.config import BUNDLED_CONTENT_DIR, TEMPLATES_DIR
from leadcapture.extensions import db
from leadcapture.mail.render import MailRenderer
from leadcapture.models import Delivery, DeliveryKind, Submission, Subscriber
from tests.support.app import app_settings, require
from tests.support.mail import context, envelope, generate_key

KINDS = ("confirm", "report", "sequence", "refresh")
CHECKS = ("headers", "alternative", "links", "dkim", "spamassassin")
HTTPS = {"LEADCAPTURE_BASE_URL": "https://nieuws.beleggen.example"}


def need_spamassassin() -> None:
    require(shutil.which("spamassassin") is not None, "spamassassin is not installed")


def rows(output: str) -> dict[tuple[str, str], tuple[str, str]]:
    """The table as {(kind, check): (result, detail)}."""
    table = {}
    for line in output.splitlines()[1:]:
        cells = line.split(None, 3)
        if len(cells) >= 3:
            table[(cells[0], cells[1])] = (cells[2], cells[3] if len(cells) == 4 else "")
    return table


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_key(tmp_path_factory.mktemp("mail-check") / "dkim.pem")


@pytest.fixture
def settings(request: pytest.FixtureRequest, database_url: str, key_file: Path) -> dict[str, Any]:
    marker = request.node.get_closest_marker("settings")
    extra = {
        **HTTPS,
        "LEADCAPTURE_DKIM_KEY_FILE": str(key_file),
        "LEADCAPTURE_DKIM_SELECTOR": "lc2026",
        **(marker.kwargs if marker else {}),
    }
    return app_settings(database_url, **{key: value for key, value in extra.items() if value is not None})


@pytest.fixture
def loaded(runner: FlaskCliRunner) -> FlaskCliRunner:
    result = runner.invoke(args=["content", "load", str(BUNDLED_CONTENT_DIR)])
    assert result.exit_code == 0, result.output
    return runner


def counts(app: Flask) -> tuple[int, ...]:
    with app.app_context():
        return tuple(
            db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Subscriber, Submission, Delivery)
        )


def test_every_kind_passes_every_check_and_nothing_is_stored(app: Flask, loaded: FlaskCliRunner) -> None:
    need_spamassassin()
    before = counts(app)
    result = loaded.invoke(args=["mail", "check"])
    assert result.exit_code == 0, result.output
    table = rows(result.output)
    assert set(table) == {(kind, check) for kind in KINDS for check in CHECKS}
    assert all(status == "ok" for status, _ in table.values()), result.output
    assert table[("sequence", "dkim")][1] == "d=beleggen.example s=lc2026"
    assert table[("refresh", "spamassassin")][1].startswith("score ")
    assert counts(app) == before


def test_marketing_samples_carry_tracked_links_and_the_hidden_link_and_still_score_well(
    app: Flask, loaded: FlaskCliRunner
) -> None:
    need_spamassassin()
    with app.app_context():
        samples = {sample.kind: sample.message for sample in render_samples("nl")}
    for kind in (DeliveryKind.SEQUENCE, DeliveryKind.REFRESH):
        message = samples[kind]
        assert message is not None
        html = message.get_body(("html",))
        assert html is not None
        hidden = re.findall(r'<a href="(https://[^"]+/l/[\w.\-]+)" style="display:none;" aria-hidden="true"'
                            r' tabindex="-1"></a>', html.get_content())  # fmt: skip
        assert len(hidden) == 1, kind
        assert check_links(message)[0], check_links(message)
        passed, detail = spam_score(bytes(message))
        assert passed, detail
        assert float(detail.split()[1]) < 1.0, detail
    for kind in (DeliveryKind.CONFIRM, DeliveryKind.REPORT):
        assert b"/l/" not in bytes(samples[kind])  # type: ignore[arg-type]


@pytest.mark.settings(LEADCAPTURE_DKIM_KEY_FILE=None, LEADCAPTURE_DKIM_SELECTOR=None)
def test_without_a_dkim_key_the_dkim_row_says_not_configured(loaded: FlaskCliRunner) -> None:
    need_spamassassin()
    result = loaded.invoke(args=["mail", "check"])
    assert result.exit_code == 0, result.output
    table = rows(result.output)
    assert {table[(kind, "dkim")] for kind in KINDS} == {("skip", "not configured")}


@pytest.mark.settings(LEADCAPTURE_BASE_URL="http://nieuws.beleggen.example")
def test_an_unsubscribe_header_without_https_fails_the_marketing_kinds(loaded: FlaskCliRunner) -> None:
    result = loaded.invoke(args=["mail", "check"])
    assert result.exit_code == 1
    table = rows(result.stdout)
    for kind in ("sequence", "refresh"):
        status, detail = table[(kind, "headers")]
        assert status == "FAIL"
        assert "List-Unsubscribe has no https /unsubscribe/ URL" in detail
    assert table[("confirm", "headers")] == ("ok", "")
    assert result.stderr.splitlines()[0] == (
        "LEADCAPTURE_BASE_URL http://nieuws.beleggen.example is http: List-Unsubscribe needs https in production"
    )
    assert "failed" in result.stderr


@pytest.mark.settings(LEADCAPTURE_BASE_URL="http://127.0.0.1:5000")
def test_an_http_base_url_on_this_machine_is_a_warning_not_a_failure(loaded: FlaskCliRunner) -> None:
    need_spamassassin()
    result = loaded.invoke(args=["mail", "check"])
    assert result.exit_code == 0, result.output
    table = rows(result.stdout)
    assert {table[(kind, "headers")] for kind in KINDS} == {("ok", "")}
    assert result.stderr.splitlines() == [
        "warning: LEADCAPTURE_BASE_URL http://127.0.0.1:5000 is http: List-Unsubscribe needs https in production"
    ]


def test_without_content_the_kinds_that_need_it_fail_to_render(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["mail", "check"])
    assert result.exit_code == 1
    table = rows(result.output)
    assert table[("confirm", "render")] == ("FAIL", "no report in the content")
    assert table[("sequence", "render")] == ("FAIL", "no sequence step in the content")
    assert table[("refresh", "render")] == ("FAIL", "no question in the content")


def test_without_spamassassin_its_check_fails(
    loaded: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = loaded.invoke(args=["mail", "check"])
    assert result.exit_code == 1
    table = rows(result.output)
    assert {table[(kind, "spamassassin")] for kind in KINDS} == {("FAIL", "spamassassin not installed")}
    assert table[("confirm", "dkim")][0] == "ok"


def rendered(kind: str) -> Any:
    per_kind = {
        "confirm": context("confirm", "en"),
        "refresh": context(
            "report",
            "en",
            question_text="Do you invest?",
            answered_on="2026-01-02",
            choices=[{"label": "Yes", "url": "https://beleggen.example/answer/x", "current": True}],
            multi=False,
            preferences_url="https://beleggen.example/preferences/x",
        ),
    }
    return MailRenderer(TEMPLATES_DIR).render(envelope(kind), kind, per_kind[kind])


def test_a_missing_list_header_fails_the_header_check() -> None:
    message = rendered("refresh")
    assert check_headers(message, DeliveryKind.REFRESH, "beleggen.example") == (True, "")
    del message["List-Unsubscribe-Post"]
    del message["List-Id"]
    passed, detail = check_headers(message, DeliveryKind.REFRESH, "beleggen.example")
    assert not passed
    assert "no List-Id" in detail
    assert "no List-Unsubscribe-Post" in detail


def test_a_broken_header_fails_the_header_check() -> None:
    message = rendered("confirm")
    message.replace_header("Message-ID", "<abc@elsewhere.example>")
    del message["Auto-Submitted"]
    passed, detail = check_headers(message, DeliveryKind.CONFIRM, "beleggen.example")
    assert not passed
    assert "Message-ID <abc@elsewhere.example> is not in beleggen.example" in detail
    assert "Auto-Submitted is not auto-generated" in detail
    passed, detail = check_headers(rendered("confirm"), DeliveryKind.REPORT, "beleggen.example")
    assert (passed, detail) == (False, "X-Leadcapture-Kind is confirm, not report")


def test_a_link_only_in_the_html_part_fails_the_link_check() -> None:
    message = rendered("confirm")
    assert check_links(message)[0]
    html = message.get_body(("html",))
    assert html is not None
    html.set_content(
        html.get_content().replace("</body>", '<a href="https://tracker.example/x">more</a></body>'),
        subtype="html",
    )
    assert check_links(message) == (False, "only in HTML: https://tracker.example/x")


def test_a_single_part_message_fails_the_alternative_check() -> None:
    message = rendered("confirm")
    text = message.get_body(("plain",))
    assert text is not None
    assert check_alternative(message) == (True, "")
    message.clear_content()
    message.set_content(text.get_content())
    assert check_alternative(message) == (False, "is text/plain, not multipart/alternative")


def test_spamassassin_fails_a_message_it_scores_as_spam() -> None:
    need_spamassassin()
    message = rendered("confirm")
    text = message.get_body(("plain",))
    assert text is not None
    # GTUBE, the test string every SpamAssassin scores as spam.
    gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    text.set_content(text.get_content() + "\n" + gtube + "\n")
    passed, detail = spam_score(bytes(message))
    assert not passed
    assert "GTUBE" in detail


def test_the_score_is_read_from_the_spam_status_header() -> None:
    output = (
        b"Received: x\r\nX-Spam-Status: No, score=0.4 required=5.0 tests=HTML_MESSAGE,\r\n"
        b"\tMIME_HTML_ONLY autolearn=no version=4.0.0\r\nSubject: hi\r\n"
    )
    assert parse_spam_status(output) == ("0.4", "HTML_MESSAGE,MIME_HTML_ONLY")
    assert parse_spam_status(b"X-Spam-Status: Yes, score=12.0 required=5.0 tests=none\r\n") == ("12.0", "")
    assert parse_spam_status(b"Subject: nothing\r\n") == (None, "")


def test_a_marketing_message_must_link_its_unsubscribe_url_and_name_its_sender_in_both_bodies() -> None:
    message = rendered("refresh")
    assert check_links(message)[0]
    text = message.get_body(("plain",))
    assert text is not None
    content = text.get_content()
    unsubscribe = message["List-Unsubscribe"].strip("<>")
    assert unsubscribe in content
    text.set_content(content.replace(unsubscribe, "").replace("nieuws@beleggen.example", "us"))
    passed, detail = check_links(message)
    assert not passed
    assert "the List-Unsubscribe URL is not linked in both bodies" in detail
    assert "the sender nieuws@beleggen.example is not named in both bodies" in detail


def test_links_written_in_text_lose_the_punctuation_of_the_sentence_around_them() -> None:
    text = "See https://a.example/x. Or (https://a.example/y), or https://a.example/z."
    assert text_links(text) == ["https://a.example/x", "https://a.example/y", "https://a.example/z"]
    assert text_links(text, known={"https://a.example/z."})[-1] == "https://a.example/z."
