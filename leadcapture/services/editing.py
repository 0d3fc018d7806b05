"""Content as the admin edits it: one definition at a time, checked exactly as `content check` checks files.

Files and database are one format. `question_document`, `report_document`, `widget_document` and
`sequence_document` turn a stored definition into the mapping its YAML file holds; `leadcapture content dump`
writes them as files, and the admin's forms start from them and send them back edited.

A save never has a validator of its own: the database's current definitions are written into a temporary
content directory, the edited one over its file, the directory is read with `read_content` (so a question
edit that breaks a widget or a sequence's audience is refused like a broken file would be), and the bundle is
loaded with `load_content`. Report files are not copied for that: the stored reports are passed to
`read_content` as already checked, and only the saved report's files are written.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString, SingleQuotedScalarString
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from leadcapture import clock
from leadcapture.definitions import ContentBundle, Problem, read_content
from leadcapture.definitions.fields import KEY_RE, SLUG_RE
from leadcapture.definitions.folder import MAX_YAML_BYTES
from leadcapture.definitions.reports import REPORT_EXTENSIONS
from leadcapture.definitions.sequences import SEQUENCE_FILE, STEP_FILE_RE
from leadcapture.definitions.widgets import WIDGET_TEXTS
from leadcapture.definitions.yaml_reader import MAX_NESTING
from leadcapture.errors import DomainError, NotFound
from leadcapture.extensions import db
from leadcapture.i18n import LOCALES
from leadcapture.models import Question, Report, Sequence, Widget, WidgetQuestion
from leadcapture.services.content import Change, ContentHasProblems, load_content

log = logging.getLogger(__name__)

SECTIONS = ("questions", "reports", "widgets", "sequences")
# The name a definition is written under when its key or slug cannot be a file name; no valid key or slug
# starts with '_', so it never stands in for another definition's file.
_UNNAMED = "_edited"
_LABEL = "content"  # the temporary directory's name, so problems read 'content/widgets/x.yaml: ...'


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


def save_question(document: dict[str, Any]) -> list[Change]:
    """Create or update the question `document` defines; flush, never commit."""
    key = _name_of(document, "key", KEY_RE)

    def write(root: Path) -> Path:
        return _write_edited(root / "questions" / f"{key}.yaml", document)

    return _save("question", key, write)


def save_report(
    document: dict[str, Any], uploads: Mapping[str | None, Upload] | None = None, remove: Iterable[str] = ()
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
    files = _edited_files(stored, uploads or {}, set(remove))

    def write(root: Path) -> Path:
        path = root / "reports" / f"{slug}.yaml"
        written = dict(document) if isinstance(document, dict) else document
        if isinstance(written, dict):
            written.pop("file", None)
            if files:
                written["file"] = _write_report_files(root, slug, files, set())
        return _write_edited(path, written)

    return _save("report", slug, write, keep_report=slug)


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


def save_widget(document: dict[str, Any]) -> list[Change]:
    """Create or update the widget `document` defines; flush, never commit."""
    slug = _name_of(document, "slug", SLUG_RE)

    def write(root: Path) -> Path:
        return _write_edited(root / "widgets" / f"{slug}.yaml", document)

    return _save("widget", slug, write)


def save_sequence(document: dict[str, Any], steps: list[StepText]) -> list[Change]:
    """Create or update (and switch on) the sequence `document` defines, with its step files."""
    slug = _name_of(document, "slug", SLUG_RE)
    extra: list[Problem] = []
    written: set[str] = set()

    def write(root: Path) -> Path:
        folder = root / "sequences" / slug
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        path = _write_edited(folder / SEQUENCE_FILE, document)
        for step in steps if isinstance(steps, list) else ():
            if not isinstance(step, StepText) or not all(
                isinstance(value, str) for value in (step.file, step.subject, step.body)
            ):
                extra.append(
                    Problem(_shown(root, path), "steps: a step must have a file name, subject and body")
                )
            elif not STEP_FILE_RE.fullmatch(step.file):
                message = f"steps: {step.file[:60]!r} is not a step file name such as 01-welcome.md"
                extra.append(Problem(_shown(root, path), message))
            elif step.file in written:
                extra.append(Problem(_shown(root, path), f"steps: {step.file!r} is given twice"))
            else:
                written.add(step.file)
                (folder / step.file).write_text(step_file_text(step.subject, step.body), encoding="utf-8")
        return path

    return _save("sequence", slug, write, extra=extra)


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
    db.session.flush()
    change = Change("deactivated", "sequence", slug)
    log.info("saved sequence %s: %s", slug, change)
    return [change]


def field_errors(problems: list[Problem]) -> tuple[dict[str, list[str]], list[str]]:
    """The problems of a save as messages per top-level field ('text', 'options', 'steps'...) and the rest.

    A problem in a step file belongs to 'steps', its message naming the file.
    """
    fields: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in problems:
        name = PurePosixPath(problem.path).name
        if name.endswith(".md"):
            fields.setdefault("steps", []).append(f"{name}: {problem.message}")
            continue
        found = _FIELD_RE.match(problem.message)
        if found is None or found["field"] not in _FIELDS:
            general.append(problem.message)
            continue
        rest = problem.message[found.end("field") :]
        # 'text.nl: must not be empty' is shown at the text as 'nl: must not be empty', 'key: is required' as
        # 'is required'; a list item's path is kept whole ('options[2].value: ...'), it says which item.
        if rest.startswith(": "):
            rest = rest[2:]
        elif rest.startswith("."):
            rest = rest[1:]
        else:
            rest = problem.message
        fields.setdefault(found["field"], []).append(rest)
    return fields, general


# A message about one field starts with its path: 'text.nl: ...', 'options[2].value: ...', 'key: ...'.
_FIELD_RE = re.compile(r"(?P<field>[a-z_]+)(?:[.\[][^\s:]*)?: ")
# The fields of the four formats; a message about any other name (an unknown field) no form field owns.
_FIELDS = frozenset(
    {
        *("key", "kind", "text", "options", "fresh_for_days"),
        *("slug", "title", "description", "file"),
        *("report", "locale", "allowed_origins", "prompt", "texts", "questions", "ask_first_name"),
        *("name", "audience", "on_change", "priority", "fresh_only", "steps"),
    }
)


# --- dumping ----------------------------------------------------------------------------------------------


def dump_content(directory: Path, *, force: bool = False) -> ContentBundle:
    """Write every question, report, widget and active sequence into `directory` as content files.

    The directory may be new or empty; one holding other files is refused unless `force`, and then only its
    four section folders are replaced. Returns the written definitions as read back (for the summary).
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
        _write_definitions(staging, report_files=True)
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
    write: Callable[[Path], Path],
    *,
    keep_report: str | None = None,
    extra: Iterable[Problem] = (),
) -> list[Change]:
    with tempfile.TemporaryDirectory(prefix="leadcapture-") as temporary:
        root = Path(temporary) / _LABEL
        known = _write_definitions(root, report_files=False)
        known.pop(keep_report or "", None)
        try:
            saved = write(root)
        except _Unwritable as exc:
            shown = _shown(root, exc.path) if exc.path is not None else _LABEL
            log.info("refused to save %s %s: %s", kind, key, exc.message)
            raise ContentHasProblems([Problem(shown, exc.message)]) from None
        bundle = read_content(root, known_reports=known)
        problems = _own_problems(root, saved, [*extra, *bundle.problems])
        if problems:
            log.info("refused to save %s %s: %d problem(s)", kind, key, len(problems))
            raise ContentHasProblems(problems)
        with db.session.begin_nested():  # a ContentConflict half-way leaves nothing behind
            changes = load_content(bundle, quiet=True)
    log.info("saved %s %s: %s", kind, key, "; ".join(map(str, changes)) or "nothing changed")
    return changes


