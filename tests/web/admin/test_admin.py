"""Signing in to the admin, signing out for real, and the dev inbox's gate."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from leadcapture.extensions import db
from leadcapture.models import Role
from leadcapture.services.accounts import create_user
from tests.factories import make_demo_widget
from tests.support.admin import ADMIN, ADMIN_PASSWORD, EDITOR, add_account, csrf_token, sign_in, signed_in
from tests.support.app import app_settings
from tests.support.submissions import post, valid_body

pytestmark = pytest.mark.settings(WTF_CSRF_ENABLED=True)


@pytest.fixture
def editor(app: Flask) -> None:
    add_account(app)


def test_admin_pages_need_a_signed_in_account(client: FlaskClient) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")


@pytest.mark.usefixtures("editor")
def test_sign_in_shows_the_admin_and_sign_out_ends_the_session_server_side(client: FlaskClient) -> None:
    response = sign_in(client, "Editor@beleggen.example")  # the address in any case
    assert response.status_code == 302
    cookie = client.get_cookie("leadcapture_session")
    assert cookie is not None
    assert "editor@beleggen.example" in client.get("/admin/").text
    copied = cookie.value
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    client.set_cookie("leadcapture_session", copied)  # a copy of the old cookie no longer opens anything
    assert client.get("/admin/").status_code == 302


@pytest.mark.usefixtures("editor")
@pytest.mark.parametrize("password", ["wrong password", "", "x" * 5000])
def test_a_wrong_password_is_refused(client: FlaskClient, password: str) -> None:
    response = sign_in(client, password=password)
    assert response.status_code == 200
    # An error, announced as one: never the green notice a saved change gets.
    assert 'class="flash message"' not in response.text
    if password == "wrong password":  # the others are refused by the form's own checks, at the field
        assert '<p class="flash error" role="alert">Unknown email address or wrong password.</p>' in response.text
    assert client.get("/admin/").status_code == 302


@pytest.mark.usefixtures("editor")
def test_sign_in_without_a_csrf_token_fails(client: FlaskClient) -> None:
    response = client.post("/admin/login", data={"email": EDITOR, "password": ADMIN_PASSWORD})
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 302


def test_the_dev_inbox_is_closed_outside_the_demo(app: Flask, client: FlaskClient) -> None:
    assert client.get("/dev/inbox/").status_code == 403


@pytest.mark.drains_outbox
@pytest.mark.usefixtures("editor")
def test_the_dev_inbox_shows_sent_mail_with_clickable_links(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        make_demo_widget()
        db.session.commit()
    post(client, valid_body())
    sign_in(client)
    inbox = client.get("/dev/inbox/")
    assert inbox.status_code == 200
    assert "lezer@example.com" in inbox.text
    message_path = re.search(r'href="(/dev/inbox/\d+)"', inbox.text)
    assert message_path
    message = client.get(message_path.group(1)).text
    assert re.search(r'<a href="http://127\.0\.0\.1:5000/confirm/[^"]+"', message)
    assert "X-Leadcapture-Kind" in message


def test_the_dev_inbox_is_open_in_the_demo(database_url: str) -> None:
    from leadcapture import create_app

    app = create_app(app_settings(database_url, DEMO=True))
    with app.app_context():
        db.create_all()
        try:
            assert app.test_client().get("/dev/inbox/").status_code == 200
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


@pytest.mark.usefixtures("editor")
def test_admin_pages_carry_a_content_security_policy_without_inline_script(client: FlaskClient) -> None:
    sign_in(client)
    for path in ("/admin/", "/admin/login"):
        policy = client.get(path).headers["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["script-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert directives["object-src"] == "'none'"


@pytest.mark.usefixtures("editor")
def test_repeated_wrong_passwords_for_one_account_are_throttled(client: FlaskClient) -> None:
    for _ in range(5):
        assert sign_in(client, password="wrong password").status_code == 200
    refused = sign_in(client)  # even the right password waits until the window has passed
    assert refused.status_code == 429
    assert client.get("/admin/").status_code == 302


@pytest.mark.usefixtures("editor")
def test_throttling_counts_failures_only(client: FlaskClient) -> None:
    for _ in range(8):
        assert sign_in(client).status_code == 302
        client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    assert sign_in(client).status_code == 302


@pytest.mark.usefixtures("editor")
def test_guessing_across_many_accounts_from_one_address_is_throttled(client: FlaskClient) -> None:
    for attempt in range(20):
        token = csrf_token(client)
        response = client.post(
            "/admin/login",
            data={"email": f"guess{attempt}@beleggen.example", "password": "x", "csrf_token": token},
        )
        assert response.status_code == 200
    assert sign_in(client).status_code == 429


def test_the_session_cookie_is_secure_and_http_only_under_https(database_url: str) -> None:
    from leadcapture import create_app

    app = create_app(app_settings(database_url, LEADCAPTURE_BASE_URL="https://news.example"))
    with app.app_context():
        db.create_all()
        try:
            create_user(EDITOR, ADMIN_PASSWORD, Role.EDITOR)
            db.session.commit()
            client = app.test_client()
            page = client.get("/admin/login", base_url="https://news.example").text
            token = re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', page)
            assert token
            response = client.post(
                "/admin/login",
                data={"email": EDITOR, "password": ADMIN_PASSWORD, "csrf_token": token.group(1)},
                base_url="https://news.example",
                headers={"Referer": "https://news.example/admin/login"},
            )
            assert response.status_code == 302
            cookie = response.headers["Set-Cookie"]
            assert cookie.startswith("leadcapture_session=")
            assert {"Secure", "HttpOnly", "SameSite=Lax"} <= {part.strip() for part in cookie.split(";")}
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_every_admin_form_refuses_a_post_without_its_csrf_token(app: Flask) -> None:
    add_account(app, ADMIN, Role.ADMIN)
    with app.app_context():
        make_demo_widget()
        db.session.commit()
        before = row_counts()
    client = signed_in(app, ADMIN)
    posts = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("admin.") and "POST" in (rule.methods or ())
    ]
    assert len(posts) >= 15  # every area's forms, not just sign-in and sign-out
    for rule in posts:
        # Any key will do: the token is checked before a view looks anything up.
        path = re.sub(r"<int:\w+>", "1", re.sub(r"<(?!int:)\w+>", "is_investor", rule.rule))
        response = client.post(path, data={"email": ADMIN, "role": "editor", "password": "x" * 20})
        assert response.status_code == 400, path
    with app.app_context():
        assert row_counts() == before
    assert client.get("/admin/").status_code == 200  # still signed in: sign-out without a token did nothing


def row_counts() -> dict[str, int]:
    """Rows per table, to show that refused requests changed nothing."""
    return {
        table.name: db.session.scalar(select(func.count()).select_from(table)) or 0
        for table in db.metadata.sorted_tables
    }
