"""Signing in to the admin from a test: an account, the CSRF token a form carries, and the sign-in itself.

Modules that post the admin's forms as a browser would turn CSRF checking on for their app with
`pytestmark = pytest.mark.settings(WTF_CSRF_ENABLED=True)` (see `settings` in tests/conftest.py).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from leadcapture.definitions import ContentBundle
from leadcapture.extensions import db
from leadcapture.models import Role
from leadcapture.services import editing
from leadcapture.services.accounts import create_user
from tests.support.app import Client

ADMIN_PASSWORD = "correct horse battery staple"
EDITOR = "editor@beleggen.example"
ADMIN = "admin@beleggen.example"


def add_account(app: Flask, email: str = EDITOR, role: Role = Role.EDITOR) -> None:
    """An account that signs in with ADMIN_PASSWORD."""
    with app.app_context():
        create_user(email, ADMIN_PASSWORD, role)
        db.session.commit()


def csrf_token(client: FlaskClient, path: str = "/admin/login") -> str:
    """The CSRF token in the form on `path`, as this client's session has it."""
    match = re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


def sign_in(client: FlaskClient, email: str = EDITOR, password: str = ADMIN_PASSWORD) -> TestResponse:
    """Post the sign-in form with its token; a redirect (302) means signed in."""
    token = csrf_token(client)
    return client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token})


def signed_in(app: Flask, email: str = EDITOR) -> Client:
    """A new client, signed in to the account at `email`."""
    client: Client = app.test_client()  # type: ignore[assignment]
    response = sign_in(client, email)
    assert response.status_code == 302, response.text
    return client


def reword_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give every problem the admin's saves find a new wording, keeping where it is: the admin must place
    problems by their field and line, never by what they say."""
    checked = editing.check_in_memory

    def reworded(*args: Any, **kwargs: Any) -> ContentBundle:
        bundle = checked(*args, **kwargs)
        problems = [replace(problem, message=f"Reworded {problem.code}.") for problem in bundle.problems]
        return replace(bundle, problems=problems)

    monkeypatch.setattr(editing, "check_in_memory", reworded)