def _write_definitions(root: Path, *, report_files: bool) -> dict[str, dict[str, str]]:
    """Write the stored definitions under `root`; reports only with `report_files`. Returns report titles."""
    for section in SECTIONS:
        (root / section).mkdir(parents=True, exist_ok=True)
    titles: dict[str, dict[str, str]] = {}
    used: set[str] = set()
    names = _Names()
    reports = select(Report).order_by(Report.slug)
    if report_files:
        reports = reports.options(selectinload(Report.files))
    for report in db.session.scalars(reports):
        titles[report.slug] = dict(report.title)
        if report_files:
            document = report_document(report)
            slug = names.safe(report.slug, SLUG_RE)
            stored = {file.locale: Upload(file.filename, file.data) for file in report.files}
            document["file"] = _write_report_files(root, slug, stored, used)
            _write_yaml(root / "reports" / f"{slug}.yaml", document)
    for question in db.session.scalars(
        select(Question).order_by(Question.key).options(selectinload(Question.options))
    ):
        key = names.safe(question.key, KEY_RE)
        _write_yaml(root / "questions" / f"{key}.yaml", question_document(question))
    for widget in db.session.scalars(
        select(Widget)
        .order_by(Widget.slug)
        .options(
            selectinload(Widget.report),
            selectinload(Widget.widget_questions).selectinload(WidgetQuestion.question),
        )
    ):
        _write_yaml(root / "widgets" / f"{names.safe(widget.slug, SLUG_RE)}.yaml", widget_document(widget))
    for sequence in db.session.scalars(
        select(Sequence)
        .where(Sequence.active.is_(True))
        .order_by(Sequence.slug)
        .options(selectinload(Sequence.steps))
    ):
        document, steps = sequence_document(sequence)
        folder = root / "sequences" / names.safe(sequence.slug, SLUG_RE)
        folder.mkdir()
        _write_yaml(folder / SEQUENCE_FILE, document)
        for step in steps:
            if STEP_FILE_RE.fullmatch(step.file):  # else sequence.yaml lists it and `check` says why
                (folder / step.file).write_text(step_file_text(step.subject, step.body), encoding="utf-8")
    return titles


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


def _write_report_files(
    root: Path, slug: str, files: Mapping[str | None, Upload], used: set[str]
) -> str | dict[str, str]:
    """Write one report's files under reports/files/; returns what its YAML's `file` holds."""
    return _file_value(
        {
            locale: _write_report_file(
                root, _free_name(slug, locale, safe_filename(upload.filename, slug), used), upload.data
            )
            for locale, upload in files.items()
        }
    )


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


