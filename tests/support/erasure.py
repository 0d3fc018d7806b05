"""What an erasure must leave behind: the rows and every stored value of a person."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import MetaData, func, select

from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    ConsentEvent,
    Delivery,
    Enrollment,
    Submission,
)

START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # a Monday morning in Amsterdam: within sending hours


def answers(experience: str) -> dict[str, Any]:
    return {"is_investor": "yes", "daytrading_experience": experience, "interests": ["stocks"]}


def rows_of(app: Flask, subscriber_id: int) -> dict[str, int]:
    with app.app_context():
        return {
            model.__tablename__: db.session.scalar(
                select(func.count()).select_from(model).where(model.subscriber_id == subscriber_id)
            )
            or 0
            for model in PERSONAL
        }


def every_value(app: Flask) -> list[tuple[str, str, str]]:
    """Every value of every column of every table in the database (reflected, so nothing is left out)."""
    found = []
    with app.app_context():
        metadata = MetaData()
        metadata.reflect(bind=db.engine)
        with db.engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row in connection.execute(table.select()).mappings():
                    for column, value in row.items():
                        if isinstance(value, bytes | memoryview):
                            text = bytes(value).decode("utf-8", "replace")
                        elif isinstance(value, dict | list):
                            text = json.dumps(value, ensure_ascii=False)
                        else:
                            text = str(value)
                        found.append((table.name, column, text.lower()))
    return found


# Every model holding rows about one person, by the column naming them.
PERSONAL = (Answer, ConsentEvent, Submission, Enrollment, Delivery)
