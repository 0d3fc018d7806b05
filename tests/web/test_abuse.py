"""The public endpoints against bots and bad input: rate limits, subscription bombing, honeypot and fill time,
security headers on every kind of page, and request size limits on the link pages."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.i18n import translate
from leadcapture.jobs import store_submissions
from leadcapture.models import Delivery, DeliveryKind, Intake, Subscriber, SubscriberStatus, Widget
from leadcapture.services.widgets import form_token as issued_form_token
from leadcapture.services.widgets import form_token_issued, widget_view
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_demo_widget
from tests.support.app import Client
from tests.support.submissions import ORIGIN, counts, form_token, post, valid_body

NOTHING = {"Subscriber": 0, "Answer": 0, "ConsentEvent": 0, "Submission": 0, "Delivery": 0}
LINK_PAGES = ("confirm", "download", "preferences", "unsubscribe", "answer")
NEW_KEY = "a-newer-secret-key-0123456789"


def from_ip(address: str) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": address}}


def deliveries(app: Flask, kind: DeliveryKind) -> int:
    with app.app_context():
        return len(db.session.scalars(select(Delivery).where(Delivery.kind == kind)).all())


pytestmark = pytest.mark.usefixtures("widget", "frozen_clock")


class TestRateLimits:
    def test_one_address_gets_30_submissions_a_minute_then_429_with_retry_after_and_cors(
        self, app: Flask, client: Client
    ) -> None:
        for n in range(30):
            response = post(client, valid_body(email=f"lezer{n}@example.com"), **from_ip("198.51.100.7"))
            assert response.status_code == 202, n
        before = counts(app)
        refused = post(client, valid_body(email="nog-een@example.com"), **from_ip("198.51.100.7"))
        assert refused.status_code == 429
        # In the widget's language, for the loader to show the reader as it is.
        assert refused.get_json()["errors"] == {"request": translate("nl", "widget.error_busy")}
        assert 1 <= int(refused.headers["Retry-After"]) <= 61
        assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN  # the widget can read it
        assert counts(app) == before
        # Someone else is not held up by that address, and the address itself may go on a minute later.
        assert (
            post(client, valid_body(email="ander@example.com"), **from_ip("198.51.100.8")).status_code == 202
        )
        clock.advance(timedelta(seconds=61))
        assert (
            post(client, valid_body(email="later@example.com"), **from_ip("198.51.100.7")).status_code == 202
        )

    def test_an_origin_not_allowed_gets_no_cors_headers_on_its_429(self, client: Client) -> None:
        for n in range(30):
            post(client, valid_body(email=f"lezer{n}@example.com"), **from_ip("198.51.100.7"))
        refused = post(client, valid_body(), origin="https://evil.example", **from_ip("198.51.100.7"))
        assert refused.status_code == 429
        assert "Access-Control-Allow-Origin" not in refused.headers

    def test_one_address_gets_300_submissions_an_hour(self, client: Client) -> None:
        for minute in range(10):
            for n in range(30):
                response = post(client, {"email": "x"}, **from_ip("198.51.100.9"))  # 422s count as much
                assert response.status_code == 422, (minute, n)
            clock.advance(timedelta(seconds=61))
        refused = post(client, valid_body(), **from_ip("198.51.100.9"))
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 60

    def test_one_widget_takes_600_submissions_a_minute_from_all_addresses_together(
        self, app: Flask, client: Client
    ) -> None:
        for n in range(600):
            ip = f"10.0.{n // 200}.{n % 200 + 1}"
            response = post(client, None, data="not json", content_type="text/plain", **from_ip(ip))
            assert response.status_code == 415, n
        refused = post(client, valid_body(), **from_ip("203.0.113.200"))
        assert refused.status_code == 429
        assert counts(app) == NOTHING

    @pytest.mark.settings(LEADCAPTURE_RATE_LIMITS="off")
    def test_with_limits_off_nothing_is_limited(self, app: Flask, client: Client) -> None:
        for n in range(35):
            body = valid_body(email=f"lezer{n}@example.com", form_token=form_token(age=timedelta(0)))
            response = post(client, body, **from_ip("198.51.100.7"))
            assert response.status_code == 202, n
        # Load tests and bulk imports submit at machine speed: no minimum fill time either.
        assert counts(app)["Submission"] == 35


class TestSubscriptionBombing:
    def test_at_most_three_confirmations_a_day_to_one_address_with_the_same_answer(
        self, app: Flask, client: Client
    ) -> None:
        answers = []
        for n in range(5):
            response = post(
                client, valid_body(email="slachtoffer@example.com"), **from_ip(f"198.51.100.{n + 1}")
            )
            assert response.status_code == 202
            answers.append((response.data, sorted(response.headers.items())))
            clock.advance(timedelta(minutes=10))
        assert all(answer == answers[0] for answer in answers)  # nothing tells the sender it stopped
        assert deliveries(app, DeliveryKind.CONFIRM) == 3
        assert counts(app)["Submission"] == 5  # what the reader did is still on record
        clock.advance(timedelta(days=1))
        post(client, valid_body(email="slachtoffer@example.com"))
        assert deliveries(app, DeliveryKind.CONFIRM) == 4

    def test_the_cap_is_per_address(self, app: Flask, client: Client) -> None:
        for _ in range(4):
            post(client, valid_body(email="een@example.com"))
        post(client, valid_body(email="twee@example.com"))
        with app.app_context():
            sent_to = [d.to_address for d in db.session.scalars(select(Delivery).order_by(Delivery.id))]
        assert sent_to == ["een@example.com"] * 3 + ["twee@example.com"]

    def test_a_confirmed_reader_still_gets_every_report_they_ask_for(
        self, app: Flask, client: Client
    ) -> None:
        post(client, valid_body())
        with app.app_context():
            db.session.scalars(select(Subscriber)).one().status = SubscriberStatus.CONFIRMED
            db.session.commit()
        for _ in range(4):
            post(client, valid_body())
        assert deliveries(app, DeliveryKind.REPORT) == 4


class TestBots:
    def real_answer(self, client: Client) -> tuple[bytes, int]:
        response = post(client, valid_body())
        return response.data, response.status_code

    def test_a_filled_in_honeypot_gets_the_same_202_and_nothing_is_stored_or_sent(
        self, app: Flask, client: Client
    ) -> None:
        response = post(client, valid_body(website="https://spam.example"))
        assert response.status_code == 202
        assert counts(app) == NOTHING  # no delivery: nothing sent
        assert (response.data, response.status_code) == self.real_answer(client)  # same reader, same answer

    def test_a_form_sent_within_two_seconds_of_its_definition_is_a_bot(
        self, app: Flask, client: Client
    ) -> None:
        response = post(client, valid_body(form_token=form_token(age=timedelta(seconds=1.5))))
        assert response.status_code == 202
        assert counts(app) == NOTHING
        assert (response.data, response.status_code) == self.real_answer(client)

    def test_the_definitions_own_token_is_too_young_at_once_and_fine_a_few_seconds_later(
        self, app: Flask, client: Client
    ) -> None:
        token = client.get("/api/v1/widgets/daytrading-report", headers={"Origin": ORIGIN}).get_json()[
            "form_token"
        ]
        assert post(client, valid_body(form_token=token)).status_code == 202
        assert counts(app) == NOTHING
        clock.advance(timedelta(seconds=3))
        assert post(client, valid_body(form_token=token)).status_code == 202
        assert counts(app)["Submission"] == 1

    def test_a_token_left_open_for_days_still_works(self, app: Flask, client: Client) -> None:
        token = form_token(age=timedelta(days=3))
        assert post(client, valid_body(form_token=token)).status_code == 202
        assert counts(app)["Submission"] == 1

    def test_a_token_from_before_tokens_carried_their_time_still_works(
        self, app: Flask, client: Client
    ) -> None:
        with app.app_context():
            token = make_token(Purpose.FORM, {"w": "daytrading-report"})
        assert post(client, valid_body(form_token=token)).status_code == 202
        assert counts(app)["Submission"] == 1

    def test_the_definition_s_token_works_and_one_for_another_widget_is_refused(
        self, app: Flask, client: Client
    ) -> None:
        definition = client.get("/api/v1/widgets/daytrading-report", headers={"Origin": ORIGIN}).get_json()
        with app.app_context():
            widget_id = db.session.scalars(select(Widget.id)).one()
            other = make_token(Purpose.FORM, {"w": widget_id + 1, "t": clock.now().timestamp() - 60})
        assert post(client, valid_body(form_token=other)).status_code == 422
        clock.advance(timedelta(seconds=5))
        assert post(client, valid_body(form_token=definition["form_token"])).status_code == 202
        assert counts(app)["Submission"] == 1

    def definition_token(self, client: Client) -> str:
        token: str = client.get("/api/v1/widgets/daytrading-report", headers={"Origin": ORIGIN}).get_json()[
            "form_token"
        ]
        return token

    def test_the_definition_s_token_is_short_and_altering_its_time_or_its_mac_makes_it_a_forgery(
        self, app: Flask, client: Client
    ) -> None:
        token = self.definition_token(client)
        issued, _dot, mac = token.partition(".")
        assert len(token) < 25  # itsdangerous's were 72 characters, in every definition
        clock.advance(timedelta(seconds=5))
        earlier = int(issued, 36) - 60_000  # a minute older: past the fill time, if it were believed
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"
        antedated = ""
        while earlier:
            earlier, digit = divmod(earlier, 36)
            antedated = digits[digit] + antedated
        flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
        for forged in (f"{antedated}.{mac}", f"{issued}.{flipped}", f"{issued}.{mac}=", f"{issued.upper()}.{mac}"):
            response = post(client, valid_body(form_token=forged))
            assert response.status_code == 422, forged
            assert set(response.get_json()["errors"]) == {"form_token"}
        assert counts(app) == NOTHING
        assert post(client, valid_body(form_token=token)).status_code == 202
        assert counts(app)["Submission"] == 1

    def test_a_token_from_another_widget_s_definition_is_refused(self, app: Flask, client: Client) -> None:
        with app.app_context():
            make_demo_widget("another-widget")
            db.session.commit()
        other = client.get("/api/v1/widgets/another-widget", headers={"Origin": ORIGIN}).get_json()["form_token"]
        clock.advance(timedelta(seconds=5))
        assert post(client, valid_body(form_token=other)).status_code == 422
        assert counts(app) == NOTHING

    def test_a_token_signed_before_the_secret_key_rotated_still_works_and_one_under_a_dropped_key_not(
        self, app: Flask
    ) -> None:
        settings = app.config["SETTINGS"]
        with app.app_context():
            view = widget_view("daytrading-report")
            issued = clock.now()
            token = issued_form_token(view.id, issued)
            app.config["SETTINGS"] = dataclasses.replace(settings, secret_keys=(NEW_KEY, *settings.secret_keys))
            assert issued_form_token(view.id, issued) != token  # signed with the newest key from now on
            assert form_token_issued(view, token) == issued
            app.config["SETTINGS"] = dataclasses.replace(settings, secret_keys=(NEW_KEY,))
            assert form_token_issued(view, token) is None

    @pytest.mark.parametrize("token", [None, "", "forged.token.value"])
    def test_a_submission_without_a_genuine_token_is_refused(
        self, app: Flask, client: Client, token: str | None
    ) -> None:
        response = post(client, valid_body(form_token=token))
        assert response.status_code == 422
        assert set(response.get_json()["errors"]) == {"form_token"}
        assert counts(app) == NOTHING


class TestNothingTellsAddressesApart:
    @pytest.mark.keeps_intakes
    def test_every_state_gets_the_same_answer_from_the_same_work(self, app: Flask, client: Client) -> None:
        """The timing itself is compared in bench/timing.py; here, what cannot flake: the same bytes, and the
        same work behind them, one intake row written and nothing else read or changed, whatever the address,
        a script's included (the worker drops it)."""
        states = {
            "pending": SubscriberStatus.PENDING,
            "confirmed": SubscriberStatus.CONFIRMED,
            "unsubscribed": SubscriberStatus.UNSUBSCRIBED,
            "bounced": SubscriberStatus.BOUNCED,
        }
        for name, status in states.items():
            post(client, valid_body(email=f"{name}@example.com"))
            store_waiting(app)
            with app.app_context():
                db.session.execute(
                    update(Subscriber).where(Subscriber.email == f"{name}@example.com").values(status=status)
                )
                db.session.commit()
        for _ in range(3):
            post(client, valid_body(email="capped@example.com"))
        store_waiting(app)
        seen = {}
        for name in ("new", *states, "capped", "bot"):
            extra = {"website": "https://spam.example"} if name == "bot" else {}
            before = counts(app), intakes(app)
            response = post(client, valid_body(email=f"{name}@example.com", **extra))
            assert response.status_code == 202, name
            assert counts(app) == before[0], name
            assert intakes(app) == before[1] + 1, name
            reader = response.get_json()["reader"]
            seen[name] = (response.data.replace(reader.encode(), b"R"), sorted(response.headers.items()))
        assert all(answer == seen["new"] for answer in seen.values()), seen


