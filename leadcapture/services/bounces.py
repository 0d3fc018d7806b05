"""Bounces and complaints: read what came back, tie it to the delivery it is about, suppress when it says so.

Reports arrive as mail at the VERP return path (RFC 3464 delivery status notifications, RFC 5965 feedback
reports) or as provider events on the webhook. Each is recorded once as a BounceEvent; then:

- a hard bounce marks the subscriber `bounced`,
- the third soft bounce within seven days marks the subscriber `bounced`,
- a complaint marks the subscriber `complained`,
- a delay is recorded and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, HeaderParser
from email.policy import default as default_policy
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any, Final

from flufl.bounce import all_failures
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.config import current as current_settings
from leadcapture.database import insert_or_ignore
from leadcapture.extensions import db
from leadcapture.models import (
    BounceEvent,
    BounceKind,
    BounceSource,
    Delivery,
    Subscriber,
    SubscriberStatus,
)

log = logging.getLogger(__name__)

SOFT_BOUNCE_LIMIT: Final = 3
SOFT_BOUNCE_WINDOW: Final = timedelta(days=7)

# RFC 3463: class.subject.detail.
STATUS_CODE: Final = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_STATUS_IN_TEXT: Final = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
# Feedback types (RFC 5965) that mean "this person does not want this mail".
_COMPLAINT_TYPES: Final = frozenset({"abuse", "fraud", "virus", "other"})
# Where a receiving system writes the address a message was delivered to, the VERP return path for a bounce.
_DELIVERED_TO_HEADERS: Final = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To")


class UnreadableReport(Exception):
    """A message in the bounce mailbox that is neither a bounce nor a complaint we can use."""


@dataclass(frozen=True)
class BounceReport:
    """One bounce, delay or complaint about one message we sent, before it is tied to its delivery."""

    kind: BounceKind
    source: BounceSource
    # Identifies the report itself (its own Message-ID, or a digest of it): the same report counts once.
    reference: str
    received_at: datetime
    # What ties it to a delivery: the id from the VERP address and/or the original Message-ID ...
    delivery_id: int | None = None
    message_ids: frozenset[str] = frozenset()
    # ... and the addresses the report names, which must agree with a delivery found through VERP.
    recipients: frozenset[str] = frozenset()
    status_code: str | None = None
    diagnostic: str | None = None


@dataclass(frozen=True)
class BounceOutcome:
    delivery_id: int | None
    subscriber_id: int | None
    kind: BounceKind
    recorded: bool  # False: unknown delivery, or the same report was recorded before
    action: str  # what happened, in a few words


@dataclass
class WebhookSummary:
    recorded: int = 0
    duplicates: int = 0
    ignored: int = 0  # unknown message ids (or a recipient that is not the delivery's)
    outcomes: list[BounceOutcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"recorded": self.recorded, "duplicates": self.duplicates, "ignored": self.ignored}


def record_bounce(report: BounceReport) -> BounceOutcome:
    """Record one report against its delivery and apply the suppression rules. Flushes; the caller commits."""
    delivery = _find_delivery(report)
    if delivery is None:
        log.info(
            "%s %s report %s matches no delivery", report.source.value, report.kind.value, report.reference
        )
        return BounceOutcome(None, None, report.kind, False, "no matching delivery: ignored")
    now = clock.now()
    received_at = min(report.received_at, now)  # a report from the future would stretch the soft window
    key = hashlib.sha256(f"{report.source.value}\0{delivery.id}\0{report.reference}".encode()).hexdigest()
    inserted = db.session.execute(
        insert_or_ignore(BounceEvent)
        .values(
            delivery_id=delivery.id,
            subscriber_id=delivery.subscriber_id,
            kind=report.kind,
            status_code=report.status_code,
            diagnostic=report.diagnostic[:2000] if report.diagnostic else None,
            source=report.source,
            received_at=received_at,
            event_key=f"{report.source.value}:{key[:80]}",
        )
        .returning(BounceEvent.id)
    ).scalar()
    if inserted is None:
        return BounceOutcome(delivery.id, delivery.subscriber_id, report.kind, False, "already recorded")
    action = _apply_rules(delivery.subscriber, report, received_at)
    log.info(
        "delivery %s: %s %s (%s) from %s: %s",
        delivery.id,
        report.kind.value,
        report.status_code or "-",
        report.reference,
        report.source.value,
        action,
    )
    db.session.flush()
    return BounceOutcome(delivery.id, delivery.subscriber_id, report.kind, True, action)


def _apply_rules(subscriber: Subscriber | None, report: BounceReport, received_at: datetime) -> str:
    # Imported here: suppressing takes the subscriber out of their sequences, whose steps go through the
    # outbox, which records its own refusals in this module.
    from leadcapture.services import subscribers

    if subscriber is None:
        return "recorded (the subscriber was erased)"
    if report.kind is BounceKind.DELAYED:
        return "recorded (delayed)"
    if subscriber.is_suppressed:
        return f"recorded (already {subscriber.status.value})"
    reason = f"{report.kind.value} bounce {report.status_code or ''} via {report.source.value}".strip()
    if report.kind is BounceKind.COMPLAINT:
        subscribers.suppress_subscriber(
            subscriber, SubscriberStatus.COMPLAINED, reason=f"complaint via {report.source.value}"
        )
        return "complaint: subscriber suppressed (complained)"
    if report.kind is BounceKind.HARD:
        subscribers.suppress_subscriber(subscriber, SubscriberStatus.BOUNCED, reason=reason)
        return "hard bounce: subscriber suppressed (bounced)"
    soft = db.session.scalar(
        select(func.count())
        .select_from(BounceEvent)
        .where(
            BounceEvent.subscriber_id == subscriber.id,
            BounceEvent.kind == BounceKind.SOFT,
            BounceEvent.received_at > received_at - SOFT_BOUNCE_WINDOW,
            BounceEvent.received_at <= received_at,
        )
    )
    if (soft or 0) >= SOFT_BOUNCE_LIMIT:
        subscribers.suppress_subscriber(
            subscriber, SubscriberStatus.BOUNCED, reason=f"{soft} soft bounces within seven days ({reason})"
        )
        return f"soft bounce {soft} within seven days: subscriber suppressed (bounced)"
    return f"soft bounce {soft} of {SOFT_BOUNCE_LIMIT} within seven days"


def _find_delivery(report: BounceReport) -> Delivery | None:
    """The delivery a report is about: by VERP id, confirmed by the address or Message-ID it names (anyone can
    write to bounce+<id>@, and ids are easy to guess); failing that, by the original Message-ID."""
    if report.delivery_id is not None:
        delivery = db.session.get(Delivery, report.delivery_id)
        if delivery is not None and (
            delivery.to_address.lower() in report.recipients or delivery.message_id in report.message_ids
        ):
            return delivery
    if report.message_ids:
        found: Delivery | None = db.session.scalars(
            select(Delivery).where(Delivery.message_id.in_(sorted(report.message_ids))).limit(1)
        ).first()
        if found is not None and (not report.recipients or found.to_address.lower() in report.recipients):
            return found
    return None


# --- Reading bounce mail ------------------------------------------------------------------------------


def parse_bounce_message(raw: bytes) -> list[BounceReport]:
    """The bounces, delays or complaint one message in the bounce mailbox reports.

    RFC 3464 reports give their status per recipient in the delivery-status part; flufl.bounce recognises the
    many bounce formats that are not RFC 3464, for which the status code is read from the text when present.
    An empty list: a report that asks nothing of us (e.g. "delivered"). Raises UnreadableReport.
    """
    try:
        message = message_from_bytes(raw, policy=default_policy)
    except Exception as exc:  # the email package raises a variety on broken input
        raise UnreadableReport(f"not a readable message: {exc}") from exc
    if not isinstance(message, EmailMessage) or not message.keys():
        raise UnreadableReport("not a mail message")
    reference = _reference(message, raw)
    received_at = _date(message)
    verp_id = _verp_id(message)
    content_type = message.get_content_type()
    report_type = str(message.get_param("report-type", "", header="content-type") or "").lower()
    if content_type == "multipart/report" and report_type == "feedback-report":
        return [_feedback_report(message, reference, received_at, verp_id)]
    if content_type == "multipart/report" and report_type == "delivery-status":
        return _delivery_status(message, reference, received_at, verp_id)
    return _other_bounce(message, reference, received_at, verp_id)


def _delivery_status(
    message: EmailMessage, reference: str, received_at: datetime, verp_id: int | None
) -> list[BounceReport]:
    status_part = next((p for p in message.walk() if p.get_content_type() == "message/delivery-status"), None)
    if status_part is None:
        raise UnreadableReport("a delivery report without its delivery-status part")
    blocks = _status_blocks(status_part)
    if len(blocks) < 2:
        raise UnreadableReport("a delivery report that names no recipient")
    message_ids = _original_message_ids(message)
    reports = []
    for block in blocks[1:]:  # the first block is about the message, each further one about a recipient
        action = str(block.get("Action", "")).strip().lower()
        status = _status(str(block.get("Status", "")))
        recipient = _typed_address(block.get("Final-Recipient")) or _typed_address(
            block.get("Original-Recipient")
        )
        recipients = {a for a in (recipient, _typed_address(block.get("Original-Recipient"))) if a}
        if action == "delayed":
            kind = BounceKind.DELAYED
        elif action == "failed":
            kind = _failure_kind(status, permanent=status is None or status.startswith("5"))
        else:
            continue  # delivered, relayed, expanded: nothing went wrong
        if not recipients:
            raise UnreadableReport("a failed recipient without a Final-Recipient")
        diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split()) or None
        reports.append(
            BounceReport(
                kind=kind,
                source=BounceSource.DSN,
                reference=f"{reference} {recipient}",
                received_at=received_at,
                delivery_id=verp_id,
                message_ids=message_ids,
                recipients=frozenset(recipients),
                status_code=status,
                diagnostic=diagnostic,
            )
        )
    return reports


def _status_blocks(part: Message) -> list[Message]:
    """The field blocks of a message/delivery-status part (the email package parses each as a message)."""
    payload = part.get_payload()
    if isinstance(payload, list) and all(isinstance(block, Message) for block in payload):
        return list(payload)
    text = payload if isinstance(payload, str) else ""
    return [HeaderParser().parsestr(chunk) for chunk in re.split(r"\r?\n\s*\r?\n", text.strip()) if chunk]


def _failure_kind(status: str | None, *, permanent: bool) -> BounceKind:
    """Hard or soft, from an RFC 3463 status. Of the permanent failures, those about policy (5.7.x), about our
    sender address (5.1.7, 5.1.8) or a full mailbox (5.2.2) do not prove the address dead: they count as soft."""
    if not permanent:
        return BounceKind.SOFT
    if status is None:
        return BounceKind.HARD
    _, subject, detail = status.split(".")
    if subject == "7" or (subject, detail) in (("1", "7"), ("1", "8"), ("2", "2")):
        return BounceKind.SOFT
    return BounceKind.HARD


def _feedback_report(
    message: EmailMessage, reference: str, received_at: datetime, verp_id: int | None
) -> BounceReport:
    part = next((p for p in message.walk() if p.get_content_type() == "message/feedback-report"), None)
    if part is None:
        raise UnreadableReport("a feedback report without its feedback-report part")
    fields = _status_blocks(part)
    if not fields:
        raise UnreadableReport("an empty feedback-report part")
    feedback_type = str(fields[0].get("Feedback-Type", "")).strip().lower()
    if feedback_type not in _COMPLAINT_TYPES:
        raise UnreadableReport(f"feedback of type {feedback_type or 'unknown'!r} is not a complaint")
    recipients = {a for a in (_plain_address(v) for v in fields[0].get_all("Original-Rcpt-To") or []) if a}
    original = _original_headers(message)
    if original is not None:
        recipients |= {a for a in (_plain_address(v) for v in original.get_all("To") or []) if a}
    return BounceReport(
        kind=BounceKind.COMPLAINT,
        source=BounceSource.ARF,
        reference=reference,
        received_at=received_at,
        delivery_id=verp_id,
        message_ids=_original_message_ids(message),
        recipients=frozenset(recipients),
        diagnostic=f"feedback type {feedback_type}",
    )


def _other_bounce(
    message: EmailMessage, reference: str, received_at: datetime, verp_id: int | None
) -> list[BounceReport]:
    temporary, permanent = all_failures(message)
    if not (temporary or permanent):
        raise UnreadableReport("neither a bounce nor a complaint")
    text = _plain_text(message)
    found = _STATUS_IN_TEXT.search(text)
    status = found[1] if found else None
    message_ids = _original_message_ids(message)
    reports = []
    for addresses, is_permanent in ((permanent, True), (temporary, False)):
        for address in sorted(addresses):
            recipient = address.decode("utf-8", "replace").lower()
            code = status if status and status.startswith("5" if is_permanent else "4") else None
            reports.append(
                BounceReport(
                    kind=_failure_kind(code, permanent=is_permanent),
                    source=BounceSource.DSN,
                    reference=f"{reference} {recipient}",
                    received_at=received_at,
                    delivery_id=verp_id,
                    message_ids=message_ids,
                    recipients=frozenset({recipient}),
                    status_code=code,
                )
            )
    return reports


def _reference(message: EmailMessage, raw: bytes) -> str:
    own_id = " ".join(str(message.get("Message-ID", "")).split())
    return own_id[:200] if own_id else "sha256:" + hashlib.sha256(raw).hexdigest()


def _date(message: EmailMessage) -> datetime:
    try:
        when = parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return clock.now()
    return when if when.tzinfo is not None else clock.now()


def _verp_id(message: EmailMessage) -> int | None:
    """The delivery id in the VERP address the report was sent to (bounce+<id>@<return path domain>)."""
    local, _, domain = current_settings().return_path.rpartition("@")
    pattern = re.compile(rf"^{re.escape(local)}\+(\d{{1,18}})@{re.escape(domain)}$", re.IGNORECASE)
    for name in _DELIVERED_TO_HEADERS:
        for value in message.get_all(name) or []:
            for address in re.split(r",", str(value)):
                matched = pattern.match(parseaddr(address)[1].strip())
                if matched:
                    return int(matched[1])
    return None


def _status(value: str) -> str | None:
    found = _STATUS_IN_TEXT.search(value)
    return found[1] if found else None


def _typed_address(value: Any) -> str | None:
    """The address of an RFC 3464 address field: "rfc822; someone@example.com"."""
    if value is None:
        return None
    kind, _, address = str(value).partition(";")
    if not address:
        address = kind
    elif kind.strip().lower() != "rfc822":
        return None
    return _plain_address(address)


def _plain_address(value: Any) -> str | None:
    address = parseaddr(str(value))[1].strip().lower()
    return address if "@" in address else None


def _original_headers(message: EmailMessage) -> Message | None:
    """The headers of the message the report is about, from its message/rfc822 or text/rfc822-headers part."""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif content_type == "text/rfc822-headers":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                return BytesHeaderParser(policy=default_policy).parsebytes(data)
    return None


def _original_message_ids(message: EmailMessage) -> frozenset[str]:
    original = _original_headers(message)
    if original is None:
        return frozenset()
    return frozenset(
        found for value in original.get_all("Message-ID") or [] if (found := _message_id(str(value)))
    )


def _message_id(value: str) -> str | None:
    found = re.search(r"<[^<>\s]{1,250}>", value)
    return found[0] if found else None


def _plain_text(message: EmailMessage) -> str:
    texts = []
    for part in message.walk():
        if part.get_content_type() == "text/plain" and isinstance(part, EmailMessage):
            try:
                texts.append(str(part.get_content()))
            except (LookupError, ValueError):
                continue
    return "\n".join(texts)


# --- Provider events ----------------------------------------------------------------------------------

WEBHOOK_KINDS: Final = {
    "bounce": BounceKind.HARD,
    "soft_bounce": BounceKind.SOFT,
    "complaint": BounceKind.COMPLAINT,
    "delayed": BounceKind.DELAYED,
}
MAX_EVENTS: Final = 500


class MalformedEvents(Exception):
    """The webhook body is not a list of events; `errors` says where."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


