"""Sequences in content files: `content check` of sequence folders and step files, and `content load`."""

from __future__ import annotations

import os
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from leadcapture import clock
from leadcapture.config import BUNDLED_CONTENT_DIR
from leadcapture.definitions import read_content
from leadcapture.extensions import db
from leadcapture.mail.steps import render_step
from leadcapture.models import (
    Enrollment,
    EnrollmentState,
    OnChange,
    Sequence,
    SequenceStep,
    Subscriber,
    SubscriberStatus,
)
from leadcapture.services.content import load_content
from tests.support.content import check, load, problems_of, write

# --- helpers ---------------------------------------------------------------------------------------------


def sequence_rows() -> dict[str, tuple[Any, ...]]:
    """Every sequence as plain values, by slug."""
    db.session.expire_all()
    return {
        sequence.slug: (
            sequence.id,
            sequence.name,
            sequence.audience,
            sequence.on_change,
            sequence.locale,
            sequence.priority,
            sequence.active,
            sequence.created_at,
            sequence.updated_at,
        )
        for sequence in db.session.scalars(select(Sequence))
    }


def step_rows(slug: str) -> list[tuple[Any, ...]]:
    """(id, key, position, delay, subject, updated_at) of a sequence's steps, in position order."""
    db.session.expire_all()
    sequence = db.session.scalars(select(Sequence).where(Sequence.slug == slug)).one()
    return [
        (step.id, step.key, step.position, step.delay_seconds, step.subject, step.updated_at)
        for step in sequence.steps
    ]


BEGINNERS = "content/sequences/daytrading-beginners"
BEGINNERS_YAML = f"{BEGINNERS}/sequence.yaml"
AVAILABLE = "(available: first_name, answers, links, site_name, site_url)"
SAMPLE_CONTEXT = {
    "first_name": "Anna",
    "answers": {"is_investor": "yes", "daytrading_experience": "some"},
    "links": {
        "unsubscribe": "https://beleggen.example/unsubscribe/t",
        "preferences": "https://beleggen.example/preferences/t",
    },
    "site_name": "Beleggen",
    "site_url": "https://beleggen.example",
}


# --- the SPEC's example ----------------------------------------------------------------------------------

# SPEC §3.6, verbatim.
DOCUMENTED_QUESTION = """\
# content/questions/daytrading_experience.yaml
key: daytrading_experience
kind: choice                # yes_no | choice | multi
text: {nl: Hoeveel ervaring heb je met daytraden?, en: How much daytrading experience do you have?}
options:
  - {value: none,   label: {nl: Het is nieuw voor me, en: It is new to me}}
  - {value: some,   label: {nl: Ik heb het geprobeerd, en: I have tried it}}
  - {value: active, label: {nl: Ik trade actief, en: I trade actively}}
fresh_for_days: 90
"""
DOCUMENTED_SEQUENCE = """\
# content/sequences/daytrading-beginners/sequence.yaml
slug: daytrading-beginners
name: Daytraden voor beginners
audience:                   # every key must hold; a list means "any of these values"
  daytrading_experience: [none, some]
on_change: switch           # switch | finish_step | stay
steps:
  - {file: 01-welcome.md, after: 1 day}     # after enrollment, then after the previous step
  - {file: 02-risk.md, after: 3 days}
"""
# The SPEC shows no step files; these follow its description (front matter `subject:`, Markdown body).
DOCUMENTED_WELCOME = """\
---
subject: Welkom bij Daytraden voor beginners
---
{% if first_name %}Hoi {{ first_name }},{% else %}Hoi,{% endif %}

Fijn dat je er bent. Morgen meer over risico's.
"""
DOCUMENTED_RISK = """\
---
subject: "Risico: wat je kunt verliezen"
---
Handel alleen met geld dat je kunt missen. [Pas je antwoorden aan]({{ links.preferences }}).
"""


@pytest.fixture
def documented_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "content"
    write(directory / "questions/daytrading_experience.yaml", DOCUMENTED_QUESTION)
    write(directory / "sequences/daytrading-beginners/sequence.yaml", DOCUMENTED_SEQUENCE)
    write(directory / "sequences/daytrading-beginners/01-welcome.md", DOCUMENTED_WELCOME)
    write(directory / "sequences/daytrading-beginners/02-risk.md", DOCUMENTED_RISK)
    return directory


def test_documented_sequence_passes_check(documented_dir: Path) -> None:
    result = check(documented_dir)
    assert (result.exit_code, result.output) == (0, "ok: 1 question, 0 topics, 0 reports, 0 widgets, 1 sequence\n")

    sequence = read_content(documented_dir).sequences["daytrading-beginners"]
    assert (sequence.slug, sequence.name, sequence.locale) == (
        "daytrading-beginners",
        "Daytraden voor beginners",
        None,
    )
    assert sequence.audience == {"daytrading_experience": ["none", "some"]}
    assert (sequence.on_change, sequence.priority) == (OnChange.SWITCH, 0)
    assert sequence.source == BEGINNERS_YAML
    assert [(step.key, step.delay_seconds, step.subject) for step in sequence.steps] == [
        ("01-welcome.md", 86400, "Welkom bij Daytraden voor beginners"),
        ("02-risk.md", 3 * 86400, "Risico: wat je kunt verliezen"),
    ]
    welcome = sequence.steps[0]
    assert welcome.body == (
        "{% if first_name %}Hoi {{ first_name }},{% else %}Hoi,{% endif %}\n\n"
        "Fijn dat je er bent. Morgen meer over risico's."
    )
    assert welcome.source == f"{BEGINNERS}/01-welcome.md"


