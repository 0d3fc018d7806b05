"""HTTP errors as JSON under /api, as pages elsewhere; the headers every response carries, and Date, which
it leaves to the server."""

from __future__ import annotations

import logging
from contextlib import suppress

from flask import Flask, Response, abort, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from leadcapture.config import current as current_settings
from leadcapture.extensions import db
from leadcapture.i18n import LOCALES, normalize_locale
from leadcapture.services.widgets import error_message

log = logging.getLogger(__name__)

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
# Seconds a client is asked to wait while the database cannot be reached: a restart or a failover.
DATABASE_RETRY_AFTER = 30


def init_app(app: Flask) -> None:
    app.before_request(_refuse_nul)
    app.register_error_handler(HTTPException, _http_error)
    # Both mean the database cannot serve us now (down, unreachable, or busy past its timeout), not a bug.
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(InterfaceError, _database_unavailable)
    app.after_request(_security_headers)
    app.after_request(_no_date)


def _refuse_nul() -> None:
    """No URL of ours holds a NUL, and PostgreSQL refuses one in any text it compares or stores."""
    if "\0" in request.path:
        abort(404)
    if any("\0" in key or "\0" in value for key, value in request.args.items(multi=True)):
        abort(400)


def _database_unavailable(exc: SQLAlchemyError) -> Response:
    with suppress(SQLAlchemyError):  # the connection may be gone along with the transaction
        db.session.rollback()
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    log.error("database unavailable, %s %s answered 503: %s", request.method, request.path, cause)
    unavailable = ServiceUnavailable(
        "The database cannot be reached; try again shortly.", retry_after=DATABASE_RETRY_AFTER
    )
    return _error_response(unavailable, field="database")


def _http_error(exc: HTTPException) -> Response:
    return _error_response(exc, field="request")


def _error_response(exc: HTTPException, *, field: str) -> Response:
    status = exc.code or 500
    if request.path.startswith(API_PREFIXES):
        message = exc.description or exc.name
        slug = (request.view_args or {}).get("slug")
        if status >= 500 and request.endpoint == "api.submissions" and isinstance(slug, str):
            # The loader shows it to the reader as it is.
            message = error_message(slug, status, reader_locale())
        response = jsonify({"errors": {field: message}})
        response.status_code = status
    else:
        locale = reader_locale()
        response = Response(
            render_template("error.html", status=status, name=exc.name, locale=locale),
            status,
            mimetype="text/html",
        )
        protect_page(response)
    # What the exception says a client needs: Allow on a 405, Retry-After on a 503, WWW-Authenticate on a 401.
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def reader_locale() -> str:
    """The supported locale the request's Accept-Language prefers."""
    return normalize_locale(request.accept_languages.best_match(LOCALES))


def protect_page(response: Response) -> None:
    """Headers for an HTML page outside the admin (which sets its own policy)."""
    response.headers.setdefault("Content-Security-Policy", PAGE_CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Frame-Options", "DENY")  # frame-ancestors for browsers without CSP 2
    # The URL may hold a signed token: it must not leak to other sites through the Referer header.
    response.headers.setdefault("Referrer-Policy", "no-referrer")


def _no_date(response: Response) -> Response:
    """The HTTP server adds Date to every response (Werkzeug's and gunicorn's do so unconditionally), so one
    set here would be a second: Werkzeug's conditional responses (send_file, static files) add one."""
    del response.headers["Date"]
    return response


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if current_settings().https:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response
