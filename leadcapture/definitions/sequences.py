"""Sequence folders: sequences/<slug>/sequence.yaml and the Markdown step files it lists.

A step file is front matter (`subject:` only) between two `---` lines, then the Markdown body. Subject and
body are Jinja templates, checked here against the sandbox and context they are rendered with when sent
(`leadcapture.mail.steps`), so a mistake in one is found by `content check`, not by a reader's inbox.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from leadcapture import audience as audience_rules
from leadcapture.definitions import fields
from leadcapture.definitions.bundle import QuestionDef, SequenceDef, StepDef, TopicDef
from leadcapture.definitions.fields import SLUG_RE, SLUG_RULE, Checker, Invalid
from leadcapture.definitions.folder import FolderReader, unreadable
from leadcapture.definitions.problems import FieldPath, Problem, field_path, field_path_text
from leadcapture.definitions.references import Section
from leadcapture.definitions.yaml_reader import read_front_matter
from leadcapture.mail.steps import check_step_template, link_topics
from leadcapture.models.sequences import OnChange

SEQUENCE_FILE = "sequence.yaml"
MAX_STEP_BYTES = 256 * 1024
MAX_NAME = 200
MAX_SUBJECT = 200
MIN_STEPS, MAX_STEPS = 1, 50
MAX_PRIORITY = 1000
MAX_DELAY_DAYS = 3650
STEP_FILE_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,96}\.md")
_DELAY_RE = re.compile(r"([0-9]+) +(minute|hour|day|week)s?")  # [0-9], as \d also takes other scripts' digits
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}


def sequence_folders(reader: FolderReader) -> Iterator[Path]:
    """Every folder under sequences/, in name order; a definition lying outside one is a problem."""
    folder = reader.root / "sequences"
    if not reader.is_dir(folder):
        return
    try:
        paths = reader.entries(folder)
    except OSError as exc:
        reader.problems.append(Problem(reader.shown(folder), unreadable(exc)))
        return
    for path in paths:
        if path.name.startswith("."):
            continue
        shown = reader.shown(path)
        try:
            if not reader.within(path, reader.root):
                reader.problems.append(Problem(shown, "is a link to outside the content directory"))
                continue
            is_folder = reader.is_dir(path)
        except (OSError, RuntimeError) as exc:  # unreadable, or a symbolic link loop
            reader.problems.append(Problem(shown, unreadable(exc)))
            continue
        if is_folder:
            yield path
        elif path.suffix in (".yaml", ".yml"):
            reader.problems.append(
                Problem(shown, f"is not in a sequence folder: a sequence is sequences/<slug>/{SEQUENCE_FILE}")
            )


def read_sequence(
    reader: FolderReader, folder: Path, questions: Section[QuestionDef], topics: Section[TopicDef]
) -> SequenceDef | None:
    """The sequence in one folder with its step files; None if anything is wrong (problems recorded)."""
    path = folder / SEQUENCE_FILE
    source = reader.shown(path)
    try:
        present = reader.exists(path) or reader.is_link(path)
        misnamed = not present and reader.exists(folder / "sequence.yml")
    except OSError as exc:
        reader.problems.append(Problem(source, unreadable(exc)))
        return None
    if misnamed:
        shown = reader.shown(folder / "sequence.yml")
        reader.problems.append(Problem(shown, f"rename to {SEQUENCE_FILE}: only .yaml files are read"))
        return None
    if not present:
        reader.problems.append(Problem(reader.shown(folder), f"has no {SEQUENCE_FILE}"))
        return None
    data = reader.document(path, source)
    if data is None:
        return None
    checker = Checker()
    fields.check_fields(
        data,
        checker,
        ("slug", "name", "locale", "audience", "on_change", "priority", "fresh_only", "steps"),
    )
    folder_ok = SLUG_RE.fullmatch(folder.name) is not None
    if not folder_ok:
        reader.problems.append(
            Problem(reader.shown(folder), f"{folder.name!r} is not a valid folder name: use {SLUG_RULE}")
        )
    slug = checker.check(lambda: _sequence_slug(data, folder.name if folder_ok else None))
    name = checker.check(lambda: fields.plain_text(data, "name", MAX_NAME, "a name only editors see"))
    locale = checker.check(lambda: fields.locale(data)) if "locale" in data else None
    rule = _audience(data, questions, topics, checker)
    on_change = checker.check(lambda: fields.choice(data, "on_change", OnChange))
    priority = checker.check(lambda: _priority(data))
    fresh_only = checker.check(lambda: fields.flag(data, "fresh_only"))
    listed = _step_list(data, checker)
    problems = [error.problem(source) for error in checker.errors]
    steps: list[StepDef] = []
    if listed is not None:
        for index, (key, delay) in enumerate(listed):
            step = _read_step(reader, folder, key, delay, f"steps[{index}].file", source, problems)
            if step is not None:
                steps.append(step)
        problems.extend(_unlisted_steps(reader, folder, {key for key, _ in listed}))
        problems.extend(_unknown_link_topics(steps, topics))
    reader.problems.extend(problems)
    if (
        problems
        or slug is None
        or name is None
        or rule is None
        or on_change is None
        or priority is None
        or fresh_only is None
        or listed is None
        or len(steps) != len(listed)
    ):
        return None
    return SequenceDef(
        slug=slug,
        name=name,
        locale=locale,
        audience=rule,
        on_change=on_change,
        priority=priority,
        fresh_only=fresh_only,
        steps=tuple(steps),
        source=source,
    )


def _unknown_link_topics(steps: list[StepDef], topics: Section[TopicDef]) -> Iterator[Problem]:
    """A step's link naming a topic that is not defined (one whose own file has problems is reported there)."""
    known = set(topics.definitions)
    for step in steps:
        for key in link_topics(step.body):
            if key not in known and not topics.broken(key):
                listed = ", ".join(sorted(known)) or "none yet"
                message = f"a link's title names topic {key!r}, which is not defined (topics: {listed})"
                yield Problem(step.source, message, code="step-topic")


