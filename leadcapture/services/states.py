"""Subscribers' states read for the rules and the rules' effects written back, a batch at a time.

A batch costs the same few statements whatever its size: `load_states` reads every subscriber of the batch
with one statement per table, and `write_effects` writes every effect with one statement per kind of change
(an executemany counts once). Rows changed here are expired in the session, so objects it holds read them anew.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import selectinload

from leadcapture import audience, clock, interest
from leadcapture.config import current as current_settings
from leadcapture.extensions import db
from leadcapture.models import (
    MARKETING_KINDS,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Enrollment,
    InterestScore,
    Question,
    Sequence,
    Subscriber,
    SubscriberStatus,
    Topic,
    WidgetQuestion,
)
from leadcapture.services import rules
from leadcapture.services.answers import answer_states_of
from leadcapture.services.outbox import enqueue_many
from leadcapture.services.pacing import Pacing

log = logging.getLogger(__name__)

_DELIVERIES: Final = cast(Table, Delivery.__table__)
_WAITING: Final = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


def questions_that_matter() -> list[Question]:
    """Questions an active sequence's audience looks at, then those a widget asks: the order to re-ask in."""
    keys: list[str] = []
    for rule in db.session.scalars(select(Sequence.audience).where(Sequence.active.is_(True))):
        keys.extend(sorted(audience.questions_in(rule)))
    by_key = {question.key: question for question in db.session.scalars(select(Question))}
    widget_keys = db.session.scalars(
        select(Question.key).join(WidgetQuestion, WidgetQuestion.question_id == Question.id).distinct()
    )
    ordered = dict.fromkeys([*keys, *sorted(widget_keys)])
    return [by_key[key] for key in ordered if key in by_key]


def load_content() -> rules.Content:
    """The sequences and the questions that matter, as the rules read them."""
    sequences = {
        sequence.id: plan_of(sequence)
        for sequence in db.session.scalars(select(Sequence).options(selectinload(Sequence.steps)))
    }
    active = sorted(
        (plan for plan in sequences.values() if plan.active), key=lambda plan: (-plan.priority, plan.id)
    )
    return rules.Content(
        sequences=sequences,
        active=tuple(active),
        matter=tuple((question.id, question.key) for question in questions_that_matter()),
        refresh_every=current_settings().refresh_every,
        pacing=Pacing.current(),
    )


def plan_of(sequence: Sequence) -> rules.SequencePlan:
    """A sequence as the rules read it."""
    return rules.SequencePlan(
        id=sequence.id,
        slug=sequence.slug,
        audience=dict(sequence.audience),
        on_change=sequence.on_change,
        locale=sequence.locale,
        fresh_only=sequence.fresh_only,
        priority=sequence.priority,
        active=sequence.active,
        steps=tuple(
            rules.Step(step.id, step.key, timedelta(seconds=step.delay_seconds)) for step in sequence.steps
        ),
    )


