"""What happens through the links in emails, and what we hold on a person."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import aliased, selectinload

from leadcapture import clock
from leadcapture.addresses import MAX_EMAIL_LENGTH, normalize_email
from leadcapture.errors import InvalidInput, NotFound, TokenExpired, TokenInvalid
from leadcapture.extensions import db
from leadcapture.models import (
    MARKETING_KINDS,
    Answer,
    AnswerSource,
    BounceEvent,
    Click,
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Intake,
    InterestEvent,
    InterestScore,
    Question,
    Report,
    ReportFile,
    SequenceStep,
    SignalSource,
    StreamPause,
    Submission,
    Subscriber,
    SubscriberStatus,
    Suppression,
    Topic,
    Widget,
    localized,
)
from leadcapture.services.answers import answer_states, propose_change
from leadcapture.services.capture import submission_key
from leadcapture.services.interests import profile as interest_profile
from leadcapture.services.interests import record_answer_signals
from leadcapture.services.outbox import enqueue_delivery
from leadcapture.services.preferences import record_proposed_change
from leadcapture.services.sequences import exit_all, sequences_holding, sequences_of, switch_sequences
from leadcapture.tokens import Purpose, fingerprint, read_token

log = logging.getLogger(__name__)

MAX_ADDRESS_LENGTH = MAX_EMAIL_LENGTH
SEARCH_PAGE_SIZE = 50
MAX_SEARCH_PAGE = 1000
# A profile lists this many of the newest emails; the export holds every one.
PROFILE_DELIVERIES = 200


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
    """The double opt-in: the click proves the address is the clicker's, and agrees to what this link's email
    showed. Idempotent.

    The address is confirmed; this request's consent is recorded (follow-up emails only if this request
    ticked them, whatever other requests under the address asked for: anyone can type an address) and the
    answers it proposed are applied, then sequences move. The reports every request still waiting asked for
    are sent, since they go to the inbox that has just proven its own; the answers of those other requests
    stay proposals, in their report emails, for the owner to apply or ignore.
    """
    target = confirmation_target(token)
    subscriber, submission = target.subscriber, target.submission
    # A double click (or two tabs) must apply the request once, and an erasure that committed first wins.
    db.session.refresh(subscriber, with_for_update=True)
    if subscriber.is_suppressed:
        raise TokenInvalid("nothing behind this token")
    if _confirmed_by_its_link(subscriber, submission):
        return target
    now = clock.now()
    if subscriber.status is not SubscriberStatus.CONFIRMED:
        subscriber.status = SubscriberStatus.CONFIRMED
        subscriber.status_changed_at = now
        subscriber.confirmed_at = now
        # The answers given when signing up are the person's own from now on, and show their interests.
        record_answer_signals(
            subscriber,
            {state.question_id: state.answered_at for state in answer_states(subscriber.id).values()},
            widget_id=submission.widget_id,
        )
    if submission.marketing_consent:
        subscriber.marketing_consent = True
    db.session.add(
        ConsentEvent(
            subscriber=subscriber,
            kind=ConsentKind.CONFIRM,
            purposes=["report", "sequences"] if submission.marketing_consent else ["report"],
            widget=submission.widget,
            page_url=submission.page_url,
            wording={"action": "confirmation link clicked", "submission": submission.id},
            wording_version="-",
            created_at=now,
        )
    )
    requests = [submission] + [
        other for other in subscriber.submissions if other.confirmed_at is None and other is not submission
    ]
    proposals = _proposals(requests)
    proposal = proposals.pop(submission.id, None)
    change = propose_change(subscriber, proposal, submission) if proposal else None
    changed = record_proposed_change(change) if change else []
    if submission.marketing_consent or (change is not None and change.answers):
        switch_sequences(subscriber, reason="confirmed")
    for request in requests:
        if request.confirmed_at is None:
            request.confirmed_at = now
        # A request confirmed before with another's link had its report then: the key makes this a no-op.
        proposed = proposals.get(request.id)
        enqueue_delivery(
            subscriber.id,
            subscriber.email,
            DeliveryKind.REPORT,
            submission_key(DeliveryKind.REPORT, request.id),
            {"submission_id": request.id, **({"proposed": proposed} if proposed else {})},
        )
    db.session.flush()
    log.info(
        "subscriber %s confirmed through submission %s%s",
        subscriber.id,
        submission.id,
        f", applying {', '.join(changed)}" if changed else "",
    )
    return target


def _confirmed_by_its_link(subscriber: Subscriber, submission: Submission) -> bool:
    """Whether this request's own confirmation link was clicked before (its CONFIRM event names it)."""
    wordings = db.session.scalars(
        select(ConsentEvent.wording).where(
            ConsentEvent.subscriber_id == subscriber.id, ConsentEvent.kind == ConsentKind.CONFIRM
        )
    )
    return any(wording.get("submission") == submission.id for wording in wordings)


