"""The app bench/capture.py serves: leadcapture's own app plus the baseline, a bare JSON endpoint.

    gunicorn bench.capture_app:app        # from the repository root, with the bench's LEADCAPTURE_* env

`POST /bench/bare` is the least any endpoint that accepts a submission must do: parse the JSON body, store it
durably (one row in `bench_bare`, committed), answer JSON. It is registered on the very app `wsgi:app` serves
(same configuration, extensions, engine, SQLite pragmas and transaction handling, app-wide hooks), so the
comparison with `POST /api/v1/widgets/{slug}/submissions` isolates what capturing a submission costs beyond
that. bench/capture.py creates the table after `leadcapture db upgrade`:

    bench_bare (id integer primary key / serial, body text not null)
"""

from __future__ import annotations

import json

from flask import Response, jsonify, request
from sqlalchemy import text

from leadcapture import create_app
from leadcapture.extensions import csrf, db

BARE_PATH = "/bench/bare"
INSERT = text("INSERT INTO bench_bare (body) VALUES (:body)")
ACCEPTED = {"status": "accepted"}

app = create_app()


def bare() -> tuple[Response, int]:
    """Parse, store, answer: 202 {"status": "accepted"}; 415 for a body that is not JSON."""
    if not request.is_json:
        return jsonify({"errors": {"body": "send application/json"}}), 415
    body = request.get_json()  # malformed JSON: 400
    db.session.execute(INSERT, {"body": json.dumps(body)})
    db.session.commit()
    return jsonify(ACCEPTED), 202


csrf.exempt(bare)  # a JSON API endpoint, like the widget API's blueprint
app.add_url_rule(BARE_PATH, "bench_bare", bare, methods=["POST"])
