"""Topics in content files: `content check` of topics/<key>.yaml and of audience rules that name topics,
`content load` (created, updated, retired or deleted) and `content dump`."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from leadcapture import clock
from leadcapture.config import BUNDLED_CONTENT_DIR
from leadcapture.definitions import read_content
from leadcapture.extensions import db
from leadcapture.models import InterestEvent, SignalSource, Subscriber, SubscriberStatus, Topic
from leadcapture.services.editing import dump_content
from tests.support.content import check, load, problems_of, write

DAYTRADING = "content/topics/daytrading.yaml"
BEGINNERS = "content/sequences/daytrading-beginners/sequence.yaml"
GOOD_TOPIC = """\
key: daytrading
name: {nl: Daytraden, en: Daytrading}
urls: [https://beleggen.example/daytraden/]
"""
ONE_STEP = "steps: [{file: 01-welcome.md, after: 1 day}]\n"


def topic_rows() -> dict[str, tuple[Any, ...]]:
    """Every topic as plain values, by key: name, URL rules, half-life, the question's key, version."""
    db.session.expire_all()
    return {
        topic.key: (
            topic.name,
            topic.urls,
            topic.half_life_days,
            topic.question.key if topic.question else None,
            topic.version,
        )
        for topic in db.session.scalars(select(Topic))
    }


def record_interest(topic_key: str) -> None:
    """A reader's click on a link of the topic, as the interest it left: one event."""
    now = clock.now()
    subscriber = Subscriber(
        email="lezer@example.com",
        status=SubscriberStatus.CONFIRMED,
        locale="nl",
        created_at=now,
        status_changed_at=now,
    )
    topic = db.session.scalars(select(Topic).where(Topic.key == topic_key)).one()
    db.session.add(subscriber)
    db.session.flush()
    db.session.add(
        InterestEvent(
            subscriber_id=subscriber.id,
            topic=topic,
            source=SignalSource.CLICK,
            weight=1.0,
            occurred_at=now,
            recorded_at=now,
        )
    )
    db.session.commit()


def beginners_with(audience: str) -> str:
    return (
        "slug: daytrading-beginners\nname: Beginners\nlocale: nl\non_change: switch\n"
        f"audience:\n{audience}"
        "steps: [{file: 01-welcome.md, after: 10 minutes}, {file: 02-risk.md, after: 1 day},"
        " {file: 03-costs-and-plan.md, after: 3 days}]\n"
    )


# --- check -----------------------------------------------------------------------------------------------


def test_the_demo_topics_read_into_typed_definitions() -> None:
    bundle = read_content(BUNDLED_CONTENT_DIR)
    assert bundle.ok, bundle.problems
    assert list(bundle.topics) == ["daytrading", "etfs", "investing"]
    daytrading = bundle.topics["daytrading"]
    assert daytrading.name == {"nl": "Daytraden", "en": "Daytrading"}
    assert daytrading.question == "daytrading_experience"
    assert daytrading.half_life_days == 30
    assert "https://beleggen.example/daytraden/" in daytrading.urls
    assert "http://127.0.0.1:5001/daytraden/" in daytrading.urls
    assert bundle.topics["investing"].question == "is_investor"
    etfs = bundle.topics["etfs"]
    assert (etfs.question, etfs.half_life_days) == (None, 30)  # the default half-life
    assert etfs.source == "content/topics/etfs.yaml"


def test_a_topic_name_may_be_one_text_for_every_locale(content_dir: Path) -> None:
    write(
        content_dir / "topics/daytrading.yaml",
        GOOD_TOPIC.replace("{nl: Daytraden, en: Daytrading}", "Daytraden"),
    )
    bundle = read_content(content_dir)
    assert bundle.ok, bundle.problems
    assert bundle.topics["daytrading"].name == {"nl": "Daytraden", "en": "Daytraden"}


LONG_RULE = "https://beleggen.example/" + "a" * 600
SHOWN_LONG_RULE = repr(LONG_RULE[:60] + "…")  # messages quote no more of a value than this
URL_EXAMPLE = "(e.g. https://beleggen.example/daytraden/)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD_TOPIC.replace("https://beleggen.example/daytraden/", "ftp://beleggen.example/daytraden/"),
            [
                f"{DAYTRADING}: urls[0]: 'ftp://beleggen.example/daytraden/' must be a URL starting with "
                f"https:// or http:// {URL_EXAMPLE}"
            ],
        ),
        (
            GOOD_TOPIC.replace(
                "[https://beleggen.example/daytraden/]", "[https://beleggen.example/daytraden/?p=1, '']"
            ),
            [
                f"{DAYTRADING}: urls[0]: 'https://beleggen.example/daytraden/?p=1' must not have a query "
                "(?…) or fragment (#…): a rule matches a URL's path",
                f"{DAYTRADING}: urls[1]: is empty",
            ],
        ),
        (
            GOOD_TOPIC + "question: is_trader\n",
            [f"{DAYTRADING}: question: unknown question 'is_trader'"],
        ),
        (
            GOOD_TOPIC + "question: Is Investor\n",
            [f"{DAYTRADING}: question: 'Is Investor' is not valid: use a question's key"],
        ),
        (
            GOOD_TOPIC + "half_life_days: 0\n",
            [f"{DAYTRADING}: half_life_days: must be between 1 and 3650, not 0"],
        ),
        (
            GOOD_TOPIC + "half_life_days: 99999\n",
            [f"{DAYTRADING}: half_life_days: must be between 1 and 3650, not 99999"],
        ),
        (
            GOOD_TOPIC + "half_life_days: 12.5\n",
            [f"{DAYTRADING}: half_life_days: must be a whole number of days, not a number"],
        ),
        (
            GOOD_TOPIC + "half_life_days: true\n",
            [f"{DAYTRADING}: half_life_days: must be a whole number of days, not true/false"],
        ),
        (
            GOOD_TOPIC + "half_life: 30\n",
            [f"{DAYTRADING}: half_life: unknown field 'half_life'; did you mean 'half_life_days'?"],
        ),
        (
            GOOD_TOPIC.replace("key: daytrading", "key: trading"),
            [f"{DAYTRADING}: key: 'trading' does not match the file name (expected trading.yaml)"],
        ),
        ("key: daytrading\n", [f"{DAYTRADING}: name: is required", f"{DAYTRADING}: urls: is required"]),
        (
            GOOD_TOPIC.replace("[https://beleggen.example/daytraden/]", "[]"),
            [f"{DAYTRADING}: urls: a topic has 1 to 100 URL rules {URL_EXAMPLE}, not 0"],
        ),
        (
            GOOD_TOPIC.replace(
                "[https://beleggen.example/daytraden/]", "https://beleggen.example/daytraden/"
            ),
            [f"{DAYTRADING}: urls: must be a list, not a string"],
        ),
        (
            GOOD_TOPIC.replace(
                "[https://beleggen.example/daytraden/]",
                "[https://beleggen.example/daytraden/, 'HTTPS://Beleggen.Example:443/daytraden/']",
            ),
            [
                f"{DAYTRADING}: urls[1]: 'HTTPS://Beleggen.Example:443/daytraden/' is the same rule as "
                "urls[0]"
            ],
        ),
        (
            GOOD_TOPIC.replace("[https://beleggen.example/daytraden/]", "[{nl: x}, 42]"),
            [
                f"{DAYTRADING}: urls[0]: must be a URL rule {URL_EXAMPLE}, not a mapping",
                f"{DAYTRADING}: urls[1]: must be a URL rule {URL_EXAMPLE}, not a number",
            ],
        ),
    ],
    ids=[
        "not http",
        "a query, an empty rule",
        "unknown question",
        "not a question key",
        "half-life 0",
        "half-life 99999",
        "half-life not whole",
        "half-life true",
        "unknown field",
        "key not the file name",
        "name and urls missing",
        "no rules",
        "rules not a list",
        "the same rule twice",
        "rules not texts",
    ],
)
def test_a_bad_topic_file_is_a_problem_naming_its_field(
    content_dir: Path, text: str, expected: list[str]
) -> None:
    write(content_dir / "topics/daytrading.yaml", text)
    result = check(content_dir)
    assert result.exit_code == 1
    assert [line for line in result.output.splitlines() if line.startswith("content/")] == expected
    assert "daytrading" not in read_content(content_dir).topics