def load_states(subscriber_ids: Iterable[int]) -> dict[int, rules.SubscriberState]:
    """The states of these subscribers (the ones that exist), in seven statements whatever their number."""
    ids = sorted(set(subscriber_ids))
    if not ids:
        return {}
    answers = answer_states_of(ids)
    interests = scores_of(ids, clock.now())
    enrollments: dict[int, dict[int, rules.Enrolled]] = {subscriber_id: {} for subscriber_id in ids}
    for enrollment in db.session.scalars(
        select(Enrollment).where(Enrollment.subscriber_id.in_(ids)).order_by(Enrollment.id)
    ):
        enrollments[enrollment.subscriber_id][enrollment.sequence_id] = rules.Enrolled.of(enrollment)
    by_enrollment = {
        enrolled.id: enrolled.sequence_id for held in enrollments.values() for enrolled in held.values()
    }
    waiting: dict[int, list[rules.Waiting]] = {subscriber_id: [] for subscriber_id in ids}
    for delivery in db.session.execute(
        select(
            Delivery.subscriber_id,
            Delivery.idempotency_key,
            Delivery.kind,
            Delivery.due_at,
            Delivery.priority,
            Delivery.enrollment_id,
            Delivery.payload,
        )
        .where(
            Delivery.subscriber_id.in_(ids),
            Delivery.kind.in_(MARKETING_KINDS),
            Delivery.status.in_(_WAITING),
        )
        .order_by(Delivery.id)
    ):
        payload: Mapping[str, Any] = delivery.payload or {}
        waiting[cast(int, delivery.subscriber_id)].append(
            rules.Waiting(
                key=delivery.idempotency_key,
                kind=delivery.kind,
                due_at=delivery.due_at,
                priority=delivery.priority,
                sequence_id=by_enrollment.get(delivery.enrollment_id),
                enrollment_id=delivery.enrollment_id,
                step_id=payload.get("step_id"),
                question_id=payload.get("question_id"),
            )
        )
    last_sent = dict(
        db.session.execute(
            select(Delivery.subscriber_id, func.max(Delivery.sent_at))
            .where(
                Delivery.subscriber_id.in_(ids),
                Delivery.kind.in_(MARKETING_KINDS),
                Delivery.status == DeliveryStatus.SENT,
            )
            .group_by(Delivery.subscriber_id)
        ).all()
    )
    last_refresh = dict(
        db.session.execute(
            select(Delivery.subscriber_id, func.max(Delivery.created_at))
            .where(
                Delivery.subscriber_id.in_(ids),
                Delivery.kind == DeliveryKind.REFRESH,
                Delivery.status != DeliveryStatus.CANCELLED,
            )
            .group_by(Delivery.subscriber_id)
        ).all()
    )
    states: dict[int, rules.SubscriberState] = {}
    for row in db.session.execute(
        select(
            Subscriber.id,
            Subscriber.status,
            Subscriber.marketing_consent,
            Subscriber.locale,
            Subscriber.timezone,
            Subscriber.marketing_paused_until,
            Subscriber.refresh_due_at,
        ).where(Subscriber.id.in_(ids))
    ):
        states[row.id] = rules.SubscriberState(
            id=row.id,
            locale=row.locale,
            timezone=row.timezone,
            receives_marketing=row.status is SubscriberStatus.CONFIRMED and bool(row.marketing_consent),
            paused_until=row.marketing_paused_until,
            answers=answers[row.id],
            enrollments=enrollments[row.id],
            waiting=tuple(waiting[row.id]),
            last_planned=last_sent.get(row.id),
            last_refresh=last_refresh.get(row.id),
            refresh_due_at=row.refresh_due_at,
            interests=interests[row.id],
        )
    return states


def scores_of(subscriber_ids: Iterable[int], now: datetime) -> dict[int, dict[str, float]]:
    """Each subscriber's interest scores on the day of `now` by topic key (topics with no signal left out),
    in one statement."""
    ids = sorted(set(subscriber_ids))
    scores: dict[int, dict[str, float]] = {subscriber_id: {} for subscriber_id in ids}
    if not ids:
        return scores
    for subscriber_id, key, half_life, level in db.session.execute(
        select(InterestScore.subscriber_id, Topic.key, Topic.half_life_days, InterestScore.level)
        .join(Topic, Topic.id == InterestScore.topic_id)
        .where(InterestScore.subscriber_id.in_(ids))
    ):
        scores[subscriber_id][key] = interest.score(level, now, half_life)
    return scores


