from flask import Flask
from flask.testing import FlaskClient

from leadcapture.extensions import db


def test_app_starts_on_each_database(app: Flask) -> None:
    with app.app_context():
        assert db.session.execute(db.text("select 1")).scalar() == 1


def test_the_app_serves_its_icon(client: FlaskClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.data.startswith(b"<svg")
    assert "max-age=86400" in response.headers["Cache-Control"]
    head = client.head("/favicon.ico")
    assert head.status_code == 200
    assert head.data == b""