def _proposals(requests: Sequence[Submission]) -> dict[int, dict[str, Any]]:
    """The answers each of these requests proposed (see capture_submission), from its confirmation email."""
    keys = {submission_key(DeliveryKind.CONFIRM, request.id): request.id for request in requests}
    return {
        keys[key]: payload["proposed"]
        for key, payload in db.session.execute(
            select(Delivery.idempotency_key, Delivery.payload).where(Delivery.idempotency_key.in_(keys))
        )
        if isinstance(payload.get("proposed"), dict)
    }


@dataclass(frozen=True)
class Download:
    """What a download link hands out: the report, and of its files the one for this reader."""

    target: LinkTarget
    report: Report
    file: ReportFile


def download_target(token: str) -> Download:
    """The report file a download link opens; changes nothing. TokenExpired carries the payload so a new link
    can be offered."""
    payload = read_token(Purpose.DOWNLOAD, token)
    target = _target(payload)
    report = target.submission.report
    if payload.get("r") != report.id:
        raise TokenInvalid("token is for another report")
    widget = target.submission.widget
    file = report.file_for(target.subscriber.locale, widget.locale if widget is not None else None)
    return Download(target, report, file)


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
    if subscriber is None or subscriber.status is SubscriberStatus.ERASED:
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
    if len(email) > MAX_ADDRESS_LENGTH:
        raise NotFound(email[:MAX_ADDRESS_LENGTH])
    try:
        normalized = normalize_email(email)
    except ValueError as exc:
        raise NotFound(email) from exc
    subscriber = db.session.scalar(
        select(Subscriber).where(Subscriber.email == normalized, Subscriber.status != SubscriberStatus.ERASED)
    )
    if subscriber is None:
        raise NotFound(email)
    return subscriber


def get_subscriber(subscriber_id: int) -> Subscriber:
    """The subscriber with this id; NotFound for an unknown or erased one."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status is SubscriberStatus.ERASED:
        raise NotFound(str(subscriber_id))
    return subscriber


@dataclass(frozen=True)
class SubscriberPage:
    """One page of a search through subscribers' addresses, newest first."""

    query: str
    page: int
    subscribers: tuple[Subscriber, ...]
    has_next: bool


def search_subscribers(query: str, page: int = 1, per_page: int = SEARCH_PAGE_SIZE) -> SubscriberPage:
    """Subscribers whose address contains `query` in any case (every subscriber for an empty query)."""
    text = query.strip().lower()
    if len(text) > MAX_ADDRESS_LENGTH:
        raise InvalidInput({"q": f"at most {MAX_ADDRESS_LENGTH} characters: no address is longer"})
    if any(ord(character) < 32 for character in text):
        raise InvalidInput({"q": "only printable characters can be part of an address"})
    # Deep pages cost an OFFSET scan each; past this nobody is browsing, and a narrower search is the answer.
    page = min(max(page, 1), MAX_SEARCH_PAGE)
    statement = select(Subscriber).where(Subscriber.status != SubscriberStatus.ERASED)
    if text:
        # Addresses are stored in lower case; autoescape makes % and _ in the query match themselves.
        statement = statement.where(Subscriber.email.contains(text, autoescape=True))
    rows = db.session.scalars(
        # Newest first by id, not created_at: the primary key's index can then stop at one page of matches.
        statement.order_by(Subscriber.id.desc()).offset((page - 1) * per_page).limit(per_page + 1)
    ).all()
    return SubscriberPage(text, page, tuple(rows[:per_page]), len(rows) > per_page)


