"""SQLite as an embedded store: readers never queue behind a writer, writers take the lock up front and take
turns."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text

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


def test_writers_take_turns_and_a_failed_write_does_not_hold_up_the_next(app: Flask, sqlite_path: str) -> None:
    """Writing transactions of one process wait their turn in it (and those of other processes on a lock file
    beside the database); a rollback, like a commit, lets the next writer in."""
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            with app.app_context():
                db.session.execute(text("INSERT INTO sweep_marks (name, after_id) VALUES (:name, 0)"), {"name": f"w{number}"})
                if number % 3 == 0:
                    db.session.rollback()  # a write that fails lets the next writer in, as a commit does
                else:
                    db.session.commit()
        except BaseException as error:
            errors.append(error)

    writers = [threading.Thread(target=write, args=(number,)) for number in range(24)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=10)  # a turn never given back would hold the next writer for the 30 s busy timeout
    assert not any(writer.is_alive() for writer in writers)
    assert errors == []
    with app.app_context():
        names = set(db.session.scalars(text("SELECT name FROM sweep_marks")))
    assert names == {f"w{number}" for number in range(24) if number % 3}
    assert Path(f"{sqlite_path}-writers").exists()


def test_a_writer_of_another_process_holds_this_one_until_it_commits(app: Flask, sqlite_path: str) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from sqlalchemy import create_engine, text\n"
            "from leadcapture.database import configure_engine\n"
            "engine = create_engine(sys.argv[1])\n"
            "configure_engine(engine)\n"
            "with engine.begin() as sql:\n"
            "    sql.execute(text(\"INSERT INTO sweep_marks (name, after_id) VALUES ('other', 0)\"))\n"
            "    print('holding', flush=True)\n"
            "    time.sleep(1)\n",
            f"sqlite:///{sqlite_path}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "holding\n"
        with app.app_context():
            db.session.execute(text("INSERT INTO sweep_marks (name, after_id) VALUES ('this', 0)"))
            # Its turn came once the other process had committed: the other's row is there to see.
            assert db.session.scalar(text("SELECT count(*) FROM sweep_marks WHERE name = 'other'")) == 1
            db.session.commit()
    finally:
        assert holder.wait(timeout=30) == 0
        if holder.stdout is not None:
            holder.stdout.close()
