from flask import Flask

from leadcapture.extensions import db


def test_app_starts_on_each_database(app: Flask) -> None:
    with app.app_context():
        assert db.session.execute(db.text("select 1")).scalar() == 1
