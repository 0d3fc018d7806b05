"""The public JSON API the widget talks to, plus health and the OpenAPI description."""

from __future__ import annotations

import json
import math
import zlib
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, g, jsonify, request, url_for
from flask_limiter import RateLimitExceeded
from sqlalchemy import text

from leadcapture import clock
from leadcapture.config import current as current_settings
from leadcapture.errors import DomainError, InvalidInput, NotFound, OriginNotAllowed
from leadcapture.extensions import csrf, db, limiter
from leadcapture.services.capture import (
    MalformedSubmission,
    RequestMeta,
    accept_submission,
    parse_submission,
)
from leadcapture.services.insights import record_impression
from leadcapture.services.reads import record_read
from leadcapture.services.widgets import (
    MAX_SLUG_LENGTH,
    WidgetView,
    check_origin,
    describe_widget,
    error_message,
    known_reader,
    widget_view,
)
from leadcapture.web.errors import DATABASE_RETRY_AFTER, reader_locale
from leadcapture.web.openapi import openapi_document

bp = Blueprint("api", __name__)
csrf.exempt(bp)

MAX_BODY = 16 * 1024
# Submissions: a person sends one now and then, an office behind one address a few more; a script, many.
SUBMISSIONS_PER_IP = "30/minute;300/hour"
# Whatever the addresses, one widget's traffic beyond this is a flood, not readers.
SUBMISSIONS_PER_WIDGET = "600/minute"
# Impressions: a reader's browser sends one per widget it shows, a few a minute for someone going from article
# to article, more for an office behind one address; a script inflating the counts from one address, many.
IMPRESSIONS_PER_IP = "60/minute;600/hour"
# Far beyond what the readers of one widget do together (8.6 million a day): a cap on what many addresses add.
IMPRESSIONS_PER_WIDGET = "6000/minute"
# Read beacons: one per article a reader opens from our email; a script replaying references, many.
READS_PER_IP = "60/minute;600/hour"
# 16 + 12: a gzip wrapper around a 4 KB window.
GZIP_WINDOW_BITS = 16 + 12


def init_app(app: Flask) -> None:
    pass


def _json_error(status: int, errors: dict[str, str]) -> tuple[Response, int]:
    return jsonify({"errors": errors}), status


@bp.errorhandler(NotFound)
def _not_found(_exc: NotFound) -> tuple[Response, int]:
    return _json_error(404, {"widget": "no such widget"})


@bp.errorhandler(OriginNotAllowed)
def _origin_not_allowed(_exc: OriginNotAllowed) -> tuple[Response, int]:
    return _json_error(403, {"origin": "this site may not embed this widget"})


@bp.errorhandler(MalformedSubmission)
def _malformed(exc: MalformedSubmission) -> tuple[Response, int]:
    return _json_error(400, exc.errors)


@bp.errorhandler(InvalidInput)
def _invalid(exc: InvalidInput) -> tuple[Response, int]:
    return _json_error(422, exc.errors)


@bp.errorhandler(RateLimitExceeded)
def _rate_limited(_exc: RateLimitExceeded) -> tuple[Response, int]:
    """429 with Retry-After; CORS headers for an allowed origin, so the widget can tell the reader (a refused
    submission in the widget's words, which the loader shows as they are)."""
    slug = (request.view_args or {}).get("slug")
    message = "too many requests: try again later"
    if request.endpoint == "api.submissions" and isinstance(slug, str):
        message = error_message(slug, 429, reader_locale())
    response, status = _json_error(429, {"request": message})
    current = limiter.current_limit
    wait = current.reset_at - clock.now().timestamp() if current is not None else 60
    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    origin = request.headers.get("Origin")
    if isinstance(slug, str) and origin:
        try:
            if widget_view(slug).allows_origin(origin):
                g.cors_origin = origin
        except DomainError:
            pass  # an unknown widget: no CORS, the browser shows the reader nothing it can read
    return response, status


def _widget_key() -> str:
    return "widget:" + str((request.view_args or {}).get("slug", ""))[:MAX_SLUG_LENGTH]


@bp.before_request
def _limit_body() -> None:
    request.max_content_length = MAX_BODY


