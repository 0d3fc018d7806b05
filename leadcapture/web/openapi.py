"""The OpenAPI 3 description of the public API."""

from __future__ import annotations

from typing import Any

from leadcapture.web.mail_events import OPENAPI_PATHS as MAIL_EVENTS_PATHS
from leadcapture.web.mail_events import OPENAPI_SCHEMAS as MAIL_EVENTS_SCHEMAS

ERRORS = {
    "type": "object",
    "required": ["errors"],
    "properties": {"errors": {"type": "object", "additionalProperties": {"type": "string"}}},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
    }


SLUG = {
    "name": "slug",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"},
}


REF = {
    "name": "ref",
    "in": "query",
    "required": False,
    "description": "The signed reference that article links in our email carry (the `lc` parameter): the "
    "definition then holds only the questions that reader has not answered or whose answer is stale, and a "
    "`reader` to submit in place of the email address",
    "schema": {"type": "string", "maxLength": 1024},
}


def openapi_document(base_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "leadcapture public API",
            "version": "1",
            "description": "What the embeddable widget uses: widget definitions and submissions.",
        },
        "servers": [{"url": base_url}],
        "paths": {
            "/api/v1/widgets/{slug}": {
                "get": {
                    "summary": "The definition the widget loader renders",
                    "parameters": [SLUG, REF],
                    "responses": {
                        "200": {
                            "description": "The widget",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}
                            },
                        },
                        "403": _error("The requesting origin may not embed this widget"),
                        "404": _error("No such widget"),
                    },
                }
            },
            "/api/v1/widgets/{slug}/submissions": {
                "post": {
                    "summary": "Submit answers and an email address for the widget's report",
                    "description": (
                        "The response is the same whatever the address's state (new, pending, confirmed, "
                        "unsubscribed): nothing reveals whether an address is known."
                    ),
                    "parameters": [SLUG],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Submission"}}
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted; a confirmation or report email follows",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}
                            },
                        },
                        "400": _error("The body is not a submission"),
                        "403": _error("The requesting origin may not embed this widget"),
                        "404": _error("No such widget"),
                        "413": _error("The body is too large"),
                        "415": _error("The body is not application/json"),
                        "422": _error("A field is invalid; errors maps each field to a message"),
                        "429": _error("Too many requests"),
                    },
                }
            },
            **MAIL_EVENTS_PATHS,
            "/healthz": {
                "get": {
                    "summary": "Liveness and database reachability",
                    "responses": {
                        "200": {
                            "description": "Healthy",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                            },
                        },
                        "503": {
                            "description": "The database is unreachable",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                            },
                        },
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Errors": ERRORS,
                **MAIL_EVENTS_SCHEMAS,
                "Accepted": {
                    "type": "object",
                    "required": ["status", "reader"],
                    "properties": {
                        "status": {"type": "string", "enum": ["accepted"]},
                        "reader": {
                            "type": "string",
                            "description": "Stands in for the address in later submissions from this browser; "
                            "the same for the same address whatever its state",
                        },
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["status", "database"],
                    "properties": {"status": {"type": "string"}, "database": {"type": "string"}},
                },
                "Option": {
                    "type": "object",
                    "required": ["value", "label"],
                    "properties": {"value": {"type": "string"}, "label": {"type": "string"}},
                },
                "Question": {
                    "type": "object",
                    "required": ["key", "kind", "text", "fresh_for_days", "options"],
                    "properties": {
                        "key": {"type": "string"},
                        "kind": {"type": "string", "enum": ["yes_no", "choice", "multi"]},
                        "text": {"type": "string"},
                        "fresh_for_days": {"type": "integer", "minimum": 1},
                        "options": {"type": "array", "items": {"$ref": "#/components/schemas/Option"}},
                    },
                },
                "Widget": {
                    "type": "object",
                    "required": [
                        "slug",
                        "locale",
                        "texts",
                        "report",
                        "questions",
                        "submit_url",
                        "form_token",
                        "now",
                    ],
                    "properties": {
                        "slug": {"type": "string"},
                        "locale": {"type": "string"},
                        "texts": {"type": "object", "additionalProperties": {"type": "string"}},
                        "report": {
                            "type": "object",
                            "required": ["title", "description"],
                            "properties": {"title": {"type": "string"}, "description": {"type": "string"}},
                        },
                        "questions": {"type": "array", "items": {"$ref": "#/components/schemas/Question"}},
                        "submit_url": {"type": "string", "format": "uri"},
                        "form_token": {"type": "string"},
                        "now": {"type": "string", "format": "date-time", "description": "the server's clock"},
                        "reader": {"type": "string", "description": "only for a reader the `ref` named"},
                    },
                },
                "Submission": {
                    "type": "object",
                    "description": "`email` and every question's answer; or, from a returning reader's browser, "
                    "`reader` in place of `email` and the answers to any of the questions",
                    "required": ["answers", "consent"],
                    "additionalProperties": False,
                    "properties": {
                        "email": {"type": "string", "maxLength": 254},
                        "reader": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
                        "answers": {
                            "type": "object",
                            "additionalProperties": {
                                "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
                            },
                        },
                        "consent": {
                            "type": "object",
                            "required": ["report"],
                            "additionalProperties": False,
                            "properties": {"report": {"type": "boolean"}, "sequences": {"type": "boolean"}},
                        },
                        "page_url": {"type": "string", "maxLength": 2048},
                        "timezone": {"type": "string", "maxLength": 64},
                        "form_token": {"type": "string"},
                    },
                },
            }
        },
    }
