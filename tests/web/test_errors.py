"""Input no route can hold, a database that cannot be reached, a method a route does not take: a clear 4xx or
503 with what a client needs to act on it, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from leadcapture import create_app
from leadcapture.extensions import db
from leadcapture.i18n import translate
from leadcapture.models import Role
from leadcapture.services.accounts import create_user
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_demo_widget, make_question, make_report, make_sequence
from tests.support.app import app_settings

ORIGIN = "https://beleggen.example"


@pytest.fixture
def admin(app: Flask, client: FlaskClient) -> FlaskClient:
    """The client, signed in as an admin, with a row behind each kind of admin URL."""
    with app.app_context():
        user = create_user("admin@beleggen.example", "correct horse battery staple", Role.ADMIN)
        make_demo_widget()
        make_question("other")
        make_report("other-report")
        make_sequence("beginners", {})
        db.session.commit()
        signed_in = {"user_id": user.id, "session_version": user.session_version}
    with client.session_transaction() as session:
        session.update(signed_in)
    return client


NUL_PATHS = [
    "/api/v1/widgets/%00",
    "/api/v1/widgets/daytrading-report%00",
    "/embed.js%00",
    "/confirm/%00",
    "/preferences/abc%00def",
    "/admin/questions/%00",
    "/admin/questions/is_investor%00",
    "/admin/reports/other-report%00",
    "/admin/reports/%00/file",
    "/admin/widgets/%00",
    "/admin/sequences/beginners%00",
    "/admin/sequences/%00/switch-off",
    "/dev/inbox/%00",
]


@pytest.mark.parametrize("path", NUL_PATHS)
def test_a_nul_byte_in_the_path_is_not_found(admin: FlaskClient, path: str) -> None:
    assert admin.get(path).status_code == 404
    assert admin.head(path).status_code == 404
    # A POST may be refused for its missing CSRF token first: a 400 then, never a 500.
    assert admin.post(path).status_code in (400, 404)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/widgets/daytrading-report?ref=%00",
        "/admin/subscribers/?q=a%00b",
        "/admin/journey?subscriber=%00",
        "/admin/sequences/audience-count?rule-is_investor=%00",
        "/admin/?period=7%00",
        "/admin/login?next=/admin/%00",
    ],
)
def test_a_nul_byte_in_a_query_argument_is_a_bad_request(admin: FlaskClient, path: str) -> None:
    assert admin.get(path).status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/admin/subscribers/99999999999",
        "/admin/subscribers/2147483648/erase",
        "/admin/accounts/99999999999",
        "/dev/inbox/99999999999",
        "/dev/inbox/99999999999.eml",
    ],
)
def test_an_id_beyond_what_the_database_holds_is_not_found(admin: FlaskClient, path: str) -> None:
    assert admin.get(path).status_code == 404
    assert admin.post(path).status_code in (404, 405)


def test_the_largest_id_the_database_holds_is_still_looked_up(admin: FlaskClient) -> None:
    assert admin.get("/admin/subscribers/2147483647").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/v1/widgets/daytrading-report/submissions", {"OPTIONS", "POST"}),
        ("GET", "/api/v1/mail-events", {"OPTIONS", "POST"}),
        ("POST", "/embed.js", {"GET", "HEAD", "OPTIONS"}),
        ("PUT", "/unsubscribe/abc", {"GET", "HEAD", "OPTIONS", "POST"}),
        ("GET", "/dev/inbox/clock", {"OPTIONS", "POST"}),
        ("DELETE", "/admin/subscribers/1", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_a_method_the_route_does_not_take_answers_405_with_allow(
    admin: FlaskClient, method: str, path: str, allowed: set[str]
) -> None:
    response = admin.open(path, method=method)
    assert response.status_code == 405
    assert {part.strip() for part in response.headers["Allow"].split(",")} == allowed


UNREACHABLE = {
    "postgresql": "postgresql+psycopg://leadcapture@127.0.0.1:1/leadcapture",
    "sqlite": "sqlite:///{tmp}/no-such-folder/leadcapture.sqlite",
}


@pytest.mark.parametrize("engine", sorted(UNREACHABLE))
def test_a_database_out_of_reach_answers_503_with_retry_after(
    tmp_path: Path, engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(app_settings(UNREACHABLE[engine].format(tmp=tmp_path)))
    client = app.test_client()
    submission = client.post(
        "/api/v1/widgets/daytrading-report/submissions",
        json={
            "email": "lezer@example.com",
            "answers": {"is_investor": "yes"},
            "consent": {"report": True, "sequences": False},
            "page_url": ORIGIN + "/artikel",
        },
        headers={"Origin": ORIGIN, "Accept-Language": "nl-BE,nl;q=0.9,en;q=0.5"},
    )
    assert submission.status_code == 503
    assert int(submission.headers["Retry-After"]) > 0
    # For the reader, whose widget shows it: in their language, as the widget's is not known.
    assert submission.get_json()["errors"] == {"database": translate("nl", "widget.error_server")}
    with app.app_context():
        token = make_token(Purpose.PREFERENCES, {"s": 1})
    page = client.get("/preferences/" + token)
    assert page.status_code == 503
    assert int(page.headers["Retry-After"]) > 0
    assert page.mimetype == "text/html"
    assert "database" in caplog.text
    health = client.get("/healthz")
    assert health.status_code == 503
    assert int(health.headers["Retry-After"]) > 0
    with app.app_context():
        db.engine.dispose()