@dataclass(frozen=True)
class AnswerChange:
    """One answer in a subscriber's history, with the answer it replaced."""

    question_key: str
    question_text: str  # the wording the subscriber was shown
    value: Any
    value_label: str
    previous: Any  # None for the first answer to this question
    previous_label: str | None
    source: AnswerSource
    widget: str | None
    page_url: str | None
    locale: str
    answered_at: datetime

    kind: ClassVar[str] = "answer"

    @property
    def changed(self) -> bool:
        return self.previous is not None and self.previous != self.value

    @property
    def at(self) -> datetime:
        return self.answered_at


@dataclass(frozen=True)
class InterestSignal:
    """One signal of interest in a subscriber's history: a click, a read or an answer about a topic, or a
    click taken back (a negative weight) once it was judged automated."""

    topic_key: str
    topic_name: str
    source: SignalSource
    weight: float
    occurred_at: datetime  # a taken-back click carries the moment of the click it takes back
    recorded_at: datetime
    email_subject: str | None  # the email whose link was clicked
    url: str | None
    widget: str | None
    automated: str | None  # the scanner rule that judged the click automated, if one did
    message_id: str | None

    kind: ClassVar[str] = "signal"

    @property
    def at(self) -> datetime:
        return self.occurred_at

    @property
    def taken_back(self) -> bool:
        return self.weight < 0


@dataclass(frozen=True)
class InterestBar:
    """A subscriber's score on one topic today."""

    topic_key: str
    topic_name: str
    score: float
    half_life_days: int


@dataclass(frozen=True)
class ClickTally:
    """The clicks on one email's tracked links: those judged a person's, and the rest by the rule that judged
    them automated."""

    people: int = 0
    automated: tuple[tuple[str, int], ...] = ()

    @property
    def automated_total(self) -> int:
        return sum(count for _rule, count in self.automated)


@dataclass(frozen=True)
class EnrollmentSummary:
    enrollment: Enrollment
    steps_total: int
    next_step: str | None  # the key of the step that is due next, while one is
    in_sequence: bool  # see sequences.in_sequence: active, or its last step still waiting to go out


@dataclass(frozen=True)
class DeliverySummary:
    delivery: Delivery
    about: str | None  # for a sequence step its sequence and step, for a refresh email its question
    clicks: ClickTally = ClickTally()


@dataclass(frozen=True)
class SubscriberProfile:
    """What the admin shows of one subscriber: the same facts the export holds, ready to read."""

    subscriber: Subscriber
    answers: tuple[AnswerChange, ...]
    consent_events: tuple[ConsentEvent, ...]
    submissions: tuple[Submission, ...]
    enrollments: tuple[EnrollmentSummary, ...]
    deliveries: tuple[DeliverySummary, ...]  # the newest PROFILE_DELIVERIES, newest first
    delivery_count: int
    interests: tuple[InterestBar, ...]  # highest score first
    signals: tuple[InterestSignal, ...]  # oldest first
    click_count: int

    @property
    def timeline(self) -> list[AnswerChange | InterestSignal]:
        """Answers and signals of interest together, oldest first (answers first within one moment)."""
        entries: list[AnswerChange | InterestSignal] = [*self.answers, *self.signals]
        return sorted(entries, key=lambda entry: entry.at)

    @property
    def interest_peak(self) -> float:
        return max((bar.score for bar in self.interests), default=0.0)


