"""Outgoing mail carries a DKIM signature that verifies against the published key, and breaks when altered."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import dkim  # type: ignore[import-untyped]
import pytest
from flask import Flask
from flask.testing import FlaskClient

from leadcapture import create_app
from leadcapture.config import TEMPLATES_DIR
from leadcapture.errors import ConfigError
from leadcapture.extensions import db
from leadcapture.mail.dkim import Signer, aligned, public_key_record, verify
from leadcapture.mail.render import MailRenderer
from leadcapture.mail.transport import wire_bytes
from tests.factories import make_demo_widget
from tests.fixtures.smtp import SmtpSink
from tests.support.app import app_settings
from tests.support.mail import context, envelope, generate_key
from tests.support.submissions import post, valid_body


@pytest.fixture(scope="session")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_key(tmp_path_factory.mktemp("dkim") / "dkim.pem")


@pytest.fixture
def signer(dkim_key: Path) -> Signer:
    return Signer(domain="beleggen.example", selector="lc2026", private_key=dkim_key.read_bytes())


def lookup_for(record: str) -> Any:
    asked: list[bytes] = []

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        asked.append(name)
        return record.encode("ascii")

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def tags(message: Message) -> dict[str, str]:
    value = "".join(str(message["DKIM-Signature"]).split())
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


def test_a_marketing_message_is_signed_over_the_list_headers(signer: Signer, dkim_key: Path) -> None:
    message = MailRenderer(TEMPLATES_DIR).render(
        envelope("refresh"),
        "refresh",
        context(
            "report",
            "nl",
            question_text="Belegt u al?",
            answered_on="2026-01-02",
            choices=[{"label": "Ja", "url": "https://beleggen.example/answer/x", "current": True}],
            multi=False,
            preferences_url="https://beleggen.example/preferences/x",
        ),
    )
    signer.sign(message)
    raw = bytes(message)
    lookup = lookup_for(public_key_record(dkim_key.read_bytes()))
    assert dkim.verify(raw, dnsfunc=lookup)
    assert lookup.asked == [b"lc2026._domainkey.beleggen.example."]
    signature = tags(message_from_bytes(raw))
    assert signature["d"] == "beleggen.example"
    assert signature["s"] == "lc2026"
    assert signature["a"] == "rsa-sha256"
    assert signature["c"] == "relaxed/relaxed"
    signed = signature["h"].split(":")
    assert signed == [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ]


def test_a_tampered_body_or_header_fails_verification(signer: Signer, dkim_key: Path) -> None:
    message = MailRenderer(TEMPLATES_DIR).render(
        envelope("confirm"), "confirm", context("confirm", "en")
    )
    signer.sign(message)
    raw = bytes(message)
    record = public_key_record(dkim_key.read_bytes())
    assert verify(raw, record)
    assert b"/confirm/" in raw
    assert not verify(raw.replace(b"/confirm/", b"/evil/", 1), record)
    assert not verify(raw.replace(b"Subject: ", b"Subject: Re: ", 1), record)
    other = public_key_record(generate_key(dkim_key.parent / "other.pem").read_bytes())
    assert not verify(raw, other)


def test_an_international_message_signs_the_bytes_sent_with_smtputf8(signer: Signer, dkim_key: Path) -> None:
    message = MailRenderer(TEMPLATES_DIR).render(
        envelope("confirm", to="jürgen@example.de"), "confirm", context("confirm", "en")
    )
    signer.sign(message, international=True)
    assert verify(wire_bytes(message, international=True), public_key_record(dkim_key.read_bytes()))


@pytest.mark.parametrize(
    ("signing", "author", "expected"),
    [
        ("beleggen.example", "beleggen.example", True),
        ("beleggen.example", "news.beleggen.example", True),
        ("mail.beleggen.example", "beleggen.example", True),
        ("BELEGGEN.example.", "beleggen.example", True),
        ("other.example", "beleggen.example", False),
        ("example", "beleggen.example", False),
        ("notbeleggen.example", "beleggen.example", False),
    ],
)
def test_alignment_with_the_from_domain(signing: str, author: str, expected: bool) -> None:
    assert aligned(signing, author) is expected


@pytest.fixture
def settings(database_url: str, smtp_sink: SmtpSink, dkim_key: Path) -> dict[str, Any]:
    return app_settings(
        database_url,
        LEADCAPTURE_MAIL_URL=smtp_sink.url,
        LEADCAPTURE_DKIM_KEY_FILE=str(dkim_key),
        LEADCAPTURE_DKIM_SELECTOR="lc2026",
    )


@pytest.mark.drains_outbox
def test_mail_sent_over_smtp_verifies_with_the_published_key(
    app: Flask, client: FlaskClient, smtp_sink: SmtpSink, dkim_key: Path
) -> None:
    with app.app_context():
        make_demo_widget()
        db.session.commit()
    post(client, valid_body())
    (confirm,) = smtp_sink.wait_for(1)
    assert verify(confirm.raw, public_key_record(dkim_key.read_bytes()))
    assert tags(confirm.message)["d"] == "beleggen.example"


def test_a_key_for_another_domain_is_refused_at_start_up(dkim_key: Path, tmp_path: Path) -> None:
    config = app_settings(
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        LEADCAPTURE_DKIM_KEY_FILE=str(dkim_key),
        LEADCAPTURE_DKIM_SELECTOR="lc2026",
        LEADCAPTURE_DKIM_DOMAIN="elsewhere.example",
    )
    with pytest.raises(ConfigError, match="not aligned"):
        create_app(config)


def test_a_file_without_a_key_is_refused_at_start_up(tmp_path: Path) -> None:
    not_a_key = tmp_path / "dkim.pem"
    not_a_key.write_text("hello\n")
    config = app_settings(
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        LEADCAPTURE_DKIM_KEY_FILE=str(not_a_key),
        LEADCAPTURE_DKIM_SELECTOR="lc2026",
    )
    with pytest.raises(ConfigError, match="DKIM_KEY_FILE"):
        create_app(config)
