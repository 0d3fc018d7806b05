"""Rendering emails: headers per SPEC §3.5, both alternatives, escaping, golden text parts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from jinja2 import UndefinedError

from leadcapture.config import TEMPLATES_DIR
from leadcapture.i18n import translate
from leadcapture.mail.render import MailRenderer
from tests.support.mail import (
    DATE,
    MESSAGE_ID,
    SENDER,
    TITLES,
    UNSUBSCRIBE_URL,
    URL,
    assert_golden,
    context,
    envelope,
    html_links,
    html_words,
    parts,
    reparsed,
    text_words,
)


@pytest.fixture(scope="module")
def renderer() -> MailRenderer:
    return MailRenderer(TEMPLATES_DIR)


KINDS = [(template, locale) for template in ("confirm", "report") for locale in ("nl", "en")]


@pytest.mark.parametrize(("template", "locale"), KINDS)
def test_headers_follow_the_spec(renderer: MailRenderer, template: str, locale: str) -> None:
    message = reparsed(renderer.render(envelope(template), template, context(template, locale)))

    assert message["From"].addresses == (SENDER,)
    assert str(message["To"]) == "anna@example.com"
    subject_key = f"email.{template}.subject"
    assert str(message["Subject"]) == translate(locale, subject_key, title=TITLES[locale])
    assert parsedate_to_datetime(str(message["Date"])) == DATE
    assert str(message["Message-ID"]) == MESSAGE_ID
    assert str(message["MIME-Version"]) == "1.0"
    assert str(message["Auto-Submitted"]) == "auto-generated"
    assert str(message["X-Leadcapture-Kind"]) == template
    for header in ("List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Bcc", "Cc"):
        assert header not in message
    for header in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "X-Leadcapture-Kind"):
        assert len(message.get_all(header, [])) == 1, header


@pytest.mark.parametrize(("template", "locale"), KINDS)
def test_text_and_html_alternatives_say_the_same(renderer: MailRenderer, template: str, locale: str) -> None:
    message = reparsed(renderer.render(envelope(template), template, context(template, locale)))

    assert message.get_content_type() == "multipart/alternative"
    children = list(message.iter_parts())
    assert [part.get_content_type() for part in children] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in children)
    assert all("MIME-Version" not in part for part in children)
    text, document = parts(message)
    assert set(URL.findall(text)) == html_links(document)
    assert context(template, locale)[f"{'confirm' if template == 'confirm' else 'download'}_url"] in text
    assert text_words(text) == html_words(document)
    assert f'<html lang="{locale}">' in document
    assert "<img" not in document
    assert "<table" not in document
    assert translate(locale, "email.footer", site="Beleggen") in text


def test_the_whole_message_is_seven_bit_with_crlf(renderer: MailRenderer) -> None:
    raw = bytes(renderer.render(envelope(), "confirm", context("confirm", "nl")))

    assert raw.isascii()  # quoted-printable bodies, RFC 2047 headers: no relay needs to re-encode
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_message_id_is_used_verbatim(renderer: MailRenderer) -> None:
    message_id = "<20260302T093000Z.0123456789abcdef0123456789abcdef0123456789abcdef.report@beleggen.example>"

    raw = bytes(renderer.render(envelope(message_id=message_id), "report", context("report", "en")))

    assert f"\r\nMessage-ID: {message_id}\r\n".encode() in raw


def test_non_ascii_subject_round_trips(renderer: MailRenderer) -> None:
    title = "Beleggen in “groene” obligaties: één overzicht voor 2026 en daarna, met héél veel uitleg"

    raw = bytes(renderer.render(envelope(), "confirm", context("confirm", "nl", report_title=title)))

    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in header_block  # RFC 2047 encoded-words, not raw UTF-8
    parsed = message_from_bytes(raw, policy=default_policy)
    assert str(parsed["Subject"]) == f"Bevestig je adres en ontvang “{title}”"


def test_subject_is_one_line_whatever_the_title_holds(renderer: MailRenderer) -> None:
    title = "Daytraden\r\nBcc: everyone@example.com\n  en meer"

    message = reparsed(renderer.render(envelope(), "confirm", context("confirm", "en", report_title=title)))

    assert (
        str(message["Subject"]) == "Confirm your address to get “Daytraden Bcc: everyone@example.com en meer”"
    )
    assert "Bcc" not in message


def test_hostile_context_values_are_escaped_in_html(renderer: MailRenderer) -> None:
    hostile = context(
        "report",
        "en",
        report_title="<script>alert(1)</script>",
        first_name='"><img src=x onerror=alert(1)>',
        report_description="Tom & Jerry's <b>guide</b>",
    )

    message = reparsed(renderer.render(envelope("report"), "report", hostile))

    text, document = parts(message)
    assert "<script>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "<img" not in document
    assert "&lt;b&gt;guide&lt;/b&gt;" in document
    assert "Tom &amp; Jerry" in document
    assert "<script>alert(1)</script>" in text  # plain text is not HTML: shown as typed
    assert str(message["Subject"]) == "Your report: <script>alert(1)</script>"


def test_without_first_name_the_greeting_is_generic(renderer: MailRenderer) -> None:
    message = renderer.render(envelope(), "confirm", context("confirm", "nl", first_name=None))

    text, document = parts(message)
    assert text.startswith("Hallo,\n")
    assert ">Hallo,</p>" in document


def test_report_without_description_has_no_empty_paragraph(renderer: MailRenderer) -> None:
    message = renderer.render(envelope("report"), "report", context("report", "en", report_description=""))

    text, document = parts(message)
    assert "\n\n\n" not in text
    assert re.search(r"<p[^>]*>\s*</p>", document) is None


def test_a_missing_context_name_is_an_error(renderer: MailRenderer) -> None:
    incomplete = context("confirm", "en")
    del incomplete["confirm_url"]

    with pytest.raises(UndefinedError, match="confirm_url"):
        renderer.render(envelope(), "confirm", incomplete)


def test_the_context_needs_a_locale(renderer: MailRenderer) -> None:
    incomplete = context("confirm", "en")
    del incomplete["locale"]

    with pytest.raises(ValueError, match="locale"):
        renderer.render(envelope(), "confirm", incomplete)


@pytest.mark.parametrize("kind", ["sequence", "refresh"])
@pytest.mark.parametrize("missing", ["list_id", "unsubscribe_url"])
def test_marketing_kinds_need_list_headers(renderer: MailRenderer, kind: str, missing: str) -> None:
    with pytest.raises(ValueError, match="list_id and unsubscribe_url"):
        renderer.render(envelope(kind, **{missing: None}), "confirm", context("confirm", "en"))


@pytest.mark.parametrize("kind", ["confirm", "report"])
def test_transactional_kinds_refuse_list_headers(renderer: MailRenderer, kind: str) -> None:
    marketing_only = replace(
        envelope(kind), list_id="Beleggen <beleggen.example>", unsubscribe_url=UNSUBSCRIBE_URL
    )

    with pytest.raises(ValueError, match="transactional"):
        renderer.render(marketing_only, kind, context(kind, "en"))


@pytest.mark.parametrize("locale", ["nl", "en"])
@pytest.mark.parametrize("kind", ["sequence", "refresh"])
def test_marketing_kinds_carry_list_headers_and_an_unsubscribe_link(
    renderer: MailRenderer, kind: str, locale: str
) -> None:
    mailto = "mailto:unsubscribe@beleggen.example?subject=unsubscribe"
    rendered = renderer.render(
        envelope(kind, unsubscribe_mailto=mailto), "confirm", context("confirm", locale)
    )

    raw = bytes(rendered)
    # RFC 2369: the URIs appear literally in angle brackets, never as RFC 2047 encoded-words.
    assert f"\r\nList-Unsubscribe: <{UNSUBSCRIBE_URL}>, <{mailto}>\r\n".encode() in raw
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    message = reparsed(rendered)
    assert str(message["List-Id"]) == "Beleggen <beleggen.example>"
    assert str(message["X-Leadcapture-Kind"]) == kind
    text, document = parts(message)
    identity = translate(locale, "email.sender", name="Beleggen", address="nieuws@beleggen.example")
    for part in (text, document):
        assert identity in part
        assert translate(locale, "email.footer_marketing", site="Beleggen") in part
        assert translate(locale, "email.unsubscribe_question") in part
    assert f"{translate(locale, 'email.unsubscribe')}: {UNSUBSCRIBE_URL}" in text
    assert f">{translate(locale, 'email.unsubscribe')}</a>" in document
    assert UNSUBSCRIBE_URL in html_links(document)
    assert set(URL.findall(text)) == html_links(document)
    assert text_words(text) == html_words(document)


def built_by_the_content_manager(message: EmailMessage) -> EmailMessage:
    """The same message built the documented way: set_content(), then add_alternative()."""
    text, document = parts(message)
    built = EmailMessage(policy=message.policy)
    for name, value in message.items():
        if name.lower() != "content-type":
            built[name] = value
    built.set_content(text, subtype="plain", cte="quoted-printable")
    built.add_alternative(document, subtype="html", cte="quoted-printable")
    for part in built.iter_parts():
        del part["MIME-Version"]
    return built


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"first_name": "Zoë <b>&amp;", "report_title": "Een “heel” lange titel " * 8},
        {"report_title": "spaties aan het eind   \n\nregel\r\nbreuk\ttab " + "x" * 200},
    ],
)
@pytest.mark.parametrize(("template", "locale"), KINDS)
def test_the_message_is_byte_for_byte_what_the_content_manager_builds(
    renderer: MailRenderer, template: str, locale: str, overrides: dict[str, Any]
) -> None:
    for _ in range(2):  # the second time from the header cache
        message = renderer.render(envelope(template), template, context(template, locale, **overrides))
        built = built_by_the_content_manager(message)
        message.set_boundary("boundary")
        built.set_boundary("boundary")

        assert bytes(message) == bytes(built)


def test_a_dkim_signature_added_later_is_not_turned_into_encoded_words(renderer: MailRenderer) -> None:
    message = renderer.render(envelope(), "confirm", context("confirm", "en"))
    signature = "v=1; a=rsa-sha256; c=relaxed/simple; d=beleggen.example; s=mail; b=" + "QUJD" * 80

    message["DKIM-Signature"] = signature

    assert f"\r\nDKIM-Signature: {signature}\r\n".encode() in bytes(message)


def test_a_bare_unsubscribe_address_becomes_a_mailto(renderer: MailRenderer) -> None:
    rendered = renderer.render(
        envelope("sequence", unsubscribe_mailto="unsubscribe@beleggen.example"),
        "confirm",
        context("confirm", "en"),
    )

    assert str(rendered["List-Unsubscribe"]) == f"<{UNSUBSCRIBE_URL}>, <mailto:unsubscribe@beleggen.example>"


def test_sender_without_display_name_is_named_after_the_site(renderer: MailRenderer) -> None:
    bare = envelope("sequence", sender=Address(addr_spec="nieuws@beleggen.example"))

    text, _ = parts(renderer.render(bare, "confirm", context("confirm", "en")))

    assert "Sent by Beleggen (nieuws@beleggen.example)." in text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"kind": "newsletter"}, "unknown email kind"),
        ({"date": datetime(2026, 3, 2, 9, 30)}, "timezone-aware"),  # noqa: DTZ001 - the point of the test
        ({"message_id": "9f86d081@beleggen.example"}, "Message-ID"),
        ({"message_id": "<9f86 d081@beleggen.example>"}, "Message-ID"),
        ({"to": "not an address"}, "not an email address"),
        ({"to": "anna@"}, "not an email address"),
        ({"kind": "sequence", "list_id": "Beleggen\r\nBcc: x@example.com"}, "single lines"),
        ({"kind": "sequence", "unsubscribe_url": "javascript:alert(1)"}, "http"),
        (
            {"kind": "sequence", "unsubscribe_url": "https://beleggen.example/u/a>, <https://evil.example"},
            "URI",
        ),
    ],
)
def test_envelopes_that_would_make_a_bad_message_are_refused(
    renderer: MailRenderer, overrides: Mapping[str, Any], error: str
) -> None:
    base = envelope(str(overrides.get("kind", "confirm")))

    with pytest.raises(ValueError, match=error):
        renderer.render(replace(base, **overrides), "confirm", context("confirm", "en"))


def test_an_international_recipient_is_kept_for_smtputf8(renderer: MailRenderer) -> None:
    message = renderer.render(envelope(to="jöran@example.com"), "confirm", context("confirm", "nl"))

    assert str(message["To"]) == "jöran@example.com"


def test_a_part_that_quotes_the_boundary_does_not_end_the_part(renderer: MailRenderer) -> None:
    boundary = renderer.render(envelope(), "confirm", context("confirm", "en")).get_boundary()
    title = f"\n--{boundary}\n--{boundary}--\n={boundary}"

    message = reparsed(renderer.render(envelope(), "confirm", context("confirm", "en", report_title=title)))

    text, _ = parts(message)
    assert len(message.get_payload()) == 2
    assert all(line in text for line in title.split())
    assert not message.defects


@pytest.mark.parametrize(
    "address",
    [
        "anna@example.com",
        "a.b+c_d!#$%&'*/=?^`{|}~-e@sub.example-domain.nl",
        '"anna smit"@example.com',
        "x@[127.0.0.1]",
    ],
)
def test_recipients_read_back_as_given(renderer: MailRenderer, address: str) -> None:
    message = reparsed(renderer.render(envelope(to=address), "confirm", context("confirm", "en")))

    assert [recipient.addr_spec for recipient in message["To"].addresses] == [address]


@pytest.mark.parametrize(
    "address", ["anna@", "@example.com", "anna@example.com, eve@example.com", "a..b@example.com", "anna"]
)
def test_a_recipient_that_is_not_one_address_is_refused(renderer: MailRenderer, address: str) -> None:
    with pytest.raises(ValueError, match="not an email address"):
        renderer.render(envelope(to=address), "confirm", context("confirm", "en"))


def test_a_header_is_folded_for_the_policy_it_is_written_with(renderer: MailRenderer) -> None:
    title = "Beleggen in “groene” obligaties: één overzicht voor 2026 en daarna, met héél veel uitleg"
    message = renderer.render(envelope(), "confirm", context("confirm", "nl", report_title=title))
    seven_bit = message.as_bytes()

    international = message.as_bytes(policy=message.policy.clone(utf8=True))

    assert "“groene”".encode() in international.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" not in international.split(b"\r\n\r\n", 1)[0]
    parsed = message_from_bytes(international, policy=default_policy)
    assert str(parsed["Subject"]) == f"Bevestig je adres en ontvang “{title}”"
    assert message.as_bytes() == seven_bit
    assert b"=?utf-8?" in seven_bit.split(b"\r\n\r\n", 1)[0]


def test_date_keeps_its_offset(renderer: MailRenderer) -> None:
    amsterdam = DATE.astimezone(timezone(timedelta(hours=1)))

    message = renderer.render(envelope(date=amsterdam), "confirm", context("confirm", "nl"))

    assert str(message["Date"]) == "Mon, 02 Mar 2026 10:30:00 +0100"


@pytest.mark.parametrize(("template", "locale"), KINDS)
def test_text_part_matches_golden_file(renderer: MailRenderer, template: str, locale: str) -> None:
    message = renderer.render(envelope(template), template, context(template, locale))

    text, _ = parts(message)
    assert_golden(f"{template}.{locale}.txt", f"Subject: {message['Subject']}\n\n{text}")