def describe_subscriber(subscriber_id: int) -> SubscriberProfile:
    """A subscriber's profile: answers and signals of interest oldest first, scores per topic, consent, report
    requests, sequences and emails with their clicks."""
    subscriber = get_subscriber(subscriber_id)
    deliveries = db.session.scalars(
        select(Delivery)
        .where(Delivery.subscriber_id == subscriber.id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(PROFILE_DELIVERIES)
    ).all()
    delivery_count = db.session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.subscriber_id == subscriber.id)
    )
    return SubscriberProfile(
        subscriber=subscriber,
        answers=tuple(_answer_history(subscriber)),
        consent_events=tuple(subscriber.consent_events),
        submissions=tuple(subscriber.submissions),
        enrollments=tuple(_enrollments(subscriber)),
        deliveries=tuple(_deliveries(deliveries)),
        delivery_count=delivery_count or 0,
        interests=tuple(_interest_bars(subscriber.id)),
        signals=tuple(_signals(subscriber)),
        click_count=db.session.scalar(
            select(func.count()).select_from(Click).where(Click.subscriber_id == subscriber.id)
        )
        or 0,
    )


def export_subscriber(email: str) -> dict[str, Any]:
    """Everything held on one person, as plain JSON-ready data."""
    return export_document(find_subscriber(email))


def export_document(subscriber: Subscriber) -> dict[str, Any]:
    """Everything held on this subscriber: profile, answer history, consent, requests, sequences, emails and
    what receiving servers reported about them (bounces, complaints)."""
    deliveries = db.session.scalars(
        select(Delivery).where(Delivery.subscriber_id == subscriber.id).order_by(Delivery.id)
    ).all()
    bounces = db.session.scalars(
        select(BounceEvent).where(BounceEvent.subscriber_id == subscriber.id).order_by(BounceEvent.id)
    ).all()
    clicks = db.session.execute(
        select(Click, Topic.key)
        .outerjoin(Topic, Topic.id == Click.topic_id)
        .where(Click.subscriber_id == subscriber.id)
        .order_by(Click.id)
    ).all()
    message_ids = {delivery.id: delivery.message_id for delivery in deliveries}
    now = clock.now()
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
            "status_changed_at": _iso(subscriber.status_changed_at),
        },
        "answers": [
            {
                "question": change.question_key,
                "value": change.value,
                "previous_value": change.previous,
                "changed": change.previous != change.value,
                "source": change.source.value,
                "widget": change.widget,
                "page_url": change.page_url,
                "question_text": change.question_text,
                "locale": change.locale,
                "answered_at": _iso(change.answered_at),
            }
            for change in _answer_history(subscriber)
        ],
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
                "downloaded_at": _iso(submission.downloaded_at),
            }
            for submission in subscriber.submissions
        ],
        "enrollments": [
            {
                "sequence": summary.enrollment.sequence.slug,
                "sequence_name": summary.enrollment.sequence.name,
                "state": summary.enrollment.state.value,
                "steps_sent_or_scheduled": summary.enrollment.steps_done,
                "steps_total": summary.steps_total,
                "next_step": summary.next_step,
                "next_due_at": _iso(summary.enrollment.next_due_at),
                "entered_at": _iso(summary.enrollment.entered_at),
                "left_at": _iso(summary.enrollment.left_at),
                "exit_reason": summary.enrollment.exit_reason,
            }
            for summary in _enrollments(subscriber)
        ],
        "deliveries": [
            {
                "kind": summary.delivery.kind.value,
                "status": summary.delivery.status.value,
                "to_address": summary.delivery.to_address,
                "subject": summary.delivery.subject,
                "about": summary.about,
                "message_id": summary.delivery.message_id,
                "created_at": _iso(summary.delivery.created_at),
                "due_at": _iso(summary.delivery.due_at),
                "sent_at": _iso(summary.delivery.sent_at),
                "attempts": summary.delivery.attempts,
                "last_error": summary.delivery.last_error,
            }
            for summary in _deliveries(deliveries)
        ],
        "bounces": [
            {
                "kind": event.kind.value,
                "message_id": message_ids.get(event.delivery_id),
                "status_code": event.status_code,
                "diagnostic": event.diagnostic,
                "source": event.source.value,
                "received_at": _iso(event.received_at),
            }
            for event in bounces
        ],
        "clicks": [
            {
                "message_id": message_ids.get(click.delivery_id),
                "position": click.position,
                "url": click.url,
                "topic": topic_key,
                "clicked_at": _iso(click.clicked_at),
                "automated": click.automated,
            }
            for click, topic_key in clicks
        ],
        "interest_events": [
            {
                "topic": signal.topic_key,
                "source": signal.source.value,
                "weight": signal.weight,
                "occurred_at": _iso(signal.occurred_at),
                "recorded_at": _iso(signal.recorded_at),
                "message_id": signal.message_id,
                "url": signal.url,
                "widget": signal.widget,
                "automated": signal.automated,
            }
            for signal in _signals(subscriber)
        ],
        "interest_scores": [
            {
                "topic": item.topic.key,
                "score": round(item.score, 6),
                "on": now.date().isoformat(),
                "half_life_days": item.topic.half_life_days,
            }
            for item in interest_profile(subscriber.id, now)
        ],
    }


