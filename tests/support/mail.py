"""Email as data in tests: rendering envelopes, golden files, the parts and links of a sent message, DKIM keys."""

from __future__ import annotations

import email
import email.policy
import html
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from leadcapture.extensions import db
from leadcapture.mail.render import Envelope
from leadcapture.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
)
from tests.support.app import require

SENDER = Address("Beleggen", addr_spec="nieuws@beleggen.example")


UNSUBSCRIBE_URL = "https://beleggen.example/unsubscribe/" + "eyJzIjo0MiwibCI6ImRheXRyYWRpbmcifQ." * 3


URL = re.compile(r"https?://[^\s\"<>]+")


def context(template: str, locale: str, **overrides: Any) -> dict[str, Any]:
    """The context the services pass for each kind (see the mail contract)."""
    common = {
        "locale": locale,
        "first_name": "Anna",
        "report_title": TITLES[locale],
        "site_name": "Beleggen",
        "site_url": "https://beleggen.example",
        "site_link": "https://beleggen.example",
    }
    per_kind: dict[str, dict[str, Any]] = {
        "confirm": {"confirm_url": "https://beleggen.example/confirm/eyJzIjo0Mn0.Zx9a-b_c"},
        "report": {
            "report_description": DESCRIPTIONS[locale],
            "download_url": "https://beleggen.example/download/eyJyIjo3fQ.Qw3e-r_t",
            "download_days": 7,
        },
    }
    return {**common, **per_kind[template], **overrides}


def envelope(kind: str = "confirm", **overrides: Any) -> Envelope:
    fields: dict[str, Any] = {
        "kind": kind,
        "to": "anna@example.com",
        "sender": SENDER,
        "message_id": MESSAGE_ID,
        "date": DATE,
    }
    if kind in ("sequence", "refresh"):
        fields.update(list_id="Beleggen <beleggen.example>", unsubscribe_url=UNSUBSCRIBE_URL)
    return Envelope(**{**fields, **overrides})


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and the HTML alternative, decoded."""
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    assert isinstance(text_part, EmailMessage)
    assert isinstance(html_part, EmailMessage)
    return str(text_part.get_content()), str(html_part.get_content())


def reparsed(message: EmailMessage) -> EmailMessage:
    """The message as a receiving client sees it: serialised to bytes and parsed again."""
    parsed = message_from_bytes(bytes(message), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def html_words(document: str) -> list[str]:
    body = document.split("</head>", 1)[1]  # the <title> repeats the subject
    visible = html.unescape(re.sub(r"<[^>]+>", " ", body))
    return sorted(re.findall(r"\w+", URL.sub(" ", visible)))


def text_words(text: str) -> list[str]:
    return sorted(re.findall(r"\w+", URL.sub(" ", text)))


def html_links(document: str) -> set[str]:
    return {html.unescape(href) for href in re.findall(r'href="([^"]*)"', document)}


def assert_golden(name: str, actual: str) -> None:
    """Compare with tests/golden/email/NAME; UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN_DIR / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.is_file(), f"{path} is missing: run the tests once with UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(encoding="utf-8"), (
        f"{name} changed: if intended, rerun with UPDATE_GOLDEN=1"
    )


def sent(app: Flask, kind: DeliveryKind) -> list[EmailMessage]:
    """Messages of one kind the outbox transport kept, oldest first."""
    with app.app_context():
        rows = db.session.scalars(
            select(Delivery)
            .where(Delivery.kind == kind, Delivery.status == DeliveryStatus.SENT)
            .order_by(Delivery.id)
        ).all()
        messages = []
        for row in rows:
            message = email.message_from_bytes(row.raw_message or b"", policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            messages.append(message)
        return messages


def link_in(message: EmailMessage, path: str) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = re.search(r"http://127\.0\.0\.1:5000(/" + path + r"/[\w.\-]+)", body.get_content())
    assert match, body.get_content()
    return match.group(1)


def generate_key(path: Path) -> Path:
    """A fresh 2048-bit RSA key in PEM, made by openssl as an operator would."""
    require(shutil.which("openssl") is not None, "openssl is not installed")
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True, capture_output=True)
    return path


GOLDEN_DIR = Path(__file__).parent.parent / "golden" / "email"


DATE = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


MESSAGE_ID = "<9f86d081884c7d659a2feaa0c55ad015.confirm@beleggen.example>"


TITLES = {"nl": "Daytraden voor beginners", "en": "Daytrading for beginners"}


DESCRIPTIONS = {
    "nl": "Twaalf pagina's over risico, spreiding en je eerste order.",
    "en": "Twelve pages on risk, diversification and your first order.",
}


TRACKED = re.compile(r"https?://[^/\s\"<>]+(/l/[\w.\-]+)")


def untracked(text: str, client: Any) -> str:
    """`text` (a part of a sent message) with each tracked link replaced by where it leads, as a HEAD of the
    click redirect (which records nothing) answers."""

    def target(match: re.Match[str]) -> str:
        response = client.head(match.group(1))
        assert response.status_code == 302, (match.group(0), response.status_code)
        location = str(response.headers["Location"])
        return html.escape(location, quote=False) if 'href="' in text else location

    return TRACKED.sub(target, text)
