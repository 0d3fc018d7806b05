"""The widget API: definitions, submissions, and every way a request can be wrong."""

from __future__ import annotations

import gzip
import io
import json
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.i18n import LOCALES, translate
from leadcapture.models import (
    Answer,
    AnswerSource,
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryKind,
    Submission,
    Subscriber,
    SubscriberStatus,
    Widget,
)
from leadcapture.services.insights import count_impressions
from leadcapture.services.widgets import COMPACT_NAMES, widget_view
from tests.support.submissions import NOTHING, ORIGIN, URL, counts, form_token, post, valid_body


@pytest.mark.usefixtures("widget")
class TestDefinition:
    def test_serves_questions_in_order_with_texts_in_the_widget_locale(self, client: FlaskClient) -> None:
        # As the loader asks in a browser that remembers no reader.
        response = client.get("/api/v1/widgets/daytrading-report?returning=0", headers={"Origin": ORIGIN})
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        data = response.get_json()
        assert [q["key"] for q in data["questions"]] == ["is_investor", "daytrading_experience", "interests"]
        assert [q["kind"] for q in data["questions"]] == ["yes_no", "choice", "multi"]
        assert data["questions"][0]["options"] == [
            {"value": "yes", "label": "Ja"},
            {"value": "no", "label": "Nee"},
        ]
        assert data["texts"]["prompt"] == "Wil je ons gratis rapport?"
        assert data["texts"]["submit"] == "Stuur mij het rapport"
        assert "first_name_label" not in data["texts"]  # this widget asks for no first name
        assert data["texts"]["multi"]  # it asks a multi question
        # Texts for a reader the loader remembers only when it says it has one, and for 429/5xx none: those
        # answers carry their own.
        assert not {"not_you", "reader", "reader_unnamed", "start_ready"} & set(data["texts"])
        assert not {"error_busy", "error_server"} & set(data["texts"])
        # Nor how long answers stay fresh: this browser has answered nothing.
        assert not any("fresh_for_days" in question for question in data["questions"])
        assert not {"slug", "submit_url"} & set(data)  # the loader knows both
        assert data["form_token"]
        returning = client.get("/api/v1/widgets/daytrading-report?returning=1", headers={"Origin": ORIGIN})
        assert returning.get_json()["texts"]["not_you"] == "Niet jij?"
        assert {"reader", "reader_unnamed", "start_ready"} <= set(returning.get_json()["texts"])
        assert [question["fresh_for_days"] for question in returning.get_json()["questions"]] == [90, 90, 90]
        assert "reader" not in returning.get_json()  # only a reference from our email names one

    def test_the_loader_saying_r_gets_the_compact_definition(self, client: FlaskClient) -> None:
        """`r` says what `returning` says, from a loader that reads options as [value, label] pairs, a
        question's `multi` flag, the report's description without its title, `now` in seconds, and the texts
        and the flag by their short names."""
        response = client.get("/api/v1/widgets/daytrading-report?r=0", headers={"Origin": ORIGIN})
        assert response.status_code == 200
        data = response.get_json()
        multi = COMPACT_NAMES["multi"]
        assert [q["key"] for q in data["questions"]] == ["is_investor", "daytrading_experience", "interests"]
        assert [set(q) for q in data["questions"]] == [
            {"key", "text", "options"},
            {"key", "text", "options"},
            {"key", "text", "options", multi},
        ]
        assert data["questions"][2][multi] is True
        assert data["questions"][0]["options"] == [["yes", "Ja"], ["no", "Nee"]]
        assert "report" not in data
        assert isinstance(data["description"], str)
        assert isinstance(data["now"], int)
        texts = data["texts"]
        assert texts[COMPACT_NAMES["prompt"]] == "Wil je ons gratis rapport?"
        assert texts[COMPACT_NAMES["submit"]] == "Stuur mij het rapport"
        assert texts[multi]
        assert not {"prompt", "submit", "multi"} & set(texts)
        stranger = client.get("/api/v1/widgets/daytrading-report?returning=0", headers={"Origin": ORIGIN})
        assert len(texts) == len(stranger.get_json()["texts"])  # the same texts, by other names
        assert not {"slug", "submit_url"} & set(data)
        returning = client.get("/api/v1/widgets/daytrading-report?r=1", headers={"Origin": ORIGIN}).get_json()
        assert returning["texts"][COMPACT_NAMES["not_you"]] == "Niet jij?"
        assert "reader" in returning["texts"]  # a text without a short name goes by its own
        assert [question["fresh_for_days"] for question in returning["questions"]] == [90, 90, 90]
        assert returning["questions"][1]["options"][0] == ["none", data["questions"][1]["options"][0][1]]
        # `returning` beside `r` is not read: `r` alone says it.
        both = client.get("/api/v1/widgets/daytrading-report?r=0&returning=1", headers={"Origin": ORIGIN})
        assert COMPACT_NAMES["not_you"] not in both.get_json()["texts"]

    def test_the_compact_names_are_short_and_distinct(self) -> None:
        assert len(set(COMPACT_NAMES.values())) == len(COMPACT_NAMES)
        assert all(len(short) == 1 for short in COMPACT_NAMES.values())

    def test_a_loader_from_before_gets_the_definition_it_knows(self, client: FlaskClient) -> None:
        """Pages keep a loader for minutes after an upgrade: one that does not say `returning` gets every text,
        where to post and the slug, as it did."""
        data = client.get("/api/v1/widgets/daytrading-report", headers={"Origin": ORIGIN}).get_json()
        assert data["submit_url"] == "http://127.0.0.1:5000" + URL
        assert data["slug"] == "daytrading-report"
        assert data["texts"]["error_busy"] == translate("nl", "widget.error_busy")
        assert data["texts"]["error_server"] == translate("nl", "widget.error_server")
        assert {"not_you", "reader", "reader_unnamed", "start_ready"} <= set(data["texts"])
        assert all(question["fresh_for_days"] for question in data["questions"])

    @pytest.mark.usefixtures("frozen_clock")
    def test_is_gzipped_for_a_client_that_accepts_it(self, client: FlaskClient) -> None:
        plain = client.get("/api/v1/widgets/daytrading-report", headers={"Origin": ORIGIN})
        assert "Content-Encoding" not in plain.headers
        zipped = client.get(
            "/api/v1/widgets/daytrading-report", headers={"Origin": ORIGIN, "Accept-Encoding": "gzip, br"}
        )
        assert zipped.status_code == 200
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert {"Accept-Encoding", "Origin"} <= set(zipped.headers["Vary"].replace(" ", "").split(","))
        assert zipped.headers["Cache-Control"] == "no-store"
        assert "ETag" not in zipped.headers
        unzipped, expected = json.loads(gzip.decompress(zipped.data)), plain.get_json()
        # Each answer has its own form token; everything else is the same definition.
        assert unzipped.pop("form_token")
        assert expected.pop("form_token")
        assert unzipped == expected
        refused = client.get(
            "/api/v1/widgets/daytrading-report", headers={"Origin": ORIGIN, "Accept-Encoding": "gzip;q=0"}
        )
        assert "Content-Encoding" not in refused.headers

    def test_origin_not_allowed_gets_403_without_cors(self, client: FlaskClient) -> None:
        response = client.get("/api/v1/widgets/daytrading-report", headers={"Origin": "https://evil.example"})
        assert response.status_code == 403
        assert "Access-Control-Allow-Origin" not in response.headers

    def test_unknown_widget_is_404(self, client: FlaskClient) -> None:
        assert client.get("/api/v1/widgets/nope").status_code == 404
        assert client.get("/api/v1/widgets/" + "a" * 5000).status_code == 404

    def test_preflight_for_allowed_origin(self, client: FlaskClient) -> None:
        response = client.options(URL, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
        assert response.status_code == 204
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
        denied = client.options(URL, headers={"Origin": "https://evil.example"})
        assert denied.status_code == 403
        assert "Access-Control-Allow-Origin" not in denied.headers


@pytest.mark.usefixtures("widget")
class TestSubmission:
    def test_new_address_is_stored_pending_with_history_consent_and_a_confirmation_email(
        self, app: Flask, client: FlaskClient
    ) -> None:
        response = post(client, valid_body(consent={"report": True, "sequences": True}))
        assert response.status_code == 202
        body = response.get_json()
        assert body["status"] == "accepted"
        assert "lezer" not in body["reader"]
        assert len(body["reader"]) == 43
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        with app.app_context():
            subscriber = db.session.scalars(select(Subscriber)).one()
            assert subscriber.email == "lezer@example.com"
            assert subscriber.status is SubscriberStatus.PENDING
            assert subscriber.timezone == "Europe/Amsterdam"
            assert subscriber.locale == "nl"
            assert subscriber.reader_ref == body["reader"]
            assert not subscriber.marketing_consent  # not before the double opt-in
            answers = {a.question.key: a for a in subscriber.answers}
            assert answers["interests"].value == ["crypto", "stocks"]
            assert answers["is_investor"].source is AnswerSource.WIDGET
            assert answers["is_investor"].question_text == "Vraag is_investor?"
            assert answers["is_investor"].page_url == "https://beleggen.example/artikel/daytraden"
            assert answers["is_investor"].widget is not None
            (event,) = subscriber.consent_events
            assert event.kind is ConsentKind.REQUEST
            assert event.purposes == ["report", "sequences"]
            assert "rapport" in event.wording["consent_report"]
            assert event.wording["consent_sequences"].startswith("Stuur mij ook vervolgmails")
            assert event.ip_address == "127.0.0.0/24"
            (delivery,) = db.session.scalars(select(Delivery)).all()
            assert delivery.kind is DeliveryKind.CONFIRM
            assert delivery.message_id.endswith("@beleggen.example>")

    def test_same_bytes_whatever_the_address_state(self, app: Flask, client: FlaskClient) -> None:
        bodies = []
        for status in (
            None,
            SubscriberStatus.PENDING,
            SubscriberStatus.CONFIRMED,
            SubscriberStatus.UNSUBSCRIBED,
        ):
            if status is not None:
                with app.app_context():
                    subscriber = db.session.scalars(select(Subscriber)).one()
                    subscriber.status = status
                    db.session.commit()
            response = post(client, valid_body())
            assert response.status_code == 202
            bodies.append((response.data, sorted(response.headers.items())))
        assert all(body == bodies[0] for body in bodies)

    def test_confirmed_subscriber_gets_the_report_again_without_confirming(
        self, app: Flask, client: FlaskClient
    ) -> None:
        post(client, valid_body())
        with app.app_context():
            db.session.scalars(select(Subscriber)).one().status = SubscriberStatus.CONFIRMED
            db.session.commit()
        post(client, valid_body())
        with app.app_context():
            kinds = [d.kind for d in db.session.scalars(select(Delivery).order_by(Delivery.id))]
            assert kinds == [DeliveryKind.CONFIRM, DeliveryKind.REPORT]
            # A typed address proves nothing: the subscriber's own answers stand (tests/test_unproven_answers.py).
            assert len(db.session.scalars(select(Answer)).all()) == 3

    def test_suppressed_address_stores_and_sends_nothing(self, app: Flask, client: FlaskClient) -> None:
        post(client, valid_body())
        with app.app_context():
            db.session.scalars(select(Subscriber)).one().status = SubscriberStatus.BOUNCED
            db.session.commit()
        before = counts(app)
        assert post(client, valid_body()).status_code == 202
        assert counts(app) == before

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"email": ""}, "email"),
            ({"email": "not-an-address"}, "email"),
            ({"email": "a@b"}, "email"),
            ({"email": "x" * 300 + "@example.com"}, "email"),
            ({"email": "lezer@exa mple.com"}, "email"),
            ({"answers": {}}, "answers.is_investor"),
            (
                {"answers": {"is_investor": "maybe", "daytrading_experience": "none", "interests": ["etfs"]}},
                "answers.is_investor",
            ),
            (
                {"answers": {"is_investor": "yes", "daytrading_experience": ["none"], "interests": ["etfs"]}},
                "answers.daytrading_experience",
            ),
            (
                {"answers": {"is_investor": "yes", "daytrading_experience": "none", "interests": "etfs"}},
                "answers.interests",
            ),
            (
                {"answers": {"is_investor": "yes", "daytrading_experience": "none", "interests": ["gold"]}},
                "answers.interests",
            ),
            (
                {
                    "answers": {
                        "is_investor": "yes",
                        "daytrading_experience": "none",
                        "interests": [],
                    }
                },
                "answers.interests",
            ),
            (
                {
                    "answers": {
                        "is_investor": "yes",
                        "daytrading_experience": "none",
                        "interests": ["etfs"],
                        "shoe_size": "42",
                    }
                },
                "answers.shoe_size",
            ),
            ({"consent": {"report": False, "sequences": True}}, "consent.report"),
            ({"consent": {"sequences": True}}, "consent.report"),
            ({"consent": {"report": "yes"}}, "consent.report"),
            ({"page_url": "javascript:alert(1)"}, "page_url"),
            ({"page_url": "https://beleggen.example/" + "a" * 3000}, "page_url"),
            ({"timezone": "x" * 100}, "timezone"),
            ({"form_token": "forged"}, "form_token"),
            ({"form_token": None}, "form_token"),
            ({"form_token": form_token("another-widget")}, "form_token"),
        ],
    )
    def test_invalid_values_get_422_per_field_and_store_nothing(
        self, app: Flask, client: FlaskClient, change: dict[str, Any], field: str
    ) -> None:
        response = post(client, valid_body(**change))
        assert response.status_code == 422
        assert field in response.get_json()["errors"]
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert counts(app) == NOTHING

    def test_error_messages_are_in_the_widget_language(self, client: FlaskClient) -> None:
        errors = post(client, valid_body(email="nope")).get_json()["errors"]
        assert errors == {"email": "Dit is geen geldig e-mailadres."}

    @pytest.mark.parametrize(
        "body",
        [[1, 2], "a string", 42, None, {"email": 7}, {"answers": []}, {"consent": True}, {"hack": 1}],
    )
    def test_malformed_bodies_get_400(self, app: Flask, client: FlaskClient, body: Any) -> None:
        response = post(client, None, data=json.dumps(body), content_type="application/json")
        assert response.status_code == 400
        assert "errors" in response.get_json()
        assert counts(app) == NOTHING

    def test_broken_json_is_400(self, app: Flask, client: FlaskClient) -> None:
        response = post(client, None, data='{"email": ', content_type="application/json")
        assert response.status_code == 400
        assert counts(app) == NOTHING

    def test_non_json_body_is_415(self, app: Flask, client: FlaskClient) -> None:
        response = post(client, None, data={"email": "lezer@example.com"})
        assert response.status_code == 415
        assert response.get_json() == {"errors": {"body": "send the submission as application/json"}}
        assert counts(app) == NOTHING

    def test_oversized_body_is_413(self, app: Flask, client: FlaskClient) -> None:
        response = post(client, valid_body(padding="x" * 100_000))
        assert response.status_code == 413
        assert "errors" in response.get_json()
        assert counts(app) == NOTHING

    def test_origin_not_allowed_is_403_and_stores_nothing(self, app: Flask, client: FlaskClient) -> None:
        response = post(client, valid_body(), origin="https://evil.example")
        assert response.status_code == 403
        assert "Access-Control-Allow-Origin" not in response.headers
        assert counts(app) == NOTHING

    def test_unknown_widget_is_404(self, client: FlaskClient) -> None:
        response = client.post(
            "/api/v1/widgets/nope/submissions", json=valid_body(), headers={"Origin": ORIGIN}
        )
        assert response.status_code == 404

    def test_hostile_strings_are_stored_verbatim_not_interpreted(
        self, app: Flask, client: FlaskClient
    ) -> None:
        page = "https://beleggen.example/?q=<script>alert(1)</script>'; DROP TABLE subscribers;--"
        assert post(client, valid_body(page_url=page)).status_code == 202
        with app.app_context():
            assert db.session.scalars(select(Submission)).one().page_url == page


