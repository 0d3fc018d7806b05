"""`leadcapture content dump`: the database written back as content files that check and load unchanged."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from flask.testing import FlaskCliRunner
from sqlalchemy import select

from leadcapture.config import BUNDLED_CONTENT_DIR
from leadcapture.definitions import read_content
from leadcapture.extensions import db
from leadcapture.models import Question, Report, Sequence
from leadcapture.services.content import load_content
from leadcapture.services.editing import dump_content
from tests.factories import PDF_BYTES, make_question, make_report
from tests.support.content import answer, check, load, options_of, snapshot, write


def dump(runner: FlaskCliRunner, directory: Path, *extra: str) -> object:
    return runner.invoke(args=["content", "dump", str(directory), *extra])


def load_bundled(runner: FlaskCliRunner) -> None:
    result = load(runner, BUNDLED_CONTENT_DIR)
    assert result.exit_code == 0, result.output


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_dump_round_trip(runner: FlaskCliRunner, app_context: None, tmp_path: Path) -> None:
    load_bundled(runner)
    before = snapshot()
    target = tmp_path / "dumped"
    result = dump(runner, target)
    assert result.exit_code == 0, result.output
    assert result.output == f"dumped 3 questions, 3 topics, 1 report, 2 widgets, 4 sequences to {target}\n"

    checked = check(target)
    assert checked.exit_code == 0, checked.output
    assert checked.output == "ok: 3 questions, 3 topics, 1 report, 2 widgets, 4 sequences\n"
    result = load(runner, target)
    assert result.exit_code == 0, result.output
    assert result.output == "nothing changed\n"
    assert snapshot() == before

    # The same definitions as the hand-written files, read back: every field survives the trip.
    bundled, dumped = read_content(BUNDLED_CONTENT_DIR), read_content(target)
    for section in ("questions", "topics", "widgets", "sequences"):
        for key, definition in getattr(bundled, section).items():
            theirs = getattr(dumped, section)[key]
            assert {**vars_of(definition), "source": ""} == {**vars_of(theirs), "source": ""}
    report = dumped.reports["daytrading-guide"]
    assert [(file.locale, file.filename, file.sha256) for file in report.files] == [
        (file.locale, file.filename, file.sha256) for file in bundled.reports["daytrading-guide"].files
    ]
    for name in ("daytraden-gids.pdf", "daytrading-guide.pdf"):
        assert (target / "reports/files" / name).read_bytes() == (
            BUNDLED_CONTENT_DIR / "reports/files" / name
        ).read_bytes()
    assert "file:\n  nl: files/daytraden-gids.pdf\n  en: files/daytrading-guide.pdf\n" in (
        target / "reports/daytrading-guide.yaml"
    ).read_text(encoding="utf-8")


def vars_of(definition: object) -> dict[str, object]:
    names = getattr(definition, "__slots__", ())
    values = {name: getattr(definition, name) for name in names}
    if "steps" in values:
        values["steps"] = tuple(step.__class__(**{**vars_of(step), "source": ""}) for step in values["steps"])
    return values


def test_editing_a_dumped_value_changes_exactly_that(
    runner: FlaskCliRunner, app_context: None, tmp_path: Path
) -> None:
    load_bundled(runner)
    target = tmp_path / "dumped"
    assert dump(runner, target).exit_code == 0
    before = snapshot()
    path = target / "questions/is_investor.yaml"
    path.write_text(
        path.read_text().replace("Do you already invest?", "Do you invest yet?"), encoding="utf-8"
    )
    step = target / "sequences/daytrading-beginners/02-risk.md"
    step.write_text(step.read_text().replace("\n---\n", "\n---\nP.S. Lees ook hoofdstuk 2.\n\n", 1))

    result = load(runner, target)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "updated question is_investor (text)",
        "updated sequence daytrading-beginners (steps)",
    ]
    after = snapshot()
    changed = [row for row in after["questions"] if row not in before["questions"]]
    assert [(row[1], row[3]) for row in changed] == [
        ("is_investor", {"nl": "Beleg je al?", "en": "Do you invest yet?"})
    ]
    changed_steps = [row for row in after["steps"] if row not in before["steps"]]
    assert [(row[2], row[6].splitlines()[0]) for row in changed_steps] == [
        ("02-risk.md", "P.S. Lees ook hoofdstuk 2.")
    ]
    for table in ("options", "reports", "widgets", "widget_questions"):
        assert after[table] == before[table]


def test_dump_leaves_out_retired_options_and_switched_off_sequences(
    runner: FlaskCliRunner, content_dir: Path, app_context: None, tmp_path: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    answer("daytrading_experience", "none")
    question = content_dir / "questions/daytrading_experience.yaml"
    question.write_text(
        "\n".join(line for line in question.read_text().splitlines() if "value: none" not in line)
    )
    shutil.rmtree(content_dir / "sequences/daytrading-beginners")
    shutil.rmtree(content_dir / "sequences/daytrading-beginners-en")
    assert load(runner, content_dir).exit_code == 0
    assert options_of("daytrading_experience") == [("some", False), ("active", False), ("none", True)]

    target = tmp_path / "dumped"
    assert dump(runner, target).exit_code == 0
    assert "value: none" not in (target / "questions/daytrading_experience.yaml").read_text()
    assert sorted(path.name for path in (target / "sequences").iterdir()) == [
        "daytrading-active",
        "daytrading-active-en",
    ]
    result = load(runner, target)
    assert result.output == "nothing changed\n"
    assert options_of("daytrading_experience") == [("some", False), ("active", False), ("none", True)]
    inactive = db.session.scalar(select(Sequence).where(Sequence.slug == "daytrading-beginners"))
    assert inactive is not None
    assert not inactive.active


def test_awkward_texts_are_written_so_they_read_back_the_same(
    runner: FlaskCliRunner, app_context: None, tmp_path: Path
) -> None:
    load_bundled(runner)
    question = db.session.scalar(select(Question).where(Question.key == "is_investor"))
    assert question is not None
    awkward = {"nl": "yes", "en": "123"}
    question.text = awkward
    question.options[0].label = {"nl": "- ja: zeker #1", "en": "'quoted' \"both\" {{ x }} & é ✓"}
    question.options[1].label = {"nl": "null", "en": "true"}
    report = db.session.scalar(select(Report))
    assert report is not None
    report.description = {"nl": "Eerste regel.\n\n  Ingesprongen tweede alinea.", "en": "One: two\nthree"}
    db.session.commit()
    before = snapshot()

    target = tmp_path / "dumped"
    assert dump(runner, target).exit_code == 0
    written = (target / "reports/daytrading-guide.yaml").read_text(encoding="utf-8")
    assert "nl: |" in written
    assert "  Eerste regel.\n" in written
    assert check(target).exit_code == 0
    assert load(runner, target).output == "nothing changed\n"
    assert snapshot() == before


def test_reports_sharing_a_file_name_get_their_own_files(
    runner: FlaskCliRunner, app_context: None, tmp_path: Path
) -> None:
    load_bundled(runner)
    other = make_report("second-guide", data=PDF_BYTES)
    other.files[0].filename = "daytrading-guide.pdf"
    db.session.commit()
    target = tmp_path / "dumped"
    assert dump(runner, target).exit_code == 0
    second = target / "reports/files/second-guide/daytrading-guide.pdf"
    assert hashlib.sha256(second.read_bytes()).hexdigest() == other.files[0].sha256
    assert load(runner, target).output == "nothing changed\n"


def test_a_report_s_files_sharing_a_name_each_keep_their_bytes(
    runner: FlaskCliRunner, app_context: None, tmp_path: Path
) -> None:
    dutch, english = PDF_BYTES + b"% nl\n", PDF_BYTES + b"% en\n"
    report = make_report("guide", files={"nl": dutch, "en": english})
    for file in report.files:
        file.filename = "guide.pdf"
    db.session.commit()
    target = tmp_path / "dumped"
    assert dump(runner, target).exit_code == 0
    assert (
        (target / "reports/guide.yaml")
        .read_text(encoding="utf-8")
        .endswith("file:\n  nl: files/guide.pdf\n  en: files/guide/guide.pdf\n")
    )
    assert (target / "reports/files/guide.pdf").read_bytes() == dutch
    assert (target / "reports/files/guide/guide.pdf").read_bytes() == english
    assert load(runner, target).output == "nothing changed\n"


def test_a_non_empty_directory_is_refused_without_force(
    runner: FlaskCliRunner, app_context: None, tmp_path: Path
) -> None:
    load_bundled(runner)
    target = tmp_path / "content"
    write(target / "README.md", "Our content.")
    write(target / "questions/stale_question.yaml", "key: stale_question\n")
    before = files_of(target)

    result = dump(runner, target)
    assert result.exit_code == 1
    assert f"Error: {target} is not empty; use --force to replace its questions, topics, reports, widgets" in (
        result.output
    )
    assert files_of(target) == before

    result = dump(runner, target, "--force")
    assert result.exit_code == 0, result.output
    after = files_of(target)
    assert after["README.md"] == b"Our content."
    assert "questions/stale_question.yaml" not in after
    assert "questions/is_investor.yaml" in after
    assert not [name for name in after if name.startswith(".dump-")]
    assert check(target).exit_code == 0


def test_an_unwritable_directory_is_a_clear_error(
    runner: FlaskCliRunner, app_context: None, tmp_path: Path
) -> None:
    load_bundled(runner)
    blocker = write(tmp_path / "a-file", "not a folder")
    result = dump(runner, blocker / "content")
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot write to ")
    assert "Not a directory" in result.output

    result = dump(runner, blocker)
    assert result.exit_code == 1
    assert f"Error: {blocker} is not a directory" in result.output
    assert blocker.read_text() == "not a folder"


def test_an_empty_database_dumps_empty_sections_that_check(
    runner: FlaskCliRunner, app_context: None, tmp_path: Path
) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    result = dump(runner, target)
    assert result.output == f"dumped 0 questions, 0 topics, 0 reports, 0 widgets, 0 sequences to {target}\n"
    assert sorted(path.name for path in target.iterdir()) == [
        "questions",
        "reports",
        "sequences",
        "topics",
        "widgets",
    ]
    assert check(target).exit_code == 0


def test_a_dump_of_what_the_files_created_reads_as_the_files(app_context: None, tmp_path: Path) -> None:
    """Without the CLI: load_content of the dump's bundle reports no change on either database."""
    load_content(read_content(BUNDLED_CONTENT_DIR))
    db.session.commit()
    bundle = dump_content(tmp_path / "out")
    assert bundle.ok
    assert load_content(bundle) == []


def test_a_stored_name_that_cannot_be_a_file_name_stays_inside(
    runner: FlaskCliRunner, app_context: None, tmp_path: Path
) -> None:
    load_bundled(runner)
    make_question("../../escaped")
    sequence = db.session.scalar(select(Sequence).where(Sequence.slug == "daytrading-active"))
    assert sequence is not None
    sequence.steps[0].key = "../../../step-escaped.md"
    db.session.commit()
    target = tmp_path / "deep" / "dumped"
    result = dump(runner, target)
    assert result.exit_code == 0, result.output
    assert "warning: dumped/questions/_stored-1.yaml: key: '../../escaped' is not valid" in result.output
    assert "'../../../step-escaped.md' is not a step file name" in result.output
    assert not list(tmp_path.rglob("*escaped*"))
    assert check(target).exit_code == 1