@dataclass(frozen=True)
class Erasure:
    """What erasing a person removed: rows per kind of record."""

    subscriber_id: int
    removed: dict[str, int]


def erasure_hash(email: str) -> str:
    """The keyed hash an erased address leaves on the suppression list (never the address itself)."""
    return fingerprint(Purpose.ERASURE, normalize_email(email))


def was_erased(email: str) -> bool:
    """Whether an address with this hash was erased before (under the current secret key)."""
    try:
        digest = erasure_hash(email)
    except ValueError:
        return False
    return db.session.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) is not None


def erase_subscriber(email: str, *, subscriber_id: int | None = None) -> Erasure:
    """Erase a person: everything held on them goes, and a keyed hash of the address joins the suppression list.

    With `subscriber_id` (an admin who typed the address to confirm), the address must be that subscriber's:
    InvalidInput otherwise. Without it, NotFound for an address nobody has. The subscriber row stays as an
    empty tombstone (see remove_personal_data).
    """
    try:
        subscriber = find_subscriber(email)
    except NotFound:
        if subscriber_id is None:
            raise
        subscriber = None
    if subscriber is None or (subscriber_id is not None and subscriber.id != subscriber_id):
        raise InvalidInput({"email": "that is not this subscriber's address"})
    # Lock the person first, so a submission arriving meanwhile waits and then finds an erased address.
    db.session.refresh(subscriber, with_for_update=True)
    address, person = subscriber.email, subscriber.id
    removed = remove_personal_data(subscriber)
    now = clock.now()
    digest = fingerprint(Purpose.ERASURE, address)
    if db.session.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) is None:
        db.session.add(Suppression(email_hash=digest, reason="erased", created_at=now))
    db.session.flush()
    log.info("subscriber %s erased: %s", person, ", ".join(f"{n} {label}" for label, n in removed.items()))
    return Erasure(person, removed)


