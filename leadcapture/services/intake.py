"""Storing accepted submissions, a batch at a time: the person, their answers and consent, the submission and
the email each one stands for.

The web process validates a submission and keeps it as one intake row (services.capture.accept_submission);
the worker stores a batch of them here within a second, in one transaction, a statement per table for the
whole batch. Each is stored as if at the moment it was accepted: its answers, consent and submission carry
that time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import Connection, Row, Table, bindparam, delete, func, insert, or_, select, update

from leadcapture import clock
from leadcapture.database import insert_or_ignore
from leadcapture.extensions import db
from leadcapture.models import (
    SUPPRESSED_STATUSES,
    Answer,
    AnswerSource,
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryKind,
    Intake,
    Submission,
    Subscriber,
    SubscriberStatus,
    Widget,
)
from leadcapture.services import rules
from leadcapture.services.answers import answer_states_of, answer_values
from leadcapture.services.capture import RequestMeta, SubmissionInput, submission_key
from leadcapture.services.outbox import enqueue_many
from leadcapture.services.states import Batch, load_content, load_states
from leadcapture.services.widgets import WidgetView, widget_view

log = logging.getLogger(__name__)

# Against subscription bombing: at most this many confirmation emails to one address a day.
MAX_CONFIRMATIONS_PER_DAY = 3
DAY = timedelta(days=1)
_INPUT_FIELDS: Final = frozenset(item.name for item in fields(SubmissionInput))


@dataclass
class _Person:
    """A subscriber as this batch has left them so far."""

    id: int
    email: str
    status: SubscriberStatus
    marketing_consent: bool
    timezone: str | None
    reader_ref: str | None
    first_name: str | None
    answers: dict[str, Any]  # current values by question key
    confirmations: int = 0  # confirmation emails written within the day
    created_by: int | None = None  # the intake that created them, in this batch
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Accepted:
    id: int
    view: WidgetView
    received_at: datetime
    data: SubmissionInput
    meta: RequestMeta


@dataclass
class _Rows:
    answers: list[dict[str, Any]] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)
    submissions: list[dict[str, Any]] = field(default_factory=list)
    # Per submission row: the email it queues (kind, address, proposal), or None under the daily cap.
    emails: list[tuple[DeliveryKind, _Person, dict[str, Any]] | None] = field(default_factory=list)
    switch: set[int] = field(default_factory=set)


def expand_intakes(limit: int) -> int:
    """Store up to `limit` accepted submissions, oldest first; how many were taken. Flushes; the caller commits.

    Anyone can type an address already known here, whatever its state, so unless the submission carries our
    email's reference to that subscriber, it changes nothing of theirs: answers and a first name that differ
    from theirs go into the email to the address as a proposal only its owner can apply, by the confirmation
    link it carries (services.subscribers.confirm_subscriber) or the change link of a report email
    (services.preferences.apply_change); follow-up emails they had not asked for need the confirmation. Only
    the submission that creates an address stores its answers at once: they are the pending subscriber's, and
    nothing but the confirmation goes out until the owner confirms. New answers from someone already receiving
    marketing move their sequences in the same transaction.

    Intakes are taken with FOR UPDATE SKIP LOCKED, so workers share them out, and each is deleted in the
    transaction that stores it: stored once, whatever crashes.
    """
    sql = db.session.connection()
    return _expand(sql, sql.execute(_CLAIM, {"limit": limit}).all())


def fail_intake(intake_id: int, reason: str) -> None:
    """Set aside an intake that could not be stored on its own, so it no longer holds up those after it."""
    db.session.execute(update(Intake).where(Intake.id == intake_id).values(failed_at=clock.now()))
    log.error("submission intake %s could not be stored and was set aside: %s", intake_id, reason)


def waiting_intakes(limit: int) -> list[int]:
    """The ids of the oldest intakes waiting to be stored."""
    return list(
        db.session.scalars(
            select(Intake.id).where(Intake.failed_at.is_(None)).order_by(Intake.id).limit(limit)
        )
    )


def expand_intake(intake_id: int) -> int:
    """Store one intake on its own (see expand_intakes); how many were taken, 0 or 1."""
    sql = db.session.connection()
    return _expand(sql, sql.execute(_CLAIM_ONE, {"id": intake_id}).all())


def _expand(sql: Connection, taken: Sequence[Row[Any, Any, Any, Any]]) -> int:
    if not taken:
        return 0
    accepted = _accepted(taken)
    people = _people(sql, accepted) if accepted else {}
    rows = _Rows()
    ignored = sum(not _store(item, people, rows) for item in accepted)
    _write(sql, rows, people)
    sql.execute(delete(_INTAKES).where(_INTAKES.c.id.in_([row.id for row in taken])))
    log.info(
        "stored %d submissions (%d ignored)", len(rows.submissions), ignored + len(taken) - len(accepted)
    )
    return len(taken)


def _accepted(taken: Sequence[Row[Any, Any, Any, Any]]) -> list[_Accepted]:
    """The intakes with their widgets; a script's, and those of a deleted widget, are dropped (logged)."""
    slugs = dict(
        db.session.execute(
            select(Widget.id, Widget.slug).where(Widget.id.in_({row.widget_id for row in taken}))
        ).all()
    )
    views = {widget_id: widget_view(slug) for widget_id, slug in slugs.items()}
    accepted = []
    for row in taken:
        if row.widget_id not in slugs:
            log.info("submission intake %s dropped: its widget %s was deleted", row.id, row.widget_id)
            continue
        if row.data.get("bot"):
            log.info("submission intake %s dropped: it looked automated (honeypot or too fast)", row.id)
            continue
        data = {name: value for name, value in row.data.items() if name in _INPUT_FIELDS}
        accepted.append(
            _Accepted(
                id=row.id,
                view=views[row.widget_id],
                received_at=row.received_at,
                data=SubmissionInput(**data),
                meta=RequestMeta(row.data.get("ip_address"), row.data.get("user_agent")),
            )
        )
    return accepted