def _read_step(
    reader: FolderReader, folder: Path, key: str, delay: int, where: str, source: str, problems: list[Problem]
) -> StepDef | None:
    path = folder / key
    shown = reader.shown(path)
    try:
        if not reader.within(path, reader.root):
            message = f"{where}: {shown} is a link to outside the content directory"
            problems.append(Problem(source, message, field_path(where), code="step-outside"))
            return None
        if not reader.exists(path):
            message = f"{where}: {shown} does not exist"
            problems.append(Problem(source, message, field_path(where), code="step-missing"))
            return None
        checked = reader.checked_step(path)
        if checked is not None:
            return StepDef(key=key, delay_seconds=delay, subject=checked[0], body=checked[1], source=shown)
        text = reader.read_text(path, MAX_STEP_BYTES)
    except Invalid as exc:
        problems.append(exc.problem(shown))
        return None
    except (OSError, RuntimeError) as exc:  # unreadable, or a symbolic link loop
        problems.append(Problem(shown, unreadable(exc)))
        return None
    try:
        subject, body, messages = _parse_step(text)
    except Invalid as exc:
        problems.append(exc.problem(shown))
        return None
    problems.extend(message.problem(shown) for message in messages)
    if messages or subject is None or body is None:
        return None
    return StepDef(key=key, delay_seconds=delay, subject=subject, body=body, source=shown)


def _unlisted_steps(reader: FolderReader, folder: Path, listed: set[str]) -> list[Problem]:
    """A Markdown file the steps do not name: most likely a step someone forgot to list."""
    try:
        paths = reader.entries(folder)
    except OSError as exc:
        return [Problem(reader.shown(folder), unreadable(exc))]
    return [
        Problem(reader.shown(path), f"is not listed in the steps of {SEQUENCE_FILE}")
        for path in paths
        if path.suffix.lower() == ".md" and not path.name.startswith(".") and path.name not in listed
    ]


def _sequence_slug(data: dict[str, Any], folder: str | None) -> str:
    slug = fields.slug(data, "slug")
    if folder is not None and slug != folder:
        raise Invalid("slug", f"{slug!r} must equal the folder name {folder!r}")
    return slug


def _audience(
    data: dict[str, Any], questions: Section[QuestionDef], topics: Section[TopicDef], checker: Checker
) -> dict[str, Any] | None:
    rule = data.get("audience")
    if rule is None:  # left out, or `audience:` with nothing after it
        return {}
    if not isinstance(rule, dict):
        checker.add(
            "audience", f"must be a mapping of question keys to conditions, not {fields.kind_of(rule)}"
        )
        return None
    audience = _AudienceCheck(questions, topics)
    audience.rule(rule, ("audience",), 0)
    if not audience.problems and not audience.broken:
        # audience.py has the last word: whatever it still finds is a problem of the rule as a whole.
        for message in audience_rules.validate_rule(rule, audience.options, set(topics.definitions)):
            audience.problems.append(Invalid("", message, field=("audience",), code="audience"))
    checker.errors.extend(audience.problems)
    return None if audience.problems or audience.broken else dict(rule)


