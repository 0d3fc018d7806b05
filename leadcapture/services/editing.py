"""Content as the admin edits it: one definition at a time, checked exactly as `content check` checks files.

Files and database are one format. `question_document`, `topic_document`, `report_document`,
`widget_document` and `sequence_document` turn a stored definition into the mapping its YAML file holds; `leadcapture content dump`
writes them as files, and the admin's forms start from them and send them back edited.

A save never has a validator of its own: the database's current definitions, as the mappings their files
would hold, and the edited one, as the file it would be written to, are checked together in memory by the
checks `content check` runs (so a question edit that breaks a widget or a sequence's audience is refused like
a broken file would be). Only the saved definition is then loaded. Report files are not part of that: the
stored reports are passed to the checks as already checked, and only the saved report's files are given.

Each definition carries a version, raised by every change. An editor saves against the version they opened;
if someone else saved in between, the save changes nothing and says which fields now differ (EditConflict).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, cast

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString, SingleQuotedScalarString
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import selectinload

from leadcapture import clock
from leadcapture.definitions import ContentBundle, MemoryFile, Problem, check_in_memory, read_content
from leadcapture.definitions.fields import KEY_RE, SLUG_RE
from leadcapture.definitions.folder import MAX_YAML_BYTES
from leadcapture.definitions.problems import field_path_text
from leadcapture.definitions.reports import REPORT_EXTENSIONS
from leadcapture.definitions.sequences import SEQUENCE_FILE, STEP_FILE_RE
from leadcapture.definitions.widgets import WIDGET_TEXTS
from leadcapture.definitions.yaml_reader import MAX_NESTING
from leadcapture.errors import DomainError, NotFound
from leadcapture.extensions import db
from leadcapture.i18n import LOCALES
from leadcapture.models import Question, Report, Sequence, Topic, Widget, WidgetQuestion
from leadcapture.services.content import Change, ContentHasProblems, load_content

log = logging.getLogger(__name__)

SECTIONS = ("questions", "topics", "reports", "widgets", "sequences")
# The name a definition is written under when its key or slug cannot be a file name; no valid key or slug
# starts with '_', so it never stands in for another definition's file.
_UNNAMED = "_edited"
_LABEL = "content"  # the directory's name in problems: 'content/widgets/x.yaml: ...'
# A content directory in memory: each file's path inside it, and its bytes or (stored definitions, checked
# when stored) what it holds.
_Files = dict[str, MemoryFile]


@dataclass(frozen=True, slots=True)
class Upload:
    """A report file: the name the browser gave (or the one stored) and the bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True, slots=True)
class StepText:
    """One step file of a sequence: its file name (as listed in the steps), subject and Markdown body."""

    file: str
    subject: str
    body: str


