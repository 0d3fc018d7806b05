"""Hostile submissions: whatever the body holds, the answer is a clear 400 or 422 and nothing is written."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.support.app import Client
from tests.support.submissions import rows, submission, submit

pytestmark = pytest.mark.usefixtures("widget")

NOTHING = {"Subscriber": 0, "Answer": 0, "ConsentEvent": 0, "Submission": 0, "Delivery": 0, "Enrollment": 0}


@pytest.mark.parametrize(
    "raw",
    [
        '{"answers": {"interests": ' + "[" * 1000 + "]" * 1000 + "}}",
        '{"consent": ' + '{"a":' * 1000 + "1" + "}" * 1000 + "}",
        "[" * 5000 + "]" * 5000,
    ],
    ids=["deep-list", "deep-object", "deep-top-level"],
)
def test_json_nested_too_deep_is_400(app: Flask, client: Client, raw: str) -> None:
    response = submit(client, raw=raw)
    assert response.status_code == 400
    assert response.get_json() == {"errors": {"body": "is nested too deeply"}}
    assert rows(app) == NOTHING


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("page_url", "https://beleggen.example/artikel\x00daytraden"),
        ("email", "lezer\x00@example.com"),
        ("timezone", "Europe/Amsterdam\x00"),
        ("form_token", "abc\x00def"),
        ("reader", "A" * 21 + "\x00" + "A" * 21),
    ],
)
def test_a_nul_character_in_any_string_is_refused(app: Flask, client: Client, field: str, value: str) -> None:
    body = submission(**{field: value})
    if field == "reader":
        del body["email"]
    response = submit(client, body)
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {field}
    assert rows(app) == NOTHING


def test_a_nul_character_in_an_answer_is_refused(app: Flask, client: Client) -> None:
    body = submission(
        answers={"is_investor": "yes\x00", "daytrading_experience": "none", "interests": ["a\x00"]}
    )
    response = submit(client, body)
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"answers.is_investor", "answers.interests"}
    assert rows(app) == NOTHING


def test_a_nul_character_in_a_field_name_is_refused(app: Flask, client: Client) -> None:
    response = submit(client, {**submission(), "x\x00y": 1})
    assert response.status_code == 400
    assert rows(app) == NOTHING


def test_an_email_local_part_over_64_characters_is_refused(app: Flask, client: Client) -> None:
    response = submit(client, submission(email="a" * 65 + "@example.com"))
    assert response.status_code == 422
    assert response.get_json() == {"errors": {"email": "Dit is geen geldig e-mailadres."}}
    assert rows(app) == NOTHING
    assert submit(client, submission(email="a" * 64 + "@example.com")).status_code == 202
