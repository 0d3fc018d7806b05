"""SQLite as an embedded store: readers never queue behind a writer, writers take the lock up front."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from flask import Flask

from leadcapture.extensions import db
from tests.factories import make_demo_widget
from tests.support.submissions import form_token


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """These tests are about SQLite's locking: no PostgreSQL variant."""
    return f"sqlite:///{tmp_path / 'leadcapture.sqlite'}"


@pytest.fixture
def sqlite_path(app: Flask, tmp_path: Path) -> str:
    with app.app_context():
        make_demo_widget()
        db.session.commit()
    return str(tmp_path / "leadcapture.sqlite")


def test_pages_and_widget_definitions_are_served_while_another_process_writes(
    app: Flask, sqlite_path: str
) -> None:
    writer = sqlite3.connect(sqlite_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock for as long as it likes
    try:
        client = app.test_client()
        outcome: dict[str, int] = {}

        def read() -> None:
            outcome["healthz"] = client.get("/healthz").status_code
            outcome["widget"] = client.get("/api/v1/widgets/daytrading-report").status_code

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=5)  # a reader that waited for the lock would take the 30 s busy timeout
        assert not reader.is_alive()
        assert outcome == {"healthz": 200, "widget": 200}
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_writing_request_waits_for_the_lock_instead_of_failing(app: Flask, sqlite_path: str) -> None:
    writer = sqlite3.connect(sqlite_path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: writer.execute("ROLLBACK"))
    release.start()
    try:
        response = app.test_client().post(
            "/api/v1/widgets/daytrading-report/submissions",
            json={
                "email": "lezer@example.com",
                "answers": {"is_investor": "yes", "daytrading_experience": "none", "interests": ["etfs"]},
                "consent": {"report": True},
                "form_token": form_token(),
            },
        )
        assert response.status_code == 202
    finally:
        release.join()
        writer.close()
