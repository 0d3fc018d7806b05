"""Read and validate a content directory: questions, reports, widgets and sequences.

Nothing here touches the database. `read_content` never raises on bad files: every problem it finds becomes
a `Problem` naming the file and the field, so `leadcapture content check` can print them all at once and
`leadcapture content load` can refuse before writing anything.

Layout (read in file-name order):

    questions/<key>.yaml      reports/<slug>.yaml (+ the files they point to)      widgets/<slug>.yaml
    sequences/<slug>/sequence.yaml + the Markdown step files it lists, e.g. sequences/<slug>/01-welcome.md

A step file is front matter (`subject:` only) between two `---` lines, then the Markdown body. Subject and
body are Jinja templates, checked here against the sandbox and context they are rendered with when sent
(`leadcapture.mail.steps`), so a mistake in one is found by `content check`, not by a reader's inbox.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import ipaddress
import mimetypes
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Generic, TypeVar
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, ComposerError
from ruamel.yaml.constructor import ConstructorError, SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scanner import Scanner, ScannerError

from leadcapture import audience as audience_rules
from leadcapture.errors import DomainError
from leadcapture.i18n import LOCALES, translate
from leadcapture.mail.steps import check_step_template
from leadcapture.models.content import LocalizedText, QuestionKind
from leadcapture.models.sequences import OnChange

MAX_YAML_BYTES = 256 * 1024
MAX_REPORT_BYTES = 20 * 1024 * 1024
MAX_TEXT = 500
MAX_DESCRIPTION = 2000
# Hostile YAML: aliases let a small file expand to billions of values (the "billion laughs"), and deep
# nesting exhausts the recursive composer. Content files need neither, so both are capped well above any
# honest use; the expanded size is counted while composing, before anything is built from it.
MAX_NESTING = 32
MAX_ALIASES = 100
MAX_VALUES = 10_000

KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
OPTION_VALUE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
HOST_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")

WIDGET_TEXTS = ("title", "start", "submit", "success", "consent_report", "consent_sequences")
MIN_OPTIONS, MAX_OPTIONS = 2, 20
MIN_WIDGET_QUESTIONS, MAX_WIDGET_QUESTIONS = 1, 3
MAX_ORIGINS = 50

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

# A MimeTypes of Python's built-in table only, so a report's content type does not depend on the host's
# /etc/mime.types; the three formats the built-in table lacks are added by hand.
_MIME = mimetypes.MimeTypes()
_MIME.add_type("application/epub+zip", ".epub")
_MIME.add_type("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx")
_MIME.add_type("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx")
REPORT_EXTENSIONS = ("pdf", "epub", "zip", "png", "jpg", "jpeg", "mp3", "mp4", "xlsx", "docx")
# Leading bytes a file of that type always starts with; a mismatch is almost always a wrong or broken file.
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "pdf": (b"%PDF-",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "zip": (b"PK\x03\x04", b"PK\x05\x06"),
    "epub": (b"PK\x03\x04",),
    "xlsx": (b"PK\x03\x04",),
    "docx": (b"PK\x03\x04",),
}


# --- what a bundle holds ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the content: the file (as shown to the editor) and what is wrong in it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True, slots=True)
class OptionDef:
    value: str
    label: LocalizedText


@dataclass(frozen=True, slots=True)
class QuestionDef:
    key: str
    kind: QuestionKind
    text: LocalizedText
    options: tuple[OptionDef, ...]
    fresh_for_days: int
    source: str  # the file it came from, as shown in problems


@dataclass(frozen=True, slots=True)
class ReportFileDef:
    locale: str | None  # None: the one file for readers in every locale
    file: Path  # absolute, resolved, inside the reports folder
    shown: str  # the path as shown in problems, e.g. 'content/reports/files/guide.pdf'
    filename: str  # the name readers download it as
    content_type: str
    size: int
    sha256: str
    held: bytes | None = field(default=None, repr=False)  # the bytes, for a file checked in memory

    def read_data(self) -> bytes:
        """The file's bytes; ContentChanged if they are no longer what was checked."""
        data = self.held if self.held is not None else self.file.read_bytes()
        if len(data) != self.size or hashlib.sha256(data).hexdigest() != self.sha256:
            raise ContentChanged(f"{self.shown} changed after it was checked")
        return data


@dataclass(frozen=True, slots=True)
class ReportDef:
    slug: str
    title: LocalizedText
    description: LocalizedText  # {} when the file gives none
    files: tuple[ReportFileDef, ...]  # one for every locale, or one per locale in the order listed
    source: str


@dataclass(frozen=True, slots=True)
class WidgetDef:
    slug: str
    report: str  # a report slug
    locale: str
    allowed_origins: tuple[str, ...]  # normalised: lowercase scheme://host[:port], no default port
    texts: dict[str, LocalizedText]  # "prompt" plus any overrides among WIDGET_TEXTS
    questions: tuple[str, ...]  # question keys, in the order asked
    source: str
    ask_first_name: bool = False  # the form also offers an optional first-name field


@dataclass(frozen=True, slots=True)
class StepDef:
    key: str  # the step file's name, e.g. '01-welcome.md': stable across edits and reordering
    delay_seconds: int  # after enrollment (the first step) or after the previous step
    subject: str  # a one-line Jinja template
    body: str  # a Markdown Jinja template, without the front matter
    source: str  # the step file, as shown in problems


@dataclass(frozen=True, slots=True)
class SequenceDef:
    slug: str
    name: str  # for editors only; readers never see it
    locale: str | None  # only subscribers with this locale enter; None: everyone
    audience: dict[str, Any]  # a rule in leadcapture.audience's language, checked against the questions
    on_change: OnChange
    priority: int
    fresh_only: bool  # only answers younger than their question's fresh_for_days count
    steps: tuple[StepDef, ...]
    source: str  # its sequence.yaml


@dataclass(frozen=True)
class ContentBundle:
    """Everything read from one content directory: the valid definitions and every problem found."""

    directory: Path
    questions: dict[str, QuestionDef] = field(default_factory=dict)
    reports: dict[str, ReportDef] = field(default_factory=dict)
    widgets: dict[str, WidgetDef] = field(default_factory=dict)
    sequences: dict[str, SequenceDef] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Whether the directory has a sequences/ folder at all: only then does a sequence missing from it mean
    # "switched off" to the loader, so loading a directory of questions alone leaves sequences alone.
    has_sequences: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """E.g. '3 questions, 1 report, 2 widgets, 4 sequences'."""
        return ", ".join(
            _count(len(items), noun)
            for items, noun in (
                (self.questions, "question"),
                (self.reports, "report"),
                (self.widgets, "widget"),
                (self.sequences, "sequence"),
            )
        )


class ContentChanged(DomainError):
    """A report file changed between checking and loading."""


def read_content(directory: Path, known_reports: Mapping[str, LocalizedText] | None = None) -> ContentBundle:
    """Read and validate every definition under `directory`. Never raises for bad content.

    `known_reports` maps the slugs of reports checked and stored elsewhere (the database, when the admin
    saves one definition) to their titles: widgets may use them as if their files were here, but they are
    not part of the bundle. A report file of the same slug in `directory` takes their place.
    """
    if not directory.is_dir():
        return ContentBundle(directory=directory, problems=[Problem(str(directory), "is not a directory")])
    reader = _Reader(root=directory.resolve(), label=directory.name or directory.resolve().name)
    return _check(directory, reader, known_reports)


