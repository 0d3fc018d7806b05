"""The audience rule language: answers, interest scores, and groups of rules."""

from __future__ import annotations

from typing import Any

import pytest

from leadcapture import audience

OPTIONS = {"experience": {"none", "some", "active"}, "invests": {"yes", "no"}}
TOPICS = frozenset({"daytrading", "etfs"})
KEEN_ON_DAYTRADING = {"topic": "daytrading", "at_least": 3}
KEEN = {"interest": KEEN_ON_DAYTRADING}


@pytest.mark.parametrize(
    ("scores", "keen", "cool"),
    [({}, False, True), ({"daytrading": 2.9}, False, True), ({"daytrading": 3}, True, False),
     ({"daytrading": 2.9999999999999996}, True, False), ({"etfs": 9}, False, True)],
)  # fmt: skip
def test_interest_at_least_and_below(scores: dict[str, float], keen: bool, cool: bool) -> None:
    assert audience.matches(KEEN, {}, scores) is keen
    assert audience.matches({"interest": {"topic": "daytrading", "below": 3}}, {}, scores) is cool


def test_interest_beside_answers_and_in_groups() -> None:
    rule: dict[str, Any] = {
        "invests": "yes",
        "any_of": [{"experience": "active"}, KEEN],
        "none_of": [{"interest": {"topic": "etfs", "at_least": 1}}],
    }
    assert audience.matches(rule, {"invests": "yes", "experience": "active"}, {})
    assert audience.matches(rule, {"invests": "yes", "experience": "none"}, {"daytrading": 4})
    assert not audience.matches(rule, {"invests": "yes", "experience": "none"}, {"daytrading": 1})
    assert not audience.matches(rule, {"invests": "no", "experience": "active"}, {})
    assert not audience.matches(rule, {"invests": "yes", "experience": "active"}, {"etfs": 2})
    assert audience.matches({"all_of": [KEEN, {"invests": "yes"}]}, {"invests": "yes"}, {"daytrading": 3})
    # Interest in a list: every one must hold.
    both = {"interest": [KEEN_ON_DAYTRADING, {"topic": "etfs", "below": 1}]}
    assert audience.matches(both, {}, {"daytrading": 3})
    assert not audience.matches(both, {}, {"daytrading": 3, "etfs": 1})
    assert audience.questions_in(rule) == {"invests", "experience"}
    assert audience.interests_in(rule) == {("daytrading", 3.0), ("etfs", 1.0)}


def test_a_valid_rule_has_no_problems() -> None:
    rule = {"invests": "yes", "any_of": [{"experience": ["none", "some"]}, KEEN], "interest": [KEEN_ON_DAYTRADING]}
    assert audience.validate_rule(rule, OPTIONS, TOPICS) == []


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"interest": {"topic": "crypto", "at_least": 1}}, "audience.interest.topic: unknown topic 'crypto'"),
        ({"interest": {"topic": "etfs"}}, "audience.interest: give exactly one of at_least and below"),
        ({"interest": {"topic": "etfs", "at_least": 1, "below": 3}}, "give exactly one of at_least and below"),
        ({"interest": {"topic": "etfs", "at_least": 0}}, "at_least: must be a number above 0"),
        ({"interest": {"topic": "etfs", "at_least": True}}, "at_least: must be a number above 0"),
        ({"interest": {"topic": "etfs", "below": "3"}}, "below: must be a number above 0"),
        ({"interest": {"topic": "etfs", "at_least": 1e12}}, "at most 1000000"),
        ({"interest": {"topic": "etfs", "at_least": 1, "over": 2}}, "unknown field 'over'"),
        ({"interest": "daytrading"}, "must be {topic: KEY, at_least: N}"),
        ({"interest": []}, "needs at least one condition"),
        ({"interest": {"topic": 7, "at_least": 1}}, "topic: name a topic by its key"),
        ({"any_of": {"invests": "yes"}}, "audience.any_of: must be a list of one or more rules"),
        ({"none_of": []}, "must be a list of one or more rules"),
        ({"all_of": ["invests"]}, "audience.all_of[0]: must be a mapping"),
        ({"any_of": [{"unknown": "x"}]}, "audience.any_of[0].unknown: unknown question 'unknown'"),
        ({"any_of": [{"any_of": [{"any_of": [{"any_of": [{"any_of": [{"any_of": [{"invests": "yes"}]}]}]}]}]}]},
         "rules nest at most 5 deep"),
    ],
)  # fmt: skip
def test_a_malformed_rule_is_refused_with_where_and_why(rule: dict[str, Any], problem: str) -> None:
    problems = audience.validate_rule(rule, OPTIONS, TOPICS)
    assert any(problem in found for found in problems), problems