def _write_report_file(root: Path, name: str, data: bytes) -> str:
    """Write a report's bytes under reports/files/; returns the path its YAML names."""
    path = root / "reports" / "files" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"files/{name}"


class _Unwritable(Exception):
    """The edited definition holds what no content file can: a value YAML has no plain form for, or more
    than a file may hold. Refused at the field, as `check` would never get to see it."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def _write_edited(path: Path, document: object) -> Path:
    """Write the definition being saved; one too large for any content file is refused by its largest field."""
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
        prefix = f"{largest}: " if isinstance(largest, str) and _FIELD_RE.match(f"{largest}: ") else ""
        raise _Unwritable(f"{prefix}is far too long ({limit})", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _write_yaml(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_yaml_text(document), encoding="utf-8")
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


def _for_yaml(value: object, where: str = "", depth: int = 0) -> object:
    """Plain data for the writer, multi-line texts as literal blocks; `_Unwritable` for anything else."""
    if depth > MAX_NESTING:
        raise _Unwritable(f"{where}: nested more than {MAX_NESTING} levels deep")
    if isinstance(value, str):
        value = _newlines(value)
        if "\n" in value.strip():
            return LiteralScalarString(value)
        # Content files are YAML 1.2, where these are strings; quoted, YAML 1.1 tools read them as such too.
        return SingleQuotedScalarString(value) if value.lower() in _YAML11_BOOLEANS else value
    if isinstance(value, dict):
        return {
            _key(name, where): _for_yaml(item, _inside(where, name), depth + 1)
            for name, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_for_yaml(item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value)]
    if value is None or isinstance(value, bool | int | float):
        return value
    kind = "binary data" if isinstance(value, bytes | bytearray) else f"a {type(value).__name__}"
    raise _Unwritable(
        f"{where}: must be a text, number, true/false, list or mapping, not {kind}".lstrip(": ")
    )


_YAML11_BOOLEANS = frozenset(("yes", "no", "y", "n", "on", "off"))


def _key(name: object, where: str) -> object:
    if isinstance(name, str):
        return _for_yaml(name, where)
    if name is None or isinstance(name, bool | int | float):
        return name
    raise _Unwritable(f"{where}: a name must be a text, not a {type(name).__name__}".lstrip(": "))


def _inside(where: str, name: object) -> str:
    return f"{where}.{name}" if where else str(name)


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


def _shown(root: Path, path: Path) -> str:
    return str(PurePosixPath(_LABEL, *path.relative_to(root).parts))


def _own_problems(root: Path, saved: Path, problems: list[Problem]) -> list[Problem]:
    """The problems as the saved definition's: another definition broken by the edit becomes a problem of the
    field that broke it where that is clear ('options' for an option a sequence uses), else of the whole."""
    shown = _shown(root, saved)
    folder = str(PurePosixPath(shown).parent) if saved.name == SEQUENCE_FILE else None
    own: list[Problem] = []
    for problem in problems:
        if problem.path == shown or (folder is not None and problem.path.startswith(folder + "/")):
            # The uploaded file's place in the temporary directory means nothing to the editor.
            own.append(Problem(problem.path, problem.message.replace(f"{_LABEL}/reports/files/", "")))
        elif folder is not None and problem.path == folder:
            if _UNNAMED not in folder:  # a folder named after an invalid slug: the slug's problem says it
                own.append(Problem(shown, problem.message))
        else:
            own.append(Problem(shown, _attributed(saved, problem)))
    return own


def _attributed(saved: Path, problem: Problem) -> str:
    """A problem in another file, worded for the editor of the saved definition."""
    parts = PurePosixPath(problem.path).parts
    section = parts[1] if len(parts) > 2 else ""
    name = PurePosixPath(problem.path).stem if section != "sequences" else parts[2]
    owner = {"questions": "question", "reports": "report", "widgets": "widget", "sequences": "sequence"}.get(
        section, "file"
    )
    described = f"{owner} {name!r} would break: {problem.message}"
    saving, saved_name = (saved.parent.name if saved.parent.name in SECTIONS else ""), saved.stem
    message = problem.message
    if saving == "questions" and owner == "widget" and f"question {saved_name!r} has no" in message:
        return f"options: {described}" if "label for option" in message else f"text: {described}"
    if saving == "questions" and owner == "sequence" and message.startswith(f"audience.{saved_name}"):
        return f"options: {described}"
    if saving == "reports" and owner == "widget" and message.startswith(f"report: report {saved_name!r}"):
        return f"title: {described}"
    return f"{owner} {name!r} has a problem: {message}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


__all__ = [
    "REPORT_EXTENSIONS",
    "ContentDirectoryNotEmpty",
    "StepText",
    "Upload",
    "deactivate_sequence",
    "delay_text",
    "dump_content",
    "field_errors",
    "question_document",
    "report_document",
    "safe_filename",
    "save_question",
    "save_report",
    "save_sequence",
    "save_widget",
    "sequence_document",
    "step_file_text",
    "widget_document",
]
