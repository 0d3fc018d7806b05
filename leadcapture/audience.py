"""The audience rule language: which subscribers a sequence is for, by current answers and interest.

A rule is a mapping, and every entry must hold (AND):

    audience:
      is_investor: yes                          # the answer is yes
      daytrading_experience: [none, some]       # any of these values
      investment_interests: {all_of: [stocks, etfs]}   # a multi answer holding every one of these
      risk_appetite: {none_of: [high]}          # not one of these (an unanswered question passes)
      newsletter_topic: {answered: false}       # not answered (yet)
      interest: {topic: daytrading, at_least: 3}        # a score of at least 3 on a topic today
      any_of:                                   # at least one of these rules holds
        - {daytrading_experience: active}
        - {interest: {topic: daytrading, at_least: 5}}

A question's condition is a value, a list of values (any of), or a mapping of one or more of `any_of`,
`all_of`, `none_of` (lists of values) and `answered` (true or false), which must all hold. For a multi
question, `any_of` holds when at least one chosen value is listed, `none_of` when none is. Values are a
question's option values.

`interest` is one condition or a list of them (all must hold): `{topic: KEY, at_least: N}` or
`{topic: KEY, below: N}`, over the topic's decayed score (leadcapture.interest); a topic nobody showed
interest in scores 0. At the top level (and inside them), `any_of`, `all_of` and `none_of` take a list of
rules: at least one, every one, or not one of them holds. `{}` as the whole rule matches everyone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Set
from typing import Any

from leadcapture.interest import EPSILON

Answers = Mapping[str, str | list[str]]
# A subscriber's score per topic key today; a topic left out scores 0.
Interests = Mapping[str, float]
OPERATORS = ("any_of", "all_of", "none_of", "answered")
# Names a rule gives meaning to at its top level, so no question may be keyed by one.
GROUPS = ("any_of", "all_of", "none_of")
RESERVED = (*GROUPS, "interest", "segment")
BOUNDS = ("at_least", "below")
MAX_SCORE = 1_000_000
MAX_DEPTH = 5


def validate_rule(
    rule: object, options: Mapping[str, Set[str]], topics: Set[str] = frozenset(), where: str = "audience"
) -> list[str]:
    """Problems with a rule, given each known question key with its option values and the known topic keys;
    [] when it is valid."""
    return _validate_rule(rule, options, topics, where, 0)


def _validate_rule(
    rule: object, options: Mapping[str, Set[str]], topics: Set[str], where: str, depth: int
) -> list[str]:
    if rule is None and depth == 0:
        return []
    if not isinstance(rule, Mapping):
        return [f"{where}: must be a mapping of question keys to conditions"]
    if depth > MAX_DEPTH:
        return [f"{where}: rules nest at most {MAX_DEPTH} deep"]
    problems: list[str] = []
    for key, condition in rule.items():
        here = f"{where}.{key}"
        if key in GROUPS:
            problems.extend(_validate_group(here, condition, options, topics, depth))
        elif key == "interest":
            problems.extend(_validate_interest(here, condition, topics))
        elif key not in options:
            problems.append(f"{here}: unknown question {key!r}")
        else:
            problems.extend(_validate_condition(here, condition, options[key]))
    return problems


def _validate_group(
    where: str, rules: object, options: Mapping[str, Set[str]], topics: Set[str], depth: int
) -> list[str]:
    if not isinstance(rules, list) or not rules:
        return [f"{where}: must be a list of one or more rules"]
    problems: list[str] = []
    for index, rule in enumerate(rules):
        problems.extend(_validate_rule(rule, options, topics, f"{where}[{index}]", depth + 1))
    return problems


def _validate_interest(where: str, condition: object, topics: Set[str]) -> list[str]:
    items = condition if isinstance(condition, list) else [condition]
    if not items:
        return [f"{where}: needs at least one condition"]
    problems: list[str] = []
    for index, item in enumerate(items):
        here = f"{where}[{index}]" if isinstance(condition, list) else where
        if not isinstance(item, Mapping):
            problems.append(f"{here}: must be {{topic: KEY, at_least: N}} or {{topic: KEY, below: N}}")
            continue
        unknown = [name for name in item if name not in ("topic", *BOUNDS)]
        if unknown:
            problems.append(f"{here}: unknown field {unknown[0]!r} (use topic, at_least or below)")
        topic = item.get("topic")
        if not isinstance(topic, str):
            problems.append(f"{here}.topic: name a topic by its key")
        elif topic not in topics:
            problems.append(f"{here}.topic: unknown topic {topic!r}")
        bounds = [name for name in BOUNDS if name in item]
        if len(bounds) != 1:
            problems.append(f"{here}: give exactly one of at_least and below")
            continue
        value = item[bounds[0]]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_SCORE:
            problems.append(f"{here}.{bounds[0]}: must be a number above 0 and at most {MAX_SCORE}")
    return problems


def _validate_condition(where: str, condition: object, allowed: Set[str]) -> list[str]:
    if isinstance(condition, Mapping):
        if not condition:
            return [f"{where}: an empty condition; use {{answered: true}} to require an answer"]
        problems = [
            f"{where}: unknown operator {name!r} (use {', '.join(OPERATORS)})"
            for name in condition
            if name not in OPERATORS
        ]
        for name, values in condition.items():
            if name == "answered":
                if not isinstance(values, bool):
                    problems.append(f"{where}.answered: must be true or false")
            elif name in OPERATORS:
                problems.extend(_validate_values(f"{where}.{name}", values, allowed))
        return problems
    return _validate_values(where, condition, allowed)


def _validate_values(where: str, values: object, allowed: Set[str]) -> list[str]:
    items = values if isinstance(values, list) else [values]
    if not items:
        return [f"{where}: needs at least one value"]
    problems = []
    for item in items:
        if not isinstance(item, str):
            problems.append(f"{where}: {item!r} is not an option value")
        elif item not in allowed:
            problems.append(f"{where}: unknown option {item!r} (options: {', '.join(sorted(allowed))})")
    return problems


def matches(rule: Mapping[str, Any], answers: Answers, interests: Interests | None = None) -> bool:
    """Whether current answers and interest scores satisfy a (validated) rule."""
    scores = interests or {}
    for key, condition in rule.items():
        if key == "any_of":
            if not any(matches(sub, answers, scores) for sub in condition):
                return False
        elif key == "all_of":
            if not all(matches(sub, answers, scores) for sub in condition):
                return False
        elif key == "none_of":
            if any(matches(sub, answers, scores) for sub in condition):
                return False
        elif key == "interest":
            if not all(_interest_holds(item, scores) for item in _listed(condition)):
                return False
        elif not _holds(condition, answers.get(key)):
            return False
    return True


def _interest_holds(condition: Mapping[str, Any], scores: Interests) -> bool:
    score = scores.get(condition["topic"], 0.0)
    if "at_least" in condition:
        return bool(score >= condition["at_least"] * (1 - EPSILON))
    return bool(score < condition["below"] * (1 - EPSILON))


def _holds(condition: Any, answer: str | list[str] | None) -> bool:
    chosen = set() if answer is None else {answer} if isinstance(answer, str) else set(answer)
    if not isinstance(condition, Mapping):
        condition = {"any_of": condition}
    for name, values in condition.items():
        wanted = set(values) if isinstance(values, list) else {values}
        if name == "answered" and bool(chosen) is not values:
            return False
        if name == "any_of" and not chosen & wanted:
            return False
        if name == "all_of" and not wanted <= chosen:
            return False
        if name == "none_of" and chosen & wanted:
            return False
    return True


def _listed(condition: Any) -> list[Any]:
    return condition if isinstance(condition, list) else [condition]


def _entries(rule: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every (key, condition) of a rule and of the rules nested in it."""
    for key, condition in rule.items():
        if key in GROUPS:
            for sub in condition:
                yield from _entries(sub)
        else:
            yield key, condition


def questions_in(rule: Mapping[str, Any]) -> set[str]:
    """The question keys a rule looks at."""
    return {key for key, _ in _entries(rule) if key != "interest"}


def interests_in(rule: Mapping[str, Any]) -> set[tuple[str, float]]:
    """The (topic key, score) thresholds a rule looks at: a score crossing one may change whether it holds."""
    return {
        (item["topic"], float(item.get("at_least", item.get("below"))))
        for key, condition in _entries(rule)
        if key == "interest"
        for item in _listed(condition)
    }
