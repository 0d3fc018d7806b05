"""What happens through the links in emails, and what we hold on a person."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from leadcapture import clock
from leadcapture.errors import NotFound, TokenExpired, TokenInvalid
from leadcapture.extensions import db
from leadcapture.models import (
    MARKETING_KINDS,
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Report,
    Submission,
    Subscriber,
    SubscriberStatus,
)
from leadcapture.services.capture import normalize_email
from leadcapture.services.outbox import enqueue_delivery
from leadcapture.services.sequences import exit_all, sequences_of, switch_sequences
from leadcapture.tokens import Purpose, read_token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkTarget:
    """The subscriber and submission a confirm or download link was made for."""

    subscriber: Subscriber
    submission: Submission


def _target(payload: dict[str, Any]) -> LinkTarget:
    subscriber_id, submission_id = payload.get("s"), payload.get("sub")
    if not isinstance(subscriber_id, int) or not isinstance(submission_id, int):
        raise TokenInvalid("token lacks its subject")
    submission = db.session.get(Submission, submission_id)
    if submission is None or submission.subscriber_id != subscriber_id or submission.subscriber.is_suppressed:
        # Erased or suppressed people, and links to rows that no longer exist, all look alike.
        raise TokenInvalid("nothing behind this token")
    return LinkTarget(submission.subscriber, submission)


def confirmation_target(token: str) -> LinkTarget:
    """What a confirm link would confirm; changes nothing."""
    return _target(read_token(Purpose.CONFIRM, token))


def confirm_subscriber(token: str) -> LinkTarget:
    """The double opt-in: confirm the address and send every report it asked for. Idempotent."""
    target = confirmation_target(token)
    subscriber = target.subscriber
    now = clock.now()
    waiting = [submission for submission in subscriber.submissions if submission.confirmed_at is None]
    if subscriber.status is SubscriberStatus.CONFIRMED and not waiting:
        return target
    wants_sequences = any(submission.marketing_consent for submission in waiting)
    if subscriber.status is not SubscriberStatus.CONFIRMED:
        subscriber.status = SubscriberStatus.CONFIRMED
        subscriber.status_changed_at = now
        subscriber.confirmed_at = now
    if wants_sequences:
        subscriber.marketing_consent = True
    db.session.add(
        ConsentEvent(
            subscriber=subscriber,
            kind=ConsentKind.CONFIRM,
            purposes=["report", "sequences"] if wants_sequences else ["report"],
            widget=target.submission.widget,
            page_url=target.submission.page_url,
            wording={"action": "confirmation link clicked"},
            wording_version="-",
            created_at=now,
        )
    )
    if wants_sequences:
        switch_sequences(subscriber, reason="confirmed")
    for submission in waiting:
        submission.confirmed_at = now
        enqueue_delivery(
            subscriber.id,
            subscriber.email,
            DeliveryKind.REPORT,
            f"report:submission:{submission.id}",
            {"submission_id": submission.id},
        )
    db.session.flush()
    log.info("subscriber %s confirmed through submission %s", subscriber.id, target.submission.id)
    return target


def download_target(token: str) -> tuple[LinkTarget, Report]:
    """The report a download link opens; TokenExpired carries the payload so a new link can be offered."""
    payload = read_token(Purpose.DOWNLOAD, token)
    target = _target(payload)
    report = target.submission.report
    if payload.get("r") != report.id:
        raise TokenInvalid("token is for another report")
    return target, report


def expired_download_target(token: str) -> LinkTarget:
    """The subject of a genuine but expired download link."""
    try:
        download_target(token)
    except TokenExpired as expired:
        return _target(expired.payload)
    raise TokenInvalid("this link has not expired")


def renew_download_link(token: str) -> None:
    """Email a fresh download link for an expired one; at most once a day per report request."""
    target = expired_download_target(token)
    day = clock.now().date().isoformat()
    enqueue_delivery(
        target.subscriber.id,
        target.subscriber.email,
        DeliveryKind.REPORT,
        f"report:renew:{target.submission.id}:{day}",
        {"submission_id": target.submission.id},
    )
    log.info("fresh download link queued for submission %s", target.submission.id)


def unsubscribe_target(token: str) -> Subscriber:
    """The subscriber an unsubscribe link was made for; changes nothing."""
    subscriber_id = read_token(Purpose.UNSUBSCRIBE, token).get("s")
    subscriber = db.session.get(Subscriber, subscriber_id) if isinstance(subscriber_id, int) else None
    if subscriber is None:
        raise TokenInvalid("nothing behind this token")
    return subscriber


def unsubscribe(token: str, *, one_click: bool) -> Subscriber:
    """Withdraw marketing consent: out of every sequence, nothing marketing still waiting. Idempotent."""
    subscriber = unsubscribe_target(token)
    if not subscriber.marketing_consent and subscriber.status is not SubscriberStatus.CONFIRMED:
        return subscriber
    now = clock.now()
    subscriber.marketing_consent = False
    if subscriber.status in (SubscriberStatus.CONFIRMED, SubscriberStatus.PENDING):
        subscriber.status = SubscriberStatus.UNSUBSCRIBED
        subscriber.status_changed_at = now
    db.session.add(
        ConsentEvent(
            subscriber=subscriber,
            kind=ConsentKind.WITHDRAW,
            purposes=["sequences"],
            wording={"action": "one-click unsubscribe (RFC 8058)" if one_click else "unsubscribe page"},
            wording_version="-",
            created_at=now,
        )
    )
    exit_all(subscriber, "unsubscribed")
    db.session.execute(
        update(Delivery)
        .where(
            Delivery.subscriber_id == subscriber.id,
            Delivery.kind.in_(MARKETING_KINDS),
            Delivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.CANCELLED, last_error="unsubscribed")
    )
    db.session.flush()
    log.info("subscriber %s unsubscribed%s", subscriber.id, " (one-click)" if one_click else "")
    return subscriber


def find_subscriber(email: str) -> Subscriber:
    """The subscriber with this address, however it is written; NotFound otherwise."""
    try:
        normalized = normalize_email(email)
    except ValueError as exc:
        raise NotFound(email) from exc
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email == normalized))
    if subscriber is None:
        raise NotFound(email)
    return subscriber


def export_subscriber(email: str) -> dict[str, Any]:
    """Everything held on one person, as plain JSON-ready data."""
    subscriber = find_subscriber(email)
    deliveries = db.session.scalars(
        select(Delivery).where(Delivery.subscriber_id == subscriber.id).order_by(Delivery.id)
    )
    return {
        "profile": {
            "email": subscriber.email,
            "status": subscriber.status.value,
            "locale": subscriber.locale,
            "timezone": subscriber.timezone,
            "first_name": subscriber.first_name,
            "marketing_consent": subscriber.marketing_consent,
            "marketing_paused_until": _iso(subscriber.marketing_paused_until),
            "created_at": _iso(subscriber.created_at),
            "confirmed_at": _iso(subscriber.confirmed_at),
        },
        "answers": _answer_history(subscriber),
        "consent_events": [
            {
                "kind": event.kind.value,
                "purposes": event.purposes,
                "widget": event.widget.slug if event.widget else None,
                "page_url": event.page_url,
                "wording": event.wording,
                "wording_version": event.wording_version,
                "ip_address": event.ip_address,
                "user_agent": event.user_agent,
                "at": _iso(event.created_at),
            }
            for event in subscriber.consent_events
        ],
        "submissions": [
            {
                "widget": submission.widget.slug if submission.widget else None,
                "report": submission.report.slug,
                "page_url": submission.page_url,
                "marketing_consent": submission.marketing_consent,
                "created_at": _iso(submission.created_at),
                "confirmed_at": _iso(submission.confirmed_at),
            }
            for submission in subscriber.submissions
        ],
        "enrollments": [
            {
                "sequence": enrollment.sequence.slug,
                "state": enrollment.state.value,
                "steps_sent_or_scheduled": enrollment.steps_done,
                "next_due_at": _iso(enrollment.next_due_at),
                "entered_at": _iso(enrollment.entered_at),
                "left_at": _iso(enrollment.left_at),
                "exit_reason": enrollment.exit_reason,
            }
            for enrollment in sequences_of([subscriber])[subscriber.id]
        ],
        "deliveries": [
            {
                "kind": delivery.kind.value,
                "status": delivery.status.value,
                "subject": delivery.subject,
                "message_id": delivery.message_id,
                "created_at": _iso(delivery.created_at),
                "sent_at": _iso(delivery.sent_at),
                "attempts": delivery.attempts,
                "last_error": delivery.last_error,
            }
            for delivery in deliveries
        ],
    }


def _answer_history(subscriber: Subscriber) -> list[dict[str, Any]]:
    """Every answer in order, each with the answer it replaced: the change events of a subscriber."""
    previous: dict[int, Any] = {}
    history = []
    for answer in subscriber.answers:
        before = previous.get(answer.question_id)
        history.append(
            {
                "question": answer.question.key,
                "value": answer.value,
                "previous_value": before,
                "changed": before != answer.value,
                "source": answer.source.value,
                "widget": answer.widget.slug if answer.widget else None,
                "page_url": answer.page_url,
                "question_text": answer.question_text,
                "locale": answer.locale,
                "answered_at": _iso(answer.answered_at),
            }
        )
        previous[answer.question_id] = answer.value
    return history


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None