# A file of a content directory held in memory: its bytes; or, for a definition checked when it was stored,
# the mapping its YAML holds, or a step's (subject, body): each needs no second reading.
MemoryFile = bytes | dict[str, Any] | tuple[str, str]


def check_in_memory(
    files: Mapping[str, MemoryFile],
    known_reports: Mapping[str, LocalizedText] | None = None,
    label: str = "content",
) -> ContentBundle:
    """`read_content` for a content directory held in memory: the same checks, no files read or written.

    `files` maps each path inside the directory ('questions/x.yaml', 'sequences/y/01-hi.md',
    'reports/files/guide.pdf') to its bytes, or for what was checked when it was stored, to the mapping a
    YAML file holds or a step's (subject, body): what those say is still checked against the rest.
    """
    directory = Path(label)
    reader = _MemoryReader(root=Path("/", label), label=label, files=dict(files))
    return _check(directory, reader, known_reports)


def _check(
    directory: Path, reader: _Reader, known_reports: Mapping[str, LocalizedText] | None
) -> ContentBundle:
    bundle = ContentBundle(directory=directory, has_sequences=reader.is_dir(reader.root / "sequences"))
    questions = _Section[QuestionDef]("key", bundle.questions)
    reports = _Section[ReportDef]("slug", bundle.reports)
    widgets = _Section[WidgetDef]("slug", bundle.widgets)
    for source, data in reader.documents("questions"):
        questions.add(source, data, _parse_question, reader.problems)
    for source, data in reader.documents("reports"):
        reports.add(source, data, reader.parse_report, reader.problems)
    parse_widget = _widget_parser(questions, reports, known_reports or {})
    for source, data in reader.documents("widgets"):
        widgets.add(source, data, parse_widget, reader.problems)
    for folder in reader.sequence_folders():
        definition = reader.read_sequence(folder, questions)
        if definition is not None:
            bundle.sequences[definition.slug] = definition
    bundle.problems.extend(reader.problems)
    return bundle


# --- reading files ---------------------------------------------------------------------------------------


_T = TypeVar("_T")
_D = TypeVar("_D", "QuestionDef", "ReportDef", "WidgetDef")