def _people(sql: Connection, accepted: list[_Accepted]) -> dict[str | tuple[str, str], _Person]:
    """Everyone the batch names, by address and by ("reader", reader_ref); the addresses new here created,
    each by the first submission naming it. Known subscribers' rows are locked until the batch commits, so an
    unsubscribe or a preference change committing meanwhile is read, not overwritten."""
    emails = {item.data.email for item in accepted if item.data.email is not None}
    readers = {item.data.reader_ref for item in accepted if item.data.email is None}
    found = sql.execute(
        _FOUND.where(or_(_SUBSCRIBERS.c.email.in_(emails), _SUBSCRIBERS.c.reader_ref.in_(readers)))
        .order_by(_SUBSCRIBERS.c.id)
        .with_for_update(of=_SUBSCRIBERS)
    ).all()
    since = min(item.received_at for item in accepted) - DAY
    states = answer_states_of(row.id for row in found)
    confirmations = _confirmations_since(sql, [row.id for row in found], since)
    people: dict[str | tuple[str, str], _Person] = {}
    for row in found:
        person = _Person(
            id=row.id,
            email=row.email,
            status=row.status,
            marketing_consent=row.marketing_consent,
            timezone=row.timezone,
            reader_ref=row.reader_ref,
            first_name=row.first_name,
            answers={key: state.value for key, state in states.get(row.id, {}).items()},
            confirmations=confirmations.get(row.id, 0),
        )
        people[person.email] = person
        if person.reader_ref:
            people[("reader", person.reader_ref)] = person
    new: dict[str, _Accepted] = {}
    for item in accepted:
        if item.data.email is not None and item.data.email not in people:
            new.setdefault(item.data.email, item)
    if new:
        created = sql.execute(
            insert_or_ignore(_SUBSCRIBERS, sql.dialect.name).returning(
                _SUBSCRIBERS.c.id, _SUBSCRIBERS.c.email
            ),
            [_new_subscriber(email, item) for email, item in new.items()],
        ).all()
        for subscriber_id, email in created:
            item = new[email]
            people[email] = _Person(
                id=subscriber_id,
                email=email,
                status=SubscriberStatus.PENDING,
                marketing_consent=False,
                timezone=item.data.timezone,
                reader_ref=item.data.reader_ref,
                first_name=item.data.first_name,
                answers={},
                created_by=item.id,
            )
        if len(created) < len(new):
            # Created by someone else since the look-up (another worker, an import): known after all.
            taken_meanwhile = [email for email in new if email not in people]
            people.update(_people(sql, [item for item in accepted if item.data.email in taken_meanwhile]))
    return people


