"""First names: a widget may ask for one (optional), the preference page sets or clears it, emails greet by it;
and, like an answer, a typed address cannot change a confirmed subscriber's name unproven."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from leadcapture.extensions import db
from leadcapture.models import Delivery, DeliveryKind, Subscriber, Widget
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_demo_widget
from tests.support.app import Client
from tests.support.submissions import ORIGIN, SLUG, rows, submission, submit


@pytest.fixture
def widget(app: Flask) -> None:
    with app.app_context():
        make_demo_widget().ask_first_name = True
        db.session.commit()


def last_mail(app: Flask, kind: DeliveryKind) -> str:
    with app.app_context():
        raw = db.session.scalars(
            select(Delivery.raw_message).where(Delivery.kind == kind).order_by(Delivery.id.desc())
        ).first()
    message = email.message_from_bytes(raw or b"", policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def first_name(app: Flask) -> str | None:
    with app.app_context():
        return db.session.scalars(select(Subscriber.first_name)).one()


def confirmed(app: Flask, client: Client, **overrides: Any) -> str:
    """A confirmed subscriber; returns their preference page."""
    assert submit(client, submission(**overrides)).status_code == 202
    confirm = re.search(r"http://127\.0\.0\.1:5000(/confirm/\S+)", last_mail(app, DeliveryKind.CONFIRM))
    assert confirm
    assert client.post(confirm.group(1)).status_code == 200
    with app.app_context():
        subscriber_id = db.session.scalars(select(Subscriber.id)).one()
        return "/preferences/" + make_token(Purpose.PREFERENCES, {"s": subscriber_id})


class TestContentFiles:
    def test_a_widget_file_asks_for_a_first_name_and_dump_writes_it_back(
        self, app: Flask, runner: FlaskCliRunner, content_dir: Path, tmp_path: Path
    ) -> None:
        path = content_dir / "widgets" / "daytrading-report.yaml"
        path.write_text(path.read_text() + "ask_first_name: true\n")
        assert runner.invoke(args=["content", "check", str(content_dir)]).exit_code == 0
        assert runner.invoke(args=["content", "load", str(content_dir)]).exit_code == 0
        with app.app_context():
            asks = dict(db.session.execute(select(Widget.slug, Widget.ask_first_name)).all())
        assert asks == {"daytrading-report": True, "daytrading-report-en": False}

        dumped = tmp_path / "dumped"
        assert runner.invoke(args=["content", "dump", str(dumped)]).exit_code == 0
        assert "ask_first_name: true" in (dumped / "widgets" / "daytrading-report.yaml").read_text()
        assert "ask_first_name" not in (dumped / "widgets" / "daytrading-report-en.yaml").read_text()
        reload = runner.invoke(args=["content", "load", str(dumped)])
        assert "widget" not in reload.output  # an untouched dump changes nothing

    def test_check_refuses_anything_but_true_or_false(
        self, runner: FlaskCliRunner, content_dir: Path
    ) -> None:
        path = content_dir / "widgets" / "daytrading-report.yaml"
        path.write_text(path.read_text() + "ask_first_name: sometimes\n")
        result = runner.invoke(args=["content", "check", str(content_dir)])
        assert result.exit_code == 1
        assert "daytrading-report.yaml: ask_first_name: must be true or false" in result.output


@pytest.mark.usefixtures("widget")
class TestWidget:
    def test_the_definition_says_so_only_for_a_widget_that_asks(self, app: Flask, client: Client) -> None:
        definition = client.get(f"/api/v1/widgets/{SLUG}", headers={"Origin": ORIGIN}).get_json()
        assert definition["ask_first_name"] is True
        assert definition["texts"]["first_name_label"] == "Je voornaam (niet verplicht)"
        with app.app_context():
            db.session.scalars(select(Widget)).one().ask_first_name = False
            db.session.commit()
        assert (
            "ask_first_name"
            not in client.get(f"/api/v1/widgets/{SLUG}", headers={"Origin": ORIGIN}).get_json()
        )

    @pytest.mark.drains_outbox
    def test_a_first_name_is_stored_trimmed_and_greets_in_the_email(self, app: Flask, client: Client) -> None:
        assert submit(client, submission(first_name="  Anna Maria ")).status_code == 202
        assert first_name(app) == "Anna Maria"
        assert "Hallo Anna Maria," in last_mail(app, DeliveryKind.CONFIRM)

    def test_no_first_name_is_fine(self, app: Flask, client: Client) -> None:
        assert submit(client, submission(first_name="   ")).status_code == 202
        assert first_name(app) is None

    @pytest.mark.parametrize(
        ("value", "status"), [("A" * 101, 422), ("Anna\x00", 422), ("An\nna", 422), (["Anna"], 400), (7, 400)]
    )
    def test_a_bad_first_name_is_refused_and_changes_nothing(
        self, app: Flask, client: Client, value: Any, status: int
    ) -> None:
        before = rows(app)
        response = submit(client, submission(first_name=value))
        assert response.status_code == status
        assert set(response.get_json()["errors"]) == {"first_name"}
        assert rows(app) == before

    @pytest.mark.drains_outbox
    def test_a_typed_address_proposes_a_new_name_that_only_the_owner_applies(
        self, app: Flask, client: Client
    ) -> None:
        page = confirmed(app, client, first_name="Anna")
        assert submit(client, submission(first_name="Mallory")).status_code == 202
        assert first_name(app) == "Anna"
        mail = last_mail(app, DeliveryKind.REPORT)
        assert "Anna → Mallory" in mail
        change = re.search(r"http://127\.0\.0\.1:5000(/preferences/\S+)", mail)
        assert change
        assert client.get(change.group(1)).status_code == 200
        assert first_name(app) == "Anna"
        assert client.post(change.group(1), data={"action": "apply_change"}).status_code == 200
        assert first_name(app) == "Mallory"
        assert page  # the preference page stays the owner's own


@pytest.mark.usefixtures("widget")
class TestPreferencePage:
    @pytest.mark.drains_outbox
    def test_the_page_sets_and_clears_the_first_name(self, app: Flask, client: Client) -> None:
        page = confirmed(app, client)
        assert 'name="first_name" value=""' in client.get(page).text

        assert client.post(page, data={"first_name": " Bea ", "q:is_investor": "yes"}).status_code == 200
        assert first_name(app) == "Bea"
        assert 'name="first_name" value="Bea"' in client.get(page).text

        assert client.post(page, data={"first_name": ""}).status_code == 200
        assert first_name(app) is None

    @pytest.mark.drains_outbox
    def test_a_bad_first_name_on_the_page_is_400_and_changes_nothing(
        self, app: Flask, client: Client
    ) -> None:
        page = confirmed(app, client, first_name="Anna")
        before = rows(app)
        response = client.post(page, data={"first_name": "x" * 101, "q:daytrading_experience": "active"})
        assert response.status_code == 400
        assert first_name(app) == "Anna"
        assert rows(app) == before