def store_waiting(app: Flask) -> None:
    with app.app_context():
        store_submissions()


def intakes(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Intake)) or 0


def link_paths(app: Flask) -> dict[str, str]:
    """A genuine confirm page, and every link page with a token that does not work."""
    with app.app_context():
        subscriber = db.session.scalars(select(Subscriber)).one()
        genuine = make_token(Purpose.CONFIRM, {"s": subscriber.id, "sub": subscriber.submissions[0].id})
    return {"confirm (genuine)": f"/confirm/{genuine}"} | {
        page: f"/{page}/not-a-token" for page in LINK_PAGES
    }


class TestHeaders:
    def test_link_pages_forbid_script_and_framing_and_send_no_referrer(
        self, app: Flask, client: Client
    ) -> None:
        post(client, valid_body())
        for name, path in link_paths(app).items():
            response = client.get(path)
            assert response.mimetype == "text/html", name
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'none'" in policy, name
            assert "frame-ancestors 'none'" in policy, name
            assert response.headers["X-Frame-Options"] == "DENY", name
            assert response.headers["Referrer-Policy"] == "no-referrer", name
            assert response.headers["X-Content-Type-Options"] == "nosniff", name
            assert "<script" not in response.get_data(as_text=True), name

    def test_error_pages_carry_the_page_policy(self, client: Client) -> None:
        for path, status in (("/no-such-page", 404), ("/confirm/x/y", 404)):
            response = client.get(path)
            assert response.status_code == status
            assert "script-src 'none'" in response.headers["Content-Security-Policy"]
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert response.headers["X-Content-Type-Options"] == "nosniff"

    def test_nosniff_on_the_api_and_the_loader_and_the_admin_keeps_its_own_policy(
        self, client: Client
    ) -> None:
        for path in ("/api/v1/widgets/daytrading-report", "/api/openapi.json", "/healthz", "/embed.js"):
            assert client.get(path).headers["X-Content-Type-Options"] == "nosniff", path
        assert post(client, valid_body()).headers["X-Content-Type-Options"] == "nosniff"
        admin = client.get("/admin/login")
        assert "script-src 'self'" in admin.headers["Content-Security-Policy"]
        assert "script-src 'none'" not in admin.headers["Content-Security-Policy"]

    def test_no_hsts_under_http(self, client: Client) -> None:
        for path in ("/no-such-page", "/healthz", "/confirm/not-a-token"):
            assert "Strict-Transport-Security" not in client.get(path).headers

    @pytest.mark.settings(LEADCAPTURE_BASE_URL="https://nieuws.beleggen.example")
    def test_hsts_under_https(self, client: Client) -> None:
        for path in ("/no-such-page", "/healthz", "/confirm/not-a-token", "/admin/login"):
            assert client.get(path).headers["Strict-Transport-Security"].startswith("max-age="), path


class TestBodySizes:
    @pytest.mark.parametrize("page", LINK_PAGES)
    def test_an_oversized_form_on_a_link_page_is_refused(self, app: Flask, client: Client, page: str) -> None:
        post(client, valid_body())
        with app.app_context():
            subscriber = db.session.scalars(select(Subscriber)).one()
            token = make_token(Purpose.UNSUBSCRIBE, {"s": subscriber.id})
        before = counts(app)
        response = client.post(
            f"/{page}/{token}", data={"List-Unsubscribe": "One-Click", "pad": "x" * 40_000}
        )
        assert response.status_code == 413
        assert counts(app) == before
        with app.app_context():
            assert db.session.scalars(select(Subscriber)).one().status is SubscriberStatus.PENDING