class _AudienceCheck:
    """An audience rule checked one entry at a time, so each problem names the entry it is about
    (`audience.any_of[1].interest`). An entry naming a question or topic whose own file has problems is not
    reported again (it is reported there), but the rule is not valid: `broken`."""

    def __init__(self, questions: Section[QuestionDef], topics: Section[TopicDef]) -> None:
        self.questions = questions
        self.topics = topics
        self.options = {key: {option.value for option in q.options} for key, q in questions.definitions.items()}
        self.problems: list[Invalid] = []
        self.broken = False

    def rule(self, rule: object, where: FieldPath, depth: int) -> None:
        if not isinstance(rule, dict):
            self._add(where, f"must be a mapping of question keys to conditions, not {fields.kind_of(rule)}")
            return
        if depth > audience_rules.MAX_DEPTH:
            self._add(where, f"rules nest at most {audience_rules.MAX_DEPTH} deep")
            return
        for key, condition in rule.items():
            here = (*where, key) if isinstance(key, str) else where
            if key in audience_rules.GROUPS:
                self._group(condition, here, depth)
            elif key == "interest":
                self._interest(condition, where)
            elif isinstance(key, str) and self.questions.broken(key):
                self.broken = True
            else:
                self._validated({key: condition}, where)

    def _group(self, rules: object, where: FieldPath, depth: int) -> None:
        if not isinstance(rules, list) or not rules:
            given = "an empty list" if rules == [] else fields.show(rules)
            self._add(where, f"must be a list of one or more rules, not {given}")
            return
        for index, rule in enumerate(rules):
            self.rule(rule, (*where, index), depth + 1)

    def _interest(self, condition: object, where: FieldPath) -> None:
        """The `interest` entry of the rule at `where`."""
        items = condition if isinstance(condition, list) else [condition]
        named = [item.get("topic") for item in items if isinstance(item, dict)]
        broken = {key for key in named if isinstance(key, str) and self.topics.broken(key)}
        self.broken |= bool(broken)
        # Topics with problems of their own count as known here, so they are not called unknown too.
        known = set(self.topics.definitions) | broken
        self._validated({"interest": condition}, where, known)

    def _validated(self, entry: dict[Any, Any], where: FieldPath, topics: set[str] | None = None) -> None:
        """One entry of the rule at `where` checked by audience.py's rules, its problems placed at the entry."""
        key = next(iter(entry))
        here = (*where, key) if isinstance(key, str) else where
        found = audience_rules.validate_rule(entry, self.options, topics or set(), field_path_text(where))
        self.problems.extend(Invalid("", message, field=here, code="audience") for message in found)

    def _add(self, where: FieldPath, message: str) -> None:
        self.problems.append(Invalid("", f"{field_path_text(where)}: {message}", field=where, code="audience"))


def _priority(data: dict[str, Any]) -> int:
    value = data.get("priority", 0)
    if type(value) is not int:  # bool is an int to Python, not to an editor
        raise Invalid("priority", f"must be a whole number, not {fields.kind_of(value)}")
    if not -MAX_PRIORITY <= value <= MAX_PRIORITY:
        raise Invalid("priority", f"must be between {-MAX_PRIORITY} and {MAX_PRIORITY}, not {value}")
    return value


def _step_list(data: dict[str, Any], checker: Checker) -> list[tuple[str, int]] | None:
    """(file name, delay in seconds) of every step, in order; None if any is wrong."""
    items = checker.check(lambda: fields.list_value(data, "steps"))
    if items is None:
        return None
    if not MIN_STEPS <= len(items) <= MAX_STEPS:
        checker.add("steps", f"a sequence has {MIN_STEPS} to {MAX_STEPS} steps, not {len(items)}")
        return None
    listed: list[tuple[str, int]] = []
    for index, item in enumerate(items):
        step = _step_entry(item, f"steps[{index}]", listed, checker)
        if step is not None:
            listed.append(step)
    return listed if len(listed) == len(items) else None


def _step_entry(
    item: object, where: str, earlier: list[tuple[str, int]], checker: Checker
) -> tuple[str, int] | None:
    if not isinstance(item, dict):
        example = "{file: 01-welcome.md, after: 1 day}"
        checker.add(where, f"must be a mapping such as {example}, not {fields.kind_of(item)}")
        return None
    errors = len(checker.errors)
    fields.check_fields(item, checker, ("file", "after"), where)
    key = checker.check(lambda: _step_file_name(item, where))
    delay = checker.check(lambda: _delay(item, where))
    if key is not None and any(name == key for name, _ in earlier):
        checker.add(f"{where}.file", f"{key!r} is listed twice")
    if key is None or delay is None or len(checker.errors) > errors:
        return None
    return key, delay