def test_problems_carry_the_field_and_rule_for_the_admin(content_dir: Path) -> None:
    write(
        content_dir / "topics/daytrading.yaml",
        GOOD_TOPIC.replace("[https://beleggen.example/daytraden/]", "[https://beleggen.example/, 'nope']")
        + "question: is_trader\nhalf_life_days: 0\n",
    )
    problems = [p for p in read_content(content_dir).problems if p.path == DAYTRADING]
    assert [(problem.field, problem.code) for problem in problems] == [
        (("urls", 1), "url-rule"),
        (("half_life_days",), "invalid"),
        (("question",), "unknown-question"),
    ]


def test_oversized_and_hostile_values_are_refused_without_echoing_them(content_dir: Path) -> None:
    many = "".join(f"  - https://beleggen.example/{n}/\n" for n in range(101))
    write(
        content_dir / "topics/daytrading.yaml",
        f"key: daytrading\nname: '{'x' * 201}'\nurls:\n{many}half_life_days: {10**30}\n",
    )
    write(
        content_dir / "topics/etfs.yaml",
        "key: etfs\nname: {nl: ETF's, de: ETFs}\n"
        f"urls: ['{LONG_RULE}', \"https://beleggen.example/\\0/\"]\n",  # \0 in YAML's double quotes: NUL
    )
    problems = problems_of(content_dir)
    assert problems == [
        f"{DAYTRADING}: name: is 201 characters long; the limit is 200",
        f"{DAYTRADING}: urls: a topic has 1 to 100 URL rules {URL_EXAMPLE}, not 101",
        f"{DAYTRADING}: half_life_days: must be between 1 and 3650, not {10**30}",
        "content/topics/etfs.yaml: name: unknown locale 'de' (expected nl, en)",
        f"content/topics/etfs.yaml: urls[0]: {SHOWN_LONG_RULE} is {len(LONG_RULE)} characters long; "
        "the limit is 500",
        "content/topics/etfs.yaml: urls[1]: 'https://beleggen.example/\\x00/' must not contain spaces or "
        f"control characters {URL_EXAMPLE}",
    ]