def remove_personal_data(subscriber: Subscriber) -> dict[str, int]:
    """Delete everything held on this (locked) subscriber and leave the row as an empty tombstone; return the
    rows removed per kind of record. Adds nothing to the suppression list: that is the caller's decision.

    The row stays (status erased, no address, no data) because ids must never be handed out again: a link
    from an old email carries the subscriber's id (unsubscribe links never expire), and SQLite reuses the
    highest id, so a deleted row's id could open a newcomer's page.
    """
    address, person = subscriber.email, subscriber.id
    removed: dict[str, int] = {}
    for label, model in (
        ("interest events", InterestEvent),  # first: an event refers to its click and email
        ("interest scores", InterestScore),
        ("clicks", Click),  # before the emails they were made in
        ("deliveries", Delivery),  # before enrollments: a sequence email refers to its enrollment
        ("enrollments", Enrollment),
        ("answers", Answer),
        ("consent events", ConsentEvent),
        ("submissions", Submission),
    ):
        result = db.session.execute(
            delete(model).where(model.subscriber_id == person).execution_options(synchronize_session="fetch")
        )
        removed[label] = cast(CursorResult[Any], result).rowcount
    # Submissions accepted from the address and not stored yet (or set aside) would bring it back.
    result = db.session.execute(delete(Intake).where(Intake.email == address))
    removed["submissions not stored yet"] = cast(CursorResult[Any], result).rowcount
    _scrub_address(address)
    db.session.expire(subscriber)
    now = clock.now()
    subscriber.email = f"erased:{person}"
    subscriber.status = SubscriberStatus.ERASED
    subscriber.locale = ""
    subscriber.timezone = None
    subscriber.first_name = None
    subscriber.marketing_consent = False
    subscriber.marketing_paused_until = None
    subscriber.refresh_due_at = None
    subscriber.reader_ref = None
    subscriber.created_at = now
    subscriber.confirmed_at = None
    subscriber.status_changed_at = now
    return removed


def _scrub_address(address: str) -> None:
    """Take the address out of free text that is about something else (a relay's reason to pause a stream)."""
    pattern = re.compile(re.escape(address), re.IGNORECASE)
    for pause in db.session.scalars(select(StreamPause)):
        if pattern.search(pause.reason):
            pause.reason = pattern.sub("[erased address]", pause.reason)


def _answer_history(subscriber: Subscriber) -> list[AnswerChange]:
    """Every answer in order, each with the answer it replaced: the change events of a subscriber."""
    previous: dict[int, Any] = {}
    history = []
    for answer in subscriber.answers:
        before = previous.get(answer.question_id)
        history.append(
            AnswerChange(
                question_key=answer.question.key,
                question_text=answer.question_text,
                value=answer.value,
                value_label=_label(answer.question, answer.value, answer.locale),
                previous=before,
                previous_label=None if before is None else _label(answer.question, before, answer.locale),
                source=answer.source,
                widget=answer.widget.slug if answer.widget else None,
                page_url=answer.page_url,
                locale=answer.locale,
                answered_at=answer.answered_at,
            )
        )
        previous[answer.question_id] = answer.value
    return history


def _interest_bars(subscriber_id: int) -> list[InterestBar]:
    return [
        InterestBar(item.topic.key, localized(item.topic.name, "en"), item.score, item.topic.half_life_days)
        for item in interest_profile(subscriber_id)
    ]


def _signals(subscriber: Subscriber) -> list[InterestSignal]:
    """Every signal of interest, oldest first, with the email, widget and scanner finding it refers to."""
    origin = aliased(Click)
    rows = db.session.execute(
        select(
            InterestEvent,
            Topic.key,
            Topic.name,
            Delivery.subject,
            Delivery.message_id,
            Widget.slug,
            origin.automated,
        )
        .join(Topic, Topic.id == InterestEvent.topic_id)
        .outerjoin(Delivery, Delivery.id == InterestEvent.delivery_id)
        .outerjoin(Widget, Widget.id == InterestEvent.widget_id)
        .outerjoin(origin, origin.id == InterestEvent.click_id)
        .where(InterestEvent.subscriber_id == subscriber.id)
        .order_by(InterestEvent.occurred_at, InterestEvent.id)
    ).all()
    return [
        InterestSignal(
            topic_key=key,
            topic_name=localized(name, "en"),
            source=event.source,
            weight=event.weight,
            occurred_at=event.occurred_at,
            recorded_at=event.recorded_at,
            email_subject=subject,
            url=event.url,
            widget=widget,
            automated=automated,
            message_id=message_id,
        )
        for event, key, name, subject, message_id, widget, automated in rows
    ]


def _label(question: Question, value: Any, locale: str) -> str:
    """An answer as the subscriber saw it: option labels (retired ones too), with the stored value."""
    labels = {option.value: localized(option.label, locale) for option in question.options}
    values = value if isinstance(value, list) else [value]
    return ", ".join(f"{labels[item]} ({item})" if item in labels else str(item) for item in values)


