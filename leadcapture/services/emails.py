"""What each email kind says: one context function per kind, rendered by leadcapture.mail."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from leadcapture import clock
from leadcapture.config import PACKAGE_DIR
from leadcapture.config import current as current_settings
from leadcapture.extensions import db
from leadcapture.mail.render import Envelope, MailRenderer
from leadcapture.models import Delivery, DeliveryKind, Report, Submission, Subscriber, localized
from leadcapture.tokens import Purpose, make_token

Context = dict[str, Any]
DOWNLOAD_DAYS = (Purpose.DOWNLOAD.max_age or timedelta(0)).days


@cache
def renderer() -> MailRenderer:
    return MailRenderer(PACKAGE_DIR / "templates")


def link(path: str) -> str:
    """An absolute link for emails, on the public base URL."""
    return current_settings().base_url + path


def confirm_link(subscriber: Subscriber, submission: Submission) -> str:
    return link("/confirm/" + make_token(Purpose.CONFIRM, {"s": subscriber.id, "sub": submission.id}))


def download_link(subscriber: Subscriber, report: Report, submission: Submission) -> str:
    token = make_token(Purpose.DOWNLOAD, {"s": subscriber.id, "r": report.id, "sub": submission.id})
    return link("/download/" + token)


def site() -> Context:
    settings = current_settings()
    host = urlsplit(settings.base_url).hostname or settings.mail_domain
    return {"site_name": settings.mail_from.display_name or host, "site_url": settings.base_url}


def _confirm_context(delivery: Delivery, subscriber: Subscriber) -> Context:
    submission = db.session.get_one(Submission, delivery.payload["submission_id"])
    return {
        "first_name": subscriber.first_name,
        "report_title": localized(submission.report.title, subscriber.locale),
        "confirm_url": confirm_link(subscriber, submission),
    }


def _report_context(delivery: Delivery, subscriber: Subscriber) -> Context:
    submission = db.session.get_one(Submission, delivery.payload["submission_id"])
    report = submission.report
    return {
        "first_name": subscriber.first_name,
        "report_title": localized(report.title, subscriber.locale),
        "report_description": localized(report.description, subscriber.locale) if report.description else "",
        "download_url": download_link(subscriber, report, submission),
        "download_days": DOWNLOAD_DAYS,
    }


CONTEXTS: dict[DeliveryKind, Callable[[Delivery, Subscriber], Context]] = {
    DeliveryKind.CONFIRM: _confirm_context,
    DeliveryKind.REPORT: _report_context,
}


def build_message(delivery: Delivery) -> EmailMessage:
    """Render a delivery into the message to send, with its stored Message-ID."""
    subscriber = delivery.subscriber
    if subscriber is None:
        raise ValueError(f"delivery {delivery.id} has no subscriber")
    settings = current_settings()
    envelope = Envelope(
        kind=delivery.kind.value,
        to=delivery.to_address,
        sender=settings.mail_from,
        message_id=delivery.message_id,
        date=clock.now(),
    )
    context = {"locale": subscriber.locale, **site(), **CONTEXTS[delivery.kind](delivery, subscriber)}
    return renderer().render(envelope, delivery.kind.value, context)