class _Invalid(Exception):
    """A field is wrong; `where` is its path inside the document, e.g. 'options[2].value'."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


class _Checker:
    """Collects the problems of one document, so one file can report several at once."""

    def __init__(self) -> None:
        self.errors: list[_Invalid] = []

    def check(self, parse: Callable[[], _T]) -> _T | None:
        try:
            return parse()
        except _Invalid as exc:
            self.errors.append(exc)
            return None

    def add(self, where: str, message: str) -> None:
        self.errors.append(_Invalid(where, message))


@dataclass
class _Reader:
    root: Path
    label: str
    problems: list[Problem] = field(default_factory=list)

    def shown(self, path: Path) -> str:
        """How a path inside the content directory appears in problems: 'content/widgets/x.yaml'."""
        return str(PurePosixPath(self.label, *path.relative_to(self.root).parts))

    # The file system, in the few operations the checks need; `_MemoryReader` answers them from memory.

    def entries(self, folder: Path) -> list[Path]:
        return sorted(folder.iterdir())

    def is_dir(self, path: Path) -> bool:
        return path.is_dir()

    def is_file(self, path: Path) -> bool:
        return path.is_file()

    def exists(self, path: Path) -> bool:
        return path.exists()

    def is_link(self, path: Path) -> bool:
        return path.is_symlink()

    def resolved(self, path: Path) -> Path:
        return path.resolve()

    def within(self, path: Path, folder: Path) -> bool:
        """Whether `path`, links followed, is inside `folder` (given resolved)."""
        return _inside(path.resolve(), folder)

    def open(self, path: Path) -> BinaryIO:
        return path.open("rb")

    def size(self, path: Path) -> int:
        return path.stat().st_size

    def parsed(self, path: Path) -> dict[str, Any] | None:
        """The mapping a YAML file holds, when it is known without reading it."""
        return None

    def held(self, path: Path) -> bytes | None:
        """A report file's bytes, when they are not read from disk at loading."""
        return None

    def checked_step(self, path: Path) -> tuple[str, str] | None:
        """A step's subject and body, when it was checked before (a step's checks depend on it alone)."""
        return None

    def documents(self, section: str) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """(shown path, top-level mapping) for every `*.yaml` file of a section, in name order.

        The mapping is None for a file that could not be read as one; its problem is recorded already.
        """
        folder = self.root / section
        if not self.is_dir(folder):
            return
        try:
            paths = self.entries(folder)
        except OSError as exc:
            self.problems.append(Problem(self.shown(folder), _unreadable(exc)))
            return
        for path in paths:
            if path.name.startswith(".") or path.suffix not in (".yaml", ".yml"):
                continue  # editor backups, README files, the reports' files/ folder...
            shown = self.shown(path)
            if path.suffix == ".yml":
                self.problems.append(Problem(shown, "rename to .yaml: only .yaml files are read"))
                continue
            yield shown, self.document(path, shown)

    def document(self, path: Path, shown: str) -> dict[str, Any] | None:
        """The top-level mapping of one YAML file, or None with its problem recorded."""
        try:
            parsed = self.parsed(path)
            if parsed is not None:
                return parsed
            return _mapping(_parse_document(self.read_text(path, MAX_YAML_BYTES)), "the top level")
        except _Invalid as exc:
            self.problems.append(Problem(shown, str(exc)))
        except (OSError, RuntimeError) as exc:  # unreadable, or a symbolic link loop
            self.problems.append(Problem(shown, _unreadable(exc)))
        return None

    def read_text(self, path: Path, limit: int) -> str:
        """A UTF-8 file inside the content directory, read no further than `limit` bytes."""
        if not self.within(path, self.root):
            raise _Invalid("", "is a link to outside the content directory")
        if not self.is_file(path):
            raise _Invalid("", "is not a regular file")
        with self.open(path) as stream:
            raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise _Invalid("", f"is larger than {limit // 1024} KiB")
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise _Invalid("", f"line {line}: not valid UTF-8 (byte {exc.start})") from None

    def parse_report(self, data: dict[str, Any], checker: _Checker) -> ReportDef | None:
        _check_fields(data, checker, ("slug", "title", "description", "file"))
        slug = checker.check(lambda: _slug(data, "slug"))
        title = checker.check(lambda: _text(data, "title", MAX_TEXT))
        description = checker.check(
            lambda: _text(data, "description", MAX_DESCRIPTION) if "description" in data else {}
        )
        files = self._report_files(data, checker)
        if slug is None or title is None or description is None or files is None or checker.errors:
            return None
        return ReportDef(slug=slug, title=title, description=description, files=files, source="")

    def _report_files(self, data: dict[str, Any], checker: _Checker) -> tuple[ReportFileDef, ...] | None:
        """`file:` as one path for every locale, or a mapping of locale to path; every problem recorded."""
        if "file" not in data:
            checker.add("file", "is required")
            return None
        given = data["file"]
        if isinstance(given, str):
            found = checker.check(lambda: self._report_file(given, "file", None))
            return None if found is None else (found,)
        if not isinstance(given, dict):
            checker.add("file", f"{_FILE_RULE}, not {_kind_of(given)}")
            return None
        if not given:
            checker.add("file", f"is empty: {_FILE_RULE}")
            return None
        files: list[ReportFileDef] = []
        for locale, path in given.items():
            if not isinstance(locale, str) or locale not in LOCALES:
                checker.add("file", f"unknown locale {_show(locale)} (expected {', '.join(LOCALES)})")
                continue
            if not isinstance(path, str):
                checker.add(f"file.{locale}", f"must be a path such as files/guide.pdf, not {_kind_of(path)}")
                continue
            found = checker.check(partial(self._report_file, path, f"file.{locale}", locale))
            if found is not None:
                files.append(found)
        return tuple(files) if len(files) == len(given) else None

    def _report_file(self, given: str, where: str, locale: str | None) -> ReportFileDef:
        if not given.strip() or "\0" in given or len(given) > 255:
            raise _Invalid(where, "must be a path relative to the reports folder, e.g. files/guide.pdf")
        relative = PurePosixPath(given)
        if relative.is_absolute() or "\\" in given:
            raise _Invalid(where, f"{given!r} must be a relative path such as files/guide.pdf")
        if ".." in relative.parts:
            raise _Invalid(where, f"{given!r} must not contain '..'")
        extension = relative.suffix.lower().lstrip(".")
        if extension not in REPORT_EXTENSIONS:
            allowed = ", ".join(REPORT_EXTENSIONS)
            raise _Invalid(where, f"{given!r} has an unsupported file type (allowed: {allowed})")
        content_type = _MIME.guess_type(relative.name)[0]
        if content_type is None:  # pragma: no cover - every allowed extension is in _MIME
            raise _Invalid(where, f"{given!r} has no known content type")
        path = self.root / "reports" / relative
        shown = self.shown(path)
        try:
            size, sha256, head = self._examine(path, shown, where)
        except (OSError, RuntimeError) as exc:  # unreadable, or a symbolic link loop
            raise _Invalid(where, f"{shown} {_unreadable(exc)}") from None
        magic = _MAGIC.get(extension)
        if magic is not None and not head.startswith(magic):
            raise _Invalid(where, f"{shown} is not a {extension.upper()} file (it does not start like one)")
        return ReportFileDef(
            locale=locale,
            file=self.resolved(path),
            shown=shown,
            filename=relative.name,
            content_type=content_type,
            size=size,
            sha256=sha256,
            held=self.held(path),
        )

    def _examine(self, path: Path, shown: str, where: str) -> tuple[int, str, bytes]:
        """Size, SHA-256 and first bytes of a report file that is inside the reports folder."""
        if not self.within(path, self.resolved(self.root / "reports")):
            raise _Invalid(where, f"{shown} is a link to outside the reports folder")
        if not self.exists(path):
            raise _Invalid(where, f"{shown} does not exist")
        if not self.is_file(path):
            raise _Invalid(where, f"{shown} is not a regular file")
        size = self.size(path)
        if size > MAX_REPORT_BYTES:
            limit = MAX_REPORT_BYTES // (1024 * 1024)
            raise _Invalid(where, f"{shown} is {size / (1024 * 1024):.1f} MiB; the limit is {limit} MiB")
        if size == 0:
            raise _Invalid(where, f"{shown} is empty")
        digest = hashlib.sha256()
        with self.open(path) as stream:
            head = stream.read(16)
            digest.update(head)
            for chunk in iter(lambda: stream.read(1024 * 1024), b""):
                digest.update(chunk)
        return size, digest.hexdigest(), head

    # --- sequences: a folder each -------------------------------------------------------------------------

    def sequence_folders(self) -> Iterator[Path]:
        """Every folder under sequences/, in name order; a definition lying outside one is a problem."""
        folder = self.root / "sequences"
        if not self.is_dir(folder):
            return
        try:
            paths = self.entries(folder)
        except OSError as exc:
            self.problems.append(Problem(self.shown(folder), _unreadable(exc)))
            return
        for path in paths:
            if path.name.startswith("."):
                continue
            shown = self.shown(path)
            try:
                if not self.within(path, self.root):
                    self.problems.append(Problem(shown, "is a link to outside the content directory"))
                    continue
                is_folder = self.is_dir(path)
            except (OSError, RuntimeError) as exc:  # unreadable, or a symbolic link loop
                self.problems.append(Problem(shown, _unreadable(exc)))
                continue
            if is_folder:
                yield path
            elif path.suffix in (".yaml", ".yml"):
                self.problems.append(
                    Problem(
                        shown, f"is not in a sequence folder: a sequence is sequences/<slug>/{SEQUENCE_FILE}"
                    )
                )
            # Anything else (a README, notes) is the editors' own; a misplaced step is missed where listed.

    def read_sequence(self, folder: Path, questions: _Section[QuestionDef]) -> SequenceDef | None:
        """The sequence in one folder with its step files; None if anything is wrong (problems recorded)."""
        path = folder / SEQUENCE_FILE
        source = self.shown(path)
        try:
            present = self.exists(path) or self.is_link(path)
            misnamed = not present and self.exists(folder / "sequence.yml")
        except OSError as exc:
            self.problems.append(Problem(source, _unreadable(exc)))
            return None
        if misnamed:
            shown = self.shown(folder / "sequence.yml")
            self.problems.append(Problem(shown, f"rename to {SEQUENCE_FILE}: only .yaml files are read"))
            return None
        if not present:
            self.problems.append(Problem(self.shown(folder), f"has no {SEQUENCE_FILE}"))
            return None
        data = self.document(path, source)
        if data is None:
            return None
        checker = _Checker()
        _check_fields(
            data,
            checker,
            ("slug", "name", "locale", "audience", "on_change", "priority", "fresh_only", "steps"),
        )
        folder_ok = SLUG_RE.fullmatch(folder.name) is not None
        if not folder_ok:
            self.problems.append(
                Problem(self.shown(folder), f"{folder.name!r} is not a valid folder name: use {_SLUG_RULE}")
            )
        slug = checker.check(lambda: _sequence_slug(data, folder.name if folder_ok else None))
        name = checker.check(lambda: _plain_text(data, "name", MAX_NAME, "a name only editors see"))
        locale = checker.check(lambda: _locale(data)) if "locale" in data else None
        rule = _audience(data, questions, checker)
        on_change = checker.check(lambda: _on_change(data))
        priority = checker.check(lambda: _priority(data))
        fresh_only = checker.check(lambda: _flag(data, "fresh_only"))
        listed = _step_list(data, checker)
        problems = [Problem(source, str(error)) for error in checker.errors]
        steps: list[StepDef] = []
        if listed is not None:
            for index, (key, delay) in enumerate(listed):
                step = self._read_step(folder, key, delay, f"steps[{index}].file", source, problems)
                if step is not None:
                    steps.append(step)
            problems.extend(self._unlisted_steps(folder, {key for key, _ in listed}))
        self.problems.extend(problems)
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

    def _read_step(
        self, folder: Path, key: str, delay: int, where: str, source: str, problems: list[Problem]
    ) -> StepDef | None:
        path = folder / key
        shown = self.shown(path)
        try:
            if not self.within(path, self.root):
                problems.append(
                    Problem(source, f"{where}: {shown} is a link to outside the content directory")
                )
                return None
            if not self.exists(path):
                problems.append(Problem(source, f"{where}: {shown} does not exist"))
                return None
            checked = self.checked_step(path)
            if checked is not None:
                return StepDef(key=key, delay_seconds=delay, subject=checked[0], body=checked[1], source=shown)
            text = self.read_text(path, MAX_STEP_BYTES)
        except _Invalid as exc:
            problems.append(Problem(shown, str(exc)))
            return None
        except (OSError, RuntimeError) as exc:  # unreadable, or a symbolic link loop
            problems.append(Problem(shown, _unreadable(exc)))
            return None
        try:
            subject, body, messages = _parse_step(text)
        except _Invalid as exc:
            problems.append(Problem(shown, str(exc)))
            return None
        problems.extend(Problem(shown, message) for message in messages)
        if messages or subject is None or body is None:
            return None
        return StepDef(key=key, delay_seconds=delay, subject=subject, body=body, source=shown)

    def _unlisted_steps(self, folder: Path, listed: set[str]) -> list[Problem]:
        """A Markdown file the steps do not name: most likely a step someone forgot to list."""
        try:
            paths = self.entries(folder)
        except OSError as exc:
            return [Problem(self.shown(folder), _unreadable(exc))]
        return [
            Problem(self.shown(path), f"is not listed in the steps of {SEQUENCE_FILE}")
            for path in paths
            if path.suffix.lower() == ".md" and not path.name.startswith(".") and path.name not in listed
        ]