def test_documented_sequence_loads(app: Flask, runner: FlaskCliRunner, documented_dir: Path) -> None:
    result = load(runner, documented_dir)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "created question daytrading_experience",
        "created sequence daytrading-beginners",
    ]
    with app.app_context():
        sequence = db.session.scalars(select(Sequence).where(Sequence.slug == "daytrading-beginners")).one()
        assert (sequence.name, sequence.audience, sequence.on_change, sequence.locale) == (
            "Daytraden voor beginners",
            {"daytrading_experience": ["none", "some"]},
            OnChange.SWITCH,
            None,
        )
        assert (sequence.priority, sequence.active) == (0, True)
        assert [(s.key, s.position, s.delay_seconds) for s in sequence.steps] == [
            ("01-welcome.md", 0, 86400),
            ("02-risk.md", 1, 3 * 86400),
        ]
        assert sequence.steps[1].body.startswith("Handel alleen met geld")
    assert load(runner, documented_dir).output == "nothing changed\n"


# --- the bundled demo content ----------------------------------------------------------------------------


def test_bundled_sequences_fit_the_bundled_questions_and_widgets() -> None:
    bundle = read_content(BUNDLED_CONTENT_DIR)
    assert bundle.ok, bundle.problems
    assert {slug: (s.locale, s.audience, s.on_change) for slug, s in bundle.sequences.items()} == {
        "daytrading-active": ("nl", {"daytrading_experience": "active"}, OnChange.FINISH_STEP),
        "daytrading-active-en": ("en", {"daytrading_experience": "active"}, OnChange.FINISH_STEP),
        "daytrading-beginners": ("nl", {"daytrading_experience": ["none", "some"]}, OnChange.SWITCH),
        "daytrading-beginners-en": ("en", {"daytrading_experience": ["none", "some"]}, OnChange.SWITCH),
    }
    assert [step.delay_seconds for step in bundle.sequences["daytrading-beginners"].steps] == [
        600,
        86400,
        3 * 86400,
    ]
    # Each widget's readers find a sequence in their language for every experience answer.
    for widget in bundle.widgets.values():
        covered: set[str] = set()
        for sequence in bundle.sequences.values():
            if sequence.locale == widget.locale:
                wanted = sequence.audience["daytrading_experience"]
                covered |= {wanted} if isinstance(wanted, str) else set(wanted)
        assert covered == {"none", "some", "active"}, widget.slug
    # Twins have the same shape.
    for slug in ("daytrading-beginners", "daytrading-active"):
        nl, en = bundle.sequences[slug], bundle.sequences[f"{slug}-en"]
        assert [(s.key, s.delay_seconds) for s in nl.steps] == [(s.key, s.delay_seconds) for s in en.steps]


def test_bundled_steps_render_with_and_without_a_name_and_answers() -> None:
    bundle = read_content(BUNDLED_CONTENT_DIR)
    for sequence in bundle.sequences.values():
        for step in sequence.steps:
            named = render_step(step.subject, step.body, SAMPLE_CONTEXT)
            anonymous = render_step(
                step.subject, step.body, {**SAMPLE_CONTEXT, "first_name": None, "answers": {}}
            )
            assert named.subject == anonymous.subject == step.subject
            greeting = "Hoi" if sequence.locale == "nl" else "Hi"
            assert named.text.startswith(f"{greeting} Anna,"), step.source
            assert anonymous.text.startswith(f"{greeting},"), step.source
            assert "{" not in named.text
    welcome = bundle.sequences["daytrading-beginners"].steps[0]
    investor = render_step(welcome.subject, welcome.body, SAMPLE_CONTEXT).text
    newcomer = render_step(
        welcome.subject, welcome.body, {**SAMPLE_CONTEXT, "answers": {"is_investor": "no"}}
    ).text
    unanswered = render_step(welcome.subject, welcome.body, {**SAMPLE_CONTEXT, "answers": {}}).text
    assert "Je belegt al." in investor
    assert "Je belegt nog niet." not in investor
    assert "Je belegt nog niet." in newcomer
    # A reader who never said whether they invest is told neither.
    assert "Je belegt" not in unanswered
    assert "Of je nu al belegt of niet" in unanswered
    assert "<https://beleggen.example/preferences/t>" in investor


# --- malformed and hostile sequences ---------------------------------------------------------------------

