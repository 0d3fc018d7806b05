"""The mail provider's webhook: bounces, delays and complaints, signed with the shared secret."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from flask import Blueprint, Response, jsonify, request

from leadcapture.config import current as current_settings
from leadcapture.extensions import csrf, db
from leadcapture.services.bounces import (
    MAX_EVENTS,
    WEBHOOK_KINDS,
    InvalidEvents,
    MalformedEvents,
    parse_mail_events,
    record_mail_events,
)

bp = Blueprint("mail_events", __name__)
csrf.exempt(bp)

MAX_BODY = 256 * 1024
SIGNATURE_HEADER = "X-Leadcapture-Signature"


def _json_error(status: int, errors: dict[str, str]) -> tuple[Response, int]:
    return jsonify({"errors": errors}), status


@bp.post("/api/v1/mail-events")
def mail_events() -> tuple[Response, int]:
    secret = current_settings().mail_events_secret
    if secret is None:
        return _json_error(404, {"request": "mail events are not enabled here"})
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _json_error(413, {"body": f"at most {MAX_BODY // 1024} KiB"})
    request.max_content_length = MAX_BODY  # also for a body sent without a Content-Length
    body = request.get_data(cache=True)  # raises 413 past the limit
    if not _signed(body, secret, request.headers.get(SIGNATURE_HEADER, "")):
        return _json_error(401, {SIGNATURE_HEADER: "missing or wrong signature"})
    try:
        reports = parse_mail_events(body)
    except InvalidEvents as exc:
        return _json_error(422, exc.errors)
    except MalformedEvents as exc:
        return _json_error(400, exc.errors)
    summary = record_mail_events(reports)
    db.session.commit()
    return jsonify(summary.as_dict()), 200


def _signed(body: bytes, secret: str, header: str) -> bool:
    """HMAC-SHA256 of the raw body under the shared secret, as "sha256=<hex>", compared in constant time."""
    scheme, _, given = header.strip().partition("=")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return scheme == "sha256" and hmac.compare_digest(given.strip().lower().encode(), expected.encode())


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
    }


# The webhook's part of the OpenAPI description (leadcapture.web.openapi).
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/mail-events": {
        "post": {
            "summary": "Bounces, delays and complaints from the mail provider",
            "description": (
                "Enabled only when LEADCAPTURE_MAIL_EVENTS_SECRET is set (404 otherwise). The raw body is signed "
                "with HMAC-SHA256 under that secret, sent as `X-Leadcapture-Signature: sha256=<hex>`. A bounce "
                "suppresses the address, and so do three soft bounces within seven days and a complaint; a "
                "delay is only recorded. The same event sent again counts once; events about message ids we "
                f"did not send are ignored and counted. Bodies over {MAX_BODY // 1024} KiB are refused with 413."
            ),
            "parameters": [
                {
                    "name": SIGNATURE_HEADER,
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MailEvents"}}},
            },
            "responses": {
                "200": {
                    "description": "Handled: how many events were recorded, seen before, or ignored",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/MailEventsResult"}}
                    },
                },
                "400": _error("The body is not JSON holding a list of events"),
                "401": _error("The signature is missing or wrong"),
                "404": _error("Mail events are not enabled"),
                "413": _error("The body is too large"),
                "422": _error("An event is invalid; errors maps each field to a message"),
            },
        }
    }
}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "MailEvents": {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {
                "type": "array",
                "maxItems": MAX_EVENTS,
                "items": {"$ref": "#/components/schemas/MailEvent"},
            }
        },
    },
    "MailEvent": {
        "type": "object",
        "required": ["type", "message_id"],
        "properties": {
            "type": {"type": "string", "enum": list(WEBHOOK_KINDS)},
            "message_id": {
                "type": "string",
                "pattern": "^<[^<>\\s]{1,250}>$",
                "description": "The Message-ID of the email the event is about, with its angle brackets",
            },
            "recipient": {"type": "string", "format": "email", "maxLength": 254},
            "status": {"type": "string", "pattern": "^[245]\\.[0-9]{1,3}\\.[0-9]{1,3}$"},
            "time": {
                "type": "string",
                "format": "date-time",
                "description": "When it happened, with a time zone; when it arrived if left out",
            },
        },
    },
    "MailEventsResult": {
        "type": "object",
        "required": ["recorded", "duplicates", "ignored"],
        "properties": {
            "recorded": {"type": "integer", "minimum": 0},
            "duplicates": {"type": "integer", "minimum": 0},
            "ignored": {"type": "integer", "minimum": 0},
        },
    },
}
