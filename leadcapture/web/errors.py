"""HTTP errors as JSON under /api, as pages elsewhere; the security headers every response carries."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from leadcapture.config import current as current_settings
from leadcapture.i18n import normalize_locale

API_PREFIXES = ("/api/", "/healthz")

# The pages readers reach from email links, and error pages: no script at all, styles only from the page
# itself, forms only back to us, and nobody may frame them (no page of ours is meant to be framed; the widget
# renders in the host page itself, not in an iframe).
PAGE_CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src 'self' data:",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
# A year: browsers then refuse plain http for this host. Only sent when the base URL is https.
HSTS = "max-age=31536000"


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.after_request(_security_headers)


def _http_error(exc: HTTPException) -> tuple[Response | str, int] | Response:
    status = exc.code or 500
    if request.path.startswith(API_PREFIXES):
        return jsonify({"errors": {"request": exc.description or exc.name}}), status
    locale = normalize_locale(request.accept_languages.best_match(["nl", "en"]))
    response = Response(
        render_template("error.html", status=status, name=exc.name, locale=locale),
        status,
        mimetype="text/html",
    )
    protect_page(response)
    return response


def protect_page(response: Response) -> None:
    """Headers for an HTML page outside the admin (which sets its own policy)."""
    response.headers.setdefault("Content-Security-Policy", PAGE_CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Frame-Options", "DENY")  # frame-ancestors for browsers without CSP 2
    # The URL may hold a signed token: it must not leak to other sites through the Referer header.
    response.headers.setdefault("Referrer-Policy", "no-referrer")


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if current_settings().https:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response
