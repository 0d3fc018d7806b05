"""Content definitions: the questions, reports, widgets and sequences of a content folder, read and checked.

Nothing here touches the database. `read_content` never raises on bad files: every problem it finds becomes
a `Problem` naming the file and the field, so `leadcapture content check` can print them all at once and
`leadcapture content load` can refuse before writing anything.

Layout (read in file-name order):

    questions/<key>.yaml      reports/<slug>.yaml (+ the files they point to)      widgets/<slug>.yaml
    sequences/<slug>/sequence.yaml + the Markdown step files it lists, e.g. sequences/<slug>/01-welcome.md

One module per job: `bundle` (what reading gives), `problems`, `folder` (reading the files safely),
`yaml_reader` (the hardened YAML reader), `fields` (the fields every kind shares), one module per kind
(`questions`, `reports`, `widgets`, `sequences`) and `references` (definitions naming one another).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path

from leadcapture.definitions.bundle import ContentBundle, QuestionDef, ReportDef, WidgetDef
from leadcapture.definitions.folder import FolderReader
from leadcapture.definitions.problems import Problem
from leadcapture.definitions.questions import parse_question
from leadcapture.definitions.references import Section
from leadcapture.definitions.reports import parse_report
from leadcapture.definitions.sequences import read_sequence, sequence_folders
from leadcapture.definitions.widgets import widget_parser
from leadcapture.models.content import LocalizedText

__all__ = ["ContentBundle", "Problem", "read_content"]


def read_content(directory: Path, known_reports: Mapping[str, LocalizedText] | None = None) -> ContentBundle:
    """Read and validate every definition under `directory`. Never raises for bad content.

    `known_reports` maps the slugs of reports checked and stored elsewhere (the database, when the admin
    saves one definition) to their titles: widgets may use them as if their files were here, but they are
    not part of the bundle. A report file of the same slug in `directory` takes their place.
    """
    if not directory.is_dir():
        return ContentBundle(directory=directory, problems=[Problem(str(directory), "is not a directory")])
    bundle = ContentBundle(directory=directory, has_sequences=(directory / "sequences").is_dir())
    reader = FolderReader(root=directory.resolve(), label=directory.name or directory.resolve().name)
    questions = Section[QuestionDef]("key", bundle.questions)
    reports = Section[ReportDef]("slug", bundle.reports)
    widgets = Section[WidgetDef]("slug", bundle.widgets)
    for source, data in reader.documents("questions"):
        questions.add(source, data, parse_question, reader.problems)
    for source, data in reader.documents("reports"):
        reports.add(source, data, partial(parse_report, reader), reader.problems)
    parse_widget = widget_parser(questions, reports, known_reports or {})
    for source, data in reader.documents("widgets"):
        widgets.add(source, data, parse_widget, reader.problems)
    for folder in sequence_folders(reader):
        definition = read_sequence(reader, folder, questions)
        if definition is not None:
            bundle.sequences[definition.slug] = definition
    bundle.problems.extend(reader.problems)
    return bundle
