"""Topic files: topics/<key>.yaml, a content group: its name, the URL rules of its pages and links, how fast
interest in it fades, and optionally the question it is about.

    key: daytrading
    name: {nl: Daytraden, en: Daytrading}
    urls:
      - https://beleggen.example/daytraden/          # that page and everything below it
      - https://*.beleggen.example/*/daytraden/      # * within one host label or path segment
    half_life_days: 30                               # optional, 30 when left out
    question: daytrading_experience                  # optional

What a URL rule means is `leadcapture.urlrules`'s to say; here each is checked with it.
"""

from __future__ import annotations

from typing import Any

from leadcapture import urlrules
from leadcapture.definitions import fields
from leadcapture.definitions.bundle import QuestionDef, TopicDef
from leadcapture.definitions.fields import KEY_RE, KEY_RULE, Checker, Invalid
from leadcapture.definitions.references import Section

MAX_NAME = 200
MIN_URLS, MAX_URLS = 1, 100
DEFAULT_HALF_LIFE_DAYS = 30
MAX_HALF_LIFE_DAYS = 3650
FIELDS = ("key", "name", "urls", "half_life_days", "question")


def parse_topic(questions: Section[QuestionDef], data: dict[str, Any], checker: Checker) -> TopicDef | None:
    fields.check_fields(data, checker, FIELDS)
    key = checker.check(lambda: fields.identifier(data, "key", KEY_RE, KEY_RULE))
    name = checker.check(lambda: fields.text(data, "name", MAX_NAME))
    urls = _urls(data, checker)
    half_life = checker.check(lambda: _half_life_days(data))
    question = checker.check(lambda: _question(data, questions))
    if key is None or name is None or urls is None or half_life is None or checker.errors:
        return None
    if "question" in data and question is None:
        return None  # the question's own file has problems, reported there
    return TopicDef(key=key, name=name, urls=urls, half_life_days=half_life, question=question, source="")


def _urls(data: dict[str, Any], checker: Checker) -> tuple[str, ...] | None:
    items = checker.check(lambda: fields.list_value(data, "urls"))
    if items is None:
        return None
    if not MIN_URLS <= len(items) <= MAX_URLS:
        example = urlrules.EXAMPLE
        checker.add("urls", f"a topic has {MIN_URLS} to {MAX_URLS} URL rules ({example}), not {len(items)}")
        return None
    rules: list[str] = []
    seen: dict[str, int] = {}  # a rule in its canonical spelling → where it was first listed
    for index, item in enumerate(items):
        where = f"urls[{index}]"
        if not isinstance(item, str):
            message = f"must be a URL rule ({urlrules.EXAMPLE}), not {fields.kind_of(item)}"
            checker.add(where, message, code="url-rule")
            continue
        problem = urlrules.check_rule(item)
        if problem is not None:
            shown = f"{fields.show(item)} " if item.strip() else ""
            checker.add(where, f"{shown}{problem}", code="url-rule")
            continue
        same = urlrules.canonical(item)
        if same in seen:
            checker.add(where, f"{fields.show(item)} is the same rule as urls[{seen[same]}]", code="url-rule")
            continue
        seen[same or item] = index
        rules.append(item)
    return tuple(rules) if len(rules) == len(items) else None


def _half_life_days(data: dict[str, Any]) -> int:
    value = data.get("half_life_days", DEFAULT_HALF_LIFE_DAYS)
    if type(value) is not int:  # bool is an int to Python, not to an editor
        raise Invalid("half_life_days", f"must be a whole number of days, not {fields.kind_of(value)}")
    if not 1 <= value <= MAX_HALF_LIFE_DAYS:
        raise Invalid("half_life_days", f"must be between 1 and {MAX_HALF_LIFE_DAYS}, not {value}")
    return value


def _question(data: dict[str, Any], questions: Section[QuestionDef]) -> str | None:
    if "question" not in data:
        return None
    key = fields.identifier(data, "question", KEY_RE, "a question's key")
    if key in questions.definitions:
        return key
    if questions.broken(key):
        return None  # that question's own problems are reported in its file
    raise Invalid("question", f"unknown question {key!r}", code="unknown-question")
