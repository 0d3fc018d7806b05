"""The OpenAPI description is the public contract: it lists every public endpoint, and schemathesis, run
against the live app with the demo content loaded, finds no server error and no response the description
does not allow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flask import Flask
from sqlalchemy import select

from leadcapture import clock
from leadcapture.config import BUNDLED_CONTENT_DIR
from leadcapture.extensions import db
from leadcapture.models import Submission, Subscriber
from leadcapture.services.capture import FIELDS
from leadcapture.tokens import Purpose, make_token
from leadcapture.web.openapi import openapi_document
from tests.fixtures.browser import LiveServer
from tests.support.app import FROZEN_AT, CliRunner, app_settings

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Per operation; with 17 operations and both databases this keeps the run well under a minute.
MAX_EXAMPLES = 15
SCHEMATHESIS_TIMEOUT = 120
# The public routes: every one must be described. The admin, the development inbox and static files are not
# public API.
PRIVATE_PREFIXES = ("/admin", "/static", "/dev/")


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    # Schemathesis sends many requests from one address; rate limiting would answer most with 429 and leave the
    # rest of the endpoint untested (test_a_rate_limited_submission_matches_the_description covers 429).
    marker = request.node.get_closest_marker("settings")
    return app_settings(
        database_url, **{"LEADCAPTURE_RATE_LIMITS": "off", **(marker.kwargs if marker else {})}
    )


@pytest.fixture
def demo(live_server: LiveServer) -> LiveServer:
    result = CliRunner(live_server.app).invoke(args=["content", "load", str(BUNDLED_CONTENT_DIR)])
    assert result.exit_code == 0, result.output
    return live_server


def described(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document: dict[str, Any] = response.get_json()
    return document


def test_every_public_route_is_described(app: Flask) -> None:
    paths = described(app)["paths"]
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PRIVATE_PREFIXES) or rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        assert path in paths, f"{rule.rule} is not in the OpenAPI description"
        # HEAD goes with GET, and Flask's automatic OPTIONS is no endpoint of ours (the preflights are).
        methods = set(rule.methods or ()) - {"HEAD"}
        if rule.provide_automatic_options:
            methods.discard("OPTIONS")
        assert methods <= {method.upper() for method in paths[path]}, rule.rule


def test_the_submission_schema_names_every_field_the_endpoint_accepts(app: Flask) -> None:
    schema = described(app)["components"]["schemas"]["Submission"]
    assert set(schema["properties"]) == FIELDS
    assert schema["additionalProperties"] is False  # and nothing else: unknown fields get 400
    responses = described(app)["paths"]["/api/v1/widgets/{slug}/submissions"]["post"]["responses"]
    assert set(responses) == {"202", "400", "403", "404", "413", "415", "422", "429"}
    assert "Retry-After" in responses["429"]["headers"]


def test_the_description_is_a_valid_openapi_document() -> None:
    from schemathesis.openapi import from_dict

    schema = from_dict(openapi_document("http://127.0.0.1:5000"))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17


def validates(document: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    """Check one real response against the description, the way the fuzzing run cannot reach it."""
    response = document["paths"][path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": document["components"]})


def test_a_real_submission_and_the_link_pages_match_the_description(demo: LiveServer) -> None:
    """Schemathesis cannot forge a form token or a link token; these requests carry real ones."""
    app = demo.app
    client = app.test_client()
    document = described(app)
    clock.freeze(FROZEN_AT)
    definition = client.get("/api/v1/widgets/daytrading-report")
    assert definition.status_code == 200
    validates(document, "/api/v1/widgets/{slug}", "get", 200, definition.get_json())
    for loader_asks in ("?r=0", "?r=1", "?returning=0"):
        asked = client.get("/api/v1/widgets/daytrading-report" + loader_asks)
        validates(document, "/api/v1/widgets/{slug}", "get", 200, asked.get_json())

    clock.freeze(FROZEN_AT + timedelta(seconds=20))  # a person takes a while to fill in the form
    body = {
        "email": "lezer@example.com",
        "answers": {
            "is_investor": "yes",
            "daytrading_experience": "none",
            "investment_interests": ["stocks"],
        },
        "consent": {"report": True, "sequences": False},
        "form_token": definition.get_json()["form_token"],
    }
    accepted = client.post("/api/v1/widgets/daytrading-report/submissions", json=body)
    assert accepted.status_code == 202, accepted.get_json()
    validates(document, "/api/v1/widgets/{slug}/submissions", "post", 202, accepted.get_json())
    invalid = client.post("/api/v1/widgets/daytrading-report/submissions", json={**body, "email": "nope"})
    assert invalid.status_code == 422
    validates(document, "/api/v1/widgets/{slug}/submissions", "post", 422, invalid.get_json())

    with app.app_context():
        subscriber = db.session.scalars(select(Subscriber)).one()
        submission = db.session.scalars(select(Submission)).one()
        tokens = {
            "/confirm/{token}": make_token(Purpose.CONFIRM, {"s": subscriber.id, "sub": submission.id}),
            "/unsubscribe/{token}": make_token(Purpose.UNSUBSCRIBE, {"s": subscriber.id}),
            "/preferences/{token}": make_token(Purpose.PREFERENCES, {"s": subscriber.id}),
            "/download/{token}": make_token(
                Purpose.DOWNLOAD, {"s": subscriber.id, "sub": submission.id, "r": submission.report_id}
            ),
        }
    for template, token in tokens.items():
        for method in ("get", "post"):
            response = getattr(client, method)(template.replace("{token}", token))
            documented = document["paths"][template][method]["responses"]
            assert response.status_code == 200, (template, method, response.status_code)
            assert "200" in documented
            media_types = documented["200"]["content"]
            assert response.mimetype in media_types or "*/*" in media_types


SUBMISSIONS = "/api/v1/widgets/{slug}/submissions"
ALLOWED = {"Origin": "https://beleggen.example"}


def test_every_refusal_of_a_submission_matches_the_description(demo: LiveServer) -> None:
    client = demo.app.test_client()
    document = described(demo.app)
    url = SUBMISSIONS.replace("{slug}", "daytrading-report")
    refusals = {
        400: client.post(url, data="{not json", content_type="application/json", headers=ALLOWED),
        403: client.post(url, json={}, headers={"Origin": "https://elders.example"}),
        404: client.post(SUBMISSIONS.replace("{slug}", "no-such-widget"), json={}, headers=ALLOWED),
        413: client.post(url, json={"email": "x" * 20_000}, headers=ALLOWED),
        415: client.post(url, data="email=a@example.com", headers=ALLOWED),
        422: client.post(url, json={"answers": {}, "consent": {"report": True}}, headers=ALLOWED),
    }
    for status, response in refusals.items():
        assert response.status_code == status, (status, response.get_data(as_text=True))
        assert response.mimetype == "application/json"
        validates(document, SUBMISSIONS, "post", status, response.get_json())


@pytest.mark.settings(LEADCAPTURE_RATE_LIMITS="on")
def test_a_rate_limited_submission_matches_the_description(demo: LiveServer) -> None:
    client = demo.app.test_client()
    document = described(demo.app)
    url = SUBMISSIONS.replace("{slug}", "daytrading-report")
    statuses = [client.post(url, json={}, headers=ALLOWED) for _ in range(40)]
    limited = [response for response in statuses if response.status_code == 429]
    assert limited, [response.status_code for response in statuses]
    response = limited[0]
    assert response.mimetype == "application/json"
    validates(document, SUBMISSIONS, "post", 429, response.get_json())
    assert int(response.headers["Retry-After"]) >= 1


def schemathesis_command() -> list[str]:
    found = shutil.which("st") or shutil.which("schemathesis")
    if found:
        return [found]
    return [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()"]


def test_schemathesis_finds_no_server_error_and_no_response_outside_the_description(
    demo: LiveServer, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            *schemathesis_command(),
            "run",
            f"{demo.url}/api/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "20260301",
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--report-dir",
            str(tmp_path / "report"),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=SCHEMATHESIS_TIMEOUT,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