@dataclass
class _MemoryReader(_Reader):
    """A content directory held in memory: relative POSIX path → bytes, or an already parsed mapping."""

    files: dict[str, MemoryFile] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)  # folder → the names in it

    def __post_init__(self) -> None:
        for name in self.files:
            path = PurePosixPath(name)
            while str(path.parent) != ".":
                self.children.setdefault(str(path.parent), set()).add(path.name)
                path = path.parent

    def _name(self, path: Path) -> str:
        return str(PurePosixPath(*path.relative_to(self.root).parts))

    def entries(self, folder: Path) -> list[Path]:
        return [folder / name for name in sorted(self.children.get(self._name(folder), ()))]

    def is_dir(self, path: Path) -> bool:
        return self._name(path) in self.children

    def is_file(self, path: Path) -> bool:
        return self._name(path) in self.files

    def exists(self, path: Path) -> bool:
        return self.is_file(path) or self.is_dir(path)

    def is_link(self, path: Path) -> bool:
        return False

    def resolved(self, path: Path) -> Path:
        return path

    def within(self, path: Path, folder: Path) -> bool:
        return _inside(path, folder)

    def open(self, path: Path) -> BinaryIO:
        data = self.files[self._name(path)]
        return io.BytesIO(data if isinstance(data, bytes) else b"")

    def size(self, path: Path) -> int:
        data = self.files[self._name(path)]
        return len(data) if isinstance(data, bytes) else 0

    def parsed(self, path: Path) -> dict[str, Any] | None:
        data = self.files.get(self._name(path))
        return data if isinstance(data, dict) else None

    def held(self, path: Path) -> bytes | None:
        data = self.files.get(self._name(path))
        return data if isinstance(data, bytes) else None

    def checked_step(self, path: Path) -> tuple[str, str] | None:
        data = self.files.get(self._name(path))
        return data if isinstance(data, tuple) else None


class _Section(Generic[_D]):
    """The definitions of one folder, keyed by their id field, plus the ids of the broken ones."""

    def __init__(self, id_field: str, definitions: dict[str, _D]) -> None:
        self.id_field = id_field
        self.definitions: dict[str, _D] = definitions
        self.claimed: dict[str, str] = {}  # id → the file that defines it, valid or not

    def broken(self, identifier: str) -> bool:
        """Whether a file defines this id but has problems (reported there, so not again elsewhere)."""
        return identifier in self.claimed and identifier not in self.definitions

    def add(
        self,
        source: str,
        data: dict[str, Any] | None,
        parse: Callable[[dict[str, Any], _Checker], _D | None],
        problems: list[Problem],
    ) -> None:
        if data is None:
            # Unreadable: by convention the file is named after what it defines, so references to that
            # name are not reported as unknown on top of the file's own problem.
            self.claimed.setdefault(PurePosixPath(source).stem, source)
            return
        checker = _Checker()
        definition = parse(data, checker)
        identifier = data.get(self.id_field)
        if isinstance(identifier, str):
            if (
                self.id_field == "key"
                and KEY_RE.fullmatch(identifier)
                and identifier != PurePosixPath(source).stem
            ):
                checker.add(
                    "key", f"{identifier!r} does not match the file name (expected {identifier}.yaml)"
                )
            if identifier in self.claimed:
                checker.add(self.id_field, f"{identifier!r} is already defined in {self.claimed[identifier]}")
            else:
                self.claimed[identifier] = source
        problems.extend(Problem(source, str(error)) for error in checker.errors)
        if definition is not None and not checker.errors:
            self.definitions[getattr(definition, self.id_field)] = replace(definition, source=source)


# --- the three kinds of definition -----------------------------------------------------------------------


def _parse_question(data: dict[str, Any], checker: _Checker) -> QuestionDef | None:
    _check_fields(data, checker, ("key", "kind", "text", "options", "fresh_for_days"))
    key = checker.check(lambda: _identifier(data, "key", KEY_RE, _KEY_RULE))
    kind = checker.check(lambda: _question_kind(data))
    text = checker.check(lambda: _text(data, "text", MAX_TEXT))
    fresh = checker.check(lambda: _fresh_for_days(data))
    options = _options(data, kind, checker) if kind is not None else None
    if key is None or kind is None or text is None or fresh is None or options is None or checker.errors:
        return None
    return QuestionDef(key=key, kind=kind, text=text, options=options, fresh_for_days=fresh, source="")


def _question_kind(data: dict[str, Any]) -> QuestionKind:
    value = _required(data, "kind")
    kinds = [kind.value for kind in QuestionKind]
    if not isinstance(value, str) or value not in kinds:
        raise _Invalid("kind", f"must be one of {', '.join(kinds)}, not {_show(value)}")
    return QuestionKind(value)


def _fresh_for_days(data: dict[str, Any]) -> int:
    value = data.get("fresh_for_days", 90)
    if type(value) is not int:  # bool is an int to Python, not to an editor
        raise _Invalid("fresh_for_days", f"must be a whole number of days, not {_kind_of(value)}")
    if not 1 <= value <= 3650:
        raise _Invalid("fresh_for_days", f"must be between 1 and 3650, not {value}")
    return value