def test_a_topic_file_that_is_not_a_mapping_is_one_problem(content_dir: Path) -> None:
    write(content_dir / "topics/daytrading.yaml", "- https://beleggen.example/daytraden/\n")
    assert [p for p in problems_of(content_dir) if p.startswith(DAYTRADING)] == [
        f"{DAYTRADING}: the top level must be a mapping of fields, not a list"
    ]
    # Sequences naming it are not told it is unknown on top of that.
    write(
        content_dir / "sequences/daytrading-beginners/sequence.yaml",
        beginners_with("  interest: {topic: daytrading, at_least: 2}\n"),
    )
    assert [p for p in problems_of(content_dir) if p.startswith(BEGINNERS)] == []
    assert "daytrading-beginners" not in read_content(content_dir).sequences


def test_a_broken_question_is_not_reported_again_in_topics(content_dir: Path) -> None:
    write(content_dir / "questions/daytrading_experience.yaml", "key: daytrading_experience\nkind: nope\n")
    problems = problems_of(content_dir)
    assert [problem for problem in problems if "topics/" in problem] == []
    bundle = read_content(content_dir)
    assert "daytrading" not in bundle.topics  # it is about that question
    assert "investing" in bundle.topics


@pytest.mark.parametrize("key", ["interest", "any_of", "all_of", "none_of", "segment"])
def test_a_question_may_not_take_a_name_audience_rules_reserve(content_dir: Path, key: str) -> None:
    write(content_dir / f"questions/{key}.yaml", f"key: {key}\nkind: yes_no\ntext: Vraag?\n")
    assert problems_of(content_dir) == [
        f"content/questions/{key}.yaml: key: {key!r} has a meaning of its own in audience rules; "
        "choose another key"
    ]


# --- audience rules that name topics -----------------------------------------------------------------------