# LEADCAPTURE_TRACKING, and the wording of the follow-up box with it.
TRACKING = [
    pytest.param("clicks,reads", "widget.consent_sequences", id="clicks and reads"),
    pytest.param(
        "clicks",
        "widget.consent_sequences_clicks",
        marks=pytest.mark.settings(LEADCAPTURE_TRACKING="clicks"),
        id="clicks",
    ),
    pytest.param(
        "off",
        "widget.consent_sequences_answers",
        marks=pytest.mark.settings(LEADCAPTURE_TRACKING="off"),
        id="off",
    ),
]


@pytest.mark.usefixtures("widget")
class TestConsentWording:
    """The follow-up box says what shapes the emails as LEADCAPTURE_TRACKING has it, and a consent records the
    wording shown, by its version."""

    def sign_up_for_sequences(self, app: Flask, client: FlaskClient) -> tuple[str, ConsentEvent]:
        """The follow-up box's text as the definition gives it, and the consent a sign-up with it ticked left."""
        definition = client.get("/api/v1/widgets/daytrading-report?r=0", headers={"Origin": ORIGIN}).get_json()
        assert post(client, valid_body(consent={"report": True, "sequences": True})).status_code == 202
        with app.app_context():
            event = db.session.scalars(select(ConsentEvent)).one()
            db.session.expunge(event)
        return definition["texts"][COMPACT_NAMES["consent_sequences"]], event

    @pytest.mark.parametrize(("tracking", "key"), TRACKING)
    def test_the_box_names_what_tracking_counts_and_the_consent_records_it(
        self, app: Flask, client: FlaskClient, tracking: str, key: str
    ) -> None:
        shown, event = self.sign_up_for_sequences(app, client)
        assert shown == translate("nl", key)
        assert ("lees en aanklik" in shown, "aanklik" in shown) == (tracking == "clicks,reads", tracking != "off")
        assert event.purposes == ["report", "sequences"]
        assert event.wording["consent_sequences"] == shown
        with app.app_context():
            assert event.wording_version == widget_view("daytrading-report").wording_version

    @pytest.mark.parametrize(("tracking", "key"), TRACKING)
    def test_an_editor_s_own_wording_is_shown_and_recorded_as_written(
        self, app: Flask, client: FlaskClient, tracking: str, key: str
    ) -> None:
        own = "Stuur mij ook de nieuwsbrief. Afmelden kan altijd."
        with app.app_context():
            demo = db.session.scalars(select(Widget)).one()
            demo.texts = {**demo.texts, "consent_sequences": {"nl": own}}
            db.session.commit()
        shown, event = self.sign_up_for_sequences(app, client)
        assert shown == own
        assert event.wording["consent_sequences"] == own