def _options(data: dict[str, Any], kind: QuestionKind, checker: _Checker) -> tuple[OptionDef, ...] | None:
    if "options" not in data and kind is QuestionKind.YES_NO:
        return tuple(
            OptionDef(value, {locale: translate(locale, f"widget.{value}") for locale in LOCALES})
            for value in ("yes", "no")
        )
    items = checker.check(lambda: _list(data, "options"))
    if items is None:
        return None
    if kind is QuestionKind.YES_NO:
        if len(items) != 2:
            checker.add(
                "options", "a yes_no question has exactly the options yes and no (or leave options out)"
            )
            return None
    elif not MIN_OPTIONS <= len(items) <= MAX_OPTIONS:
        checker.add(
            "options",
            f"a {kind.value} question needs {MIN_OPTIONS} to {MAX_OPTIONS} options, not {len(items)}",
        )
        return None
    options: list[OptionDef] = []
    for index, item in enumerate(items):
        option = _option(item, f"options[{index}]", options, checker)
        if option is not None:
            options.append(option)
    if len(options) != len(items):
        return None
    if kind is QuestionKind.YES_NO and {option.value for option in options} != {"yes", "no"}:
        checker.add("options", "a yes_no question has exactly the options yes and no (or leave options out)")
        return None
    return tuple(options)


def _option(item: object, where: str, earlier: list[OptionDef], checker: _Checker) -> OptionDef | None:
    if not isinstance(item, dict):
        checker.add(where, f"must be a mapping such as {{value: some, label: Some}}, not {_kind_of(item)}")
        return None
    errors = len(checker.errors)
    _check_fields(item, checker, ("value", "label"), where)
    value = checker.check(lambda: _identifier(item, "value", OPTION_VALUE_RE, _VALUE_RULE, where))
    label = checker.check(lambda: _text(item, "label", MAX_TEXT, where))
    if value is not None and any(option.value == value for option in earlier):
        checker.add(f"{where}.value", f"{value!r} is used twice")
    if value is None or label is None or len(checker.errors) > errors:
        return None
    return OptionDef(value, label)


def _widget_parser(
    questions: _Section[QuestionDef], reports: _Section[ReportDef], known: Mapping[str, LocalizedText]
) -> Callable[[dict[str, Any], _Checker], WidgetDef | None]:
    def parse(data: dict[str, Any], checker: _Checker) -> WidgetDef | None:
        _check_fields(
            data,
            checker,
            ("slug", "report", "locale", "allowed_origins", "prompt", "texts", "questions", "ask_first_name"),
        )
        slug = checker.check(lambda: _slug(data, "slug"))
        report = checker.check(lambda: _report_reference(data, reports, known))
        locale = checker.check(lambda: _locale(data))
        origins = _origins(data, checker)
        prompt = checker.check(lambda: _text(data, "prompt", MAX_TEXT))
        texts = _widget_texts(data, checker)
        keys = _widget_questions(data, questions, checker)
        ask_first_name = checker.check(lambda: _flag(data, "ask_first_name"))
        if locale is not None:
            shown = {"prompt": prompt, **(texts or {})}
            for name, text in shown.items():
                if text is not None and locale not in text:
                    where = name if name == "prompt" else f"texts.{name}"
                    checker.add(where, f"has no {locale} text (the widget's locale)")
            title = _report_title(report, reports, known) if report is not None else None
            if title is not None and locale not in title:
                checker.add("report", f"report {report!r} has no {locale} title (the widget's locale)")
            for index, key in enumerate(keys or ()):
                missing = _missing_wording(questions.definitions[key], locale)
                if missing:
                    checker.add(f"questions[{index}]", f"question {key!r} has no {locale} {missing}")
        if (
            slug is None
            or report is None
            or locale is None
            or origins is None
            or prompt is None
            or texts is None
            or keys is None
            or ask_first_name is None
            or checker.errors
        ):
            return None
        return WidgetDef(
            slug=slug,
            report=report,
            locale=locale,
            allowed_origins=origins,
            texts={"prompt": prompt, **texts},
            questions=keys,
            source="",
            ask_first_name=ask_first_name,
        )

    return parse


def _sequence_slug(data: dict[str, Any], folder: str | None) -> str:
    slug = _slug(data, "slug")
    if folder is not None and slug != folder:
        raise _Invalid("slug", f"{slug!r} must equal the folder name {folder!r}")
    return slug


def _audience(
    data: dict[str, Any], questions: _Section[QuestionDef], checker: _Checker
) -> dict[str, Any] | None:
    rule = data.get("audience")
    if rule is None:  # left out, or `audience:` with nothing after it
        return {}
    if not isinstance(rule, dict):
        checker.add("audience", f"must be a mapping of question keys to conditions, not {_kind_of(rule)}")
        return None
    # A question whose own file has problems is reported there, not again as unknown here.
    broken = [key for key in rule if isinstance(key, str) and questions.broken(key)]
    checked = {key: condition for key, condition in rule.items() if key not in broken}
    options = {key: {option.value for option in q.options} for key, q in questions.definitions.items()}
    messages = audience_rules.validate_rule(checked, options)
    for message in messages:
        checker.errors.append(_Invalid("", message))
    return None if messages or broken else dict(rule)


def _on_change(data: dict[str, Any]) -> OnChange:
    value = _required(data, "on_change")
    choices = [choice.value for choice in OnChange]
    if not isinstance(value, str) or value not in choices:
        raise _Invalid("on_change", f"must be one of {', '.join(choices)}, not {_show(value)}")
    return OnChange(value)


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise _Invalid(name, f"must be true or false, not {_show(value)}")
    return value


def _priority(data: dict[str, Any]) -> int:
    value = data.get("priority", 0)
    if type(value) is not int:  # bool is an int to Python, not to an editor
        raise _Invalid("priority", f"must be a whole number, not {_kind_of(value)}")
    if not -MAX_PRIORITY <= value <= MAX_PRIORITY:
        raise _Invalid("priority", f"must be between {-MAX_PRIORITY} and {MAX_PRIORITY}, not {value}")
    return value


def _step_list(data: dict[str, Any], checker: _Checker) -> list[tuple[str, int]] | None:
    """(file name, delay in seconds) of every step, in order; None if any is wrong."""
    items = checker.check(lambda: _list(data, "steps"))
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
    item: object, where: str, earlier: list[tuple[str, int]], checker: _Checker
) -> tuple[str, int] | None:
    if not isinstance(item, dict):
        example = "{file: 01-welcome.md, after: 1 day}"
        checker.add(where, f"must be a mapping such as {example}, not {_kind_of(item)}")
        return None
    errors = len(checker.errors)
    _check_fields(item, checker, ("file", "after"), where)
    key = checker.check(lambda: _step_file_name(item, where))
    delay = checker.check(lambda: _delay(item, where))
    if key is not None and any(name == key for name, _ in earlier):
        checker.add(f"{where}.file", f"{key!r} is listed twice")
    if key is None or delay is None or len(checker.errors) > errors:
        return None
    return key, delay


def _step_file_name(item: dict[str, Any], where: str) -> str:
    value = _required(item, "file", where)
    path = f"{where}.file"
    if not isinstance(value, str):
        raise _Invalid(path, f"must be a file name such as 01-welcome.md, not {_kind_of(value)}")
    if not STEP_FILE_RE.fullmatch(value):
        raise _Invalid(
            path,
            f"{_show(value)} is not a step file name: use lowercase letters, digits, '.', '_' or '-', "
            "ending in .md, for a file in the sequence's folder (e.g. 01-welcome.md)",
        )
    return value


