"""Counting an audience with interest rules: the count agrees with `audience.matches`, subscriber by
subscriber, over a mixed crowd, to the last bit of a score on a threshold."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from leadcapture import audience, clock, interest
from leadcapture.errors import InvalidInput
from leadcapture.extensions import db
from leadcapture.models import InterestScore, Subscriber, Topic
from leadcapture.services.answers import answer_states
from leadcapture.services.audiences import count_audience, lowest_level
from leadcapture.services.states import scores_of
from tests.factories import make_question
from tests.support.people import person
from tests.support.sql import statements

HALF_LIVES = {"daytrading": 30, "etfs": 7, "crypto": 90}
KEEN = {"interest": {"topic": "daytrading", "at_least": 3}}

RULES: list[dict[str, Any]] = [
    {},
    KEEN,
    {"interest": {"topic": "daytrading", "below": 3}},
    {"interest": {"topic": "etfs", "at_least": 1}},
    {"interest": [{"topic": "daytrading", "at_least": 1}, {"topic": "etfs", "below": 2}]},
    {"interest": {"topic": "crypto", "below": 0.5}},
    {"any_of": [KEEN, {"interest": {"topic": "etfs", "at_least": 3}}]},
    {"any_of": [KEEN, {"interest": {"topic": "etfs", "below": 0.5}}]},
    {"all_of": [KEEN, {"none_of": [{"interest": {"topic": "crypto", "at_least": 1}}]}]},
    {"none_of": [KEEN, {"interest": {"topic": "etfs", "at_least": 2}}]},
    {"is_investor": "yes", "interest": {"topic": "etfs", "at_least": 1}},
    {"is_investor": "yes", "interest": {"topic": "daytrading", "below": 1}},
    {"any_of": [{"daytrading_experience": "active"}, {"interest": {"topic": "daytrading", "at_least": 5}}]},
    {"none_of": [{"interest": {"topic": "crypto", "at_least": 1}}, {"is_investor": "no"}]},
    {
        "daytrading_experience": {"none_of": ["active"]},
        "all_of": [
            {"interest": {"topic": "etfs", "at_least": 0.5}},
            {
                "any_of": [
                    {"interests": {"all_of": ["stocks", "etfs"]}},
                    {"interest": {"topic": "crypto", "below": 2}},
                ]
            },
        ],
    },
    {"interests": {"answered": False}, "any_of": [KEEN, {"is_investor": {"answered": False}}]},
    {
        "none_of": [{"interest": {"topic": "etfs", "at_least": 5}}],
        "any_of": [{"interest": {"topic": "daytrading", "at_least": 3}}, {"is_investor": "yes"}],
    },
    {"interest": {"topic": "etfs", "below": 1}, "any_of": [KEEN, {"daytrading_experience": "none"}]},
]


def levels(now: Any, half_life: int) -> list[float | None]:
    """Stored levels to draw from: none, plain scores, three clicks today, and levels a hair either side of
    where `at_least: 3` and `at_least: 1` begin, by either margin (interest.threshold's and matches')."""
    plain = [
        math.log2(score) + interest.day_number(now) / half_life for score in (0.2, 0.9, 1, 2.5, 3, 3.5, 8)
    ]
    three_today = None
    for _ in range(3):
        three_today = interest.add_signal(three_today, 1, now, half_life)
    edges = []
    for at_least in (3, 1):
        lowest = lowest_level(at_least, now, half_life)
        edges += [lowest, math.nextafter(lowest, -math.inf), math.nextafter(lowest, math.inf)]
        edges += [interest.threshold(at_least, now, half_life) + step * 1e-10 for step in (-6, -3, 0, 3)]
    return [None, None, None, *plain, three_today, *edges]


@pytest.fixture
def crowd(app: Flask, frozen_clock: object) -> None:
    """Seventy subscribers of every status, consent and locale, with answers old and new, and scores drawn
    from `levels` on three topics of different half-lives."""
    draw = random.Random(15)
    with app.app_context():
        make_question("is_investor", "yes_no")
        make_question("daytrading_experience", "choice", fresh_for_days=30)
        make_question("interests", "multi")
        now = clock.now()
        topics = {}
        for key, half_life in HALF_LIVES.items():
            topics[key] = Topic(
                key=key, name={"nl": key}, urls=[], half_life_days=half_life, created_at=now, updated_at=now
            )
            db.session.add(topics[key])
        db.session.flush()
        choices: dict[str, list[Any]] = {
            "is_investor": ["yes", "no"],
            "daytrading_experience": ["none", "some", "active"],
            "interests": [["stocks"], ["etfs", "stocks"], ["crypto"], ["crypto", "etfs", "stocks"]],
        }
        for number in range(70):
            answers = [
                (key, draw.choice(values), draw.choice([1, 20, 60, 200]))
                for key, values in choices.items()
                for _ in range(draw.choice([0, 0, 1, 2]))
            ]
            answers.sort(key=lambda answer: -answer[2])
            person(
                f"p{number}@example.com",
                status=draw.choice(["confirmed"] * 6 + ["pending", "unsubscribed"]),
                consent=draw.random() < 0.85,
                locale=draw.choice(["nl", "nl", "en"]),
                answers=answers,
            )
        for subscriber_id in db.session.scalars(select(Subscriber.id)):
            for key, topic in topics.items():
                level = draw.choice(levels(now, HALF_LIVES[key]))
                if level is not None:
                    db.session.add(
                        InterestScore(
                            subscriber_id=subscriber_id, topic_id=topic.id, level=level, updated_at=now
                        )
                    )
        db.session.commit()


def decided_one_by_one(rule: dict[str, Any], locale: str | None, fresh_only: bool) -> int:
    """How many subscribers `audience.matches` takes, asked about each with their answers and scores."""
    now = clock.now()
    subscribers = list(db.session.scalars(select(Subscriber)))
    scores = scores_of([subscriber.id for subscriber in subscribers], now)
    taken = 0
    for subscriber in subscribers:
        if not subscriber.receives_marketing or locale not in (None, subscriber.locale):
            continue
        answers = {
            key: state.value
            for key, state in answer_states(subscriber.id).items()
            if not fresh_only or state.is_fresh(now)
        }
        taken += audience.matches(rule, answers, scores[subscriber.id])
    return taken


@pytest.mark.usefixtures("crowd")
@pytest.mark.parametrize("rule", RULES, ids=[str(number) for number in range(len(RULES))])
def test_the_count_agrees_with_matches_subscriber_by_subscriber(app: Flask, rule: dict[str, Any]) -> None:
    with app.app_context():
        for locale in (None, "nl"):
            for fresh_only in (False, True):
                expected = decided_one_by_one(rule, locale, fresh_only)
                assert count_audience(rule, locale, fresh_only) == expected, (locale, fresh_only)
        # The crowd is varied enough that every rule but the empty one takes some and leaves some.
        everyone = decided_one_by_one({}, None, False)
        assert rule == {} or 0 < decided_one_by_one(rule, None, False) < everyone


@pytest.mark.usefixtures("crowd")
def test_the_crowd_straddles_each_edge(app: Flask) -> None:
    """Some scores sit where interest.threshold and matches disagree by a hair, and the count follows matches."""
    with app.app_context():
        now = clock.now()
        half_life = HALF_LIVES["daytrading"]
        topic_id = db.session.scalar(select(Topic.id).where(Topic.key == "daytrading"))
        stored = db.session.scalars(
            select(InterestScore.level).where(InterestScore.topic_id == topic_id)
        ).all()
        between = [
            level
            for level in stored
            if lowest_level(3, now, half_life) <= level < interest.threshold(3, now, half_life)
        ]
        assert between
        assert all(
            audience.matches(KEEN, {}, {"daytrading": interest.score(level, now, half_life)})
            for level in between
        )


@pytest.mark.usefixtures("crowd")
def test_an_interest_only_rule_is_one_statement_that_reads_no_answers(app: Flask) -> None:
    rule = {
        "any_of": [KEEN, {"interest": {"topic": "etfs", "at_least": 3}}],
        "none_of": [{"interest": {"topic": "crypto", "at_least": 1}}],
    }
    with app.app_context():
        with statements() as seen:
            count_audience(rule, "nl", fresh_only=True)
        counting = [statement for statement in seen if "interest_scores" in statement]
        assert len(counting) == 1
        assert not any("answers" in statement for statement in seen)


@pytest.mark.usefixtures("crowd")
def test_a_rule_naming_an_unknown_topic_is_refused(app: Flask) -> None:
    with app.app_context(), pytest.raises(InvalidInput, match="unknown topic 'gold'"):
        count_audience({"interest": {"topic": "gold", "at_least": 1}}, None, fresh_only=False)
