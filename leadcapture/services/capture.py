"""A widget submission: validate it, store the person, their answers and consent, write the right email."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError
from sqlalchemy import Connection, Table, bindparam, func, insert, select, update

from leadcapture import clock
from leadcapture.addresses import MAX_EMAIL_LENGTH, normalize_email, truncate_ip
from leadcapture.database import insert_or_ignore
from leadcapture.errors import InvalidInput
from leadcapture.extensions import db
from leadcapture.i18n import translate
from leadcapture.models import (
    SUPPRESSED_STATUSES,
    Answer,
    AnswerSource,
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryKind,
    QuestionKind,
    Submission,
    Subscriber,
    SubscriberStatus,
)
from leadcapture.prepared import Prepared
from leadcapture.services.answers import answer_values, current_answers
from leadcapture.services.outbox import enqueue_delivery
from leadcapture.services.sequences import switch_sequences
from leadcapture.services.widgets import (
    WidgetView,
    filled_too_fast,
    form_token_issued,
    reader_ref,
    referenced_subscriber,
)

log = logging.getLogger(__name__)

# `website` is the honeypot: a field the widget hides from people, which form-filling scripts fill in.
HONEYPOT = "website"
FIELDS = {
    *("email", "reader", "ref", "first_name", "answers", "consent", "page_url", "timezone", "form_token"),
    HONEYPOT,
}
MAX_FIRST_NAME_LENGTH = 100
# RFC 5321 4.5.3.1.1: a relay may refuse a longer local part, so an address with one cannot be served.
MAX_LOCAL_PART_LENGTH = 64
# C0 controls and DEL: no browser puts them in these fields, and PostgreSQL refuses NUL in text.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
READER_REF = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_URL_LENGTH = 2048
# Against subscription bombing: at most this many confirmation emails to one address a day.
MAX_CONFIRMATIONS_PER_DAY = 3
DAY = timedelta(days=1)


@dataclass(frozen=True)
class SubmissionInput:
    email: str | None  # None when the browser sent the reader_ref it was given instead
    reader_ref: str
    answers: dict[str, str | list[str]]
    wants_sequences: bool
    page_url: str | None
    timezone: str | None
    first_name: str | None = None  # None when not given (or given empty): a name is never cleared from here
    # The subscriber a genuine reference from our own email names (the widget's `lc`): the one address this
    # browser has proven to be its own.
    proven_subscriber_id: int | None = None
    # Sent by a script rather than a person (honeypot filled in, or sent too soon after the form appeared):
    # answered like any other submission, but nothing is stored or sent.
    bot: bool = False


@dataclass(frozen=True)
class RequestMeta:
    ip_address: str | None
    user_agent: str | None


def parse_submission(view: WidgetView, body: object) -> SubmissionInput:
    """Check a submission's shape (400) and then its values against the widget (422)."""
    if not isinstance(body, dict):
        raise MalformedSubmission({"body": "must be a JSON object"})
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise MalformedSubmission({name[:64]: "unknown field" for name in unknown[:10]})
    shape_errors: dict[str, str] = {}
    for name, kinds in (("email", str), ("reader", str), ("ref", str), ("first_name", str),
                        ("answers", dict), ("consent", dict),
                        ("page_url", str), ("timezone", str), ("form_token", str), (HONEYPOT, str)):  # fmt: skip
        value = body.get(name)
        if value is not None and not isinstance(value, kinds):
            shape_errors[name] = f"must be {'an object' if kinds is dict else 'a string'}"
    if shape_errors:
        raise MalformedSubmission(shape_errors)

    locale = view.locale
    errors: dict[str, str] = {}
    reader = body.get("reader")
    email: str | None = None
    if reader is not None and not body.get("email"):
        # A returning reader's browser: only the questions it still had to ask are answered.
        if not READER_REF.fullmatch(reader):
            errors["reader"] = "unknown reader: send the email address instead"
    else:
        reader = None
        email = _parse_email(body.get("email"), locale, errors)
    answers = _parse_answers(view, body.get("answers") or {}, locale, errors, required=reader is None)
    consent = body.get("consent") or {}
    if set(consent) - {"report", "sequences"}:
        errors["consent"] = "only 'report' and 'sequences' are understood"
    for name in ("report", "sequences"):
        if name in consent and not isinstance(consent[name], bool):
            errors[f"consent.{name}"] = "must be true or false"
    if consent.get("report") is not True and "consent.report" not in errors:
        errors["consent.report"] = translate(locale, "error.consent_required")
    page_url = _parse_page_url(body.get("page_url"), errors)
    timezone = _parse_timezone(body.get("timezone"), errors)
    first_name = None
    try:
        first_name = clean_first_name(body.get("first_name") or "")
    except InvalidInput as exc:
        errors.update(exc.errors)
    # Every form the widget shows carries the token its definition was issued with; a body without one was
    # not sent from the widget.
    form_token = body.get("form_token")
    issued = form_token_issued(view, form_token) if form_token else None
    if issued is None:
        errors["form_token"] = "missing or invalid form token: reload the page"  # noqa: S105 - a message
    if errors:
        raise InvalidInput(errors)
    return SubmissionInput(
        email=email,
        reader_ref=reader if reader is not None else reader_ref(str(email)),
        answers=answers,
        wants_sequences=consent.get("sequences") is True,
        page_url=page_url,
        timezone=timezone,
        first_name=first_name,
        proven_subscriber_id=referenced_subscriber(ref) if (ref := body.get("ref")) else None,
        bot=bool(body.get(HONEYPOT)) or issued is None or filled_too_fast(issued),
    )