def _delay(item: dict[str, Any], where: str) -> int:
    """Seconds, from '10 minutes', '1 hour', '3 days', '2 weeks' (singular or plural)."""
    value = _required(item, "after", where)
    path = f"{where}.after"
    example = "e.g. 10 minutes, 1 day or 2 weeks"
    if not isinstance(value, str):
        raise _Invalid(path, f"must be a delay ({example}), not {_kind_of(value)}")
    match = _DELAY_RE.fullmatch(value.strip().lower())
    if match is None:
        raise _Invalid(
            path,
            f"{_show(value)} is not a delay: use a whole number of minutes, hours, days or weeks ({example})",
        )
    number, unit = match.groups()
    # The length check first: int() refuses texts of thousands of digits, and nobody means such a number.
    if len(number) > 10 or int(number) * _UNIT_SECONDS[unit] > MAX_DELAY_DAYS * 86400:
        raise _Invalid(path, f"{_show(value)} is longer than {MAX_DELAY_DAYS} days")
    return int(number) * _UNIT_SECONDS[unit]


_FRONT_MATTER = "front matter: a line ---, then subject: …, then a line ---, then the Markdown body"


def _parse_step(text: str) -> tuple[str | None, str | None, list[str]]:
    """Subject, body and the problems of a step file; `_Invalid` if its front matter cannot be read."""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[0].rstrip() != "---":
        raise _Invalid("", f"line 1: must start with {_FRONT_MATTER}")
    close = next((index for index in range(1, len(lines)) if lines[index].rstrip() == "---"), None)
    if close is None:
        raise _Invalid("", "line 1: the front matter has no closing --- line")
    # Parsed with its opening --- (a YAML document marker), so YAML's line numbers are the file's.
    front = _parse_document("\n".join(lines[:close]) + "\n")
    if front is None:
        raise _Invalid("", "line 2: the front matter is empty; it needs subject: …")
    if not isinstance(front, dict):
        raise _Invalid("", f"line 2: the front matter must be a mapping of fields, not {_kind_of(front)}")
    checker = _Checker()
    _check_fields(front, checker, ("subject",))
    subject = checker.check(
        lambda: _plain_text(front, "subject", MAX_SUBJECT, "one language: the sequence's locale")
    )
    # The line of each field as written, for messages: the safe loader keeps no positions.
    field_lines: dict[str, int] = {}
    for number, line in enumerate(lines[1:close], start=2):
        name, colon, _ = line.partition(":")
        if colon and name and name == name.strip():
            field_lines.setdefault(name.strip("'\""), number)
    subject_line = field_lines.get("subject", 2)
    messages = [
        f"line {field_lines[error.where]}: {error}" if error.where in field_lines else str(error)
        for error in checker.errors
    ]
    rest = lines[close + 1 :]
    blank = next((index for index, line in enumerate(rest) if line.strip()), len(rest))
    body_line = close + 2 + blank  # the file's line number of the body's first line
    body = "\n".join(rest[blank:]).rstrip()
    if not body:
        messages.append(f"line {close + 1}: there is no body after the front matter")
    messages.extend(_control_characters(body, body_line))
    if subject is None or messages:
        return None, None, messages
    for message in check_step_template(subject, body):
        messages.append(_template_problem(message, subject_line, body_line))
    return subject, body, messages


_LINE_RE = re.compile(r"line (\d+): ")


def _template_problem(message: str, subject_line: int, body_line: int) -> str:
    """A message of `check_step_template` with its line numbers made the step file's.

    It numbers the subject's and the body's lines from 1 ("subject: line 1: …", "line 3: …"); the editor
    wants the line in the file, below the front matter.
    """
    if message.startswith("subject: "):
        rest = message.removeprefix("subject: ")
        if (found := _LINE_RE.match(rest)) is not None:
            rest = rest[found.end() :]
        return f"line {subject_line}: subject: {rest}"
    if (found := _LINE_RE.match(message)) is not None:
        return f"line {body_line + int(found.group(1)) - 1}: {message[found.end() :]}"
    return message


def _control_characters(text: str, first_line: int) -> list[str]:
    for number, line in enumerate(text.split("\n"), start=first_line):
        for character in line:
            if character != "\t" and unicodedata.category(character) in ("Cc", "Cs"):
                return [f"line {number}: contains the control character U+{ord(character):04X}"]
    return []


def _plain_text(data: dict[str, Any], name: str, limit: int, hint: str) -> str:
    """One line of text in one language, e.g. a sequence's name or a step's subject."""
    value = _required(data, name)
    if not isinstance(value, str):
        raise _Invalid(name, f"must be a plain string ({hint}), not {_kind_of(value)}")
    if "\n" in value.strip():
        raise _Invalid(name, "must be one line")
    return _text_value(value, name, limit)


def _report_reference(
    data: dict[str, Any], reports: _Section[ReportDef], known: Mapping[str, LocalizedText]
) -> str | None:
    slug = _slug(data, "report")
    if slug in reports.definitions:
        return slug
    if reports.broken(slug):
        return None  # that report's own problems are reported in its file
    if slug in known:
        return slug
    raise _Invalid("report", f"unknown report {slug!r}")


def _report_title(
    slug: str, reports: _Section[ReportDef], known: Mapping[str, LocalizedText]
) -> LocalizedText | None:
    if slug in reports.definitions:
        return reports.definitions[slug].title
    if reports.broken(slug):
        return None  # a broken report file hides the known report of the same slug
    return known.get(slug)


def _missing_wording(question: QuestionDef, locale: str) -> str | None:
    """What of a question a reader in `locale` would see in another language, if anything."""
    if locale not in question.text:
        return "text"
    for option in question.options:
        if locale not in option.label:
            return f"label for option {option.value!r}"
    return None


def _locale(data: dict[str, Any]) -> str:
    value = _required(data, "locale")
    if not isinstance(value, str) or value not in LOCALES:
        raise _Invalid("locale", f"must be one of {', '.join(LOCALES)}, not {_show(value)}")
    return value


def _origins(data: dict[str, Any], checker: _Checker) -> tuple[str, ...] | None:
    items = checker.check(lambda: _list(data, "allowed_origins"))
    if items is None:
        return None
    if not items:
        checker.add("allowed_origins", "needs at least one origin, e.g. https://news.example")
        return None
    if len(items) > MAX_ORIGINS:
        checker.add("allowed_origins", f"at most {MAX_ORIGINS} origins")
        return None
    origins: list[str] = []
    for index, item in enumerate(items):
        where = f"allowed_origins[{index}]"
        try:
            origin = _origin(item, where)
        except _Invalid as exc:
            checker.errors.append(exc)
            continue
        if origin in origins:
            checker.add(where, f"{origin} is listed twice")
        else:
            origins.append(origin)
    return tuple(origins) if len(origins) == len(items) else None


