"""The rules of entering, leaving and queueing: pure functions from a subscriber's state and a moment to effects.

The worker applies the effects to rows (`services/states.py`), the journey preview to its simulated person
(`services/journeys.py`); neither decides anything itself. Nothing here reads the database or the clock: the
moment is an argument, and the content (sequences, the questions that matter) comes in as plain values.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from leadcapture import audience
from leadcapture.interest import EPSILON
from leadcapture.models import DeliveryKind, Enrollment, EnrollmentState, OnChange
from leadcapture.services.answers import CurrentAnswer
from leadcapture.services.pacing import Pacing, marketing_slot

# Content, as the rules see it


@dataclass(frozen=True)
class Step:
    id: int
    key: str
    delay: timedelta  # after enrollment (first step) or after the previous step


@dataclass(frozen=True)
class SequencePlan:
    id: int
    slug: str
    audience: Mapping[str, Any]
    on_change: OnChange
    locale: str | None
    fresh_only: bool
    priority: int
    active: bool
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class TopicQuestion:
    """A topic that is about a question, as the rules read it."""

    topic: str  # the topic's key
    question_id: int
    question: str  # the question's key


@dataclass(frozen=True)
class Content:
    """What the rules need of the content: every sequence by id, the active ones in the order subscribers
    are placed in them (highest priority first), the questions that matter in the order to re-ask them, and
    the topics that are about a question (whose interest puts that question first)."""

    sequences: Mapping[int, SequencePlan]
    active: tuple[SequencePlan, ...]
    matter: tuple[tuple[int, str], ...]  # (question id, key)
    refresh_every: timedelta
    pacing: Pacing
    topics: tuple[TopicQuestion, ...] = ()


# A subscriber's state


@dataclass(frozen=True)
class Enrolled:
    """A subscriber's place in one sequence; `id` is None until the enrollment is written."""

    id: int | None
    sequence_id: int
    state: EnrollmentState
    steps_done: int
    next_due_at: datetime | None = None
    last_step_at: datetime | None = None
    leaving: bool = False
    recheck_at: datetime | None = None
    left_at: datetime | None = None
    exit_reason: str | None = None

    @classmethod
    def of(cls, enrollment: Enrollment) -> Enrolled:
        """An enrollment row as the rules read it."""
        return cls(
            id=enrollment.id,
            sequence_id=enrollment.sequence_id,
            state=enrollment.state,
            steps_done=enrollment.steps_done,
            next_due_at=enrollment.next_due_at,
            last_step_at=enrollment.last_step_at,
            leaving=enrollment.leaving,
            recheck_at=enrollment.recheck_at,
            left_at=enrollment.left_at,
            exit_reason=enrollment.exit_reason,
        )


@dataclass(frozen=True)
class Waiting:
    """A marketing email scheduled and not sent yet."""

    key: str  # the idempotency key
    kind: DeliveryKind
    due_at: datetime
    priority: int = 0
    sequence_id: int | None = None
    enrollment_id: int | None = None
    step_id: int | None = None
    question_id: int | None = None


@dataclass(frozen=True)
class SubscriberState:
    id: int | None
    locale: str
    timezone: str | None
    receives_marketing: bool
    paused_until: datetime | None
    answers: Mapping[str, CurrentAnswer]
    enrollments: Mapping[int, Enrolled]  # by sequence id
    waiting: tuple[Waiting, ...] = ()
    last_planned: datetime | None = None  # the latest marketing email sent or being sent
    last_refresh: datetime | None = None  # when the latest refresh email was queued
    refresh_due_at: datetime | None = None
    # Scores by topic key as of the moment the state was read (leadcapture.interest); a topic left out is 0.
    interests: Mapping[str, float] = field(default_factory=dict)

    @property
    def last_marketing(self) -> datetime | None:
        """The latest marketing email sent or waiting: the frequency cap counts from it."""
        moments = [waiting.due_at for waiting in self.waiting]
        if self.last_planned is not None:
            moments.append(self.last_planned)
        return max(moments, default=None)

    def step_waiting(self, sequence_id: int) -> bool:
        return any(waiting.sequence_id == sequence_id for waiting in self.waiting)

    def marketing_slot(self, earliest: datetime, pacing: Pacing) -> datetime:
        """When a marketing email this subscriber could get from `earliest` on may go out."""
        return marketing_slot(
            earliest,
            last=self.last_marketing,
            paused_until=self.paused_until,
            timezone=self.timezone,
            pacing=pacing,
        )