class MalformedSubmission(InvalidInput):
    """The body is not shaped like a submission at all (as opposed to holding invalid values)."""


def clean_first_name(raw: str) -> str | None:
    """A first name as given in a widget or on the preference page: trimmed, None when empty; InvalidInput for
    one longer than MAX_FIRST_NAME_LENGTH or holding control characters."""
    name = raw.strip()
    if len(name) > MAX_FIRST_NAME_LENGTH or CONTROL_CHARACTERS.search(name):
        raise InvalidInput(
            {"first_name": f"at most {MAX_FIRST_NAME_LENGTH} characters, without control characters"}
        )
    return name or None


def _parse_email(raw: object, locale: str, errors: dict[str, str]) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        errors["email"] = translate(locale, "error.email_required")
        return None
    try:
        if len(raw) > MAX_EMAIL_LENGTH:
            raise EmailNotValidError("too long")
        email = normalize_email(raw)
        if len(email.rpartition("@")[0].encode()) > MAX_LOCAL_PART_LENGTH:
            raise EmailNotValidError("local part too long")
    except EmailNotValidError:
        errors["email"] = translate(locale, "error.email_invalid")
        return None
    return email


def _parse_answers(
    view: WidgetView, raw: Mapping[str, Any], locale: str, errors: dict[str, str], *, required: bool
) -> dict[str, str | list[str]]:
    questions = {question.key: question for question in view.questions}
    for key in list(raw)[:10]:
        if key not in questions:
            errors[f"answers.{str(key)[:64]}"] = "this widget does not ask that question"
    answers: dict[str, str | list[str]] = {}
    for key, question in questions.items():
        field = f"answers.{key}"
        value = raw.get(key)
        allowed = question.values
        if value is None or value == "" or value == []:
            if required:
                errors[field] = translate(locale, "error.answer_required")
        elif question.kind is QuestionKind.MULTI:
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                errors[field] = "must be a list of option values"
            elif len(value) > len(allowed) or not set(value) <= allowed:
                errors[field] = translate(locale, "error.answer_invalid")
            else:
                answers[key] = sorted(set(value))
        elif not isinstance(value, str) or value not in allowed:
            errors[field] = translate(locale, "error.answer_invalid")
        else:
            answers[key] = value
    return answers


def _parse_page_url(raw: object, errors: dict[str, str]) -> str | None:
    if not isinstance(raw, str) or raw == "":
        return None
    parts = urlsplit(raw)
    if (
        len(raw) > MAX_URL_LENGTH
        or CONTROL_CHARACTERS.search(raw)
        or parts.scheme not in ("http", "https")
        or not parts.netloc
    ):
        errors["page_url"] = "must be the http(s) address of the page, at most 2048 characters"
        return None
    return urlunsplit(parts._replace(fragment=""))


def _parse_timezone(raw: object, errors: dict[str, str]) -> str | None:
    if not isinstance(raw, str) or raw == "":
        return None
    if len(raw) > 64 or CONTROL_CHARACTERS.search(raw):
        errors["timezone"] = "must be an IANA time zone name"
        return None
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        # Browsers report IANA names; anything else is noise, and the default zone will do.
        return None
    return raw


