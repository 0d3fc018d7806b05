"""A widget submission: validated and accepted here, stored by the worker (services.intake)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError
from sqlalchemy import Table, bindparam, insert, select

from leadcapture import clock
from leadcapture.addresses import MAX_EMAIL_LENGTH, normalize_email, truncate_ip
from leadcapture.errors import InvalidInput
from leadcapture.extensions import db
from leadcapture.i18n import translate
from leadcapture.models import DeliveryKind, Intake, QuestionKind, Subscriber
from leadcapture.prepared import Prepared
from leadcapture.services.widgets import (
    WidgetView,
    filled_too_fast,
    form_token_issued,
    reader_ref,
    referenced_subscriber,
)

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


def accept_submission(view: WidgetView, data: SubmissionInput, meta: RequestMeta) -> None:
    """Keep a validated submission for the worker to store (services.intake.expand_intakes). Flushes.

    Whatever the state of its address, an accepted submission is one row written here and nothing read, so
    its answer tells nothing by its timing; a script's (honeypot, too fast) is written alike, marked, and
    dropped by the worker. A returning reader's browser, which sends its `reader` instead of an address, is
    looked up first: one unknown here (issued under a retired secret key, or erased since) is asked for the
    address again.
    """
    intake = {
        "widget_id": view.id,
        "received_at": clock.now(),
        "email": data.email,
        "data": {
            **asdict(data),
            "ip_address": truncate_ip(meta.ip_address),
            "user_agent": (meta.user_agent or "")[:255] or None,
        },
    }
    sql = db.session.connection()
    reader_path = not data.bot and data.email is None
    if reader_path and _READER_KNOWN.first(sql, {"reader_ref": data.reader_ref}) is None:
        raise InvalidInput({"reader": "unknown reader: send the email address instead"})
    _ADD_INTAKE.execute(sql, intake)


def submission_key(kind: DeliveryKind, submission_id: int) -> str:
    """The idempotency key of a submission's confirmation or report email: one of each per submission."""
    return f"{kind.value}:submission:{submission_id}"


# The one statement of the busiest write path, and the look-up of a returning reader, built once and run
# straight on the cursor (leadcapture.prepared).
_INTAKES: Final = cast(Table, Intake.__table__)
_ADD_INTAKE: Final = Prepared(insert(_INTAKES))
_SUBSCRIBERS: Final = cast(Table, Subscriber.__table__)
_READER_KNOWN: Final = Prepared(
    select(_SUBSCRIBERS.c.id).where(_SUBSCRIBERS.c.reader_ref == bindparam("reader_ref")).limit(1)
)
