"""Behaviour tells what to ask: the question of a topic a subscriber scores high on comes first, in the
refresh email (among stale answers) and in the widget (among what is left to ask). Pure rules, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from leadcapture.models import DeliveryKind
from leadcapture.services import rules
from leadcapture.services.answers import CurrentAnswer
from leadcapture.services.pacing import Pacing

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # Monday, 10:00 in Amsterdam: within sending hours
TOPICS = (
    rules.TopicQuestion("daytrading", 2, "experience"),
    rules.TopicQuestion("etfs", 3, "funds"),
    rules.TopicQuestion("trackers", 3, "funds"),  # two topics about one question
)
MATTER = ((1, "investor"), (2, "experience"), (3, "funds"))
ALL = ("investor", "experience", "funds")


def world(topics: tuple[rules.TopicQuestion, ...] = TOPICS) -> rules.Content:
    return rules.Content(
        sequences={},
        active=(),
        matter=MATTER,
        refresh_every=timedelta(days=30),
        pacing=Pacing(per_day=1, sending_hours=(8, 21), timezone="Europe/Amsterdam"),
        topics=topics,
    )


def answered(question_id: int, value: str, *, stale: bool) -> CurrentAnswer:
    at = NOW - timedelta(days=100 if stale else 1)
    return CurrentAnswer(question_id, value, at, at + timedelta(days=90))


def person(interests: dict[str, float], *, stale: tuple[str, ...] = ALL) -> rules.SubscriberState:
    ids = {key: id_ for id_, key in MATTER}
    return rules.SubscriberState(
        id=7,
        locale="nl",
        timezone="Europe/Amsterdam",
        receives_marketing=True,
        paused_until=None,
        answers={key: answered(ids[key], "x", stale=key in stale) for key in ids},
        enrollments={},
        interests=interests,
    )


@pytest.mark.parametrize(
    ("interests", "first"),
    [
        ({}, []),
        ({"daytrading": 0.99}, []),  # below one signal's worth today: not high
        ({"daytrading": 1.0}, ["experience"]),
        ({"daytrading": 1 - 1e-12}, ["experience"]),  # a sum of decayed signals a rounding away from 1
        ({"daytrading": 2.0, "etfs": 3.0}, ["funds", "experience"]),  # highest score first
        # A question several topics are about counts at its best.
        ({"daytrading": 2.0, "etfs": 1.5, "trackers": 2.5}, ["funds", "experience"]),
        ({"daytrading": 2.0, "etfs": 2.0}, ["experience", "funds"]),  # a tie: by topic key
        ({"beleggen": 9.0}, []),  # a topic about no question
    ],
)
def test_interest_first_asks_the_questions_of_high_topics_highest_first(
    interests: dict[str, float], first: list[str]
) -> None:
    assert rules.interest_first(interests, TOPICS) == first


def test_ask_order_puts_them_first_and_keeps_the_rest_in_order() -> None:
    keys = ["investor", "experience", "funds", "horizon"]
    assert rules.ask_order(keys, {}, TOPICS) == keys
    assert rules.ask_order(keys, {"etfs": 4.0}, TOPICS) == ["funds", "investor", "experience", "horizon"]
    # Only questions given are ordered: one already fresh is not brought back.
    assert rules.ask_order(["investor", "horizon"], {"etfs": 4.0}, TOPICS) == ["investor", "horizon"]


def test_a_refresh_email_re_asks_the_stale_answer_of_a_high_topic_first() -> None:
    state = person({"etfs": 3.0})
    (queued, _at) = rules.refresh(state, world(), NOW)
    assert isinstance(queued, rules.Queue)
    assert (queued.email.kind, queued.email.question_id) == (DeliveryKind.REFRESH, 3)
    # Without the interest, the questions that matter in their order.
    assert [key for _id, key in rules.refresh_questions(person({}), world(), NOW)] == [
        "investor",
        "experience",
        "funds",
    ]


def test_a_fresh_answer_of_a_high_topic_is_not_re_asked() -> None:
    state = person({"etfs": 3.0}, stale=("investor",))
    assert rules.refresh_questions(state, world(), NOW) == [(1, "investor")]


def test_a_high_topic_question_outside_the_questions_that_matter_is_re_asked_too() -> None:
    outside = (rules.TopicQuestion("horizon", 9, "horizon"),)
    state = person({"horizon": 2.0}, stale=())
    stale_horizon = CurrentAnswer(9, "long", NOW - timedelta(days=100), NOW - timedelta(days=10))
    state = replace(state, answers={**state.answers, "horizon": stale_horizon})
    assert rules.refresh_questions(state, world(outside), NOW) == [(9, "horizon")]
    # Without the interest it does not matter: nothing to re-ask.
    assert rules.refresh_questions(replace(state, interests={}), world(outside), NOW) == []


def test_a_high_topics_unanswered_question_is_asked_by_the_next_refresh_email_and_no_other_is() -> None:
    """The refresh email asks it for the first time; an unanswered question of a topic the subscriber shows
    little interest in is left to the widget."""
    state = person({"daytrading": 5.0}, stale=())
    unanswered = {key: value for key, value in state.answers.items() if key != "experience"}
    state = replace(state, answers=unanswered)
    assert rules.refresh_questions(state, world(), NOW) == [(2, "experience")]
    effects = rules.refresh(state, world(), NOW)
    assert [effect.email.question_id for effect in effects if isinstance(effect, rules.Queue)] == [2]
    cool = replace(state, interests={"daytrading": 0.5})
    assert rules.refresh_questions(cool, world(), NOW) == []
    assert not any(isinstance(effect, rules.Queue) for effect in rules.refresh(cool, world(), NOW))
