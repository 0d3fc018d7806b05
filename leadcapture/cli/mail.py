"""`leadcapture mail check`: render every email kind for a sample reader and check what a mailbox provider sees."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from leadcapture import clock
from leadcapture.config import current as current_settings
from leadcapture.extensions import db
from leadcapture.mail import dkim
from leadcapture.mail.transport import is_international, wire_bytes
from leadcapture.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Question,
    Report,
    SequenceStep,
    Submission,
    Subscriber,
    SubscriberStatus,
)
from leadcapture.services import emails
from leadcapture.services.outbox import make_message_id

SPAM_THRESHOLD = 1.0
SPAMASSASSIN_TIMEOUT = 120  # seconds; the first run compiles its rules
CHECKS = ("headers", "alternative", "links", "dkim", "spamassassin")


@dataclass(frozen=True)
class Result:
    kind: str
    check: str
    status: str  # "ok" | "FAIL" | "skip"
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


@dataclass(frozen=True)
class Sample:
    kind: DeliveryKind
    message: EmailMessage | None
    problem: str = ""  # why it could not be rendered


@click.group()
def mail() -> None:
    """Outgoing email."""


@mail.command("check")
@click.option("--locale", default="nl", show_default=True, help="Locale of the sample reader.")
@with_appcontext
def check(locale: str) -> None:
    """Render every email kind for a sample reader (nothing is stored or sent) and check its headers, parts,
    links, DKIM signature and SpamAssassin score. Exits 1 when any check fails."""
    results = check_messages(render_samples(locale))
    click.echo(format_table(results))
    settings = current_settings()
    if not settings.https:
        # Mailbox providers offer one-click unsubscribe only for an https List-Unsubscribe URL; on this
        # machine no provider sees the links, so development need not set up TLS.
        prefix = "warning: " if settings.loopback else ""
        click.echo(
            f"{prefix}LEADCAPTURE_BASE_URL {settings.base_url} is http: List-Unsubscribe needs https in "
            "production",
            err=True,
        )
    failures = sum(result.failed for result in results)
    if failures:
        click.echo(f"\n{failures} check{'s' if failures != 1 else ''} failed", err=True)
        sys.exit(1)


def render_samples(locale: str) -> list[Sample]:
    """Every kind rendered and signed as the sender would, for a reader who exists only in a rolled-back
    transaction."""
    settings = current_settings()
    signer = dkim.signer_for(settings)
    envelope_from = settings.return_path  # as ASCII or not as the VERP sender made from it
    samples = []
    with _rolled_back():
        subscriber, payloads = _sample_reader(locale)
        for kind in DeliveryKind:
            payload = payloads.get(kind)
            if isinstance(payload, str):
                samples.append(Sample(kind, None, payload))
                continue
            delivery = Delivery(
                kind=kind,
                subscriber=subscriber,
                idempotency_key=f"mail-check:{kind.value}",
                message_id=make_message_id(kind),
                to_address=subscriber.email,
                payload=payload,
                status=DeliveryStatus.PENDING,
                due_at=clock.now(),
                priority=0,
                attempts=0,
                created_at=clock.now(),
            )
            try:
                # Written in the rolled-back transaction, so its links can go through the click redirect.
                db.session.add(delivery)
                db.session.flush()
                message = emails.build_message(delivery, tracker=emails.tracker_for(delivery))
                if signer is not None:
                    signer.sign(message, international=is_international(envelope_from, delivery.to_address))
            except Exception as exc:  # reported as this kind's failure; the other kinds are still checked
                samples.append(Sample(kind, None, f"{type(exc).__name__}: {exc}"))
            else:
                samples.append(Sample(kind, message))
    return samples


@contextmanager
def _rolled_back() -> Iterator[None]:
    try:
        with db.session.no_autoflush:
            yield
    finally:
        db.session.rollback()


def _sample_reader(locale: str) -> tuple[Subscriber, dict[DeliveryKind, dict[str, Any] | str]]:
    """A confirmed reader with consent, a submission for the first report, and what each kind needs."""
    now = clock.now()
    subscriber = Subscriber(
        email=f"mail-check-{secrets.token_hex(4)}@example.com",
        status=SubscriberStatus.CONFIRMED,
        locale=locale,
        first_name="Anna",
        marketing_consent=True,
        created_at=now,
        confirmed_at=now,
        status_changed_at=now,
    )
    db.session.add(subscriber)
    db.session.flush()
    payloads: dict[DeliveryKind, dict[str, Any] | str] = {}
    report = db.session.scalars(select(Report).order_by(Report.id)).first()
    if report is None:
        payloads[DeliveryKind.CONFIRM] = payloads[DeliveryKind.REPORT] = "no report in the content"
    else:
        submission = Submission(subscriber=subscriber, report=report, marketing_consent=True, created_at=now)
        db.session.add(submission)
        db.session.flush()
        payloads[DeliveryKind.CONFIRM] = payloads[DeliveryKind.REPORT] = {"submission_id": submission.id}
    step = db.session.scalars(
        select(SequenceStep).order_by(SequenceStep.sequence_id, SequenceStep.position)
    ).first()
    payloads[DeliveryKind.SEQUENCE] = {"step_id": step.id} if step else "no sequence step in the content"
    question = db.session.scalars(
        select(Question).where(Question.options.any()).order_by(Question.id)
    ).first()
    payloads[DeliveryKind.REFRESH] = (
        {"question_id": question.id} if question else "no question in the content"
    )
    return subscriber, payloads


def check_messages(samples: list[Sample]) -> list[Result]:
    """Every check for every sample; SpamAssassin runs for all of them at once."""
    settings = current_settings()
    signer = dkim.signer_for(settings)
    raws = {id(sample): _wire(sample.message) for sample in samples if sample.message is not None}
    with ThreadPoolExecutor(max_workers=max(len(raws), 1)) as pool:
        scores = dict(zip(raws, pool.map(spam_score, raws.values()), strict=True))
    results: list[Result] = []
    for sample in samples:
        kind = sample.kind.value
        message = sample.message
        if message is None:
            results.append(Result(kind, "render", "FAIL", sample.problem))
            continue
        outcomes: dict[str, tuple[bool | None, str]] = {
            "headers": check_headers(message, sample.kind, settings.mail_domain, https=not settings.loopback),
            "alternative": check_alternative(message),
            "links": check_links(message),
            "dkim": check_dkim(raws[id(sample)], sample.kind, signer),
            "spamassassin": scores[id(sample)],
        }
        for name, (passed, detail) in outcomes.items():
            status = "skip" if passed is None else "ok" if passed else "FAIL"
            results.append(Result(kind, name, status, detail))
    return results


def _wire(message: EmailMessage) -> bytes:
    """The bytes the sender would hand the relay."""
    sender = current_settings().return_path  # as ASCII or not as the VERP sender made from it
    return wire_bytes(message, international=is_international(sender, str(message["To"])))


def check_headers(
    message: EmailMessage, kind: DeliveryKind, mail_domain: str, *, https: bool = True
) -> tuple[bool, str]:
    """The headers of SPEC 3.5; `https=False` (development on this machine) lets List-Unsubscribe be http."""
    problems = []
    for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
        if not str(message.get(name, "")).strip():
            problems.append(f"no {name}")
    try:
        if message["Date"] is not None:
            parsedate_to_datetime(str(message["Date"]))
    except (TypeError, ValueError):
        problems.append(f"Date {message['Date']!s} does not parse")
    message_id = str(message.get("Message-ID", ""))
    if message_id and not re.fullmatch(rf"<[^<>@\s]+@{re.escape(mail_domain)}>", message_id, re.IGNORECASE):
        problems.append(f"Message-ID {message_id} is not in {mail_domain}")
    if message.get("Auto-Submitted") != "auto-generated":
        problems.append("Auto-Submitted is not auto-generated")
    if message.get("X-Leadcapture-Kind") != kind.value:
        problems.append(f"X-Leadcapture-Kind is {message.get('X-Leadcapture-Kind')!s}, not {kind.value}")
    if kind.is_marketing:
        if not str(message.get("List-Id", "")).strip():
            problems.append("no List-Id")
        schemes = ("https://",) if https else ("https://", "http://")
        unsubscribe = str(message.get("List-Unsubscribe", ""))
        targets = re.findall(r"<([^<>]*)>", unsubscribe)
        if not targets:
            problems.append("no List-Unsubscribe")
        elif not any(target.startswith(schemes) and "/unsubscribe/" in target for target in targets):
            problems.append(f"List-Unsubscribe has no {'https ' if https else ''}/unsubscribe/ URL: {unsubscribe}")
        if message.get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click":
            problems.append("no List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    return (False, "; ".join(problems)) if problems else (True, "")


def check_alternative(message: EmailMessage) -> tuple[bool, str]:
    """multipart/alternative holding a text and an HTML part."""
    if message.get_content_type() != "multipart/alternative":
        return False, f"is {message.get_content_type()}, not multipart/alternative"
    types = [part.get_content_type() for part in message.iter_parts()]
    if sorted(types) != ["text/html", "text/plain"]:
        return False, "parts are " + ", ".join(types)
    return True, ""


def check_links(message: EmailMessage) -> tuple[bool, str]:
    """The text and the HTML part link to the same places; a marketing message also links to its
    List-Unsubscribe URL and names its sender in both (SPEC 3.5)."""
    text, html = _body(message, "plain"), _body(message, "html")
    if text is None or html is None:
        return False, "no text or no HTML part"
    in_html = set(html_links(html))
    in_text = set(text_links(text, known=in_html))
    problems = []
    if in_html - in_text:
        problems.append("only in HTML: " + ", ".join(sorted(in_html - in_text)))
    if in_text - in_html:
        problems.append("only in text: " + ", ".join(sorted(in_text - in_html)))
    targets = re.findall(r"<(https?://[^<>]*)>", str(message.get("List-Unsubscribe", "")))
    for target in targets:
        if target not in in_text or target not in in_html:
            problems.append("the List-Unsubscribe URL is not linked in both bodies")
    sender = getattr(message["From"], "addresses", ())
    if targets and sender and not (sender[0].addr_spec in text and sender[0].addr_spec in html):
        problems.append(f"the sender {sender[0].addr_spec} is not named in both bodies")
    if problems:
        return False, "; ".join(problems)
    return True, f"{len(in_html)} link{'s' if len(in_html) != 1 else ''} in both"


def check_dkim(raw: bytes, kind: DeliveryKind, signer: dkim.Signer | None) -> tuple[bool | None, str]:
    """The signature verifies with the configured key and covers the list headers of a marketing message."""
    if signer is None:
        return None, "not configured"
    if not dkim.verify(raw, signer.dns_record()):
        return False, "the signature does not verify"
    header = "".join(
        re.findall(rb"^DKIM-Signature:(.*(?:\r\n[ \t].*)*)", raw, re.MULTILINE)[0].decode().split()
    )
    signed = dict(tag.split("=", 1) for tag in header.split(";") if "=" in tag)["h"].lower().split(":")
    wanted = ["list-unsubscribe", "list-unsubscribe-post"] if kind.is_marketing else []
    missing = [
        name for name in ["from", "to", "subject", "date", "message-id", *wanted] if name not in signed
    ]
    if missing:
        return False, "not signed: " + ", ".join(missing)
    return True, f"d={signer.domain} s={signer.selector}"


def spam_score(raw: bytes) -> tuple[bool, str]:
    """SpamAssassin's score with local tests only (`spamassassin -L -t`): below SPAM_THRESHOLD passes."""
    binary = shutil.which("spamassassin")
    if binary is None:
        return False, "spamassassin not installed"
    try:
        completed = subprocess.run(  # noqa: S603 - a fixed binary and arguments, the message on stdin
            [binary, "-L", "-t"], input=raw, capture_output=True, timeout=SPAMASSASSIN_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"spamassassin took longer than {SPAMASSASSIN_TIMEOUT} s"
    score, tests = parse_spam_status(completed.stdout)
    if score is None:
        error = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        return False, "no score in spamassassin's output" + (f": {error[-1]}" if error else "")
    return float(score) < SPAM_THRESHOLD, f"score {score}" + (f" ({tests})" if tests else "")


def parse_spam_status(output: bytes) -> tuple[str | None, str]:
    """The score and the rules that hit, from the X-Spam-Status header spamassassin adds."""
    match = re.search(
        rb"^X-Spam-Status: \w+, score=(-?[\d.]+) required=[\d.]+(?:\s+tests=((?:\S|\r?\n[ \t]+)*))?",
        output,
        re.MULTILINE,
    )
    if match is None:
        return None, ""
    tests = b"".join((match[2] or b"").split()).decode("ascii", "replace")
    return match[1].decode("ascii"), "" if tests == "none" else tests


def format_table(results: list[Result]) -> str:
    """One row per kind and check: result and detail."""
    rows = [("kind", "check", "result", "detail")] + [
        (result.kind, result.check, result.status, result.detail) for result in results
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = (
        "  ".join(cell.ljust(width) for cell, width in zip(row, [*widths, 0], strict=True)) for row in rows
    )
    return "\n".join(line.rstrip() for line in lines)


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body((subtype,))
    if not isinstance(part, EmailMessage):
        return None
    content: str = part.get_content()
    return content


_TEXT_URL = re.compile(r"https?://[^\s<>\"']+")


def text_links(text: str, known: Collection[str] = ()) -> list[str]:
    """The URLs written out in a text part, without the punctuation that ends a sentence around them
    (unless the URL with it is one of `known`)."""
    links = []
    for found in _TEXT_URL.findall(text):
        url = found if found in known else found.rstrip(".,;:!?")
        if url.endswith(")") and url.count("(") < url.count(")"):
            url = url[:-1]
        links.append(url)
    return links


def html_links(html: str) -> list[str]:
    """The href of every link in an HTML part."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.links


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # The link for scanners, hidden from people and assistive technology, is no link a reader follows.
        if tag == "a" and dict(attrs).get("aria-hidden") != "true":
            href = dict(attrs).get("href")
            if href and href.startswith(("http://", "https://")):
                self.links.append(href)
