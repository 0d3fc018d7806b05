"""The migrations build exactly the schema the models describe, and take it down again."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from leadcapture import create_app
from leadcapture.extensions import db


def test_upgrade_matches_the_models_and_downgrade_removes_everything(settings: dict[str, Any]) -> None:
    app = create_app(settings)
    with app.app_context():
        try:
            # Other tests on this database build the schema with create_all; start from nothing.
            db.drop_all()
            upgrade()
            with db.engine.connect() as connection:
                differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
            assert differences == []
            downgrade(revision="base")
            assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
            with db.engine.begin() as connection:
                connection.exec_driver_sql("DROP TABLE alembic_version")
        finally:
            db.session.remove()
            db.engine.dispose()