class AlreadyStored(DomainError):
    """A definition saved as new has the key or slug of a stored one."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(
            f"a {kind} with the {'key' if kind in ('question', 'topic') else 'slug'} {key!r} exists already"
        )
        self.kind, self.key = kind, key


class EditConflict(DomainError):
    """Someone else changed the definition since the editor opened it; `fields` now differ from the edit."""

    def __init__(self, kind: str, key: str, fields: list[str], current: int | None) -> None:
        super().__init__(f"{kind} {key!r} was changed by someone else since you opened it")
        self.kind, self.key, self.fields = kind, key, fields
        self.current = current  # the version stored now, for the editor's next save


class ContentDirectoryNotEmpty(DomainError):
    """`content dump` was pointed at a directory that holds other files."""


# --- documents: a stored definition as the mapping its file holds -----------------------------------------


def question_document(question: Question) -> dict[str, Any]:
    """The mapping of questions/<key>.yaml; retired options are left out (loading keeps them retired)."""
    return {
        "key": question.key,
        "kind": question.kind.value,
        "text": _localized(question.text),
        "options": [
            {"value": option.value, "label": _localized(option.label)} for option in question.active_options
        ],
        "fresh_for_days": question.fresh_for_days,
    }


def topic_document(topic: Topic) -> dict[str, Any]:
    """The mapping of topics/<key>.yaml (a retired topic's has no URL rules: `check` refuses it as it is)."""
    document: dict[str, Any] = {
        "key": topic.key,
        "name": _localized(topic.name),
        "urls": list(topic.urls),
        "half_life_days": topic.half_life_days,
    }
    if topic.question is not None:
        document["question"] = topic.question.key
    return document


def report_document(report: Report) -> dict[str, Any]:
    """The mapping of reports/<slug>.yaml; each file is files/<the name readers download it as>."""
    document: dict[str, Any] = {"slug": report.slug, "title": _localized(report.title)}
    if report.description:
        document["description"] = _localized(report.description)
    document["file"] = _file_value(
        {file.locale: f"files/{safe_filename(file.filename, report.slug)}" for file in report.files}
    )
    return document


def widget_document(widget: Widget) -> dict[str, Any]:
    """The mapping of widgets/<slug>.yaml."""
    texts = dict(widget.texts)
    prompt = texts.pop("prompt", {})
    ordered = {name: _localized(texts.pop(name)) for name in WIDGET_TEXTS if name in texts}
    ordered.update((name, _localized(text)) for name, text in texts.items())  # shown to `check` as unknown
    document: dict[str, Any] = {
        "slug": widget.slug,
        "report": widget.report.slug,
        "locale": widget.locale,
        "allowed_origins": list(widget.allowed_origins),
        "prompt": _localized(prompt),
    }
    if ordered:
        document["texts"] = ordered
    document["questions"] = [question.key for question in widget.questions]
    if widget.ask_first_name:
        document["ask_first_name"] = True
    return document


def sequence_document(sequence: Sequence) -> tuple[dict[str, Any], list[StepText]]:
    """The mapping of sequences/<slug>/sequence.yaml, and the step files it lists, in order."""
    document: dict[str, Any] = {"slug": sequence.slug, "name": sequence.name}
    if sequence.locale is not None:
        document["locale"] = sequence.locale
    document.update(
        audience=_plain(sequence.audience),
        on_change=sequence.on_change.value,
        priority=sequence.priority,
        fresh_only=sequence.fresh_only,
        steps=[{"file": step.key, "after": delay_text(step.delay_seconds)} for step in sequence.steps],
    )
    return document, [StepText(step.key, step.subject, step.body) for step in sequence.steps]


def delay_text(seconds: int) -> str:
    """A step's delay as written in sequence.yaml: '10 minutes', '1 day', '2 weeks'."""
    minutes = max(0, -(-seconds // 60))  # whole minutes, rounded up: a step never comes early
    for unit, size in (("week", 7 * 24 * 60), ("day", 24 * 60), ("hour", 60)):
        if minutes and minutes % size == 0:
            return _count(minutes // size, unit)
    return _count(minutes, "minute")


def safe_filename(name: str, slug: str) -> str:
    """A report's file name without folders or odd characters, keeping its extension: 'Gids 2026.PDF' →
    'Gids-2026.pdf'. Falls back to the slug when nothing of the name is left."""
    base = re.split(r"[/\\]", name)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    stem, dot, extension = base.rpartition(".")
    if not dot:
        stem, extension = base, ""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_")[:100]
    extension = re.sub(r"[^A-Za-z0-9]+", "", extension).lower()[:10]
    return f"{stem or slug}.{extension}" if extension else stem or slug


# --- saving -----------------------------------------------------------------------------------------------


def save_question(document: dict[str, Any], *, version: int | None = None) -> list[Change]:
    """Create or update the question `document` defines; flush, never commit.

    `version`: the version the editor opened, to refuse the save when someone else changed it since.
    """
    key = _name_of(document, "key", KEY_RE)

    def write(files: _Files) -> str:
        return _write_edited(files, f"questions/{key}.yaml", document)

    return _save("question", key, write, document, version=version)


def save_topic(
    document: dict[str, Any], *, new: bool = False, version: int | None = None
) -> list[Change]:
    """Create or update the topic `document` defines (bringing back a retired one); flush, never commit.

    With `new`, only create it: AlreadyStored when a topic has its key.
    """
    key = _name_of(document, "key", KEY_RE)

    def write(files: _Files) -> str:
        return _write_edited(files, f"topics/{key}.yaml", document)

    return _save("topic", key, write, document, new=new, version=version)


def save_report(
    document: dict[str, Any],
    uploads: Mapping[str | None, Upload] | None = None,
    remove: Iterable[str] = (),
    *,
    version: int | None = None,
) -> list[Change]:
    """Create or update the report `document` defines; flush, never commit.

    Its files are the stored ones, with `uploads` replacing the file of a locale (the key None: one file for
    every locale) and the files of the locales in `remove` dropped. A file for a locale uploaded over one
    file for every locale takes that locale only: the other locales keep the file they had.
    """
    slug = _name_of(document, "slug", SLUG_RE)
    stored = (
        db.session.scalar(select(Report).where(Report.slug == slug).options(selectinload(Report.files)))
        if slug != _UNNAMED
        else None
    )
    report_files = _edited_files(stored, uploads or {}, set(remove))

    def write(files: _Files) -> str:
        written = dict(document) if isinstance(document, dict) else document
        if isinstance(written, dict):
            written.pop("file", None)
            if report_files:
                written["file"] = _add_report_files(files, slug, report_files, set())
        return _write_edited(files, f"reports/{slug}.yaml", written)

    return _save("report", slug, write, document, keep_report=slug, version=version)


def _edited_files(
    stored: Report | None, uploads: Mapping[str | None, Upload], remove: set[str]
) -> dict[str | None, Upload]:
    """A report's files after an edit, by locale (None: one file for every locale), in the order listed."""
    files: dict[str | None, Upload] = {}
    if stored is not None:
        files = {file.locale: Upload(file.filename, file.data) for file in stored.files}
    if None in uploads:
        files = {None: uploads[None]}
    given = {locale: upload for locale, upload in uploads.items() if locale is not None}
    if given and None in files:
        every = files.pop(None)
        files = {locale: given.get(locale, every) for locale in LOCALES}
    files.update(given)
    for locale in remove:
        files.pop(locale, None)
    return files


def save_widget(document: dict[str, Any], *, version: int | None = None) -> list[Change]:
    """Create or update the widget `document` defines; flush, never commit."""
    slug = _name_of(document, "slug", SLUG_RE)

    def write(files: _Files) -> str:
        return _write_edited(files, f"widgets/{slug}.yaml", document)

    return _save("widget", slug, write, document, version=version)


def save_sequence(
    document: dict[str, Any], steps: list[StepText], *, new: bool = False, version: int | None = None
) -> list[Change]:
    """Create or update (and switch on) the sequence `document` defines, with its step files.

    With `new`, only create it: AlreadyStored when a sequence has its slug (even one stored a moment ago).
    """
    slug = _name_of(document, "slug", SLUG_RE)
    extra: list[Problem] = []
    written: set[str] = set()

    def write(files: _Files) -> str:
        folder = f"sequences/{slug}"
        for name in [name for name in files if name.startswith(folder + "/")]:
            del files[name]
        path = _write_edited(files, f"{folder}/{SEQUENCE_FILE}", document)
        for step in steps if isinstance(steps, list) else ():
            if not isinstance(step, StepText) or not all(
                isinstance(value, str) for value in (step.file, step.subject, step.body)
            ):
                message = "steps: a step must have a file name, subject and body"
                extra.append(Problem(_shown(path), message, field=("steps",), code="step-malformed"))
            elif not STEP_FILE_RE.fullmatch(step.file):
                message = f"steps: {step.file[:60]!r} is not a step file name such as 01-welcome.md"
                extra.append(Problem(_shown(path), message, field=("steps",), code="step-file-name"))
            elif step.file in written:
                message = f"steps: {step.file!r} is given twice"
                extra.append(Problem(_shown(path), message, field=("steps",), code="step-twice"))
            else:
                written.add(step.file)
                files[f"{folder}/{step.file}"] = step_file_text(step.subject, step.body).encode("utf-8")
        return path

    return _save("sequence", slug, write, document, steps, extra=extra, new=new, version=version)


def deactivate_sequence(slug: str) -> list[Change]:
    """Switch a sequence off: nobody new enters and its subscribers leave at their next step."""
    sequence = db.session.scalar(select(Sequence).where(Sequence.slug == slug))
    if sequence is None:
        raise NotFound(f"sequence {slug!r}")
    if not sequence.active:
        return []
    # What `content load` does for a sequence folder that is gone. Nothing refers to a sequence, so there is
    # nothing to check, and switching one off is never held up by a problem elsewhere.
    sequence.active = False
    sequence.updated_at = clock.now()
    sequence.version = Sequence.version + 1
    db.session.flush()
    change = Change("deactivated", "sequence", slug)
    log.info("saved sequence %s: %s", slug, change)
    return [change]


@dataclass(frozen=True, slots=True)
class Placed:
    """A problem of a save, placed where the edit form shows it."""

    field: str  # the top-level field ('text', 'options', 'steps'...); "" for the definition as a whole
    row: int | None  # the entry of a list field it is about, e.g. 2 for options[2]
    at_field: str  # as shown at the field: 'nl: must not be empty', 'options[2].value: is required'
    at_row: str  # as shown at the row of a list entry: 'value: is required'
    problem: Problem


def place_problems(problems: list[Problem]) -> list[Placed]:
    """Where the edit form shows each problem: found from its field path, never from its wording."""
    placed = []
    for problem in problems:
        name = PurePosixPath(problem.path).name
        if name.endswith(".md"):  # a step file's problem belongs to the steps, naming the file
            shown = f"{name}: {problem.message}"
            placed.append(Placed("steps", None, shown, shown, problem))
            continue
        top = problem.field[0] if problem.field else ""
        if not isinstance(top, str) or top not in _FIELDS:
            placed.append(Placed("", None, problem.message, problem.message, problem))
            continue
        entry = problem.field[1] if len(problem.field) > 1 else None
        row = entry if isinstance(entry, int) else None
        # Shown without what the place already says: 'text.nl: must not be empty' at the text as 'nl: must
        # not be empty', 'key: is required' as 'is required'; a list entry's problem keeps its whole path at
        # the field ('options[2].value: ...', it says which entry) and drops it at the entry's row.
        at_field = problem.message if row is not None else _without(problem.message, (top,))
        at_row = _without(problem.message, problem.field[:2]) if row is not None else at_field
        placed.append(Placed(top, row, at_field, at_row, problem))
    return placed


def _without(message: str, field: tuple[str | int, ...]) -> str:
    """A message without the field path it starts with, if it does."""
    where = field_path_text(field)
    if message.startswith(f"{where}: "):
        return message[len(where) + 2 :]
    if message.startswith(f"{where}."):
        return message[len(where) + 1 :]
    return message


def field_errors(problems: list[Problem]) -> tuple[dict[str, list[str]], list[str]]:
    """The problems of a save as messages per top-level field ('text', 'options', 'steps'...) and the rest."""
    fields: dict[str, list[str]] = {}
    general: list[str] = []
    for placed in place_problems(problems):
        if placed.field:
            fields.setdefault(placed.field, []).append(placed.at_field)
        else:
            general.append(placed.at_field)
    return fields, general


# The fields of the four formats; a problem of any other name (an unknown field) no form field owns.
_FIELDS = frozenset(
    {
        *("key", "kind", "text", "options", "fresh_for_days"),
        *("urls", "half_life_days", "question"),
        *("slug", "title", "description", "file"),
        *("report", "locale", "allowed_origins", "prompt", "texts", "questions", "ask_first_name"),
        *("name", "audience", "on_change", "priority", "fresh_only", "steps"),
    }
)


# --- dumping ----------------------------------------------------------------------------------------------


def dump_content(directory: Path, *, force: bool = False) -> ContentBundle:
    """Write every question, topic, report, widget and active sequence into `directory` as content files.

    The directory may be new or empty; one holding other files is refused unless `force`, and then only its
    section folders are replaced. Retired topics are left out, as switched-off sequences are. Returns the written definitions as read back (for the summary).
    """
    if directory.exists() and not directory.is_dir():
        raise ContentDirectoryNotEmpty(f"{directory} is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise ContentDirectoryNotEmpty(
            f"{directory} is not empty; use --force to replace its {', '.join(SECTIONS)} folders"
        )
    directory.mkdir(parents=True, exist_ok=True)
    # Written beside the old folders first and swapped in at the end, so a failed dump leaves them as they were.
    staging = Path(tempfile.mkdtemp(prefix=".dump-", dir=directory))
    try:
        files, _ = _stored_files(to_write=True)
        for section in SECTIONS:
            (staging / section).mkdir()
        for name, data in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(_yaml_text(data), encoding="utf-8")
        for section in SECTIONS:
            target = directory / section
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.exists():
                shutil.rmtree(target)
            (staging / section).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("content dumped to %s", directory)
    return read_content(directory)


def step_file_text(subject: str, body: str) -> str:
    """A step file: front matter with the subject, then the Markdown body."""
    return f"---\n{_yaml_text({'subject': subject})}---\n{_newlines(body).strip(chr(10))}\n"


# --- inside -----------------------------------------------------------------------------------------------


def _save(
    kind: str,
    key: str,
    write: Callable[[_Files], str],
    document: object,
    steps: object = None,
    *,
    keep_report: str | None = None,
    extra: Iterable[Problem] = (),
    new: bool = False,
    version: int | None = None,
) -> list[Change]:
    with db.session.begin_nested():  # a conflict or a ContentConflict half-way leaves nothing behind
        if version is not None:
            _claim(kind, key, version, document, steps)
        files, known = _stored_files(to_write=False)
        known.pop(keep_report or "", None)
        try:
            saved = write(files)
        except _Unwritable as exc:
            shown = _shown(exc.path) if exc.path is not None else _LABEL
            log.info("refused to save %s %s: %s", kind, key, exc.message)
            raise ContentHasProblems([Problem(shown, exc.message, field=exc.field, code=exc.code)]) from None
        bundle = check_in_memory(files, known_reports=known, label=_LABEL)
        problems = _own_problems(saved, [*extra, *bundle.problems], files)
        if problems:
            log.info("refused to save %s %s: %d problem(s)", kind, key, len(problems))
            raise ContentHasProblems(problems)
        changes = load_content(_only(bundle, kind, key), quiet=True)
        if new and Change("created", kind, key) not in changes:
            raise AlreadyStored(kind, key)
    log.info("saved %s %s: %s", kind, key, "; ".join(map(str, changes)) or "nothing changed")
    return changes


_SECTION_OF = {
    "question": "questions",
    "topic": "topics",
    "report": "reports",
    "widget": "widgets",
    "sequence": "sequences",
}
_MODELS: dict[str, tuple[type[Question | Topic | Report | Widget | Sequence], Any]] = {
    "question": (Question, Question.key),
    "topic": (Topic, Topic.key),
    "report": (Report, Report.slug),
    "widget": (Widget, Widget.slug),
    "sequence": (Sequence, Sequence.slug),
}


def _claim(kind: str, key: str, version: int, document: object, steps: object) -> None:
    """Hold the stored definition at the version the editor opened, or EditConflict when it has moved on.

    A write that changes nothing, so it takes the row's lock (SQLite: the database's) until the save commits:
    of two editors saving from the same version, the second waits for the first and then finds a newer one.
    """
    model, column = _MODELS[kind]
    claimed = db.session.execute(
        update(model)
        .where(column == key, model.version == version)
        .values(version=model.version)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], claimed).rowcount == 1:
        return
    log.info("refused to save %s %s: changed since version %d", kind, key, version)
    row = cast(
        "Question | Topic | Report | Widget | Sequence | None",
        db.session.scalar(select(model).where(column == key).execution_options(populate_existing=True)),
    )
    if row is None:
        raise EditConflict(kind, key, [], None)
    differing = _differing(row, document, steps)
    if not differing and row.version != version:
        # What is stored now is what the editor sends (a form sent twice): nothing of anyone's would be lost.
        _claim(kind, key, row.version, document, steps)
        return
    raise EditConflict(kind, key, differing, row.version)


def _differing(
    row: Question | Topic | Report | Widget | Sequence, document: object, steps: object
) -> list[str]:
    """The top-level fields in which the stored definition now differs from the edit."""
    if not isinstance(document, dict):
        return []
    stored_steps: list[StepText] = []
    if isinstance(row, Question):
        stored = question_document(row)
    elif isinstance(row, Topic):
        stored = topic_document(row)
    elif isinstance(row, Report):
        stored = report_document(row)
        stored.pop("file")  # the files are uploads, not part of the form's document
    elif isinstance(row, Widget):
        stored = widget_document(row)
    elif isinstance(row, Sequence):
        stored, stored_steps = sequence_document(row)
    else:  # pragma: no cover - every kind is one of the five
        return []
    fields = [
        name for name in {**stored, **document} if name in stored and stored.get(name) != document.get(name)
    ]
    if isinstance(row, Sequence) and "steps" not in fields and stored_steps != steps:
        fields.append("steps")
    return fields


def _only(bundle: ContentBundle, kind: str, key: str) -> ContentBundle:
    """The bundle of the saved definition alone: the others were only read to check it against."""
    only = ContentBundle(directory=bundle.directory)
    section: dict[str, Any] = getattr(only, _SECTION_OF[kind])
    section[key] = getattr(bundle, _SECTION_OF[kind])[key]
    return only


def _stored_files(*, to_write: bool) -> tuple[_Files, dict[str, dict[str, str]]]:
    """The stored definitions as a content directory in memory, and every report's title by slug.

    `to_write` (a dump): reports with their files, and steps as their files' text. Otherwise (a save's
    checks) reports are left to their titles and steps given as checked already.
    """
    files: _Files = {}
    titles: dict[str, dict[str, str]] = {}
    used: set[str] = set()
    names = _Names()
    reports = select(Report).order_by(Report.slug)
    if to_write:
        reports = reports.options(selectinload(Report.files))
    for report in db.session.scalars(reports):
        titles[report.slug] = dict(report.title)
        if to_write:
            document = report_document(report)
            slug = names.safe(report.slug, SLUG_RE)
            stored = {file.locale: Upload(file.filename, file.data) for file in report.files}
            document["file"] = _add_report_files(files, slug, stored, used)
            files[f"reports/{slug}.yaml"] = document
    for question in db.session.scalars(
        select(Question).order_by(Question.key).options(selectinload(Question.options))
    ):
        files[f"questions/{names.safe(question.key, KEY_RE)}.yaml"] = question_document(question)
    for topic in db.session.scalars(select(Topic).order_by(Topic.key).options(selectinload(Topic.question))):
        if topic.urls:  # else retired: no longer a topic
            files[f"topics/{names.safe(topic.key, KEY_RE)}.yaml"] = topic_document(topic)
    for widget in db.session.scalars(
        select(Widget)
        .order_by(Widget.slug)
        .options(
            selectinload(Widget.report),
            selectinload(Widget.widget_questions).selectinload(WidgetQuestion.question),
        )
    ):
        files[f"widgets/{names.safe(widget.slug, SLUG_RE)}.yaml"] = widget_document(widget)
    for sequence in db.session.scalars(
        select(Sequence)
        .where(Sequence.active.is_(True))
        .order_by(Sequence.slug)
        .options(selectinload(Sequence.steps))
    ):
        document, steps = sequence_document(sequence)
        folder = f"sequences/{names.safe(sequence.slug, SLUG_RE)}"
        files[f"{folder}/{SEQUENCE_FILE}"] = document
        for step in steps:
            if STEP_FILE_RE.fullmatch(step.file):  # else sequence.yaml lists it and `check` says why
                files[f"{folder}/{step.file}"] = (
                    step_file_text(step.subject, step.body).encode("utf-8")
                    if to_write
                    else (step.subject, step.body)
                )
    return files, titles


class _Names:
    """File names for stored keys and slugs. Those were checked when stored; one that could still not be a
    file name gets a placeholder (no valid name starts with '_'), and `check` reports the key itself."""

    def __init__(self) -> None:
        self.count = 0

    def safe(self, name: str, pattern: re.Pattern[str]) -> str:
        if pattern.fullmatch(name):
            return name
        self.count += 1
        return f"_stored-{self.count}"


def _add_report_files(
    files: _Files, slug: str, uploads: Mapping[str | None, Upload], used: set[str]
) -> str | dict[str, str]:
    """Add one report's files under reports/files/; returns what its YAML's `file` holds."""
    paths: dict[str | None, str] = {}
    for locale, upload in uploads.items():
        name = _free_name(slug, locale, safe_filename(upload.filename, slug), used)
        files[f"reports/files/{name}"] = upload.data
        paths[locale] = f"files/{name}"
    return _file_value(paths)


def _file_value(paths: Mapping[str | None, str]) -> str | dict[str, str]:
    """A report's `file:`: the one path for every locale, or a path per locale."""
    if None in paths:
        return paths[None]
    return {str(locale): path for locale, path in paths.items()}


def _free_name(slug: str, locale: str | None, name: str, used: set[str]) -> str:
    """`name`, or where another file has it already, the same name in the report's own folder, and then in
    its locale's folder inside that: no file overwrites another, and readers still download it as `name`."""
    candidates = (name, f"{slug}/{name}")
    chosen = next((path for path in candidates if path.lower() not in used), f"{slug}/{locale}/{name}")
    used.add(chosen.lower())
    return chosen


class _Unwritable(Exception):
    """The edited definition holds what no content file can: a value YAML has no plain form for, or more
    than a file may hold. Refused at the field, as `check` would never get to see it."""

    def __init__(self, message: str, path: str | None = None, field: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.field = field
        self.code = "unwritable"


def _write_edited(files: _Files, path: str, document: object) -> str:
    """Add the definition being saved as the file it would be; one too large for any content file is refused
    by its largest field."""
    try:
        text = _yaml_text(document)
    except _Unwritable as exc:
        exc.path = path
        raise
    if len(text.encode("utf-8")) > MAX_YAML_BYTES:
        sizes = (
            {name: len(_yaml_text({name: value})) for name, value in document.items()}
            if isinstance(document, dict)
            else {}
        )
        largest = max(sizes, key=lambda name: sizes[name], default=None)
        limit = f"a definition's file holds at most {MAX_YAML_BYTES // 1024} KiB"
        named = isinstance(largest, str) and re.fullmatch(r"[a-z_]+", largest) is not None
        prefix = f"{largest}: " if named else ""
        raise _Unwritable(f"{prefix}is far too long ({limit})", path, (str(largest),) if named else ())
    files[path] = text.encode("utf-8")
    return path


def _yaml_text(document: object) -> str:
    yaml = YAML(typ="rt", pure=True)
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # one text per line: diffs stay readable and nothing is folded mid-sentence
    yaml.default_flow_style = False
    stream = _Stream()
    yaml.dump(_for_yaml(document), stream)
    return stream.text


class _Stream:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str | bytes) -> None:
        self.parts.append(text.decode("utf-8") if isinstance(text, bytes) else text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _for_yaml(value: object, at: tuple[str | int, ...] = (), depth: int = 0) -> object:
    """Plain data for the writer, multi-line texts as literal blocks; `_Unwritable` for anything else."""
    where = field_path_text(at)
    if depth > MAX_NESTING:
        raise _Unwritable(f"{where}: nested more than {MAX_NESTING} levels deep", field=at)
    if isinstance(value, str):
        value = _newlines(value)
        if "\n" in value.strip():
            return LiteralScalarString(value)
        # Content files are YAML 1.2, where these are strings; quoted, YAML 1.1 tools read them as such too.
        return SingleQuotedScalarString(value) if value.lower() in _YAML11_BOOLEANS else value
    if isinstance(value, dict):
        return {_key(name, at): _for_yaml(item, (*at, str(name)), depth + 1) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_for_yaml(item, (*at, index), depth + 1) for index, item in enumerate(value)]
    if value is None or isinstance(value, bool | int | float):
        return value
    kind = "binary data" if isinstance(value, bytes | bytearray) else f"a {type(value).__name__}"
    raise _Unwritable(
        f"{where}: must be a text, number, true/false, list or mapping, not {kind}".lstrip(": "), field=at
    )


_YAML11_BOOLEANS = frozenset(("yes", "no", "y", "n", "on", "off"))


def _key(name: object, at: tuple[str | int, ...]) -> object:
    if isinstance(name, str):
        return _for_yaml(name, at)
    if name is None or isinstance(name, bool | int | float):
        return name
    where = field_path_text(at)
    raise _Unwritable(f"{where}: a name must be a text, not a {type(name).__name__}".lstrip(": "), field=at)


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n")


def _localized(text: Mapping[str, Any]) -> dict[str, Any]:
    """A text's locales in the usual order, the known ones first."""
    ordered = {locale: text[locale] for locale in LOCALES if locale in text}
    ordered.update((locale, value) for locale, value in text.items() if locale not in ordered)
    return ordered


def _plain(value: Any) -> Any:
    """A JSON value as plain dicts and lists (an audience rule as stored)."""
    if isinstance(value, Mapping):
        return {name: _plain(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _name_of(document: object, field: str, pattern: re.Pattern[str]) -> str:
    """The key or slug to name the file after, or a placeholder when it cannot be one (`check` says why)."""
    value = document.get(field) if isinstance(document, dict) else None
    return value if isinstance(value, str) and pattern.fullmatch(value) else _UNNAMED


def _shown(path: str) -> str:
    return f"{_LABEL}/{path}"


def _own_problems(saved_path: str, problems: list[Problem], files: _Files) -> list[Problem]:
    """The problems as the saved definition's: another definition broken by the edit becomes a problem of the
    field that broke it where that is clear ('options' for an option a sequence uses), else of the whole."""
    saved = PurePosixPath(saved_path)
    shown = _shown(saved_path)
    folder = str(PurePosixPath(shown).parent) if saved.name == SEQUENCE_FILE else None
    own: list[Problem] = []
    for problem in problems:
        if problem.path == shown or (folder is not None and problem.path.startswith(folder + "/")):
            # The uploaded file's place in the directory in memory means nothing to the editor.
            own.append(replace(problem, message=problem.message.replace(f"{_LABEL}/reports/files/", "")))
        elif folder is not None and problem.path == folder:
            if _UNNAMED not in folder:  # a folder named after an invalid slug: the slug's problem says it
                own.append(replace(problem, path=shown))
        else:
            own.append(_attributed(saved, problem, files))
    return own


def _attributed(saved: PurePosixPath, problem: Problem, files: _Files) -> Problem:
    """A problem in another file, as a problem of the saved definition's field that caused it, if one did."""
    parts = PurePosixPath(problem.path).parts
    section = parts[1] if len(parts) > 2 else ""
    name = PurePosixPath(problem.path).stem if section != "sequences" else parts[2]
    owner = {
        "questions": "question",
        "topics": "topic",
        "reports": "report",
        "widgets": "widget",
        "sequences": "sequence",
    }.get(section, "file")
    saving, saved_name = (saved.parent.name if saved.parent.name in SECTIONS else ""), saved.stem
    other = files.get(str(PurePosixPath(*parts[1:])))
    field = _cause(saving, saved_name, owner, problem, other if isinstance(other, dict) else {})
    if field is None:
        message = f"{owner} {name!r} has a problem: {problem.message}"
        return Problem(_shown(str(saved)), message, code=problem.code)
    message = f"{field}: {owner} {name!r} would break: {problem.message}"
    return Problem(_shown(str(saved)), message, field=(field,), code=problem.code)


def _cause(saving: str, saved_name: str, owner: str, problem: Problem, other: dict[str, Any]) -> str | None:
    """The field of the saved definition that broke another one, when the problem shows which."""
    where = problem.field
    if saving == "questions" and owner == "widget" and where[:1] == ("questions",) and len(where) == 2:
        asked = other.get("questions")
        index = where[1]
        if (
            isinstance(asked, list)
            and isinstance(index, int)
            and index < len(asked)
            and asked[index] == saved_name
        ):
            if problem.code == "option-label-missing":
                return "options"
            if problem.code == "question-text-missing":
                return "text"
    if saving == "questions" and owner == "sequence" and where[:2] == ("audience", saved_name):
        return "options"
    if (
        saving == "reports"
        and owner == "widget"
        and problem.code == "report-title-missing"
        and other.get("report") == saved_name
    ):
        return "title"
    return None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


__all__ = [
    "REPORT_EXTENSIONS",
    "AlreadyStored",
    "ContentDirectoryNotEmpty",
    "EditConflict",
    "Placed",
    "StepText",
    "Upload",
    "deactivate_sequence",
    "delay_text",
    "dump_content",
    "field_errors",
    "place_problems",
    "question_document",
    "report_document",
    "safe_filename",
    "save_question",
    "save_report",
    "save_sequence",
    "save_topic",
    "save_widget",
    "sequence_document",
    "step_file_text",
    "topic_document",
    "widget_document",
]