# Effects


class Change(enum.Enum):
    ENTER = "enter"
    RETURN = "return"  # comes back to a sequence it left, where it left off
    STAYS_AFTER_ALL = "stays_after_all"  # matches again while leaving after its waiting step
    MATCHES = "matches"  # still matches; nothing changes
    STAYS = "stays"  # no longer matches, but on_change stay
    LEAVING = "leaving"  # no longer matches: leaves once the waiting step is out (finish_step)
    LEAVE = "leave"  # out now; its waiting steps are cancelled
    STEP = "step"  # a step was queued
    COMPLETE = "complete"  # every step is queued
    RECHECK = "recheck"  # when to look at its answers again


@dataclass(frozen=True)
class Move:
    """An enrollment changed: `after` is the whole enrollment as it is now."""

    change: Change
    after: Enrolled
    reason: str = ""


@dataclass(frozen=True)
class Queue:
    """A marketing email goes to the outbox; `earliest` is when it would have gone without pacing."""

    email: Waiting
    earliest: datetime


@dataclass(frozen=True)
class RefreshAt:
    """When to look again for an answer to re-ask; None: never."""

    at: datetime | None


Effect = Move | Queue | RefreshAt


# The rules


def sequence_is_for(
    sequence: SequencePlan,
    locale: str,
    answers: Mapping[str, Any],
    interests: Mapping[str, float] | None = None,
) -> bool:
    """Whether a subscriber belongs in a sequence: its language, and its audience over current answers and
    interest scores."""
    if sequence.locale is not None and sequence.locale != locale:
        return False
    return audience.matches(dict(sequence.audience), dict(answers), interests)


def audience_answers(
    sequence: SequencePlan, states: Mapping[str, CurrentAnswer], now: datetime
) -> dict[str, Any]:
    """The answers a sequence's audience is judged on: every current one, or only fresh ones if fresh_only."""
    return {
        key: state.value for key, state in states.items() if not sequence.fresh_only or state.is_fresh(now)
    }


def goes_stale_at(sequence: SequencePlan, states: Mapping[str, CurrentAnswer]) -> datetime | None:
    """For a fresh_only sequence: when the first answer its audience looks at goes stale."""
    if not sequence.fresh_only:
        return None
    moments = [
        states[key].stale_at for key in audience.questions_in(dict(sequence.audience)) if key in states
    ]
    return min(moments, default=None)


class Mismatch(enum.Enum):
    """What an enrollment does once the answers stop matching its sequence's audience."""

    STAY = "stay"
    LEAVE_AFTER_STEP = "leave_after_step"  # the step waiting in the outbox still goes out
    LEAVE = "leave"  # now; a waiting step is cancelled


def on_mismatch(on_change: OnChange, *, step_waiting: bool) -> Mismatch:
    """The sequence's on_change rule applied, given whether one of its steps waits in the outbox."""
    if on_change is OnChange.STAY:
        return Mismatch.STAY
    if on_change is OnChange.FINISH_STEP and step_waiting:
        return Mismatch.LEAVE_AFTER_STEP
    return Mismatch.LEAVE


def next_step_due(sequence: SequencePlan, steps_done: int, *, after: datetime) -> datetime | None:
    """When the step after `steps_done` falls due, counting its delay from `after`; None when none is left."""
    if steps_done >= len(sequence.steps):
        return None
    return after + sequence.steps[steps_done].delay