@bp.after_request
def _cors(response: Response) -> Response:
    """Allowed origins get CORS headers on every answer, errors included, so the widget can read them."""
    response.vary.add("Origin")
    origin = g.get("cors_origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
    return response


def _widget_for_origin(
    slug: str, *, own_origin_too: bool = False, origin_required: bool = False
) -> WidgetView:
    view = widget_view(slug)
    origin = request.headers.get("Origin")
    if origin is None and origin_required:
        # Only a browser names the page it shows the widget on; a request without Origin showed it to no one.
        raise OriginNotAllowed("no Origin")
    if not (own_origin_too and _previewing(view, origin)):
        check_origin(view, origin)
    g.cors_origin = origin
    return view


def _previewing(view: WidgetView, origin: str | None) -> bool:
    """Whether the app's own pages (the base URL's origin: the admin's preview) ask for a widget that does
    not list that origin."""
    if origin is None or view.allows_origin(origin):
        return False
    parts = urlsplit(current_settings().base_url)
    return origin.rstrip("/").lower() == f"{parts.scheme}://{parts.netloc}".lower()


@bp.route("/api/v1/widgets/<slug>", methods=["GET", "OPTIONS"])
def widget_definition(slug: str) -> Response | tuple[str, int]:
    # The app's own pages may read any widget (the admin previews it there); submissions stay limited to the
    # widget's allowed origins, so a preview cannot store anyone.
    view = _widget_for_origin(slug, own_origin_too=True)
    if request.method == "OPTIONS":
        return "", 204
    reference = request.args.get("ref")
    reader = known_reader(view, reference) if reference else None
    # `r` is what the loader says since definitions are compact, `returning` what it said before; each says
    # whether it remembers a reader.
    compact = "r" in request.args
    said = request.args.get("r" if compact else "returning")
    returning = None if said is None else said == "1" or bool(reference)
    # Only a loader from before `returning` needs to be told where to post.
    submit_url = (
        "" if said is not None else current_settings().base_url + url_for("api.submissions", slug=view.slug)
    )
    response = jsonify(
        describe_widget(view, reader, returning=returning, submit_url=submit_url, compact=compact)
    )
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("Accept-Encoding")
    if request.accept_encodings.quality("gzip") > 0:
        response.set_data(_gzipped(response.get_data()))
        response.headers["Content-Encoding"] = "gzip"
    return response


def _gzipped(body: bytes) -> bytes:
    """A small body gzipped, with the window and memory sized to it: a definition (2 to 3 KB) fits a 4 KB
    window whole, and setting up zlib's default 32 KB window and hash tables cost several times more (about
    0.2 ms) than compressing."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, GZIP_WINDOW_BITS, 4)
    return compressor.compress(body) + compressor.flush()


@bp.route("/api/v1/widgets/<slug>/submissions", methods=["POST", "OPTIONS"])
@limiter.limit(SUBMISSIONS_PER_IP, methods=["POST"])
@limiter.limit(SUBMISSIONS_PER_WIDGET, methods=["POST"], key_func=_widget_key)
def submissions(slug: str) -> tuple[Response | str, int]:
    view = _widget_for_origin(slug)
    if request.method == "OPTIONS":
        return "", 204
    if request.mimetype != "application/json":
        return _json_error(415, {"body": "send the submission as application/json"})
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        # The decoder recurses once per level of nesting; no submission is deeper than three.
        return _json_error(400, {"body": "is nested too deeply"})
    if body is None:
        return _json_error(400, {"body": "is not valid JSON"})
    data = parse_submission(view, body)
    accept_submission(view, data, RequestMeta(request.remote_addr, request.user_agent.string))
    db.session.commit()
    # The same body for the same address whatever its state (new, pending, confirmed, unsubscribed, over its
    # daily confirmations) and whether or not the sender looked like a script.
    return jsonify({"status": "accepted", "reader": data.reader_ref}), 202


@bp.post("/api/v1/widgets/<slug>/impressions")
@limiter.limit(IMPRESSIONS_PER_IP, methods=["POST"])
@limiter.limit(IMPRESSIONS_PER_WIDGET, methods=["POST"], key_func=_widget_key)
def impressions(slug: str) -> tuple[Response | str, int]:
    view = _widget_for_origin(slug, origin_required=True)
    if request.content_length or request.stream.read(1):
        return _json_error(413, {"body": "an impression is sent without a body"})
    record_impression(view.id)
    db.session.commit()
    return "", 204


@bp.post("/api/v1/reads")
@limiter.limit(READS_PER_IP)
def reads() -> tuple[str, int]:
    """The loader's beacon: a page read by a reader our email's `lc` reference names. JSON, sent as
    text/plain by navigator.sendBeacon (a body that needs no preflight); 204 whatever happened, so it tells
    no one whether a reference is genuine or whom it names."""
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        record_read(
            body.get("ref"),
            body.get("url"),
            body.get("topics"),
            origin=request.headers.get("Origin"),
            opted_out=request.headers.get("Sec-GPC") == "1" or request.headers.get("DNT") == "1",
        )
        db.session.commit()
    return "", 204


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the database means unhealthy
        db.session.rollback()
        response = jsonify({"status": "error", "database": "unreachable"})
        response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response, 503
    return jsonify({"status": "ok", "database": "ok"}), 200


@bp.get("/api/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document(current_settings().base_url))
