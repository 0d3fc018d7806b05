"""Admin saves and topics: a topic saved through the content checks, and sequences whose audience names
topics checked against the stored ones."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from leadcapture.config import BUNDLED_CONTENT_DIR
from leadcapture.definitions import read_content
from leadcapture.extensions import db
from leadcapture.models import Sequence, Topic
from leadcapture.services import editing
from leadcapture.services.content import ContentHasProblems, load_content
from leadcapture.services.editing import AlreadyStored, EditConflict


@pytest.fixture
def stored(app_context: None) -> None:
    """The demo content, loaded and committed."""
    load_content(read_content(BUNDLED_CONTENT_DIR))
    db.session.commit()


def topic(key: str) -> Topic:
    db.session.expire_all()
    row = db.session.scalar(select(Topic).where(Topic.key == key))
    assert row is not None
    return row


def beginners_with(audience: dict[str, Any]) -> tuple[dict[str, Any], list[editing.StepText]]:
    row = db.session.scalar(select(Sequence).where(Sequence.slug == "daytrading-beginners"))
    assert row is not None
    document, steps = editing.sequence_document(row)
    return {**document, "audience": audience}, steps


def problems_of(caught: pytest.ExceptionInfo[ContentHasProblems]) -> list[tuple[str, tuple[object, ...]]]:
    return [(problem.message, problem.field) for problem in caught.value.problems]


def test_a_topic_document_is_what_its_file_holds(stored: None) -> None:
    assert editing.topic_document(topic("investing")) == {
        "key": "investing",
        "name": {"nl": "Beleggen", "en": "Investing"},
        "urls": [
            "https://beleggen.example/beleggen/",
            "https://beleggen.example/en/investing/",
            "http://127.0.0.1:5001/beleggen/",
            "http://127.0.0.1:5001/en/investing/",
            "http://localhost:5001/beleggen/",
            "http://localhost:5001/en/investing/",
        ],
        "half_life_days": 90,
        "question": "is_investor",
    }


def test_a_topic_is_saved_only_when_it_passes_the_checks(stored: None) -> None:
    document = {**editing.topic_document(topic("etfs")), "urls": ["https://beleggen.example/etfs/", "nope"]}
    with pytest.raises(ContentHasProblems) as caught:
        editing.save_topic(document)
    db.session.rollback()
    assert problems_of(caught) == [
        (
            "urls[1]: 'nope' must be a URL starting with https:// or http:// "
            "(e.g. https://beleggen.example/daytraden/)",
            ("urls", 1),
        )
    ]
    assert topic("etfs").urls[0] == "https://beleggen.example/etf*/"

    document["urls"] = ["https://beleggen.example/etfs/"]
    changes = editing.save_topic(document, version=1)
    db.session.commit()
    assert [str(change) for change in changes] == ["updated topic etfs (urls)"]
    assert (topic("etfs").urls, topic("etfs").version) == (["https://beleggen.example/etfs/"], 2)


def test_a_topic_save_against_an_old_version_names_what_changed_since(stored: None) -> None:
    mine = {**editing.topic_document(topic("etfs")), "half_life_days": 10}
    theirs = {**editing.topic_document(topic("etfs")), "name": {"nl": "Trackers", "en": "Trackers"}}
    editing.save_topic(theirs, version=1)
    db.session.commit()
    with pytest.raises(EditConflict) as caught:
        editing.save_topic(mine, version=1)
    db.session.rollback()
    assert (caught.value.fields, caught.value.current) == (["name", "half_life_days"], 2)
    assert topic("etfs").half_life_days == 30


def test_a_new_topic_may_not_take_a_stored_key(stored: None) -> None:
    document = {**editing.topic_document(topic("etfs")), "urls": ["https://beleggen.example/trackers/"]}
    with pytest.raises(AlreadyStored):
        editing.save_topic(document, new=True)
    db.session.rollback()
    assert topic("etfs").urls[0] == "https://beleggen.example/etf*/"


def test_a_sequence_may_name_stored_topics_in_its_audience(stored: None) -> None:
    audience = {
        "daytrading_experience": ["none", "some"],
        "any_of": [{"interest": {"topic": "daytrading", "at_least": 2}}, {"is_investor": "no"}],
    }
    changes = editing.save_sequence(*beginners_with(audience))
    db.session.commit()
    assert [str(change) for change in changes] == ["updated sequence daytrading-beginners (audience)"]


def test_a_sequence_naming_an_unknown_or_retired_topic_is_refused(stored: None) -> None:
    retired = topic("etfs")
    retired.urls = []  # as `content load` leaves it when its file went while interest in it was on record
    db.session.commit()
    audience = {
        "interest": {"topic": "crypto", "at_least": 1},
        "none_of": [{"interest": {"topic": "etfs", "below": 2}}],
    }
    with pytest.raises(ContentHasProblems) as caught:
        editing.save_sequence(*beginners_with(audience))
    db.session.rollback()
    assert problems_of(caught) == [
        ("audience.interest.topic: unknown topic 'crypto'", ("audience", "interest")),
        (
            "audience.none_of[0].interest.topic: unknown topic 'etfs'",
            ("audience", "none_of", 0, "interest"),
        ),
    ]
    assert editing.field_errors(caught.value.problems)[0] == {
        "audience": [
            "interest.topic: unknown topic 'crypto'",
            "none_of[0].interest.topic: unknown topic 'etfs'",
        ]
    }
