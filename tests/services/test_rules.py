"""The rules of entering, leaving and queueing on their own: pure functions, so no database is needed."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from leadcapture.models import DeliveryKind, EnrollmentState, OnChange
from leadcapture.services import rules
from leadcapture.services.answers import CurrentAnswer
from leadcapture.services.pacing import Pacing

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # Monday, 10:00 in Amsterdam: within sending hours


def plan(id_: int, audience: dict[str, object], on_change: OnChange, **extra: object) -> rules.SequencePlan:
    values: dict[str, object] = {
        "slug": f"s{id_}",
        "locale": None,
        "fresh_only": False,
        "priority": 0,
        "active": True,
        "steps": (
            rules.Step(id_ * 10, "01.md", timedelta(days=1)),
            rules.Step(id_ * 10 + 1, "02.md", timedelta(days=2)),
        ),
    }
    values.update(extra)
    return rules.SequencePlan(id=id_, audience=audience, on_change=on_change, **values)  # type: ignore[arg-type]


def content(*sequences: rules.SequencePlan) -> rules.Content:
    return rules.Content(
        sequences={sequence.id: sequence for sequence in sequences},
        active=tuple(sorted(sequences, key=lambda sequence: (-sequence.priority, sequence.id))),
        matter=((1, "experience"),),
        refresh_every=timedelta(days=30),
        pacing=Pacing(per_day=1, sending_hours=(8, 21), timezone="Europe/Amsterdam"),
    )


def person(experience: str, **extra: object) -> rules.SubscriberState:
    values: dict[str, object] = {
        "id": 7,
        "locale": "nl",
        "timezone": "Europe/Amsterdam",
        "receives_marketing": True,
        "paused_until": None,
        "answers": {"experience": CurrentAnswer(1, experience, NOW, NOW + timedelta(days=10))},
        "enrollments": {},
    }
    values.update(extra)
    return rules.SubscriberState(**values)  # type: ignore[arg-type]


def changes(effects: list[rules.Effect]) -> list[tuple[rules.Change, int]]:
    return [(effect.change, effect.after.sequence_id) for effect in effects if isinstance(effect, rules.Move)]


@pytest.mark.parametrize(
    ("on_change", "waiting", "outcome"),
    [
        (OnChange.STAY, True, rules.Mismatch.STAY),
        (OnChange.STAY, False, rules.Mismatch.STAY),
        (OnChange.FINISH_STEP, True, rules.Mismatch.LEAVE_AFTER_STEP),
        (OnChange.FINISH_STEP, False, rules.Mismatch.LEAVE),
        (OnChange.SWITCH, True, rules.Mismatch.LEAVE),
        (OnChange.SWITCH, False, rules.Mismatch.LEAVE),
    ],
)
def test_on_change_decides_what_a_mismatch_does(
    on_change: OnChange, waiting: bool, outcome: rules.Mismatch
) -> None:
    assert rules.on_mismatch(on_change, step_waiting=waiting) is outcome


def test_entering_schedules_the_first_step_and_queueing_paces_it() -> None:
    world = content(plan(1, {"experience": "none"}, OnChange.SWITCH))
    state = person("none")
    effects = rules.switch(state, world, NOW, "signed up")
    assert changes(effects) == [(rules.Change.ENTER, 1)]
    state = rules.apply(state, effects, NOW)
    assert state.enrollments[1].next_due_at == NOW + timedelta(days=1)

    later = NOW + timedelta(days=1)
    queued = rules.step_due(replace_id(state), world, 1, later)
    (queue,) = [effect for effect in queued if isinstance(effect, rules.Queue)]
    assert (queue.email.kind, queue.email.key, queue.email.due_at) == (
        DeliveryKind.SEQUENCE,
        "sequence:3:01.md",
        later,
    )
    state = rules.apply(replace_id(state), queued, later)
    assert state.enrollments[1].next_due_at == later + timedelta(days=2)
    # A second step due at once would wait a day for the frequency cap.
    assert state.last_marketing == later


def replace_id(state: rules.SubscriberState) -> rules.SubscriberState:
    """As written: the new enrollment has its id."""
    return replace(
        state, enrollments={key: replace(value, id=value.id or 3) for key, value in state.enrollments.items()}
    )


def test_a_switch_leaves_now_and_finish_step_after_the_waiting_step() -> None:
    world = content(
        plan(1, {"experience": "none"}, OnChange.SWITCH),
        plan(2, {"experience": "none"}, OnChange.FINISH_STEP),
    )
    entered = rules.Enrolled(3, 1, EnrollmentState.ACTIVE, 1, NOW + timedelta(days=2))
    leaving = rules.Enrolled(4, 2, EnrollmentState.ACTIVE, 1, NOW + timedelta(days=2))
    waiting = rules.Waiting(
        "sequence:4:01.md", DeliveryKind.SEQUENCE, NOW + timedelta(hours=1), sequence_id=2
    )
    state = person("active", enrollments={1: entered, 2: leaving}, waiting=(waiting,))
    effects = rules.switch(state, world, NOW, "answer changed")
    assert changes(effects) == [(rules.Change.LEAVE, 1), (rules.Change.LEAVING, 2)]
    after = rules.apply(state, effects, NOW)
    assert after.enrollments[1].state is EnrollmentState.EXITED
    assert after.enrollments[2].next_due_at is None
    sent = rules.step_sent(after.enrollments[2], NOW + timedelta(hours=1))
    assert sent is not None
    assert sent.after.state is EnrollmentState.EXITED


@pytest.mark.parametrize("seed", range(20))
def test_a_switch_applied_twice_changes_nothing_the_second_time(seed: int) -> None:
    rng = random.Random(seed)
    policies = list(OnChange)
    world = content(
        *(
            plan(
                n,
                {"experience": rng.sample(["none", "some", "active"], rng.randint(1, 2))},
                rng.choice(policies),
                fresh_only=rng.random() < 0.3,
                priority=rng.randint(0, 3),
            )
            for n in range(1, 5)
        )
    )
    state = person(rng.choice(["none", "some", "active"]))
    moment = NOW
    for _ in range(6):
        moment += timedelta(hours=rng.randint(1, 90))
        answer = rng.choice(["none", "some", "active"])
        state = rules.SubscriberState(
            **{
                **vars(state),
                "answers": {"experience": CurrentAnswer(1, answer, moment, moment + timedelta(days=3))},
            }
        )
        state = rules.apply(state, rules.switch(state, world, moment, "answer"), moment)
        again = rules.switch(state, world, moment, "answer")
        assert {change for change, _ in changes(again)} <= {rules.Change.MATCHES, rules.Change.STAYS}
        assert rules.apply(state, again, moment) == state