def test_audience_rules_may_name_topics_and_nest_groups(content_dir: Path) -> None:
    rule = (
        "  daytrading_experience: [none, some]\n"
        "  interest: {topic: daytrading, at_least: 2}\n"
        "  any_of:\n"
        "    - {is_investor: 'no'}\n"
        "    - {interest: [{topic: etfs, below: 1}, {topic: investing, at_least: 0.5}]}\n"
        "    - none_of:\n"
        "        - {interest: {topic: daytrading, at_least: 10}}\n"
    )
    write(content_dir / "sequences/daytrading-beginners/sequence.yaml", beginners_with(rule))
    bundle = read_content(content_dir)
    assert bundle.ok, bundle.problems
    assert bundle.sequences["daytrading-beginners"].audience == {
        "daytrading_experience": ["none", "some"],
        "interest": {"topic": "daytrading", "at_least": 2},
        "any_of": [
            {"is_investor": "no"},
            {"interest": [{"topic": "etfs", "below": 1}, {"topic": "investing", "at_least": 0.5}]},
            {"none_of": [{"interest": {"topic": "daytrading", "at_least": 10}}]},
        ],
    }


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "  interest: {topic: crypto, at_least: 2}\n",
            [("audience.interest.topic: unknown topic 'crypto'", ("audience", "interest"))],
        ),
        (
            "  interest: {topic: daytrading}\n",
            [("audience.interest: give exactly one of at_least and below", ("audience", "interest"))],
        ),
        (
            "  interest: {topic: daytrading, at_least: 2, below: 5}\n",
            [("audience.interest: give exactly one of at_least and below", ("audience", "interest"))],
        ),
        (
            "  interest: {topic: daytrading, at_least: -1}\n",
            [
                (
                    "audience.interest.at_least: must be a number above 0 and at most 1000000",
                    ("audience", "interest"),
                )
            ],
        ),
        (
            "  interest: {topic: daytrading, at_least: lots, score: 3}\n",
            [
                (
                    "audience.interest: unknown field 'score' (use topic, at_least or below)",
                    ("audience", "interest"),
                ),
                (
                    "audience.interest.at_least: must be a number above 0 and at most 1000000",
                    ("audience", "interest"),
                ),
            ],
        ),
        (
            "  interest: daytrading\n",
            [
                (
                    "audience.interest: must be {topic: KEY, at_least: N} or {topic: KEY, below: N}",
                    ("audience", "interest"),
                )
            ],
        ),
        (
            "  any_of:\n    - {daytrading_experience: expert}\n    - {interest: {topic: crypto, below: 1}}\n",
            [
                (
                    "audience.any_of[0].daytrading_experience: unknown option 'expert' "
                    "(options: active, none, some)",
                    ("audience", "any_of", 0, "daytrading_experience"),
                ),
                (
                    "audience.any_of[1].interest.topic: unknown topic 'crypto'",
                    ("audience", "any_of", 1, "interest"),
                ),
            ],
        ),
        (
            "  all_of: {is_investor: 'yes'}\n  none_of: []\n",
            [
                (
                    "audience.all_of: must be a list of one or more rules, not a mapping",
                    ("audience", "all_of"),
                ),
                (
                    "audience.none_of: must be a list of one or more rules, not an empty list",
                    ("audience", "none_of"),
                ),
            ],
        ),
        (
            "  any_of: [is_investor, null]\n",
            [
                (
                    "audience.any_of[0]: must be a mapping of question keys to conditions, not a string",
                    ("audience", "any_of", 0),
                ),
                (
                    "audience.any_of[1]: must be a mapping of question keys to conditions, not nothing",
                    ("audience", "any_of", 1),
                ),
            ],
        ),
        (
            "  any_of: [{any_of: [{any_of: [{any_of: [{any_of: [{any_of: [{is_investor: 'yes'}]}]}]}]}]}]\n",
            [
                (
                    ".".join(["audience", *["any_of[0]"] * 6]) + ": rules nest at most 5 deep",
                    ("audience", *("any_of", 0) * 6),
                )
            ],
        ),
    ],
    ids=[
        "unknown topic",
        "no bound",
        "both bounds",
        "negative bound",
        "unknown field, bound not a number",
        "not a mapping",
        "nested problems",
        "groups not lists",
        "sub-rules not mappings",
        "nested too deep",
    ],
)
def test_a_bad_interest_condition_or_group_is_a_problem_at_its_place(
    content_dir: Path, rule: str, expected: list[tuple[str, tuple[object, ...]]]
) -> None:
    write(content_dir / "sequences/daytrading-beginners/sequence.yaml", beginners_with(rule))
    bundle = read_content(content_dir)
    problems = [problem for problem in bundle.problems if problem.path == BEGINNERS]
    assert [(problem.message, problem.field) for problem in problems] == expected
    assert {problem.code for problem in problems} == {"audience"}
    assert "daytrading-beginners" not in bundle.sequences