def _enrollments(subscriber: Subscriber) -> list[EnrollmentSummary]:
    summaries = []
    holding = {enrollment.id for enrollment in sequences_holding(subscriber.id)}
    for enrollment in sequences_of([subscriber])[subscriber.id]:
        steps = enrollment.sequence.steps
        waiting = enrollment.state is EnrollmentState.ACTIVE and enrollment.next_due_at is not None
        next_step = (
            steps[enrollment.steps_done].key if waiting and enrollment.steps_done < len(steps) else None
        )
        summaries.append(EnrollmentSummary(enrollment, len(steps), next_step, enrollment.id in holding))
    return summaries


def _deliveries(deliveries: Sequence[Delivery]) -> list[DeliverySummary]:
    step_ids = {d.payload.get("step_id") for d in deliveries if d.kind is DeliveryKind.SEQUENCE}
    question_ids = {d.payload.get("question_id") for d in deliveries if d.kind is DeliveryKind.REFRESH}
    steps = {
        step.id: f"{step.sequence.slug}: {step.key}"
        for step in db.session.scalars(
            select(SequenceStep)
            .where(SequenceStep.id.in_([i for i in step_ids if isinstance(i, int)]))
            .options(selectinload(SequenceStep.sequence))
        )
    }
    question_keys = [i for i in question_ids if isinstance(i, int)]
    questions: dict[int, str] = {
        row.id: row.key
        for row in db.session.execute(select(Question.id, Question.key).where(Question.id.in_(question_keys)))
    }
    tallies = _click_tallies([delivery.id for delivery in deliveries])
    summaries = []
    for delivery in deliveries:
        about: str | None = None
        if delivery.kind is DeliveryKind.SEQUENCE:
            about = steps.get(delivery.payload.get("step_id", 0), "a step since removed")
        elif delivery.kind is DeliveryKind.REFRESH:
            about = questions.get(delivery.payload.get("question_id", 0))
        summaries.append(DeliverySummary(delivery, about, tallies.get(delivery.id, ClickTally())))
    return summaries


def _click_tallies(delivery_ids: Sequence[int]) -> dict[int, ClickTally]:
    """The clicks on each of these emails, by people and by each rule that judged some automated."""
    people: dict[int, int] = {}
    automated: dict[int, list[tuple[str, int]]] = {}
    if delivery_ids:
        for delivery_id, rule, count in db.session.execute(
            select(Click.delivery_id, Click.automated, func.count())
            .where(Click.delivery_id.in_(delivery_ids))
            .group_by(Click.delivery_id, Click.automated)
            .order_by(Click.delivery_id, Click.automated)
        ):
            if rule is None:
                people[delivery_id] = count
            else:
                automated.setdefault(delivery_id, []).append((rule, count))
    return {
        delivery_id: ClickTally(people.get(delivery_id, 0), tuple(automated.get(delivery_id, ())))
        for delivery_id in people.keys() | automated.keys()
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def suppress_subscriber(subscriber: Subscriber, status: SubscriberStatus, *, reason: str) -> None:
    """Stop all mail to an address: set its status, cancel what is queued, record the suppression."""
    if subscriber.status is status:
        return
    now = clock.now()
    subscriber.status = status
    subscriber.status_changed_at = now
    # Cancelled here first, so every queued email, a sequence's step too, names the suppression as its reason.
    db.session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber.id, Delivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.CANCELLED, last_error=f"subscriber {status.value}")
    )
    exit_all(subscriber, f"subscriber {status.value}")
    db.session.add(
        ConsentEvent(
            subscriber=subscriber,
            kind=ConsentKind.SUPPRESS,
            purposes=["report", "sequences"],
            wording={"reason": reason},
            wording_version="-",
            created_at=now,
        )
    )
    db.session.flush()
    log.info("subscriber %s suppressed: %s (%s)", subscriber.id, status.value, reason)