def switch(state: SubscriberState, content: Content, now: datetime, reason: str) -> list[Effect]:
    """Bring a subscriber's enrollments in line with their current answers and consent."""
    if not state.receives_marketing:
        return leave_all(state, now, f"no marketing consent ({reason})")
    effects: list[Effect] = []
    for sequence in content.active:
        current = state.enrollments.get(sequence.id)
        moves: list[Move] = []
        answers = audience_answers(sequence, state.answers, now)
        if sequence_is_for(sequence, state.locale, answers, state.interests):
            moves = _enter(state, sequence, current, now)
        elif current is not None and current.state is EnrollmentState.ACTIVE:
            moves = _no_longer_matches(state, sequence, current, now)
        elif (
            current is not None
            and current.state is EnrollmentState.COMPLETED
            and sequence.on_change is OnChange.SWITCH
            and state.step_waiting(sequence.id)
        ):
            # An enrollment completes when its last step is queued; under switch that step, if it still
            # waits in the outbox (sending hours, the frequency cap, a paused stream), is cancelled.
            moves = [_leave(current, now, "answers changed")]
        effects += moves
        after = moves[-1].after if moves else current
        if after is not None:
            recheck_at = (
                goes_stale_at(sequence, state.answers) if after.state is EnrollmentState.ACTIVE else None
            )
            if recheck_at != after.recheck_at:
                effects.append(Move(Change.RECHECK, replace(after, recheck_at=recheck_at)))
    effects.append(RefreshAt(refresh_at(state, content, now)))
    return effects


def recheck(
    state: SubscriberState, content: Content, now: datetime, sequence_ids: Iterable[int]
) -> list[Effect]:
    """Answers a fresh_only sequence relies on went stale: switch, and stop looking at those that stay in."""
    effects = switch(state, content, now, "answers went stale")
    placed = apply(state, effects, now)
    for sequence_id in sequence_ids:
        enrolled = placed.enrollments.get(sequence_id)
        if enrolled is not None and enrolled.recheck_at is not None and enrolled.recheck_at <= now:
            # Still in: nothing further to look at until answers change.
            effects.append(Move(Change.RECHECK, replace(enrolled, recheck_at=None)))
    return effects


def leave_all(state: SubscriberState, now: datetime, reason: str) -> list[Effect]:
    """Out of every sequence (unsubscribe, suppression, consent withdrawn)."""
    return [
        _leave(enrolled, now, reason)
        for enrolled in state.enrollments.values()
        if enrolled.state is EnrollmentState.ACTIVE
    ]


def step_due(state: SubscriberState, content: Content, sequence_id: int, now: datetime) -> list[Effect]:
    """An enrollment's next step has fallen due: queue it at the first moment pacing allows."""
    enrolled = state.enrollments[sequence_id]
    sequence = content.sequences[sequence_id]
    if not state.receives_marketing or not sequence.active:
        reason = "no marketing consent" if sequence.active else "sequence switched off"
        return [_leave(enrolled, now, reason)]
    if enrolled.steps_done >= len(sequence.steps):
        return [*_scheduled(Change.STEP, sequence, enrolled, after=now)]
    step = sequence.steps[enrolled.steps_done]
    earliest = enrolled.next_due_at or now
    due_at = state.marketing_slot(earliest, content.pacing)
    queue = Queue(
        Waiting(
            key=f"sequence:{enrolled.id}:{step.key}",
            kind=DeliveryKind.SEQUENCE,
            due_at=due_at,
            priority=sequence.priority,
            sequence_id=sequence.id,
            enrollment_id=enrolled.id,
            step_id=step.id,
        ),
        earliest,
    )
    queued = replace(enrolled, steps_done=enrolled.steps_done + 1, last_step_at=due_at)
    if enrolled.leaving:
        return [queue, Move(Change.STEP, replace(queued, next_due_at=None))]
    return [queue, *_scheduled(Change.STEP, sequence, queued, after=due_at)]