def test_a_topic_removed_from_the_files_is_unknown_to_the_sequences_naming_it(content_dir: Path) -> None:
    write(
        content_dir / "sequences/daytrading-beginners/sequence.yaml",
        beginners_with("  interest: {topic: etfs, at_least: 1}\n"),
    )
    assert check(content_dir).exit_code == 0
    (content_dir / "topics/etfs.yaml").unlink()
    result = check(content_dir)
    assert result.exit_code == 1
    assert f"{BEGINNERS}: audience.interest.topic: unknown topic 'etfs'" in result.output.splitlines()


# --- load ------------------------------------------------------------------------------------------------


def test_load_creates_the_topics_then_changes_nothing(
    runner: FlaskCliRunner, app_context: None, content_dir: Path
) -> None:
    result = load(runner, content_dir)
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if "topic" in line] == [
        "created topic daytrading",
        "created topic etfs",
        "created topic investing",
    ]
    rows = topic_rows()
    assert rows["daytrading"][2:] == (30, "daytrading_experience", 1)
    assert rows["investing"][2:] == (90, "is_investor", 1)
    assert rows["etfs"][0] == {"nl": "ETF's en indexfondsen", "en": "ETFs and index funds"}
    assert rows["etfs"][1][0] == "https://beleggen.example/etf*/"
    assert load(runner, content_dir).output == "nothing changed\n"
    assert topic_rows() == rows