HEAD = "slug: daytrading-beginners\nname: Beginners\non_change: switch\n"
ONE_STEP = "steps: [{file: 01-welcome.md, after: 1 day}]\n"
STEP_RULE = (
    "is not a step file name: use lowercase letters, digits, '.', '_' or '-', ending in .md, "
    "for a file in the sequence's folder (e.g. 01-welcome.md)"
)
DELAY_RULE = "use a whole number of minutes, hours, days or weeks (e.g. 10 minutes, 1 day or 2 weeks)"
UNLISTED = [
    f"{BEGINNERS}/02-risk.md: is not listed in the steps of sequence.yaml",
    f"{BEGINNERS}/03-costs-and-plan.md: is not listed in the steps of sequence.yaml",
]
WELCOME = f"{BEGINNERS}/01-welcome.md"

# (files to write in the daytrading-beginners folder, None to delete; every problem `content check` prints)
MALFORMED: list[tuple[str, dict[str, str | bytes | None], list[str]]] = [
    ("no sequence.yaml", {"sequence.yaml": None}, [f"{BEGINNERS}: has no sequence.yaml"]),
    (
        "sequence.yml",
        {"sequence.yaml": None, "sequence.yml": HEAD + ONE_STEP},
        [f"{BEGINNERS}/sequence.yml: rename to sequence.yaml: only .yaml files are read"],
    ),
    ("empty", {"sequence.yaml": ""}, [f"{BEGINNERS_YAML}: is empty"]),
    (
        "a list",
        {"sequence.yaml": "- slug: daytrading-beginners\n"},
        [f"{BEGINNERS_YAML}: the top level must be a mapping of fields, not a list"],
    ),
    (
        "slug not the folder's",
        {"sequence.yaml": HEAD.replace("slug: daytrading-beginners", "slug: daytrading-active") + ONE_STEP},
        [
            f"{BEGINNERS_YAML}: slug: 'daytrading-active' must equal the folder name 'daytrading-beginners'",
            *UNLISTED,
        ],
    ),
    (
        "unknown and missing fields",
        {
            "sequence.yaml": "slug: daytrading-beginners\nname: B\non_chnage: switch\ncolour: red\n"
            "steps: [{file: 01-welcome.md, after: 1 day, delay: 2}]\n"
        },
        [
            f"{BEGINNERS_YAML}: on_chnage: unknown field 'on_chnage'; did you mean 'on_change'?",
            f"{BEGINNERS_YAML}: colour: unknown field 'colour' "
            "(expected slug, name, locale, audience, on_change, priority, fresh_only, steps)",
            f"{BEGINNERS_YAML}: on_change: is required",
            f"{BEGINNERS_YAML}: steps[0].delay: unknown field 'delay' (expected file, after)",
        ],
    ),
    (
        "wrong types",
        {
            "sequence.yaml": "slug: daytrading-beginners\nname: {nl: B}\nlocale: de\naudience: [none]\n"
            "on_change: leave\npriority: true\nsteps: {file: 01-welcome.md}\n"
        },
        [
            f"{BEGINNERS_YAML}: name: must be a plain string (a name only editors see), not a mapping",
            f"{BEGINNERS_YAML}: locale: must be one of nl, en, not 'de'",
            f"{BEGINNERS_YAML}: audience: must be a mapping of question keys to conditions, not a list",
            f"{BEGINNERS_YAML}: on_change: must be one of switch, finish_step, stay, not 'leave'",
            f"{BEGINNERS_YAML}: priority: must be a whole number, not true/false",
            f"{BEGINNERS_YAML}: steps: must be a list, not a mapping",
        ],
    ),
    (
        "out of range",
        {
            "sequence.yaml": HEAD.replace("name: Beginners", f'name: "{"x" * 201}"')
            + "priority: -1001\nsteps: []\n"
        },
        [
            f"{BEGINNERS_YAML}: name: is 201 characters long; the limit is 200",
            f"{BEGINNERS_YAML}: priority: must be between -1000 and 1000, not -1001",
            f"{BEGINNERS_YAML}: steps: a sequence has 1 to 50 steps, not 0",
        ],
    ),
    (
        "too many steps, a name on two lines",
        {
            "sequence.yaml": HEAD.replace("name: Beginners", 'name: "Begin\\nners"')
            + "steps:\n"
            + "".join(f"  - {{file: {n:02}.md, after: 1 day}}\n" for n in range(51))
        },
        [
            f"{BEGINNERS_YAML}: name: must be one line",
            f"{BEGINNERS_YAML}: steps: a sequence has 1 to 50 steps, not 51",
        ],
    ),
    (
        "audience with unknown questions and options",
        {
            "sequence.yaml": HEAD
            + "audience:\n  daytrading_experience: [none, expert]\n  is_trader: yes\n"
            + "  investment_interests: {most_of: [stocks]}\n  is_investor: {answered: maybe}\n"
            + ONE_STEP
        },
        [
            f"{BEGINNERS_YAML}: audience.daytrading_experience: unknown option 'expert' (options: active, none, some)",
            f"{BEGINNERS_YAML}: audience.is_trader: unknown question 'is_trader'",
            f"{BEGINNERS_YAML}: audience.investment_interests: unknown operator 'most_of' "
            "(use any_of, all_of, none_of, answered)",
            f"{BEGINNERS_YAML}: audience.is_investor.answered: must be true or false",
            *UNLISTED,
        ],
    ),
    (
        "step entries",
        {
            "sequence.yaml": HEAD + "steps:\n  - 01-welcome.md\n  - {file: ../x.md, after: 1 day}\n"
            "  - {file: Welcome.md, after: 1 fortnight}\n  - {file: 02-risk.md, after: 3651 days}\n"
            "  - {file: 03-costs-and-plan.md, after: 5}\n  - {after: -1 day}\n"
            "  - {file: 04.md, after: 99999999999999999999999 minutes}\n  - {file: 05.md, after: ٣ days}\n"
        },
        [
            f"{BEGINNERS_YAML}: steps[0]: must be a mapping such as {{file: 01-welcome.md, after: 1 day}}, "
            "not a string",
            f"{BEGINNERS_YAML}: steps[1].file: '../x.md' {STEP_RULE}",
            f"{BEGINNERS_YAML}: steps[2].file: 'Welcome.md' {STEP_RULE}",
            f"{BEGINNERS_YAML}: steps[2].after: '1 fortnight' is not a delay: {DELAY_RULE}",
            f"{BEGINNERS_YAML}: steps[3].after: '3651 days' is longer than 3650 days",
            f"{BEGINNERS_YAML}: steps[4].after: must be a delay (e.g. 10 minutes, 1 day or 2 weeks), not a number",
            f"{BEGINNERS_YAML}: steps[5].file: is required",
            f"{BEGINNERS_YAML}: steps[5].after: '-1 day' is not a delay: {DELAY_RULE}",
            f"{BEGINNERS_YAML}: steps[6].after: '99999999999999999999999 minutes' is longer than 3650 days",
            f"{BEGINNERS_YAML}: steps[7].after: '٣ days' is not a delay: {DELAY_RULE}",
        ],
    ),
    (
        "a step listed twice",
        {
            "sequence.yaml": HEAD + "steps:\n  - {file: 01-welcome.md, after: 0 minutes}\n"
            "  - {file: 01-welcome.md, after: 1 day}\n  - {file: 04-extra.md, after: 2 Weeks}\n"
        },
        [f"{BEGINNERS_YAML}: steps[1].file: '01-welcome.md' is listed twice"],
    ),
    (
        "a missing step file, a stray one",
        {
            "sequence.yaml": HEAD + "steps:\n  - {file: 01-welcome.md, after: 0 minutes}\n"
            "  - {file: 04-extra.md, after: 2 Weeks}\n  - {file: 02-risk.md, after: 1 hour}\n",
            "README.md": "Which mail goes when.",
            "notes.txt": "Other files are the editors' own.",
        },
        [
            f"{BEGINNERS_YAML}: steps[1].file: {BEGINNERS}/04-extra.md does not exist",
            f"{BEGINNERS}/03-costs-and-plan.md: is not listed in the steps of sequence.yaml",
            f"{BEGINNERS}/README.md: is not listed in the steps of sequence.yaml",
        ],
    ),
    (
        "no front matter",
        {
            "01-welcome.md": "subject: Hi\n\nBody\n",
            "02-risk.md": "---\nsubject: Hi\nBody\n",
            "03-costs-and-plan.md": "---\n---\nBody\n",
        },
        [
            f"{WELCOME}: line 1: must start with front matter: a line ---, then subject: …, then a line ---, "
            "then the Markdown body",
            f"{BEGINNERS}/02-risk.md: line 1: the front matter has no closing --- line",
            f"{BEGINNERS}/03-costs-and-plan.md: line 2: the front matter is empty; it needs subject: …",
        ],
    ),
    (
        "front matter fields",
        {
            "01-welcome.md": "---\nsubject: {nl: Hoi}\ntitle: Hoi\n---\nBody\n",
            "02-risk.md": "---\nsubject: Hi\n---\n\n  \n",
            "03-costs-and-plan.md": "---\nsubject: |\n  two\n  lines\nbody: Hoi\n---\nBody\n",
        },
        [
            f"{WELCOME}: line 3: title: unknown field 'title' (expected subject)",
            f"{WELCOME}: line 2: subject: must be a plain string (one language: the sequence's locale), "
            "not a mapping",
            f"{BEGINNERS}/02-risk.md: line 3: there is no body after the front matter",
            f"{BEGINNERS}/03-costs-and-plan.md: line 5: body: unknown field 'body' (expected subject)",
            f"{BEGINNERS}/03-costs-and-plan.md: line 2: subject: must be one line",
        ],
    ),
    (
        "front matter values",
        {
            "01-welcome.md": "---\n- subject\n---\nBody\n",
            "02-risk.md": "---\nsubject: [unclosed\n---\nBody\n",
            "03-costs-and-plan.md": "---\nsubject: ''\n---\nBody\n",
        },
        [
            f"{WELCOME}: line 2: the front matter must be a mapping of fields, not a list",
            f"{BEGINNERS}/02-risk.md: line 3, column 1: expected ',' or ']', but got '<stream end>'",
            f"{BEGINNERS}/03-costs-and-plan.md: line 2: subject: must not be empty",
        ],
    ),
    (
        "a long subject, a control character",
        {
            "01-welcome.md": f"---\nsubject: {'x' * 201}\n---\nBody\n",
            "02-risk.md": "---\nsubject: Hi\n---\n\nfine\nnot\x00fine\n",
        },
        [
            f"{WELCOME}: line 2: subject: is 201 characters long; the limit is 200",
            f"{BEGINNERS}/02-risk.md: line 6: contains the control character U+0000",
        ],
    ),
    (
        "unknown names in the templates",
        {
            "01-welcome.md": "---\nsubject: Hallo {{ firstname }}\n---\n\nHoi,\n\nJe wachtwoord: {{ pasword }}\n",
            "02-risk.md": "---\r\nsubject: Hi\r\n---\r\n\r\nCRLF lines count too: {{ password }}\r\n",
        },
        [
            f"{WELCOME}: line 2: subject: unknown name 'firstname' {AVAILABLE}",
            f"{WELCOME}: line 7: unknown name 'pasword' {AVAILABLE}",
            f"{BEGINNERS}/02-risk.md: line 5: unknown name 'password' {AVAILABLE}",
        ],
    ),
    (
        "hostile and broken templates",
        {
            "01-welcome.md": "---\nsubject: Hi\n---\nA\n{{ ''.__class__.__mro__ }}\n",
            "02-risk.md": "---\nsubject: Hi\n---\n{% if first_name %}\nx\n",
            "03-costs-and-plan.md": "---\nsubject: Hi\n---\nA\n\n[Read on](/relative)\n",
        },
        [
            f"{WELCOME}: line 5: '__mro__' is not allowed: names starting with '_' are internal",
            f"{WELCOME}: line 5: '__class__' is not allowed: names starting with '_' are internal",
            f"{BEGINNERS}/02-risk.md: line 5: Unexpected end of template. Jinja was looking for the following "
            "tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.",
            f"{BEGINNERS}/03-costs-and-plan.md: link '/relative' would not be clickable: use an absolute "
            "http(s) or mailto URL",
        ],
    ),
    (
        "templates that fail when rendered",
        {
            "01-welcome.md": "---\nsubject: Hi\n---\nA\n\n{{ links.unsubcribe }}\n",
            "02-risk.md": "---\nsubject: Hi\n---\n{{ 'x' * 10**9 }}\n",
        },
        [
            f"{WELCOME}: line 6: 'dict object' has no attribute 'unsubcribe'",
            f"{BEGINNERS}/02-risk.md: line 4: not allowed: the result of '*' would be too large for an email",
        ],
    ),
    (
        "invalid UTF-8",
        {"01-welcome.md": b"---\nsubject: Hi\n---\n\xff\n"},
        [f"{WELCOME}: line 4: not valid UTF-8 (byte 20)"],
    ),
    (
        "a YAML bomb in the front matter",
        {
            "02-risk.md": "---\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            "subject: x\n---\nBody\n"
        },
        [f"{BEGINNERS}/02-risk.md: line 5, column 4: expands to more than 10000 values (too many aliases)"],
    ),
    (
        "a YAML bomb in sequence.yaml",
        {
            "sequence.yaml": HEAD + ONE_STEP + "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
            "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        },
        [f"{BEGINNERS_YAML}: line 8, column 4: expands to more than 10000 values (too many aliases)"],
    ),
]


@pytest.mark.parametrize(
    ("files", "expected"), [case[1:] for case in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_sequence_is_reported_precisely(
    content_dir: Path, files: dict[str, str | bytes | None], expected: list[str]
) -> None:
    folder = content_dir / "sequences/daytrading-beginners"
    for name, text in files.items():
        if text is None:
            (folder / name).unlink()
        else:
            write(folder / name, text)
    result = check(content_dir)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == expected
    count = len(expected)
    assert result.stderr == f"{count} problem{'s' if count != 1 else ''} in {content_dir}\n"


def test_accepted_delays(content_dir: Path) -> None:
    write(
        content_dir / "sequences/daytrading-beginners/sequence.yaml",
        HEAD
        + "steps:\n  - {file: 01-welcome.md, after: 0 minutes}\n  - {file: 02-risk.md, after: ' 1  Hour '}\n"
        "  - {file: 03-costs-and-plan.md, after: 3650 days}\n",
    )
    write(
        content_dir / "sequences/daytrading-active/sequence.yaml",
        "slug: daytrading-active\nname: Active\non_change: stay\nsteps:\n"
        "  - {file: 01-risk-management.md, after: 1 minute}\n  - {file: 02-taxes.md, after: 2 weeks}\n"
        "  - {file: 03-journal.md, after: 521 weeks}\n",
    )
    bundle = read_content(content_dir)
    assert bundle.ok, bundle.problems
    delays = [step.delay_seconds for step in bundle.sequences["daytrading-beginners"].steps]
    assert delays == [0, 3600, 3650 * 86400]
    active = bundle.sequences["daytrading-active"]
    assert [step.delay_seconds for step in active.steps] == [60, 14 * 86400, 521 * 7 * 86400]
    assert (active.locale, active.audience, active.on_change) == (None, {}, OnChange.STAY)


def test_sequence_folder_problems(content_dir: Path) -> None:
    sequences = content_dir / "sequences"
    (sequences / "daytrading-beginners").rename(sequences / "Daytrading_Beginners")
    write(sequences / "stray.yaml", HEAD + ONE_STEP)
    write(sequences / "README.md", "Editors' notes.")
    (sequences / "outside").symlink_to(content_dir.parent)
    (sequences / "loop").symlink_to("loop")
    (sequences / ".hidden").mkdir()
    assert problems_of(content_dir) == [
        "content/sequences/Daytrading_Beginners: 'Daytrading_Beginners' is not a valid folder name: "
        "use up to 64 lowercase letters, digits or '-', not starting with '-'",
        "content/sequences/loop: is a symbolic link loop",
        "content/sequences/outside: is a link to outside the content directory",
        "content/sequences/stray.yaml: is not in a sequence folder: a sequence is sequences/<slug>/sequence.yaml",
    ]


def test_step_files_that_are_links_folders_or_too_big(content_dir: Path, tmp_path: Path) -> None:
    folder = content_dir / "sequences/daytrading-beginners"
    outside = write(tmp_path / "secret.md", "---\nsubject: Hi\n---\nSecret\n")
    (folder / "01-welcome.md").unlink()
    (folder / "01-welcome.md").symlink_to(outside)
    (folder / "02-risk.md").unlink()
    (folder / "02-risk.md").mkdir()
    write(folder / "03-costs-and-plan.md", "---\nsubject: Hi\n---\n" + "x" * (256 * 1024))
    started = time.monotonic()
    assert problems_of(content_dir) == [
        f"{BEGINNERS_YAML}: steps[0].file: {WELCOME} is a link to outside the content directory",
        f"{BEGINNERS}/02-risk.md: is not a regular file",
        f"{BEGINNERS}/03-costs-and-plan.md: is larger than 256 KiB",
    ]
    assert time.monotonic() - started < 5


def test_step_file_links_inside_the_content_directory_are_fine(content_dir: Path) -> None:
    shared = write(content_dir / "shared/welcome.md", "---\nsubject: Welkom\n---\nHoi!\n")
    folder = content_dir / "sequences/daytrading-beginners"
    (folder / "01-welcome.md").unlink()
    (folder / "01-welcome.md").symlink_to(os.path.relpath(shared, folder))
    bundle = read_content(content_dir)
    assert bundle.ok, bundle.problems
    assert bundle.sequences["daytrading-beginners"].steps[0].body == "Hoi!"


def test_a_broken_question_is_not_reported_again_in_audiences(content_dir: Path) -> None:
    write(content_dir / "questions/daytrading_experience.yaml", "key: daytrading_experience\nkind: nope\n")
    problems = problems_of(content_dir)
    assert [problem for problem in problems if "sequences/" in problem] == []
    assert (
        "content/questions/daytrading_experience.yaml: kind: must be one of yes_no, choice, multi, not 'nope'"
        in (problems)
    )
    assert read_content(content_dir).sequences == {}  # all four name that question


def test_audience_rule_forms(content_dir: Path) -> None:
    write(
        content_dir / "sequences/daytrading-beginners/sequence.yaml",
        HEAD.replace("switch", "stay")
        + "audience:\n  is_investor: yes\n  investment_interests: {all_of: [stocks, etfs], none_of: [crypto]}\n"
        "  daytrading_experience: {answered: false}\n"
        + "steps: [{file: 01-welcome.md, after: 1 day}, {file: 02-risk.md, after: 1 day}, "
        "{file: 03-costs-and-plan.md, after: 1 day}]\n",
    )
    bundle = read_content(content_dir)
    assert bundle.ok, bundle.problems
    assert bundle.sequences["daytrading-beginners"].audience == {
        "is_investor": "yes",  # YAML 1.2: yes is a string
        "investment_interests": {"all_of": ["stocks", "etfs"], "none_of": ["crypto"]},
        "daytrading_experience": {"answered": False},
    }


def test_an_empty_audience_is_everyone(content_dir: Path) -> None:
    path = content_dir / "sequences/daytrading-active/sequence.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("audience:\n  daytrading_experience: active\n", "audience:\n"), encoding="utf-8"
    )
    bundle = read_content(content_dir)
    assert bundle.ok, bundle.problems
    assert bundle.sequences["daytrading-active"].audience == {}


# --- load ------------------------------------------------------------------------------------------------


def test_load_creates_the_demo_sequences_then_changes_nothing(
    app: Flask, runner: FlaskCliRunner, content_dir: Path
) -> None:
    result = load(runner, content_dir)
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if "sequence" in line] == [
        "created sequence daytrading-active",
        "created sequence daytrading-active-en",
        "created sequence daytrading-beginners",
        "created sequence daytrading-beginners-en",
    ]
    with app.app_context():
        before = sequence_rows(), step_rows("daytrading-beginners"), step_rows("daytrading-active-en")
        _, name, rule, on_change, locale, priority, active, *_ = before[0]["daytrading-beginners"]
        assert (name, rule, on_change, locale, priority, active) == (
            "Daytraden voor beginners",
            {"daytrading_experience": ["none", "some"]},
            OnChange.SWITCH,
            "nl",
            10,
            True,
        )
        assert [(key, position, delay) for _, key, position, delay, *_ in before[1]] == [
            ("01-welcome.md", 0, 600),
            ("02-risk.md", 1, 86400),
            ("03-costs-and-plan.md", 2, 3 * 86400),
        ]

    clock.advance(timedelta(hours=1))
    assert load(runner, content_dir).output == "nothing changed\n"
    with app.app_context():
        assert (
            sequence_rows(),
            step_rows("daytrading-beginners"),
            step_rows("daytrading-active-en"),
        ) == before


@pytest.mark.usefixtures("frozen_clock")
def test_editing_a_step_updates_it_in_place(app: Flask, runner: FlaskCliRunner, content_dir: Path) -> None:
    assert load(runner, content_dir).exit_code == 0
    with app.app_context():
        before = step_rows("daytrading-beginners")
    clock.advance(timedelta(hours=1))
    risk = content_dir / "sequences/daytrading-beginners/02-risk.md"
    risk.write_text(risk.read_text(encoding="utf-8").replace("De eerlijke cijfers", "Eerlijke cijfers"))

    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (0, "updated sequence daytrading-beginners (steps)\n")
    with app.app_context():
        after = step_rows("daytrading-beginners")
        assert [after[0], after[2]] == [before[0], before[2]]
        assert after[1][:4] == before[1][:4]  # same row, same place, same delay
        assert after[1][4] == "Eerlijke cijfers: hoeveel daytraders verliezen geld?"
        assert after[1][5] == clock.now()
        sequence = db.session.scalars(select(Sequence).where(Sequence.slug == "daytrading-beginners")).one()
        assert sequence.updated_at == clock.now()
    assert load(runner, content_dir).output == "nothing changed\n"

    risk.write_text(risk.read_text(encoding="utf-8") + "\nEen extra alinea.\n", encoding="utf-8")
    assert load(runner, content_dir).output == "updated sequence daytrading-beginners (steps)\n"
    with app.app_context():
        step = db.session.scalars(select(SequenceStep).where(SequenceStep.id == before[1][0])).one()
        assert step.body.endswith("Een extra alinea.")


def test_reordering_and_changing_delays_keeps_the_rows(
    app: Flask, runner: FlaskCliRunner, content_dir: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    with app.app_context():
        ids = {key: row_id for row_id, key, *_ in step_rows("daytrading-beginners")}
    write(
        content_dir / "sequences/daytrading-beginners/sequence.yaml",
        "slug: daytrading-beginners\nname: Daytraden voor beginners\nlocale: nl\n"
        "audience: {daytrading_experience: [none, some]}\non_change: switch\npriority: 10\nsteps:\n"
        "  - {file: 03-costs-and-plan.md, after: 10 minutes}\n  - {file: 01-welcome.md, after: 1 day}\n"
        "  - {file: 02-risk.md, after: 2 days}\n",
    )
    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (0, "updated sequence daytrading-beginners (steps)\n")
    with app.app_context():
        assert [
            (row_id, key, position, delay)
            for row_id, key, position, delay, *_ in step_rows("daytrading-beginners")
        ] == [
            (ids["03-costs-and-plan.md"], "03-costs-and-plan.md", 0, 600),
            (ids["01-welcome.md"], "01-welcome.md", 1, 86400),
            (ids["02-risk.md"], "02-risk.md", 2, 2 * 86400),
        ]
    assert load(runner, content_dir).output == "nothing changed\n"


def test_removing_and_adding_steps(app: Flask, runner: FlaskCliRunner, content_dir: Path) -> None:
    assert load(runner, content_dir).exit_code == 0
    with app.app_context():
        ids = {key: row_id for row_id, key, *_ in step_rows("daytrading-active")}
    folder = content_dir / "sequences/daytrading-active"
    (folder / "02-taxes.md").unlink()
    write(
        folder / "04-costs.md",
        "---\nsubject: Kosten\n---\n{% if first_name %}Hoi {{ first_name }},{% endif %}\n",
    )
    sequence_yaml = folder / "sequence.yaml"
    sequence_yaml.write_text(
        sequence_yaml.read_text(encoding="utf-8").replace("  - {file: 02-taxes.md, after: 2 days}\n", "")
        + "  - {file: 04-costs.md, after: 1 week}\n",
        encoding="utf-8",
    )
    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (0, "updated sequence daytrading-active (steps)\n")
    with app.app_context():
        rows = step_rows("daytrading-active")
        assert [(key, position, delay) for _, key, position, delay, *_ in rows] == [
            ("01-risk-management.md", 0, 600),
            ("03-journal.md", 1, 5 * 86400),
            ("04-costs.md", 2, 7 * 86400),
        ]
        assert [row[0] for row in rows[:2]] == [ids["01-risk-management.md"], ids["03-journal.md"]]
        assert db.session.get(SequenceStep, ids["02-taxes.md"]) is None
    assert load(runner, content_dir).output == "nothing changed\n"


def test_changing_the_definition(app: Flask, runner: FlaskCliRunner, content_dir: Path) -> None:
    assert load(runner, content_dir).exit_code == 0
    write(
        content_dir / "sequences/daytrading-beginners/sequence.yaml",
        "slug: daytrading-beginners\nname: Beginners\n"
        "audience: {daytrading_experience: none, is_investor: no}\non_change: stay\nsteps:\n"
        "  - {file: 01-welcome.md, after: 10 minutes}\n  - {file: 02-risk.md, after: 1 day}\n"
        "  - {file: 03-costs-and-plan.md, after: 3 days}\n",
    )
    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (
        0,
        "updated sequence daytrading-beginners (name, locale, audience, on_change, priority)\n",
    )
    with app.app_context():
        _, name, rule, on_change, locale, priority, active, *_ = sequence_rows()["daytrading-beginners"]
        assert (name, rule, on_change, locale, priority, active) == (
            "Beginners",
            {"daytrading_experience": "none", "is_investor": "no"},
            OnChange.STAY,
            None,
            0,
            True,
        )
    assert load(runner, content_dir).output == "nothing changed\n"


def test_a_removed_sequence_is_switched_off_and_comes_back(
    app: Flask, runner: FlaskCliRunner, content_dir: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    with app.app_context():
        sequence = db.session.scalars(select(Sequence).where(Sequence.slug == "daytrading-active")).one()
        now = clock.now()
        subscriber = Subscriber(
            email="trader@example.com",
            status=SubscriberStatus.CONFIRMED,
            locale="nl",
            created_at=now,
            status_changed_at=now,
        )
        db.session.add(
            Enrollment(subscriber=subscriber, sequence=sequence, state=EnrollmentState.ACTIVE, entered_at=now)
        )
        db.session.commit()
        steps = step_rows("daytrading-active")

    folder = content_dir / "sequences/daytrading-active"
    shutil.move(folder, content_dir.parent / "daytrading-active")
    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (0, "deactivated sequence daytrading-active\n")
    with app.app_context():
        rows = sequence_rows()
        assert rows["daytrading-active"][6] is False
        assert all(row[6] for slug, row in rows.items() if slug != "daytrading-active")
        # Kept, with its steps and its enrollments.
        assert step_rows("daytrading-active") == steps
        assert db.session.scalars(select(Enrollment)).one().sequence.slug == "daytrading-active"
    assert load(runner, content_dir).output == "nothing changed\n"

    shutil.move(content_dir.parent / "daytrading-active", folder)
    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (0, "updated sequence daytrading-active (active)\n")
    with app.app_context():
        assert sequence_rows()["daytrading-active"][6] is True
    assert load(runner, content_dir).output == "nothing changed\n"


def test_a_directory_without_sequences_leaves_them_alone(
    app: Flask, runner: FlaskCliRunner, content_dir: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    shutil.rmtree(content_dir / "sequences")
    assert load(runner, content_dir).output == "nothing changed\n"
    (content_dir / "sequences").mkdir()
    result = load(runner, content_dir)
    assert result.output.splitlines() == [
        "deactivated sequence daytrading-active",
        "deactivated sequence daytrading-active-en",
        "deactivated sequence daytrading-beginners",
        "deactivated sequence daytrading-beginners-en",
    ]


def test_load_refuses_a_bad_template_and_writes_nothing(
    app: Flask, runner: FlaskCliRunner, content_dir: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    with app.app_context():
        before = sequence_rows(), step_rows("daytrading-beginners")
    write(
        content_dir / "sequences/daytrading-beginners/02-risk.md",
        "---\nsubject: Risico\n---\nHoi {{ pasword }},\n",
    )
    write(content_dir / "sequences/daytrading-active/sequence.yaml", "slug: daytrading-active\n")
    result = load(runner, content_dir)
    assert result.exit_code == 1
    assert f"{BEGINNERS}/02-risk.md: line 4: unknown name 'pasword' {AVAILABLE}" in result.stdout.splitlines()
    assert result.stderr.endswith("; nothing was loaded\n")
    with app.app_context():
        assert (sequence_rows(), step_rows("daytrading-beginners")) == before


def test_load_content_creates_sequences_with_the_questions_it_loads(app: Flask, documented_dir: Path) -> None:
    with app.app_context():
        changes = [str(change) for change in load_content(read_content(documented_dir))]
        assert changes == ["created question daytrading_experience", "created sequence daytrading-beginners"]
        assert db.session.scalars(select(SequenceStep.key).order_by(SequenceStep.position)).all() == [
            "01-welcome.md",
            "02-risk.md",
        ]
        db.session.rollback()
        assert db.session.scalars(select(Sequence)).all() == []
