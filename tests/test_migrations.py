"""The migrations build exactly the schema the models describe, carry the data across, and take it down again."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import LargeBinary, bindparam, inspect, select, text

from leadcapture import create_app
from leadcapture.extensions import db
from leadcapture.models import Report, ReportFile, Widget
from leadcapture.models.base import JSONType
from tests.factories import PDF_BYTES

SHA256 = hashlib.sha256(PDF_BYTES).hexdigest()
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


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


BEFORE_REPORT_FILES = "e2b9f4c61a7d"


def test_a_report_s_single_file_moves_to_report_files_and_back(settings: dict[str, Any]) -> None:
    app = create_app(settings)
    with app.app_context():
        try:
            db.drop_all()
            upgrade(revision=BEFORE_REPORT_FILES)
            with db.engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO reports (slug, title, description, filename, content_type, size, sha256, "
                        "data, created_at, updated_at) VALUES ('guide', :title, :title, 'guide.pdf', "
                        "'application/pdf', :size, :sha256, :data, :now, :now)"
                    ).bindparams(bindparam("title", type_=JSONType), bindparam("data", type_=LargeBinary)),
                    {
                        "title": {"en": "Guide"},
                        "size": len(PDF_BYTES),
                        "sha256": SHA256,
                        "data": PDF_BYTES,
                        "now": NOW,
                    },
                )
                # A widget shows it: the report's row must survive the upgrade as it is.
                connection.execute(
                    text(
                        "INSERT INTO widgets (slug, report_id, locale, allowed_origins, texts, ask_first_name, "
                        "created_at, updated_at) SELECT 'guide-widget', id, 'nl', :none, :none, false, :now, :now "
                        "FROM reports"
                    ).bindparams(bindparam("none", type_=JSONType)),
                    {"none": [], "now": NOW},
                )
            upgrade()
            report = db.session.scalars(select(Report)).one()
            assert db.session.scalars(select(Widget.report_id)).one() == report.id
            assert [
                (
                    file.locale,
                    file.position,
                    file.filename,
                    file.content_type,
                    file.size,
                    file.sha256,
                    file.data,
                )
                for file in report.files
            ] == [(None, 0, "guide.pdf", "application/pdf", len(PDF_BYTES), SHA256, PDF_BYTES)]
            assert report.file_for("nl").data == PDF_BYTES

            # A file per locale, the Dutch one first: going back keeps the first listed.
            dutch = PDF_BYTES + b"% nl\n"
            report.files = [
                ReportFile(
                    locale=locale,
                    position=position,
                    filename=name,
                    content_type="application/pdf",
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    data=data,
                )
                for position, (locale, name, data) in enumerate(
                    [("nl", "gids.pdf", dutch), ("en", "guide.pdf", PDF_BYTES)]
                )
            ]
            db.session.commit()
            db.session.remove()
            downgrade(revision=BEFORE_REPORT_FILES)
            with db.engine.connect() as connection:
                rows = connection.execute(
                    text("SELECT slug, filename, size, sha256, data FROM reports")
                ).all()
            assert [(slug, name, size, sha256, bytes(data)) for slug, name, size, sha256, data in rows] == [
                ("guide", "gids.pdf", len(dutch), hashlib.sha256(dutch).hexdigest(), dutch)
            ]
            assert "report_files" not in inspect(db.engine).get_table_names()
            downgrade(revision="base")
            with db.engine.begin() as connection:
                connection.exec_driver_sql("DROP TABLE alembic_version")
        finally:
            db.session.remove()
            db.engine.dispose()