def test_editing_a_topic_file_updates_exactly_what_changed(
    runner: FlaskCliRunner, app_context: None, content_dir: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    before = topic_rows()
    write(
        content_dir / "topics/etfs.yaml",
        "key: etfs\nname: {nl: ETF's, en: ETFs}\nurls: [https://beleggen.example/etfs/]\n"
        "half_life_days: 45\nquestion: investment_interests\n",
    )
    result = load(runner, content_dir)
    assert result.output == "updated topic etfs (name, urls, half_life_days, question)\n"
    after = topic_rows()
    assert after["etfs"] == (
        {"nl": "ETF's", "en": "ETFs"},
        ["https://beleggen.example/etfs/"],
        45,
        "investment_interests",
        2,
    )
    assert {key: row for key, row in after.items() if key != "etfs"} == {
        key: row for key, row in before.items() if key != "etfs"
    }


def test_a_topic_nobody_showed_interest_in_is_deleted_when_its_file_goes(
    runner: FlaskCliRunner, app_context: None, content_dir: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    (content_dir / "topics/etfs.yaml").unlink()
    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (0, "deleted topic etfs\n")
    assert sorted(topic_rows()) == ["daytrading", "investing"]
    assert load(runner, content_dir).output == "nothing changed\n"


def test_a_topic_with_interest_is_retired_when_its_file_goes_and_comes_back_whole(
    runner: FlaskCliRunner, app_context: None, content_dir: Path, tmp_path: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    record_interest("daytrading")
    kept = content_dir.parent / "kept.yaml"
    shutil.move(content_dir / "topics/daytrading.yaml", kept)
    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (0, "retired topic daytrading\n")
    _, urls, _, question, version = topic_rows()["daytrading"]
    assert (urls, question, version) == ([], None, 2)  # no page or answer counts towards it any more
    assert db.session.scalar(select(InterestEvent.topic_id).join(Topic).where(Topic.key == "daytrading"))
    assert load(runner, content_dir).output == "nothing changed\n"

    # Left out of a dump, which then loads without bringing it back.
    dumped = tmp_path / "dumped"
    assert sorted(dump_content(dumped).topics) == ["etfs", "investing"]
    db.session.rollback()
    assert not (dumped / "topics/daytrading.yaml").exists()

    shutil.move(kept, content_dir / "topics/daytrading.yaml")
    assert load(runner, content_dir).output == "updated topic daytrading (urls, question)\n"
    urls = list(read_content(content_dir).topics["daytrading"].urls)
    assert topic_rows()["daytrading"][1:4] == (urls, 30, "daytrading_experience")
    assert db.session.scalar(select(InterestEvent.topic_id).join(Topic).where(Topic.key == "daytrading"))


def test_a_topic_an_active_sequence_names_is_kept_and_nothing_is_loaded(
    runner: FlaskCliRunner, app_context: None, content_dir: Path, tmp_path: Path
) -> None:
    write(
        content_dir / "sequences/daytrading-beginners/sequence.yaml",
        beginners_with("  any_of:\n    - {interest: {topic: etfs, at_least: 1}}\n"),
    )
    assert load(runner, content_dir).exit_code == 0
    before = topic_rows()
    # A directory of questions and topics alone: it says nothing about sequences, so the stored one counts.
    partial = tmp_path / "partial"
    shutil.copytree(content_dir / "questions", partial / "questions")
    shutil.copytree(content_dir / "topics", partial / "topics")
    (partial / "topics/etfs.yaml").unlink()
    (partial / "topics/investing.yaml").write_text(
        (partial / "topics/investing.yaml").read_text().replace("half_life_days: 90", "half_life_days: 60")
    )
    result = load(runner, partial)
    assert result.exit_code == 1
    assert result.stderr == (
        "content load: topics/etfs.yaml is gone, but the audience of sequence 'daytrading-beginners' names "
        "topic 'etfs'; change that audience first, or keep the topic; nothing was loaded\n"
    )
    assert topic_rows() == before


def test_a_directory_without_a_topics_folder_leaves_topics_alone(
    runner: FlaskCliRunner, app_context: None, content_dir: Path, tmp_path: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    before = topic_rows()
    questions_only = tmp_path / "questions-only"
    shutil.copytree(content_dir / "questions", questions_only / "questions")
    result = load(runner, questions_only)
    assert (result.exit_code, result.output) == (0, "nothing changed\n")
    assert topic_rows() == before


def test_dumped_topics_check_and_load_unchanged(
    runner: FlaskCliRunner, app_context: None, content_dir: Path, tmp_path: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    before = topic_rows()
    target = tmp_path / "dumped"
    result = runner.invoke(args=["content", "dump", str(target)])
    assert result.exit_code == 0, result.output
    assert (target / "topics/etfs.yaml").read_text(encoding="utf-8") == (
        "key: etfs\n"
        "name:\n"
        "  nl: ETF's en indexfondsen\n"
        "  en: ETFs and index funds\n"
        "urls:\n"
        "  - https://beleggen.example/etf*/\n"
        "  - https://beleggen.example/en/etf*/\n"
        "  - http://127.0.0.1:5001/etf*/\n"
        "  - http://127.0.0.1:5001/en/etf*/\n"
        "  - http://localhost:5001/etf*/\n"
        "  - http://localhost:5001/en/etf*/\n"
        "half_life_days: 30\n"
    )
    assert "question: daytrading_experience\n" in (target / "topics/daytrading.yaml").read_text()
    assert check(target).exit_code == 0
    assert load(runner, target).output == "nothing changed\n"
    assert topic_rows() == before
    assert read_content(target).topics == {
        key: replace(definition, source=f"dumped/topics/{key}.yaml")
        for key, definition in read_content(content_dir).topics.items()
    }


def test_a_step_link_naming_an_unknown_topic_is_a_problem(content_dir: Path) -> None:
    step = content_dir / "sequences/daytrading-beginners/01-welcome.md"
    text = step.read_text("utf-8")
    write(step, text + '\n[Over ETF\'s](https://beleggen.example/etf-gids/ "topic:etfs")\n')
    assert check(content_dir).exit_code == 0
    write(step, text + '\n[Crypto](https://beleggen.example/crypto/ "topic:crypto")\n')
    result = check(content_dir)
    assert result.exit_code == 1
    assert (
        "content/sequences/daytrading-beginners/01-welcome.md: a link's title names topic 'crypto', which is not"
        " defined (topics: daytrading, etfs, investing)"
    ) in result.output.splitlines()
