"""HTTP errors as JSON under /api, as pages elsewhere."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from leadcapture.i18n import normalize_locale

API_PREFIXES = ("/api/", "/healthz")


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.after_request(_security_headers)


def _http_error(exc: HTTPException) -> tuple[Response | str, int]:
    status = exc.code or 500
    if request.path.startswith(API_PREFIXES):
        return jsonify({"errors": {"request": exc.description or exc.name}}), status
    locale = normalize_locale(request.accept_languages.best_match(["nl", "en"]))
    return render_template("error.html", status=status, name=exc.name, locale=locale), status


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response