class InvalidEvents(MalformedEvents):
    """The body is a list of events, but one is not valid."""


def parse_mail_events(body: bytes) -> list[BounceReport]:
    """The reports in a webhook body: {"events": [{"type", "message_id", "recipient", "status", "time"}]}."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedEvents({"body": "is not valid JSON"}) from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise MalformedEvents({"events": "is required: a list of events"})
    events: list[Any] = data["events"]
    if len(events) > MAX_EVENTS:
        raise InvalidEvents({"events": f"at most {MAX_EVENTS} events in one request"})
    errors: dict[str, str] = {}
    reports = []
    for index, event in enumerate(events):
        report = _event_report(event, f"events[{index}]", errors)
        if report is not None:
            reports.append(report)
    if errors:
        raise InvalidEvents(errors)
    return reports


def _event_report(event: Any, where: str, errors: dict[str, str]) -> BounceReport | None:
    if not isinstance(event, dict):
        errors[where] = "must be an object"
        return None
    event_type = event.get("type")
    kind = WEBHOOK_KINDS.get(event_type) if isinstance(event_type, str) else None
    if kind is None:
        errors[f"{where}.type"] = "must be one of " + ", ".join(WEBHOOK_KINDS)
    message_id = event.get("message_id")
    if not isinstance(message_id, str) or _message_id(message_id) != message_id.strip():
        errors[f"{where}.message_id"] = "must be a Message-ID such as <id@example.com>"
        message_id = None
    recipient = event.get("recipient")
    if recipient is not None and (
        not isinstance(recipient, str) or len(recipient) > 254 or _plain_address(recipient) is None
    ):
        errors[f"{where}.recipient"] = "must be an email address"
    status = event.get("status")
    if status is not None and (not isinstance(status, str) or not STATUS_CODE.match(status)):
        errors[f"{where}.status"] = "must be a status code such as 5.1.1"
    raw_time = event.get("time")
    when = clock.now() if raw_time is None else _iso_time(raw_time)
    if when is None:
        errors[f"{where}.time"] = "must be an ISO 8601 time with a time zone"
    if (
        kind is None
        or message_id is None
        or when is None
        or any(key.startswith(where + ".") for key in errors)
    ):
        return None
    canonical = json.dumps([event.get("type"), message_id, recipient, status, raw_time], ensure_ascii=True)
    return BounceReport(
        kind=kind,
        source=BounceSource.WEBHOOK,
        reference="sha256:" + hashlib.sha256(canonical.encode()).hexdigest(),
        received_at=when,
        message_ids=frozenset({message_id.strip()}),
        recipients=frozenset({_plain_address(recipient) or ""} if recipient else ()),
        status_code=status,
    )


def _iso_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def record_mail_events(reports: Iterable[BounceReport]) -> WebhookSummary:
    """Record provider events; unknown message ids are counted, not refused. Flushes; the caller commits."""
    summary = WebhookSummary()
    for report in reports:
        outcome = record_bounce(report)
        summary.outcomes.append(outcome)
        if outcome.delivery_id is None:
            summary.ignored += 1
        elif outcome.recorded:
            summary.recorded += 1
        else:
            summary.duplicates += 1
    return summary