def step_sent(enrolled: Enrolled, now: datetime) -> Move | None:
    """A step went out: an enrollment leaving after its waiting step (finish_step) leaves now."""
    if enrolled.leaving and enrolled.state is EnrollmentState.ACTIVE:
        return _leave(enrolled, now, "answers changed (after finishing the step)")
    return None


def stale_questions(
    states: Mapping[str, CurrentAnswer], now: datetime, matter: Iterable[tuple[int, str]]
) -> list[tuple[int, str]]:
    """The questions that matter whose current answer has gone stale, most important first."""
    return [(id_, key) for id_, key in matter if key in states and not states[key].is_fresh(now)]


# A score on a topic is high from one signal's worth today on: a click or read today, two within the topic's
# half-life, four within two. A single click of last week is not enough to decide what is asked first.
HIGH_INTEREST = 1.0


def interest_first(interests: Mapping[str, float], topics: Iterable[TopicQuestion]) -> list[str]:
    """The keys of the questions a subscriber's interest asks first: those of the topics they score
    HIGH_INTEREST or more on today, highest score first (then by topic key); a question several topics are
    about counts at its highest score."""
    best: dict[str, tuple[float, str]] = {}
    for topic in topics:
        score = interests.get(topic.topic, 0.0)
        if score < HIGH_INTEREST * (1 - EPSILON):
            continue
        ranked = (-score, topic.topic)
        if topic.question not in best or ranked < best[topic.question]:
            best[topic.question] = ranked
    return sorted(best, key=lambda key: best[key])


def ask_order(
    keys: Iterable[str], interests: Mapping[str, float], topics: Iterable[TopicQuestion]
) -> list[str]:
    """Question keys in the order to ask them: those the subscriber's interest asks first (interest_first),
    then the others in their given order."""
    given = list(dict.fromkeys(keys))
    first = [key for key in interest_first(interests, topics) if key in given]
    return [*first, *(key for key in given if key not in first)]


def refresh_questions(state: SubscriberState, content: Content, now: datetime) -> list[tuple[int, str]]:
    """The questions a refresh email may ask, most important first: the questions of topics the subscriber's
    interest is high in that they never answered (asked for the first time), then the stale answers to
    re-ask, those of high topics first and then the questions that matter in their order."""
    first = interest_first(state.interests, content.topics)
    ids = {topic.question: topic.question_id for topic in content.topics}
    ids |= {key: id_ for id_, key in content.matter}
    never = [(ids[key], key) for key in first if key not in state.answers]
    ordered = [*first, *(key for _id, key in content.matter if key not in first)]
    return [*never, *stale_questions(state.answers, now, [(ids[key], key) for key in ordered])]


def refresh_due(
    stale_moments: Iterable[datetime], last_refresh: datetime | None, now: datetime, every: timedelta
) -> datetime | None:
    """When to look for an answer to re-ask: the first going stale, but a refresh interval after the last
    refresh email; None when no answer can go stale."""
    first = min(stale_moments, default=None)
    if first is None:
        return None
    return max(first, last_refresh + every if last_refresh is not None else now)


def refresh_at(state: SubscriberState, content: Content, now: datetime) -> datetime | None:
    """When to look again for something to re-ask this subscriber."""
    if not state.receives_marketing:
        return None
    keys = {key for _id, key in content.matter}
    moments = [answer.stale_at for key, answer in state.answers.items() if key in keys]
    return refresh_due(moments, state.last_refresh, now, content.refresh_every)


def refresh(state: SubscriberState, content: Content, now: datetime) -> list[Effect]:
    """The refresh look is due: queue one email re-asking the most important stale answer (refresh_questions:
    a topic the subscriber is keen on first), and set the next look (never sooner than the refresh
    interval)."""
    effects: list[Effect] = []
    stale = refresh_questions(state, content, now) if state.receives_marketing else []
    last_refresh = state.last_refresh
    if stale:
        question_id, _key = stale[0]
        due_at = state.marketing_slot(now, content.pacing)
        subscriber = state.id if state.id is not None else "preview"
        key = f"refresh:{subscriber}:{question_id}:{now.date().isoformat()}"
        effects.append(Queue(Waiting(key, DeliveryKind.REFRESH, due_at, question_id=question_id), now))
        last_refresh = now
    at = refresh_at(replace(state, last_refresh=last_refresh), content, now)
    if at is not None and at <= now:
        at = now + content.refresh_every
    effects.append(RefreshAt(at))
    return effects