def _new_subscriber(email: str, item: _Accepted) -> dict[str, Any]:
    return {
        "email": email,
        "reader_ref": item.data.reader_ref,
        "status": SubscriberStatus.PENDING,
        "locale": item.view.locale,
        "timezone": item.data.timezone,
        "first_name": item.data.first_name,
        "marketing_consent": False,
        "created_at": item.received_at,
        "status_changed_at": item.received_at,
    }


def _store(item: _Accepted, people: Mapping[str | tuple[str, str], _Person], rows: _Rows) -> bool:
    """Decide what one submission writes, on the state the ones before it in the batch left; False when it
    is ignored (an address suppressed, or a reader no longer known)."""
    view, data, now = item.view, item.data, item.received_at
    person = people.get(data.email if data.email is not None else ("reader", data.reader_ref))
    if person is None:
        log.info("submission intake %s ignored: its reader is no longer known", item.id)
        return False
    if person.status in SUPPRESSED_STATUSES:
        log.info("submission through widget %s for suppressed subscriber %s ignored", view.slug, person.id)
        return False
    known = person.created_by != item.id
    unproven = known and data.proven_subscriber_id != person.id
    if known:
        if data.timezone and data.timezone != person.timezone and not unproven:
            person.timezone = person.changes["timezone"] = data.timezone
        if data.first_name and data.first_name != person.first_name and not unproven:
            person.first_name = person.changes["first_name"] = data.first_name
        if data.reader_ref != person.reader_ref:
            # First visit since the secret key was rotated.
            person.reader_ref = person.changes["reader_ref"] = data.reader_ref
    proposal = _proposal(person, data) if unproven else {}
    if not unproven:
        for question in view.questions:
            if question.key not in data.answers:
                continue  # a returning reader may have had nothing left to answer
            value = data.answers[question.key]
            person.answers[question.key] = value
            rows.answers.append(
                {
                    "subscriber_id": person.id,
                    "question_id": question.id,
                    "value": value,
                    "source": AnswerSource.WIDGET,
                    "widget_id": view.id,
                    "page_url": data.page_url,
                    "question_text": question.text,
                    "locale": view.locale,
                    "answered_at": now,
                }
            )
    rows.consents.append(
        {
            "subscriber_id": person.id,
            "kind": ConsentKind.REQUEST,
            "purposes": ["report", "sequences"] if data.wants_sequences else ["report"],
            "widget_id": view.id,
            "page_url": data.page_url,
            "wording": dict(view.consent_wording),
            "wording_version": view.wording_version,
            "ip_address": item.meta.ip_address,
            "user_agent": item.meta.user_agent,
            "created_at": now,
        }
    )
    needs_opt_in = (
        person.status is SubscriberStatus.PENDING
        or (person.status is SubscriberStatus.UNSUBSCRIBED and data.wants_sequences)
        or (unproven and data.wants_sequences and not person.marketing_consent)
    )
    rows.submissions.append(
        {
            "subscriber_id": person.id,
            "widget_id": view.id,
            "report_id": view.report_id,
            "page_url": data.page_url,
            "marketing_consent": data.wants_sequences,
            "created_at": now,
            "confirmed_at": None if needs_opt_in else now,
        }
    )
    kind = DeliveryKind.CONFIRM if needs_opt_in else DeliveryKind.REPORT
    if kind is DeliveryKind.CONFIRM and known and person.confirmations >= MAX_CONFIRMATIONS_PER_DAY:
        # Someone signing a stranger's address up over and over: the submission is kept, the mailbox spared.
        log.info("confirmation for subscriber %s not sent again: daily cap reached", person.id)
        rows.emails.append(None)
    else:
        person.confirmations += kind is DeliveryKind.CONFIRM
        rows.emails.append((kind, person, {"proposed": proposal} if proposal else {}))
    if not needs_opt_in and not unproven:
        if data.wants_sequences and not person.marketing_consent:
            person.marketing_consent = person.changes["marketing_consent"] = True
        rows.switch.add(person.id)
    return True


def _proposal(person: _Person, data: SubmissionInput) -> dict[str, Any]:
    """What an unproven submission would change of a known subscriber, for the email to the address."""
    proposal: dict[str, Any] = {}
    if answers := {
        key: value
        for key, value in data.answers.items()
        if answer_values(value) != answer_values(person.answers.get(key))
    }:
        proposal["answers"] = answers
    if data.first_name and data.first_name != person.first_name:
        proposal["first_name"] = data.first_name
    return proposal