def _origin(value: object, where: str) -> str:
    """A browser Origin: lowercase scheme://host[:port], without the scheme's default port."""
    example = "e.g. https://news.example or http://localhost:5001"
    if not isinstance(value, str):
        raise _Invalid(where, f"must be an origin ({example}), not {_kind_of(value)}")
    if len(value) > 255 or not value.isprintable() or any(c.isspace() for c in value):
        raise _Invalid(where, f"{_show(value)} is not an origin ({example})")
    if "*" in value:
        raise _Invalid(where, f"{_show(value)}: wildcards are not allowed; list each origin")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise _Invalid(where, f"{_show(value)} is not an origin ({example})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not value[len(scheme) :].startswith("://"):
        raise _Invalid(where, f"{_show(value)} is not an http or https origin ({example})")
    if "@" in parts.netloc:
        raise _Invalid(where, f"{_show(value)} must not contain a user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in value or "#" in value:
        raise _Invalid(where, f"{_show(value)} must be scheme://host[:port] only, without a path or query")
    host = _origin_host(parts.hostname or "")
    if host is None:
        raise _Invalid(where, f"{_show(value)} has an invalid host name")
    if port == 0:
        raise _Invalid(where, f"{_show(value)} has an invalid port")
    default_port = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")


def _origin_host(host: str) -> str | None:
    """The host as a browser puts it in Origin (IDNA, lowercase, IPv6 in brackets), or None if invalid."""
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            return None
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    return ascii_host if HOST_RE.fullmatch(ascii_host) else None


def _widget_texts(data: dict[str, Any], checker: _Checker) -> dict[str, LocalizedText] | None:
    if "texts" not in data:
        return {}
    value = data["texts"]
    if not isinstance(value, dict):
        checker.add(
            "texts",
            f"must be a mapping of text names ({', '.join(WIDGET_TEXTS)}) to texts, not {_kind_of(value)}",
        )
        return None
    texts: dict[str, LocalizedText] = {}
    for name in value:
        if name not in WIDGET_TEXTS:
            checker.add(
                f"texts.{name}" if isinstance(name, str) else "texts", _unknown(name, WIDGET_TEXTS, "text")
            )
            continue
        try:
            texts[name] = _text(value, name, MAX_TEXT, "texts")
        except _Invalid as exc:
            checker.errors.append(exc)
    return texts if len(texts) == len(value) else None


def _widget_questions(
    data: dict[str, Any], questions: _Section[QuestionDef], checker: _Checker
) -> tuple[str, ...] | None:
    items = checker.check(lambda: _list(data, "questions"))
    if items is None:
        return None
    if not MIN_WIDGET_QUESTIONS <= len(items) <= MAX_WIDGET_QUESTIONS:
        checker.add(
            "questions",
            f"a widget asks {MIN_WIDGET_QUESTIONS} to {MAX_WIDGET_QUESTIONS} questions, not {len(items)}",
        )
        return None
    keys: list[str] = []
    for index, item in enumerate(items):
        where = f"questions[{index}]"
        if not isinstance(item, str) or not KEY_RE.fullmatch(item):
            checker.add(where, f"must be a question key, not {_show(item)}")
        elif item in keys:
            checker.add(where, f"{item!r} is asked twice")
        elif item in questions.definitions:
            keys.append(item)
        elif not questions.broken(item):
            checker.add(where, f"unknown question {item!r}")
    return tuple(keys) if len(keys) == len(items) else None


# --- fields ----------------------------------------------------------------------------------------------

_KEY_RULE = "a lowercase letter, then up to 63 lowercase letters, digits or '_'"
_SLUG_RULE = "up to 64 lowercase letters, digits or '-', not starting with '-'"
_VALUE_RULE = "up to 64 lowercase letters, digits, '_' or '-', starting with a letter or digit"
_FILE_RULE = (
    "give a path relative to the reports folder (files/guide.pdf) or a mapping of locale to path "
    "({nl: files/gids.pdf, en: files/guide.pdf})"
)


def _check_fields(data: dict[Any, Any], checker: _Checker, known: tuple[str, ...], where: str = "") -> None:
    """Report every field the format does not have; a missing required field is reported by its parser."""
    for name in data:
        if name not in known:
            checker.add(
                _join(where, name) if isinstance(name, str) else where, _unknown(name, known, "field")
            )


def _unknown(name: object, known: tuple[str, ...], what: str) -> str:
    message = f"unknown {what} {_show(name)} (expected {', '.join(known)})"
    if isinstance(name, str):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if close:
            message = f"unknown {what} {_show(name)}; did you mean {close[0]!r}?"
    return message


def _required(data: dict[str, Any], name: str, where: str = "") -> object:
    if name not in data:
        raise _Invalid(_join(where, name), "is required")
    return data[name]


def _identifier(data: dict[str, Any], name: str, pattern: re.Pattern[str], rule: str, where: str = "") -> str:
    value = _required(data, name, where)
    if not isinstance(value, str):
        raise _Invalid(_join(where, name), f"must be a string ({rule}), not {_kind_of(value)}")
    if not pattern.fullmatch(value):
        raise _Invalid(_join(where, name), f"{_show(value)} is not valid: use {rule}")
    return value


def _slug(data: dict[str, Any], name: str) -> str:
    return _identifier(data, name, SLUG_RE, _SLUG_RULE)


def _list(data: dict[str, Any], name: str) -> list[Any]:
    value = _required(data, name)
    if not isinstance(value, list):
        raise _Invalid(name, f"must be a list, not {_kind_of(value)}")
    return value


def _text(data: dict[str, Any], name: str, limit: int, where: str = "") -> LocalizedText:
    """A text field: one string for every locale, or a mapping of locale to string."""
    path = _join(where, name)
    value = _required(data, name, where)
    if isinstance(value, str):
        return dict.fromkeys(LOCALES, _text_value(value, path, limit))
    if not isinstance(value, dict):
        raise _Invalid(
            path,
            f"must be a text or a mapping of locale to text ({', '.join(LOCALES)}), not {_kind_of(value)}",
        )
    if not value:
        raise _Invalid(path, "is empty")
    text: LocalizedText = {}
    for locale, item in value.items():
        if not isinstance(locale, str) or locale not in LOCALES:
            raise _Invalid(path, f"unknown locale {_show(locale)} (expected {', '.join(LOCALES)})")
        if not isinstance(item, str):
            raise _Invalid(f"{path}.{locale}", f"must be a text, not {_kind_of(item)}")
        text[locale] = _text_value(item, f"{path}.{locale}", limit)
    return text


def _text_value(value: str, where: str, limit: int) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise _Invalid(where, "must not be empty")
    if len(cleaned) > limit:
        raise _Invalid(where, f"is {len(cleaned)} characters long; the limit is {limit}")
    for character in cleaned:
        # NUL and lone surrogates cannot be stored (PostgreSQL refuses \u0000 in JSON); other control
        # characters are never intended in a text a reader sees.
        if character not in "\n\t" and unicodedata.category(character) in ("Cc", "Cs"):
            raise _Invalid(where, f"contains the control character U+{ord(character):04X}")
    return cleaned


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _show(value: object) -> str:
    """A value quoted for a message, kept short whatever an editor wrote."""
    if isinstance(value, str):
        return repr(value[:60] + "…" if len(value) > 60 else value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return "nothing"
    return _kind_of(value)


def _kind_of(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, bytes):
        return "binary data"
    return f"a {type(value).__name__}"  # dates, sets...


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _unreadable(exc: OSError | RuntimeError) -> str:
    if isinstance(exc, RuntimeError):  # what Path.resolve() raises for a symbolic link loop
        return "is a symbolic link loop"
    return f"cannot be read: {exc.strerror or exc}"


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


# --- YAML ------------------------------------------------------------------------------------------------


def _parse_document(text: str) -> Any:
    """`_parse_yaml`, with every way a text can fail as one `_Invalid` naming the line."""
    try:
        return _parse_yaml(text)
    except MarkedYAMLError as exc:
        raise _Invalid("", _yaml_error(exc)) from None
    except ReaderError as exc:  # a character YAML does not allow, e.g. a raw control character
        raise _Invalid("", _reader_error(text, exc)) from None
    except YAMLError as exc:
        raise _Invalid("", "not valid YAML: " + " ".join(str(exc).split())) from None


def _mapping(data: Any, what: str) -> dict[str, Any]:
    if data is None:
        raise _Invalid("", "is empty")
    if not isinstance(data, dict):
        raise _Invalid("", f"{what} must be a mapping of fields, not {_kind_of(data)}")
    return data


def _parse_yaml(text: str) -> Any:
    """The single document in `text`, read as YAML 1.2 by ruamel.yaml's pure-Python safe loader + guards.

    YAML 1.2, not PyYAML's 1.1: content files are written like the examples in the docs, and 1.1 cannot read
    some of them (a plain `?` ending a text in a flow mapping, `{nl: Ervaring?, en: Experience?}`); 1.2 also
    keeps `yes`, `no`, `on` and `off` strings, so only true and false are booleans.
    The pure-Python loader on purpose: the guards hook into its composer, and a C composer recursing on deep
    nesting could crash the process instead of raising. A new loader per document, as the guards count.
    """
    loader = YAML(typ="safe", pure=True)
    loader.Scanner = _Scanner
    loader.Composer = _Composer
    loader.Constructor = _Constructor
    return loader.load(text)


class _Scanner(Scanner):
    """Refuses a `%YAML 1.1` directive, which would switch to 1.1's rules (`yes` and `no` booleans...)."""

    def scan_yaml_directive_value(self, start_mark: Any) -> Any:
        version = super().scan_yaml_directive_value(start_mark)
        if version != (1, 2):
            major, minor = version
            message = f"content files are YAML 1.2, not {major}.{minor}: remove the %YAML line"
            raise ScannerError(None, None, message, start_mark)
        return version


class _Composer(Composer):
    """Refuses documents that nest too deep or expand too far through aliases, and redefined anchors."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._depth = 0
        self._aliases = 0
        self._sizes: dict[int, int] = {}  # id(node) → how many values it expands to, once composed

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.parser.peek_event()
        mark: Any = event.start_mark
        if isinstance(event, AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise ComposerError(None, None, f"more than {MAX_ALIASES} aliases", mark)
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._sizes:
                message = "an alias may not refer to a value that contains it"
                raise ComposerError(None, None, message, mark)
            return super().compose_node(parent, index)  # an unknown alias is reported there
        if event.anchor is not None and event.anchor in self.anchors:
            # YAML 1.2 lets a later anchor of the same name win; in a content file it is a mistake.
            first = self.anchors[event.anchor].start_mark.line + 1
            message = f"the anchor &{event.anchor} is already defined on line {first}"
            raise ComposerError(None, None, message, mark)
        if self._depth >= MAX_NESTING:
            raise ComposerError(None, None, f"nested more than {MAX_NESTING} levels deep", mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = 1
        if isinstance(node, SequenceNode):
            size += sum(self._sizes[id(child)] for child in node.value)
        elif isinstance(node, MappingNode):
            size += sum(self._sizes[id(key)] + self._sizes[id(value)] for key, value in node.value)
        if size > MAX_VALUES:
            message = f"expands to more than {MAX_VALUES} values"
            if self._aliases:
                message += " (too many aliases)"
            raise ComposerError(None, None, message, mark)
        self._sizes[id(node)] = size
        return node


_MERGE_TAG = "tag:yaml.org,2002:merge"
# The types a content file can use. !!binary, !!set, !!omap and !!pairs are never valid content, and
# ruamel.yaml's !!omap fails with an AssertionError on a repeated key, so they are unknown tags here.
_TAGS = ("null", "bool", "int", "float", "str", "timestamp", "seq", "map")


class _Constructor(SafeConstructor):
    """SafeConstructor for the plain types only, refusing duplicate keys; merge keys (`<<`) allowed."""

    yaml_constructors = {
        **{
            f"tag:yaml.org,2002:{tag}": SafeConstructor.yaml_constructors[f"tag:yaml.org,2002:{tag}"]
            for tag in _TAGS
        },
        None: SafeConstructor.construct_undefined,
    }

    def __init__(self, preserve_quotes: bool | None = None, loader: Any = None) -> None:
        super().__init__(preserve_quotes=preserve_quotes, loader=loader)
        self._checked: set[int] = set()  # id() of the mappings whose keys were checked

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except (ValueError, LookupError, ArithmeticError):
            # A scalar its tag cannot convert: a date such as 2024-13-45, `!!int x`, `!!bool maybe`...
            if not isinstance(node, ScalarNode):  # pragma: no cover - only scalars convert values
                raise
            kind = str(tag or node.tag).rpartition(":")[2]
            message = f"{_show(node.value)} is not a valid {kind}"
            raise ConstructorError(None, None, message, node.start_mark) from None

    def flatten_mapping(self, node: Any) -> Any:
        # Called on every mapping before it is built, and on each mapping merged into another, which it
        # rewrites (merged keys first, then the overriding ones): check the keys as written, once.
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._refuse_duplicate_keys(node)
        return super().flatten_mapping(node)

    def _refuse_duplicate_keys(self, node: MappingNode) -> None:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                # ruamel.yaml would make a list key a tuple, and fail on a mapping inside it
                what = "list" if isinstance(key_node, SequenceNode) else "mapping"
                message = f"a key must be a single value, not a {what}"
                raise ConstructorError(None, None, message, key_node.start_mark)
            if key_node.tag == _MERGE_TAG:
                continue  # merged keys may be overridden; a second `<<` is refused by flatten_mapping
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key {_show(key)}", key_node.start_mark)
            seen.add(key)


def _yaml_error(exc: MarkedYAMLError) -> str:
    """A one-line message with the line number, from ruamel.yaml's multi-line one."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "not valid YAML"
    if exc.problem and exc.context and exc.problem.startswith("but "):
        problem = f"{exc.context}, {exc.problem}"  # "expected a single document..., but found another"
    if mark is None:
        return f"not valid YAML: {problem}"
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _reader_error(text: str, exc: ReaderError) -> str:
    """A one-line message for a character YAML refuses anywhere in a file, such as a raw control character."""
    if not isinstance(exc.character, int) or not 0 <= exc.position <= len(text):  # pragma: no cover
        return "not valid YAML: " + " ".join(str(exc).split())
    line = text.count("\n", 0, exc.position) + 1
    return f"line {line}: contains the character U+{exc.character:04X}, which YAML does not allow"