def capture_submission(view: WidgetView, data: SubmissionInput, meta: RequestMeta) -> None:
    """Store a submission and queue its email. The caller's response must not depend on what happened here.

    This is the busiest write path, so it speaks SQL through Core: a handful of statements, no ORM unit of
    work. The confirmation (or, for a confirmed address, the report) is queued in the same transaction.

    Anyone can type an address already known here, whatever its state (and is then handed its `reader`), so
    unless the submission carries our email's reference to that subscriber, it changes nothing of theirs:
    answers and a first name that differ from theirs go into the email to the address as a proposal only its
    owner can apply, by the confirmation link it carries (services.subscribers.confirm_subscriber) or the
    change link of a report email (services.preferences.apply_change); follow-up emails they had not asked
    for need the confirmation. Only the submission that creates an address stores its answers at once: they
    are the pending subscriber's, and nothing but the confirmation goes out until the owner confirms.
    """
    if data.bot:
        log.info("submission through widget %s looked automated and was ignored", view.slug)
        return
    now = clock.now()
    sql = db.session.connection()
    # Most submissions come from new readers: try the insert first, and look the address up only if taken.
    if (
        data.email is not None
        and (new_id := _insert_subscriber(sql, view, data.email, data, now)) is not None
    ):
        email, subscriber_id, status, marketing_consent = data.email, new_id, SubscriberStatus.PENDING, False
        known = unproven = False
        first_name = data.first_name
    else:
        if data.email is not None:
            existing = sql.execute(_BY_EMAIL, {"email": data.email}).first()
        else:
            existing = sql.execute(_BY_READER, {"reader_ref": data.reader_ref}).first()
        if existing is None:
            # Issued under a retired secret key, or the person was erased since: the widget asks again.
            raise InvalidInput({"reader": "unknown reader: send the email address instead"})
        if existing.status in SUPPRESSED_STATUSES:
            log.info(
                "submission through widget %s for suppressed subscriber %s ignored", view.slug, existing.id
            )
            return
        email = existing.email
        known = True
        subscriber_id, status, marketing_consent = existing.id, existing.status, existing.marketing_consent
        first_name = existing.first_name
        unproven = data.proven_subscriber_id != subscriber_id
        changes: dict[str, Any] = {}
        if data.timezone and data.timezone != existing.timezone and not unproven:
            changes["timezone"] = data.timezone
        if data.first_name and data.first_name != existing.first_name and not unproven:
            changes["first_name"] = data.first_name
        if data.reader_ref != existing.reader_ref:
            changes["reader_ref"] = data.reader_ref  # first visit since the secret key was rotated
        if changes:
            sql.execute(update(_SUBSCRIBERS).where(_SUBSCRIBERS.c.id == subscriber_id).values(**changes))

    proposal = _proposal(subscriber_id, first_name, data) if unproven else {}
    answers = [
        {
            "subscriber_id": subscriber_id,
            "question_id": question.id,
            "value": data.answers[question.key],
            "source": AnswerSource.WIDGET,
            "widget_id": view.id,
            "page_url": data.page_url,
            "question_text": question.text,
            "locale": view.locale,
            "answered_at": now,
        }
        for question in view.questions
        if question.key in data.answers and not unproven
    ]
    if answers:  # a returning reader may have had nothing left to answer
        _ADD_ANSWERS.execute_many(sql, answers)
    _ADD_CONSENT.scalar(
        sql,
        {
            "subscriber_id": subscriber_id,
            "kind": ConsentKind.REQUEST,
            "purposes": ["report", "sequences"] if data.wants_sequences else ["report"],
            "widget_id": view.id,
            "page_url": data.page_url,
            "wording": dict(view.consent_wording),
            "wording_version": view.wording_version,
            "ip_address": truncate_ip(meta.ip_address),
            "user_agent": (meta.user_agent or "")[:255] or None,
            "created_at": now,
        },
    )
    needs_opt_in = (
        status is SubscriberStatus.PENDING
        or (status is SubscriberStatus.UNSUBSCRIBED and data.wants_sequences)
        or (unproven and data.wants_sequences and not marketing_consent)
    )
    submission_id = int(
        _ADD_SUBMISSION.scalar(
            sql,
            {
                "subscriber_id": subscriber_id,
                "widget_id": view.id,
                "report_id": view.report_id,
                "page_url": data.page_url,
                "marketing_consent": data.wants_sequences,
                "created_at": now,
                "confirmed_at": None if needs_opt_in else now,
            },
        )
    )
    kind = DeliveryKind.CONFIRM if needs_opt_in else DeliveryKind.REPORT
    if (
        kind is DeliveryKind.CONFIRM
        and known  # a new subscriber has had none yet
        and _confirmations_since(sql, subscriber_id, now - DAY) >= MAX_CONFIRMATIONS_PER_DAY
    ):
        # Someone signing a stranger's address up over and over: the submission is kept, the mailbox is spared.
        log.info("confirmation for subscriber %s not sent again: daily cap reached", subscriber_id)
    else:
        enqueue_delivery(
            subscriber_id,
            email,
            kind,
            submission_key(kind, submission_id),
            {"submission_id": submission_id, **({"proposed": proposal} if proposal else {})},
        )
    if not needs_opt_in and not unproven:
        if data.wants_sequences and not marketing_consent:
            sql.execute(
                update(_SUBSCRIBERS).where(_SUBSCRIBERS.c.id == subscriber_id).values(marketing_consent=True)
            )
        # New answers from someone already receiving marketing move their sequences now, not at the next tick.
        switch_sequences(db.session.get_one(Subscriber, subscriber_id), reason="answers from a widget")
    log.info("submission %s through widget %s for subscriber %s", submission_id, view.slug, subscriber_id)


