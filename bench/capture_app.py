"""The app bench/capture.py and bench/clicks.py serve: leadcapture's own app plus their baselines, a bare JSON
endpoint and a bare redirect.

    gunicorn bench.capture_app:app        # from the repository root, with the bench's LEADCAPTURE_* env

`POST /bench/bare` is the least any endpoint that accepts a submission must do: parse the JSON body, store it
durably (one row in `bench_bare`, committed), answer JSON. It is registered on the very app `wsgi:app` serves
(same configuration, extensions, engine, SQLite pragmas and transaction handling, app-wide hooks), so the
comparison with `POST /api/v1/widgets/{slug}/submissions` isolates what capturing a submission costs beyond
that. bench/capture.py creates the table after `leadcapture db upgrade`:

    bench_bare (id integer primary key / serial, body text not null)

`GET /bench/redirect/<delivery>/<position>` is the least a redirect whose target is kept in the database must
do: read the link where the sent email's row keeps it (`deliveries.links`, by primary key), and answer 302 to
it with the headers `GET /l/<token>` sends. It verifies no token and records nothing: bench/clicks.py compares
`/l/<token>`, which does both, with it.
"""

from __future__ import annotations

import json

from flask import Response, abort, jsonify, redirect, request
from sqlalchemy import select, text

from leadcapture import create_app
from leadcapture.extensions import csrf, db
from leadcapture.models import Delivery

BARE_PATH = "/bench/bare"
BARE_REDIRECT_PATH = "/bench/redirect/<int:delivery_id>/<int:position>"
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


def bare_redirect(delivery_id: int, position: int) -> Response:
    """Read where a sent link leads and answer 302 to it; 404 for a link no email has."""
    links = db.session.scalar(select(Delivery.links).where(Delivery.id == delivery_id))
    if not isinstance(links, list) or not 0 <= position < len(links):
        abort(404)
    response = redirect(str(links[position][0]), 302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


app.add_url_rule(BARE_REDIRECT_PATH, "bench_bare_redirect", bare_redirect, methods=["GET"])
