"""Content definitions: the questions, topics, reports, widgets and sequences of a content folder, read and
checked.

Nothing here touches the database. `read_content` never raises on bad files: every problem it finds becomes
a `Problem` naming the file and the field, so `leadcapture content check` can print them all at once and
`leadcapture content load` can refuse before writing anything.

Layout (read in file-name order):

    questions/<key>.yaml      topics/<key>.yaml      reports/<slug>.yaml (+ the files they point to)
    widgets/<slug>.yaml       sequences/<slug>/sequence.yaml + the Markdown step files it lists, e.g.
                              sequences/<slug>/01-welcome.md

Topics are read after the questions they may be about, and before the sequences whose audience rules may
name them (`interest: {topic: KEY, at_least: N}`).

One module per job: `bundle` (what reading gives), `problems`, `folder` (reading the files safely),
`yaml_reader` (the hardened YAML reader), `fields` (the fields every kind shares), one module per kind
(`questions`, `topics`, `reports`, `widgets`, `sequences`) and `references` (definitions naming one another).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path

from leadcapture.definitions.bundle import ContentBundle, QuestionDef, ReportDef, TopicDef, WidgetDef
from leadcapture.definitions.folder import FolderReader, MemoryFile, MemoryReader
from leadcapture.definitions.problems import Problem
from leadcapture.definitions.questions import parse_question
from leadcapture.definitions.references import Section
from leadcapture.definitions.reports import parse_report
from leadcapture.definitions.sequences import read_sequence, sequence_folders
from leadcapture.definitions.topics import parse_topic
from leadcapture.definitions.widgets import widget_parser
from leadcapture.models.content import LocalizedText

__all__ = ["ContentBundle", "MemoryFile", "Problem", "check_in_memory", "read_content"]


def read_content(directory: Path, known_reports: Mapping[str, LocalizedText] | None = None) -> ContentBundle:
    """Read and validate every definition under `directory`. Never raises for bad content.

    `known_reports` maps the slugs of reports checked and stored elsewhere (the database, when the admin
    saves one definition) to their titles: widgets may use them as if their files were here, but they are
    not part of the bundle. A report file of the same slug in `directory` takes their place.
    """
    if not directory.is_dir():
        return ContentBundle(directory=directory, problems=[Problem(str(directory), "is not a directory")])
    reader = FolderReader(root=directory.resolve(), label=directory.name or directory.resolve().name)
    return _check(directory, reader, known_reports)


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
    reader = MemoryReader(root=Path("/", label), label=label, files=dict(files))
    return _check(Path(label), reader, known_reports)


def _check(
    directory: Path, reader: FolderReader, known_reports: Mapping[str, LocalizedText] | None
) -> ContentBundle:
    bundle = ContentBundle(
        directory=directory,
        has_sequences=reader.is_dir(reader.root / "sequences"),
        has_topics=reader.is_dir(reader.root / "topics"),
    )
    questions = Section[QuestionDef]("key", bundle.questions)
    topics = Section[TopicDef]("key", bundle.topics)
    reports = Section[ReportDef]("slug", bundle.reports)
    widgets = Section[WidgetDef]("slug", bundle.widgets)
    for source, data in reader.documents("questions"):
        questions.add(source, data, parse_question, reader.problems)
    for source, data in reader.documents("topics"):
        topics.add(source, data, partial(parse_topic, questions), reader.problems)
    for source, data in reader.documents("reports"):
        reports.add(source, data, partial(parse_report, reader), reader.problems)
    parse_widget = widget_parser(questions, reports, known_reports or {})
    for source, data in reader.documents("widgets"):
        widgets.add(source, data, parse_widget, reader.problems)
    for folder in sequence_folders(reader):
        definition = read_sequence(reader, folder, questions, topics)
        if definition is not None:
            bundle.sequences[definition.slug] = definition
    bundle.problems.extend(reader.problems)
    return bundle