def submission_key(kind: DeliveryKind, submission_id: int) -> str:
    """The idempotency key of a submission's confirmation or report email: one of each per submission."""
    return f"{kind.value}:submission:{submission_id}"


def _proposal(subscriber_id: int, first_name: str | None, data: SubmissionInput) -> dict[str, Any]:
    """What an unproven submission would change of a known subscriber, for the email to the address."""
    current = current_answers(subscriber_id)
    proposal: dict[str, Any] = {}
    if answers := {
        key: value
        for key, value in data.answers.items()
        if answer_values(value) != answer_values(current.get(key))
    }:
        proposal["answers"] = answers
    if data.first_name and data.first_name != first_name:
        proposal["first_name"] = data.first_name
    return proposal


def _confirmations_since(sql: Connection, subscriber_id: int, since: datetime) -> int:
    """How many confirmation emails were written to this subscriber since then.

    The cap against subscription bombing lives here rather than in a request rate limit: only here is the
    address known in its canonical form and is it known that a confirmation (not a report) is due, and the
    outbox rows this counts are written in the same transaction, so the count is exact and a request that
    fails counts for nothing.
    """
    params = {"subscriber_id": subscriber_id, "kind": DeliveryKind.CONFIRM, "since": since}
    return int(sql.execute(_CONFIRMATIONS_SINCE, params).scalar_one())


def _insert_subscriber(
    sql: Connection, view: WidgetView, email: str, data: SubmissionInput, now: datetime
) -> int | None:
    """A new pending subscriber's id; None when the address is taken (perhaps by a concurrent submission)."""
    subscriber_id = _add_subscriber(sql.dialect.name).scalar(
        sql,
        {
            "email": email,
            "reader_ref": data.reader_ref,
            "status": SubscriberStatus.PENDING,
            "locale": view.locale,
            "timezone": data.timezone,
            "first_name": data.first_name,
            "marketing_consent": False,
            "created_at": now,
            "status_changed_at": now,
        },
    )
    return None if subscriber_id is None else int(subscriber_id)


# The statements of the busiest write path, built once: tables rather than ORM entities, values as bound
# parameters, so each request reuses one compiled statement instead of building and caching its own.
_SUBSCRIBERS: Final = cast(Table, Subscriber.__table__)
_FOUND = select(
    _SUBSCRIBERS.c.id,
    _SUBSCRIBERS.c.email,
    _SUBSCRIBERS.c.status,
    _SUBSCRIBERS.c.marketing_consent,
    _SUBSCRIBERS.c.timezone,
    _SUBSCRIBERS.c.reader_ref,
    _SUBSCRIBERS.c.first_name,
)
_BY_EMAIL: Final = _FOUND.where(_SUBSCRIBERS.c.email == bindparam("email"))
_BY_READER: Final = _FOUND.where(_SUBSCRIBERS.c.reader_ref == bindparam("reader_ref"))
_ADD_ANSWERS: Final = Prepared(insert(cast(Table, Answer.__table__)))
_ADD_CONSENT: Final = Prepared(insert(cast(Table, ConsentEvent.__table__)))
_SUBMISSIONS: Final = cast(Table, Submission.__table__)
_ADD_SUBMISSION: Final = Prepared(insert(_SUBMISSIONS).returning(_SUBMISSIONS.c.id))
_DELIVERIES: Final = cast(Table, Delivery.__table__)
_CONFIRMATIONS_SINCE: Final = (
    select(func.count())
    .select_from(_DELIVERIES)
    .where(
        _DELIVERIES.c.subscriber_id == bindparam("subscriber_id"),
        _DELIVERIES.c.kind == bindparam("kind"),
        _DELIVERIES.c.created_at > bindparam("since"),
    )
)


@cache
def _add_subscriber(dialect: str) -> Prepared:
    return Prepared(insert_or_ignore(_SUBSCRIBERS, dialect).returning(_SUBSCRIBERS.c.id))
