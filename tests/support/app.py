"""The test app's settings and test client, shared by conftest.py and the modules that build apps of their own."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient, FlaskCliRunner

from leadcapture.cli import main
from leadcapture.database import SAFE_METHODS
from leadcapture.jobs import drain_outbox, store_submissions

SECRET = "test-secret-key-0123456789"

FROZEN_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def require(available: bool, reason: str) -> None:
    """Skip a test whose real dependency is missing, except in CI where such a skip is a failure."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


def app_settings(database_url: str, **extra: Any) -> dict[str, Any]:
    """The settings every test app starts from."""
    return {
        "TESTING": True,
        "WIDGET_CACHE_SECONDS": 0,
        "LEADCAPTURE_DATABASE_URL": database_url,
        "LEADCAPTURE_SECRET_KEY": SECRET,
        "LEADCAPTURE_BASE_URL": "http://127.0.0.1:5000",
        "LEADCAPTURE_MAIL_URL": "outbox:",
        "LEADCAPTURE_MAIL_FROM": "Beleggen <nieuws@beleggen.example>",
        **extra,
    }


class Client(FlaskClient):
    """A test client that stores the submissions a POST accepted before it hands back the response, and,
    in a test marked `drains_outbox`, sends what is due, as a running worker would within a second."""

    stores_after_each_request = True
    sends_after_each_request = False

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        stores = self.stores_after_each_request and response.request.method not in SAFE_METHODS
        if stores or self.sends_after_each_request:
            with self.application.app_context():
                if stores:
                    store_submissions()
                if self.sends_after_each_request:
                    drain_outbox()
        return response


class DrainingClient(Client):
    sends_after_each_request = True


class IntakeClient(Client):
    """Leaves accepted submissions waiting for the worker (a test marked `keeps_intakes`)."""

    stores_after_each_request = False


class CliRunner(FlaskCliRunner):
    """Invokes the `leadcapture` command (not `app.cli`) against the test app."""

    def invoke(self, cli: Any = None, args: Any = None, **kwargs: Any) -> Any:
        return super().invoke(cli or main, args, **kwargs)