def test_each_tracking_setting_has_a_wording_and_so_a_version_of_its_own() -> None:
    keys = [param.values[1] for param in TRACKING]
    assert len({translate(locale, str(key)) for locale in LOCALES for key in keys}) == len(keys) * len(LOCALES)


IMPRESSIONS = "/api/v1/widgets/daytrading-report/impressions"


def impressions(app: Flask) -> int:
    with app.app_context():
        return sum(count_impressions(date.min, date.max).values())


@pytest.mark.usefixtures("widget", "frozen_clock")
class TestImpressions:
    def test_a_page_on_an_allowed_origin_counts_one_and_gets_an_empty_204_it_may_read(
        self, app: Flask, client: FlaskClient
    ) -> None:
        response = client.post(IMPRESSIONS, headers={"Origin": ORIGIN})
        assert response.status_code == 204
        assert response.data == b""
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert impressions(app) == 1

    @pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1:5000", None])
    def test_another_origin_the_admin_or_no_browser_at_all_is_403_without_cors(
        self, app: Flask, client: FlaskClient, origin: str | None
    ) -> None:
        response = client.post(IMPRESSIONS, headers={"Origin": origin} if origin else {})
        assert response.status_code == 403
        assert response.get_json() == {"errors": {"origin": "this site may not embed this widget"}}
        assert "Access-Control-Allow-Origin" not in response.headers
        assert impressions(app) == 0

    def test_an_unknown_widget_is_404(self, client: FlaskClient) -> None:
        for slug in ("nope", "a" * 5000, "%00", "<script>"):
            response = client.post(f"/api/v1/widgets/{slug}/impressions", headers={"Origin": ORIGIN})
            assert response.status_code == 404, slug
            assert "errors" in response.get_json()

    @pytest.mark.parametrize(
        "body",
        [
            {"json": {"count": 1000}},
            {"data": "x", "content_type": "text/plain"},
            {"data": b"x" * 100_000, "content_type": "application/octet-stream"},
            {  # chunked: no Content-Length
                "input_stream": io.BytesIO(b"x" * 10),
                "headers": {"Origin": ORIGIN, "Transfer-Encoding": "chunked"},
                "environ_overrides": {"wsgi.input_terminated": True},
            },
        ],
    )
    def test_any_body_is_413_and_counts_nothing(self, app: Flask, client: FlaskClient, body: Any) -> None:
        response = client.post(IMPRESSIONS, **{"headers": {"Origin": ORIGIN}, **body})
        assert response.status_code == 413
        assert "body" in response.get_json()["errors"]
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert impressions(app) == 0

    def test_one_address_counts_60_a_minute_then_429_with_retry_after_and_cors(
        self, app: Flask, client: FlaskClient
    ) -> None:
        script = {"REMOTE_ADDR": "198.51.100.7"}
        for n in range(60):
            assert (
                client.post(IMPRESSIONS, headers={"Origin": ORIGIN}, environ_base=script).status_code == 204
            ), n
        refused = client.post(IMPRESSIONS, headers={"Origin": ORIGIN}, environ_base=script)
        assert refused.status_code == 429
        assert set(refused.get_json()["errors"]) == {"request"}
        assert 1 <= int(refused.headers["Retry-After"]) <= 61
        assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert impressions(app) == 60
        reader = {"REMOTE_ADDR": "198.51.100.8"}
        assert client.post(IMPRESSIONS, headers={"Origin": ORIGIN}, environ_base=reader).status_code == 204
        clock.advance(timedelta(seconds=61))
        assert client.post(IMPRESSIONS, headers={"Origin": ORIGIN}, environ_base=script).status_code == 204
        assert impressions(app) == 62


def test_health_reports_the_database(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_openapi_describes_the_public_api(client: FlaskClient) -> None:
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {
        "/api/v1/widgets/{slug}",
        "/api/v1/widgets/{slug}/submissions",
        "/healthz",
    }
    responses = document["paths"]["/api/v1/widgets/{slug}/submissions"]["post"]["responses"]
    assert {"202", "400", "403", "404", "415", "422"} <= set(responses)