@dataclass
class Batch:
    """Subscribers' states and the effects decided on them so far; `decide` folds each into the state the
    next decision reads, and `write` writes them all."""

    states: dict[int, rules.SubscriberState]
    now: datetime
    loaded: dict[int, rules.SubscriberState] = field(init=False)
    effects: dict[int, list[rules.Effect]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.loaded = dict(self.states)

    def decide(self, subscriber_id: int, effects: list[rules.Effect]) -> None:
        self.effects.setdefault(subscriber_id, []).extend(effects)
        self.states[subscriber_id] = rules.apply(self.states[subscriber_id], effects, self.now)

    def write(self) -> None:
        write_effects(self.loaded, self.effects, self.now)


def write_effects(
    loaded: Mapping[int, rules.SubscriberState],
    effects: Mapping[int, list[rules.Effect]],
    now: datetime,
) -> None:
    """Write the effects decided on these subscribers (from the states they were decided on): enrollments
    entered and changed, waiting steps of those that left cancelled, emails queued, refresh looks set.
    Flushes; the caller commits."""
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    cancelled: list[dict[str, Any]] = []
    queued: list[dict[str, Any]] = []
    refresh_rows: list[dict[str, Any]] = []
    for subscriber_id, decided in effects.items():
        before = loaded[subscriber_id]
        final: dict[int, rules.Enrolled] = {}
        refresh_due_at = before.refresh_due_at
        for effect in decided:
            if isinstance(effect, rules.Move):
                final[effect.after.sequence_id] = effect.after
                if effect.change is rules.Change.LEAVE and effect.after.id is not None:
                    cancelled.append(
                        {"enrollment": effect.after.id, "error": f"left the sequence: {effect.reason}"}
                    )
                if effect.change in (rules.Change.ENTER, rules.Change.RETURN, rules.Change.LEAVE):
                    log.info(
                        "subscriber %s %s sequence %s%s",
                        subscriber_id,
                        {"enter": "entered", "return": "re-entered", "leave": "left"}[effect.change.value],
                        effect.after.sequence_id,
                        f": {effect.reason}" if effect.reason else "",
                    )
            elif isinstance(effect, rules.Queue):
                queued.append(_delivery_row(subscriber_id, effect.email))
                log.info("%s queued for subscriber %s", effect.email.key, subscriber_id)
            else:
                refresh_due_at = effect.at
        for sequence_id, enrolled in final.items():
            if enrolled.id is None:
                new_rows.append(
                    {**_enrollment_values(enrolled), "subscriber_id": subscriber_id, "entered_at": now}
                )
            elif enrolled != before.enrollments.get(sequence_id):
                changed_rows.append({"id": enrolled.id, **_enrollment_values(enrolled)})
        if refresh_due_at != before.refresh_due_at:
            refresh_rows.append({"id": subscriber_id, "refresh_due_at": refresh_due_at})
    db.session.flush()
    if new_rows:
        db.session.execute(insert(Enrollment), new_rows)
    if changed_rows:
        db.session.execute(update(Enrollment), changed_rows)
    if cancelled:
        db.session.connection().execute(
            update(_DELIVERIES)
            .where(
                _DELIVERIES.c.enrollment_id == bindparam("enrollment"),
                _DELIVERIES.c.status == DeliveryStatus.PENDING,
            )
            .values(status=DeliveryStatus.CANCELLED, last_error=bindparam("error")),
            cancelled,
        )
    if queued:
        addresses = _addresses(queued)
        for row in queued:
            row["to_address"] = addresses[row["subscriber_id"]]
        enqueue_many(queued)
    if refresh_rows:
        db.session.execute(update(Subscriber), refresh_rows)
    _expire(effects)


def _enrollment_values(enrolled: rules.Enrolled) -> dict[str, Any]:
    return {
        "sequence_id": enrolled.sequence_id,
        "state": enrolled.state,
        "steps_done": enrolled.steps_done,
        "next_due_at": enrolled.next_due_at,
        "last_step_at": enrolled.last_step_at,
        "leaving": enrolled.leaving,
        "recheck_at": enrolled.recheck_at,
        "left_at": enrolled.left_at,
        "exit_reason": enrolled.exit_reason,
    }


def _delivery_row(subscriber_id: int, email: rules.Waiting) -> dict[str, Any]:
    payload: dict[str, Any] = (
        {"enrollment_id": email.enrollment_id, "step_id": email.step_id}
        if email.kind is DeliveryKind.SEQUENCE
        else {"question_id": email.question_id}
    )
    return {
        "subscriber_id": subscriber_id,
        "enrollment_id": email.enrollment_id,
        "kind": email.kind,
        "idempotency_key": email.key,
        "to_address": "",
        "payload": payload,
        "due_at": email.due_at,
        "priority": email.priority,
    }


def _addresses(queued: list[dict[str, Any]]) -> dict[int, str]:
    ids = {row["subscriber_id"] for row in queued}
    return dict(
        db.session.execute(select(Subscriber.id, Subscriber.email).where(Subscriber.id.in_(ids))).all()
    )


def _expire(effects: Mapping[int, list[rules.Effect]]) -> None:
    """Objects the session holds for rows written here read them again when next used."""
    subscribers = set(effects)
    for instance in list(db.session.identity_map.values()):
        if isinstance(instance, Enrollment) and instance.subscriber_id in subscribers:
            db.session.expire(instance)
        elif isinstance(instance, Subscriber) and instance.id in subscribers:
            db.session.expire(instance, ["refresh_due_at"])
        elif isinstance(instance, Delivery) and instance.subscriber_id in subscribers:
            db.session.expire(instance, ["status", "last_error"])
