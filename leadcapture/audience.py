"""The audience rule language: which current answers a sequence is for.

A rule maps question keys to conditions, and every condition must hold (AND across questions):

    audience:
      is_investor: yes                          # the answer is yes
      daytrading_experience: [none, some]       # any of these values
      investment_interests: {all_of: [stocks, etfs]}   # a multi answer holding every one of these
      risk_appetite: {none_of: [high]}          # not one of these (an unanswered question passes)
      newsletter_topic: {answered: false}       # not answered (yet)

A condition is a value, a list of values (any of), or a mapping of one or more of `any_of`, `all_of`,
`none_of` (lists of values) and `answered` (true or false), which must all hold. For a multi question,
`any_of` holds when at least one chosen value is listed, `none_of` when none is. `{}` as the whole rule
matches everyone. Values are a question's option values.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

Answers = Mapping[str, str | list[str]]
OPERATORS = ("any_of", "all_of", "none_of", "answered")


def validate_rule(rule: object, options: Mapping[str, Set[str]]) -> list[str]:
    """Problems with a rule, given each known question key and its option values; [] when it is valid."""
    if rule is None:
        return []
    if not isinstance(rule, Mapping):
        return ["audience: must be a mapping of question keys to conditions"]
    problems: list[str] = []
    for key, condition in rule.items():
        where = f"audience.{key}"
        if key not in options:
            problems.append(f"{where}: unknown question {key!r}")
            continue
        problems.extend(_validate_condition(where, condition, options[key]))
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


def matches(rule: Mapping[str, Any], answers: Answers) -> bool:
    """Whether current answers satisfy a (validated) rule."""
    return all(_holds(condition, answers.get(key)) for key, condition in rule.items())


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


def questions_in(rule: Mapping[str, Any]) -> set[str]:
    """The question keys a rule looks at."""
    return set(rule)