def _step_file_name(item: dict[str, Any], where: str) -> str:
    value = fields.required(item, "file", where)
    path = f"{where}.file"
    if not isinstance(value, str):
        raise Invalid(path, f"must be a file name such as 01-welcome.md, not {fields.kind_of(value)}")
    if not STEP_FILE_RE.fullmatch(value):
        raise Invalid(
            path,
            f"{fields.show(value)} is not a step file name: use lowercase letters, digits, '.', '_' or '-', "
            "ending in .md, for a file in the sequence's folder (e.g. 01-welcome.md)",
        )
    return value


def _delay(item: dict[str, Any], where: str) -> int:
    """Seconds, from '10 minutes', '1 hour', '3 days', '2 weeks' (singular or plural)."""
    value = fields.required(item, "after", where)
    path = f"{where}.after"
    example = "e.g. 10 minutes, 1 day or 2 weeks"
    if not isinstance(value, str):
        raise Invalid(path, f"must be a delay ({example}), not {fields.kind_of(value)}")
    match = _DELAY_RE.fullmatch(value.strip().lower())
    if match is None:
        raise Invalid(
            path,
            f"{fields.show(value)} is not a delay: use a whole number of minutes, hours, days or weeks ({example})",
        )
    number, unit = match.groups()
    # The length check first: int() refuses texts of thousands of digits, and nobody means such a number.
    if len(number) > 10 or int(number) * _UNIT_SECONDS[unit] > MAX_DELAY_DAYS * 86400:
        raise Invalid(path, f"{fields.show(value)} is longer than {MAX_DELAY_DAYS} days")
    return int(number) * _UNIT_SECONDS[unit]


def _parse_step(text: str) -> tuple[str | None, str | None, list[Invalid]]:
    """Subject, body and the problems of a step file; `Invalid` if its front matter cannot be read."""
    front = read_front_matter(text, needs="subject: …")
    checker = Checker()
    fields.check_fields(front.fields, checker, ("subject",))
    subject = checker.check(
        lambda: fields.plain_text(front.fields, "subject", MAX_SUBJECT, "one language: the sequence's locale")
    )
    subject_line = front.field_lines.get("subject", 2)
    messages = [
        Invalid(
            "",
            f"line {front.field_lines[error.where]}: {error}",
            line=front.field_lines[error.where],
            field=error.field,
            code=error.code,
        )
        if error.where in front.field_lines
        else error
        for error in checker.errors
    ]
    if not front.body:
        message = f"line {front.closing_line}: there is no body after the front matter"
        messages.append(Invalid("", message, line=front.closing_line, code="no-body"))
    messages.extend(_control_characters(front.body, front.body_line))
    if subject is None or messages:
        return None, None, messages
    for message in check_step_template(subject, front.body):
        messages.append(_template_problem(message, subject_line, front.body_line))
    return subject, front.body, messages


_LINE_RE = re.compile(r"line (\d+): ")


def _template_problem(message: str, subject_line: int, body_line: int) -> Invalid:
    """A message of `check_step_template` with its line numbers made the step file's.

    It numbers the subject's and the body's lines from 1 ("subject: line 1: …", "line 3: …"); the editor
    wants the line in the file, below the front matter.
    """
    if message.startswith("subject: "):
        rest = message.removeprefix("subject: ")
        if (found := _LINE_RE.match(rest)) is not None:
            rest = rest[found.end() :]
        text = f"line {subject_line}: subject: {rest}"
        return Invalid("", text, line=subject_line, field=("subject",), code="template")
    if (found := _LINE_RE.match(message)) is not None:
        line = body_line + int(found.group(1)) - 1
        return Invalid("", f"line {line}: {message[found.end() :]}", line=line, code="template")
    return Invalid("", message, code="template")


def _control_characters(text: str, first_line: int) -> list[Invalid]:
    for number, line in enumerate(text.split("\n"), start=first_line):
        for character in line:
            if character != "\t" and unicodedata.category(character) in ("Cc", "Cs"):
                message = f"line {number}: contains the control character U+{ord(character):04X}"
                return [Invalid("", message, line=number, code="control-character")]
    return []