def _write(sql: Connection, rows: _Rows, people: Mapping[str | tuple[str, str], _Person]) -> None:
    """Write what the batch decided: a statement per table (the subscribers' changes one per set of columns
    changed), then the sequence moves of those whose answers now count."""
    changed: dict[frozenset[str], dict[int, dict[str, Any]]] = {}
    for person in {id(person): person for person in people.values()}.values():
        if person.changes:
            changed.setdefault(frozenset(person.changes), {})[person.id] = {
                "person": person.id,
                **{name: getattr(person, name) for name in person.changes},
            }
    for columns, values in changed.items():
        sql.execute(
            update(_SUBSCRIBERS)
            .where(_SUBSCRIBERS.c.id == bindparam("person"))
            .values({name: bindparam(name) for name in columns}),
            list(values.values()),
        )
    if rows.answers:
        sql.execute(insert(_ANSWERS), rows.answers)
    if rows.consents:
        sql.execute(insert(_CONSENTS), rows.consents)
    if not rows.submissions:
        return
    # One multi-row INSERT numbers its rows in the order of its VALUES (a sequence on PostgreSQL, the rowid
    # under the write lock on SQLite), so the ids sorted are the rows' in order. (RETURNING's own order is not
    # promised, and asking SQLAlchemy for it makes SQLite insert a row at a time.)
    submission_ids = sorted(
        sql.execute(insert(_SUBMISSIONS).returning(_SUBMISSIONS.c.id), rows.submissions).scalars()
    )
    emails = [
        {
            "subscriber_id": person.id,
            "to_address": person.email,
            "kind": kind,
            "idempotency_key": submission_key(kind, submission_id),
            "payload": {"submission_id": submission_id, **extra},
        }
        for submission_id, email in zip(submission_ids, rows.emails, strict=True)
        if email is not None
        for kind, person, extra in (email,)
    ]
    if emails:
        enqueue_many(emails)
    if rows.switch:
        batch = Batch(load_states(rows.switch), clock.now())
        content = load_content()
        for subscriber_id in rows.switch:
            batch.decide(
                subscriber_id,
                rules.switch(batch.states[subscriber_id], content, batch.now, "answers from a widget"),
            )
        batch.write()


def _confirmations_since(sql: Connection, subscriber_ids: list[int], since: datetime) -> dict[int, int]:
    """How many confirmation emails were written to each of these subscribers since then.

    The cap against subscription bombing lives here rather than in a request rate limit: only here is the
    address known in its canonical form and is it known that a confirmation (not a report) is due, and the
    outbox rows this counts are written in the same transaction as the ones it adds, so the count is exact.
    """
    if not subscriber_ids:
        return {}
    counted = sql.execute(
        select(_DELIVERIES.c.subscriber_id, func.count())
        .where(
            _DELIVERIES.c.subscriber_id.in_(subscriber_ids),
            _DELIVERIES.c.kind == DeliveryKind.CONFIRM,
            _DELIVERIES.c.created_at > since,
        )
        .group_by(_DELIVERIES.c.subscriber_id)
    ).all()
    return {subscriber_id: int(count) for subscriber_id, count in counted}


_INTAKES: Final = cast(Table, Intake.__table__)
_SUBSCRIBERS: Final = cast(Table, Subscriber.__table__)
_ANSWERS: Final = cast(Table, Answer.__table__)
_CONSENTS: Final = cast(Table, ConsentEvent.__table__)
_SUBMISSIONS: Final = cast(Table, Submission.__table__)
_DELIVERIES: Final = cast(Table, Delivery.__table__)
_TAKE = select(_INTAKES.c.id, _INTAKES.c.widget_id, _INTAKES.c.received_at, _INTAKES.c.data).where(
    _INTAKES.c.failed_at.is_(None)
)
_CLAIM: Final = _TAKE.order_by(_INTAKES.c.id).limit(bindparam("limit")).with_for_update(skip_locked=True)
_CLAIM_ONE: Final = _TAKE.where(_INTAKES.c.id == bindparam("id")).with_for_update(skip_locked=True)
_FOUND: Final = select(
    _SUBSCRIBERS.c.id,
    _SUBSCRIBERS.c.email,
    _SUBSCRIBERS.c.status,
    _SUBSCRIBERS.c.marketing_consent,
    _SUBSCRIBERS.c.timezone,
    _SUBSCRIBERS.c.reader_ref,
    _SUBSCRIBERS.c.first_name,
)