def apply(state: SubscriberState, effects: Iterable[Effect], now: datetime) -> SubscriberState:
    """The state after `effects`: what the next rule, at the same moment, decides on."""
    enrollments = dict(state.enrollments)
    waiting = list(state.waiting)
    last_refresh, refresh_due_at = state.last_refresh, state.refresh_due_at
    for effect in effects:
        if isinstance(effect, Move):
            enrollments[effect.after.sequence_id] = effect.after
            if effect.change is Change.LEAVE:
                waiting = [w for w in waiting if w.sequence_id != effect.after.sequence_id]
        elif isinstance(effect, Queue):
            if all(w.key != effect.email.key for w in waiting):
                waiting.append(effect.email)
            if effect.email.kind is DeliveryKind.REFRESH:
                last_refresh = now
        else:
            refresh_due_at = effect.at
    return replace(
        state,
        enrollments=enrollments,
        waiting=tuple(waiting),
        last_refresh=last_refresh,
        refresh_due_at=refresh_due_at,
    )


def _enter(
    state: SubscriberState, sequence: SequencePlan, current: Enrolled | None, now: datetime
) -> list[Move]:
    if current is None:
        entered = Enrolled(None, sequence.id, EnrollmentState.ACTIVE, 0)
        return _scheduled(Change.ENTER, sequence, entered, after=now)
    if current.state is EnrollmentState.EXITED:
        # Coming back resumes where they left off: nothing already sent is sent again.
        back = replace(current, state=EnrollmentState.ACTIVE, leaving=False, left_at=None, exit_reason=None)
        return _scheduled(Change.RETURN, sequence, back, after=now)
    if current.state is EnrollmentState.ACTIVE and current.leaving:
        staying = replace(current, leaving=False)
        if current.next_due_at is not None:
            return [Move(Change.STAYS_AFTER_ALL, staying)]
        return _scheduled(
            Change.STAYS_AFTER_ALL, sequence, staying, after=max(now, current.last_step_at or now)
        )
    return [Move(Change.MATCHES, current)]


def _no_longer_matches(
    state: SubscriberState, sequence: SequencePlan, current: Enrolled, now: datetime
) -> list[Move]:
    waiting = sequence.on_change is OnChange.FINISH_STEP and state.step_waiting(sequence.id)
    outcome = on_mismatch(sequence.on_change, step_waiting=waiting)
    if outcome is Mismatch.STAY:
        return [Move(Change.STAYS, current)]
    if outcome is Mismatch.LEAVE_AFTER_STEP:
        return [Move(Change.LEAVING, replace(current, leaving=True, next_due_at=None))]
    return [_leave(current, now, "answers changed")]


def _leave(enrolled: Enrolled, now: datetime, reason: str) -> Move:
    left = replace(
        enrolled,
        state=EnrollmentState.EXITED,
        leaving=False,
        next_due_at=None,
        left_at=now,
        exit_reason=reason[:200],
    )
    return Move(Change.LEAVE, left, reason)


def _scheduled(change: Change, sequence: SequencePlan, enrolled: Enrolled, *, after: datetime) -> list[Move]:
    """`change`, with when the next step falls due, and completing the enrollment when there is none."""
    due = next_step_due(sequence, enrolled.steps_done, after=after)
    if due is None:
        done = replace(enrolled, state=EnrollmentState.COMPLETED, next_due_at=None)
        return [Move(change, done), Move(Change.COMPLETE, done)]
    return [Move(change, replace(enrolled, next_due_at=due))]
