"""The OpenAPI 3 description of the public endpoints: the widget's JSON API, health, the loader script and
the pages behind the links in emails."""

from __future__ import annotations

from typing import Any

from leadcapture.addresses import MAX_EMAIL_LENGTH
from leadcapture.services.capture import HONEYPOT, MAX_FIRST_NAME_LENGTH, MAX_URL_LENGTH
from leadcapture.services.widgets import COMPACT_NAMES, MAX_SLUG_LENGTH
from leadcapture.web.mail_events import OPENAPI_PATHS as MAIL_EVENTS_PATHS
from leadcapture.web.mail_events import OPENAPI_SCHEMAS as MAIL_EVENTS_SCHEMAS

ERRORS = {
    "type": "object",
    "required": ["errors"],
    "properties": {"errors": {"type": "object", "additionalProperties": {"type": "string"}}},
}
HTML = {"text/html": {"schema": {"type": "string"}}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _page(description: str) -> dict[str, Any]:
    return {"description": description, "content": HTML}


SLUG = {
    "name": "slug",
    "in": "path",
    "required": True,
    "description": "The widget's slug, as in `data-leadcapture` on the embedding page",
    "schema": {"type": "string", "pattern": f"^[a-z0-9][a-z0-9-]{{0,{MAX_SLUG_LENGTH - 1}}}$"},
    "example": "daytrading-report",
}
REF = {
    "name": "ref",
    "in": "query",
    "required": False,
    "description": "The signed reference that article links in our email carry (the `lc` parameter): the "
    "definition then holds only the questions that reader has not answered or whose answer is stale, and a "
    "`reader` to submit in place of the email address. A stale or forged reference is ignored.",
    "schema": {"type": "string", "maxLength": 1024},
}
RETURNING = {
    "name": "returning",
    "in": "query",
    "required": False,
    "description": "Sent by loaders from before `r`: `1` when it remembers a reader in this browser, `0` when "
    "not. With `1` (or a `ref`), `texts` also holds what a returning reader is shown (`reader`, "
    "`reader_unnamed`, `not_you`, `start_ready`) and each question its `fresh_for_days`. Without this parameter "
    "or `r` (a loader from before both), the definition also holds `slug`, `submit_url`, those texts, and "
    "`error_busy` and `error_server`.",
    "schema": {"type": "string", "enum": ["0", "1"]},
}
R = {
    **RETURNING,
    "name": "r",
    "description": "Sent by the loader in place of `returning`, with the same meaning, since it reads the compact "
    "definition: each option a `[value, label]` pair, a question that takes several answers marked `multi` "
    "(and no `kind`), the report's `description` in place of `report` (its title is not shown: the `title` "
    "text is the form's heading), `now` in seconds since the epoch, and the texts and the `multi` flag by short "
    "names (see `texts`). With `r` the `returning` parameter is not read.",
}
ORIGIN = {
    "name": "Origin",
    "in": "header",
    "required": False,
    "description": "Sent by browsers on cross-origin requests. Only the widget's allowed origins may use it "
    "(403 otherwise); a request without it is not cross-origin and is served.",
    "schema": {"type": "string", "pattern": "^https?://[a-z0-9.-]+(:[0-9]{1,5})?$"},
    "example": "https://beleggen.example",
}
PAGE_ORIGIN = {
    **ORIGIN,
    "required": True,
    "description": "The origin of the page showing the widget, as the browser names it: one of the widget's "
    "allowed origins. Without it no page was shown anything, and the request is refused with 403 like any "
    "other origin.",
}
TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "The signed token from the link in the email",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,1024}$"},
}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds until another try may succeed", "schema": {"type": "integer"}}
}
ALLOW_ORIGIN = {
    "Access-Control-Allow-Origin": {
        "description": "The requesting origin, when it is one of the widget's allowed origins",
        "schema": {"type": "string"},
    }
}
LINK_ERRORS = {
    "400": _page("The link is damaged, or nothing is behind it any more (an erased or unknown person)"),
    "413": _page("The form body is larger than any form on these pages sends"),
}
FORM_BODY_LIMIT = "Bodies over 16 KiB are refused with 413."


def _preflight(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": "CORS preflight. An allowed origin gets the Access-Control-Allow-* headers.",
        "parameters": [SLUG, ORIGIN],
        "responses": {
            "204": {
                "description": "Preflight answered",
                "headers": {
                    **ALLOW_ORIGIN,
                    "Access-Control-Allow-Methods": {"schema": {"type": "string"}},
                    "Access-Control-Allow-Headers": {"schema": {"type": "string"}},
                    "Access-Control-Max-Age": {"schema": {"type": "integer"}},
                },
            },
            "403": _error("The requesting origin may not embed this widget"),
            "404": _error("No such widget"),
        },
    }


def _link_page(
    summary: str,
    get_ok: str,
    post_ok: str,
    *,
    expired: str | None = None,
    form: dict[str, Any] | None = None,
    query: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """A page behind a link in an email: GET only shows (mail scanners open every link), its button POSTs."""
    get_responses = {"200": _page(get_ok), **LINK_ERRORS}
    post_responses = {"200": _page(post_ok), **LINK_ERRORS}
    if expired:
        get_responses["410"] = _page(expired)
        post_responses["410"] = _page(expired)
    get_responses.pop("413")
    post: dict[str, Any] = {
        "summary": f"{summary}: the page's button",
        "description": FORM_BODY_LIMIT,
        "parameters": [TOKEN, *query],
        "responses": post_responses,
    }
    if form is not None:
        post["requestBody"] = {
            "required": False,
            "content": {"application/x-www-form-urlencoded": {"schema": form}},
        }
    return {
        "get": {
            "summary": f"{summary}: shows a page, changes nothing",
            "parameters": [TOKEN, *query],
            "responses": get_responses,
        },
        "post": post,
    }


def _download() -> dict[str, Any]:
    file = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    report = {
        "description": "The report file, as an attachment, with its own content type (PDF, EPUB, ...)",
        "content": file,
    }
    expired = "The link has expired: a page offers a fresh one by email"
    return {
        "get": {
            "summary": "Download the report a confirmed request was for",
            "parameters": [TOKEN],
            "responses": {"200": report, "400": LINK_ERRORS["400"], "410": _page(expired)},
        },
        "post": {
            "summary": "Download the report; for an expired link, email a fresh one (at most once a day)",
            "description": FORM_BODY_LIMIT,
            "parameters": [TOKEN],
            "responses": {
                "200": {
                    "description": "The report file, or for an expired link the page saying a fresh link is "
                    "on its way",
                    "content": {**file, **HTML},
                },
                **LINK_ERRORS,
            },
        },
    }


SUBMISSION_RESPONSES = {
    "202": {
        "description": "Accepted and durably kept; the worker stores it within a second or two, and a "
        "confirmation or report email follows. The same body whatever the address's state, and also for "
        "submissions that look automated (which are kept nowhere)",
        "headers": ALLOW_ORIGIN,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
    },
    "400": _error("The body is not a submission: not JSON, not an object, an unknown field, a wrong type"),
    "403": _error("The requesting origin may not embed this widget"),
    "404": _error("No such widget"),
    "413": _error("The body is larger than 16 KiB"),
    "415": _error("The body is not application/json"),
    "422": _error(
        "A field is invalid; errors maps each field (`answers.<key>`, `consent.report`) to a message"
    ),
    "429": _error(
        "Too many submissions from this address or to this widget; the message is for the reader, in the "
        "widget's language (as is a 5xx's), and the loader shows it as it is",
        RETRY_AFTER,
    ),
}


def openapi_document(base_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "leadcapture public API",
            "version": "1",
            "description": "What the embeddable widget uses (its loader, widget definitions and submissions), "
            "health, and the pages behind the links in our emails.",
        },
        "servers": [{"url": base_url}],
        "paths": {
            "/api/v1/widgets/{slug}": {
                "get": {
                    "summary": "The definition the widget loader renders",
                    "parameters": [SLUG, REF, R, RETURNING, ORIGIN],
                    "responses": {
                        "200": {
                            "description": "The widget, with a fresh form token; never cached; gzip-encoded when the client accepts it",
                            "headers": ALLOW_ORIGIN,
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}
                            },
                        },
                        "400": _error("A query argument holds a NUL"),
                        "403": _error("The requesting origin may not embed this widget"),
                        "404": _error("No such widget"),
                    },
                },
                "options": _preflight("Preflight for reading a widget definition"),
            },
            "/api/v1/widgets/{slug}/submissions": {
                "post": {
                    "summary": "Submit answers and an email address for the widget's report",
                    "description": (
                        "The response is the same whatever the address's state (new, pending, confirmed, "
                        "unsubscribed): nothing reveals whether an address is known. Bodies over 16 KiB are "
                        "refused with 413."
                    ),
                    "parameters": [SLUG, ORIGIN],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Submission"}}
                        },
                    },
                    "responses": SUBMISSION_RESPONSES,
                },
                "options": _preflight("Preflight for sending a submission"),
            },
            "/api/v1/widgets/{slug}/impressions": {
                "post": {
                    "summary": "Count an impression: the loader has shown the widget to a reader",
                    "description": "Sent by the loader once per widget it shows on a page of an allowed origin "
                    "(never from the admin's preview), as a CORS simple request: no body, no cookies, no "
                    "preflight. Any body is refused with 413.",
                    "parameters": [SLUG, PAGE_ORIGIN],
                    "responses": {
                        "204": {"description": "Counted on today's (UTC) tally", "headers": ALLOW_ORIGIN},
                        "403": _error("No Origin, or an origin that may not embed this widget"),
                        "404": _error("No such widget"),
                        "413": _error("The request has a body; an impression has none"),
                        "429": _error(
                            "Too many impressions from this address or of this widget", RETRY_AFTER
                        ),
                    },
                },
            },
            "/api/v1/reads": {
                "post": {
                    "summary": "An article read by a reader our email brought",
                    "description": "The loader's beacon (navigator.sendBeacon) on a page that embeds it, when the "
                    "page was opened from a link in our email (the `lc` reference) and the browser sends neither "
                    "Global Privacy Control nor Do Not Track. The body is JSON, as application/json or "
                    "text/plain. The page's topics (its `leadcapture:topics` meta tag, else the topics' URL rules) "
                    "count as the subscriber's interest when the reference is genuine and names a confirmed "
                    "subscriber with marketing consent, the page is on an origin a widget may be embedded on and "
                    "the request came from it. The same page counts once a day.",
                    "requestBody": {
                        "required": False,
                        "content": {
                            media: {"schema": {"$ref": "#/components/schemas/Read"}}
                            for media in ("application/json", "text/plain")
                        },
                    },
                    "responses": {
                        "204": {"description": "Received, whatever was recorded: it tells no one whom a "
                                "reference names"},
                        "413": _error("The body is larger than 16 KB"),
                        "429": _error("Too many reads from this address", RETRY_AFTER),
                    },
                }
            },
            "/l/{token}": {
                "get": {
                    "summary": "A tracked link in a marketing email",
                    "description": "Records the click (judged: clicks by mail scanners are kept apart and count "
                    "for nothing) and redirects to the link as it was sent. The target is read from the sent "
                    "email, never from the token, so this is no open redirect. HEAD redirects alike and records "
                    "nothing.",
                    "parameters": [TOKEN],
                    "responses": {
                        "302": {
                            "description": "On to the link as sent",
                            "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
                        },
                        "400": {
                            "description": "A token that names no link of a sent email: a page saying so",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        },
                    },
                }
            },
            **MAIL_EVENTS_PATHS,
            "/healthz": {
                "get": {
                    "summary": "Liveness and database reachability",
                    "responses": {
                        "200": _json("Healthy", "Health"),
                        "503": _json("The database is unreachable", "Health"),
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This description",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/embed.js": {
                "get": {
                    "summary": "The widget loader script",
                    "description": 'Embedding: `<script async src="BASE/embed.js"></script>'
                    '<div data-leadcapture="WIDGET-SLUG"></div>`. Cached publicly, revalidated by ETag.',
                    "parameters": [
                        {
                            "name": "If-None-Match",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The script (gzip-encoded when the client accepts it)",
                            "headers": {"ETag": {"schema": {"type": "string"}}},
                            "content": {"text/javascript": {"schema": {"type": "string"}}},
                        },
                        "304": {"description": "The client's copy is current"},
                    },
                }
            },
            "/favicon.ico": {
                "get": {
                    "summary": "The app's icon, which browsers ask for",
                    "responses": {
                        "200": {
                            "description": "An SVG image, cached publicly for a day",
                            "content": {"image/svg+xml": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/confirm/{token}": _link_page(
                "Confirm a sign-up (double opt-in)",
                "Asks to confirm, with a button",
                "Confirmed: the report is on its way",
                expired="The link has expired; signing up again sends a fresh one",
            ),
            "/download/{token}": _download(),
            "/unsubscribe/{token}": _link_page(
                "Stop follow-up emails",
                "Asks to unsubscribe, with a button",
                "Unsubscribed (idempotent). Also the RFC 8058 one-click POST from mail clients: no cookie, no "
                "CSRF token, no redirect",
                form={
                    "type": "object",
                    "properties": {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}},
                },
            ),
            "/preferences/{token}": _link_page(
                "A subscriber's answers and follow-up emails",
                "Every answer and the current sequences, in a form",
                "Answers changed, or follow-up emails paused or resumed; 400 with the form again for an "
                "answer that is not an option",
                form={
                    "type": "object",
                    "description": "`action` pause or resume; `apply_change` with `?change=`; or "
                    "`q:<question key>` fields with the chosen values",
                    "properties": {
                        "action": {"type": "string", "enum": ["pause", "resume", "save", "apply_change"]}
                    },
                    "additionalProperties": {"type": "string"},
                },
                query=(
                    {
                        "name": "change",
                        "in": "query",
                        "required": False,
                        "description": "From an email about answers given under the address without proof "
                        "that it is the reader's own: the page also shows what they would change, and "
                        "`action=apply_change` applies them. Valid for 30 days; 400 when not genuine.",
                        "schema": {"type": "string"},
                    },
                ),
            ),
            "/answer/{token}": _link_page(
                "Answer a question again from a refresh email",
                "The answer the link stands for, with one button",
                "Answer recorded; the next stale question, if any",
                expired="The link is over a year old: a page links to the preference page instead",
            ),
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
                "Read": {
                    "type": "object",
                    "properties": {
                        "ref": {"type": "string", "description": "The `lc` reference of the email link"},
                        "url": {"type": "string", "description": "The page read, as the browser shows it"},
                        "topics": {
                            "description": "The page's topics: its `leadcapture:topics` meta tag, comma-separated",
                            "oneOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"type": "string"}},
                                {"type": "null"},
                            ],
                        },
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["status", "database"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ok", "error"]},
                        "database": {"type": "string", "enum": ["ok", "unreachable"]},
                    },
                },
                "Option": {
                    "type": "object",
                    "required": ["value", "label"],
                    "properties": {"value": {"type": "string"}, "label": {"type": "string"}},
                },
                "OptionPair": {
                    "type": "array",
                    "description": "`[value, label]`",
                    "items": {"type": "string"},
                    "minItems": 2,
                    "maxItems": 2,
                },
                "Question": {
                    "type": "object",
                    "description": "A question as a definition asked for without `r` describes it",
                    "required": ["key", "kind", "text", "options"],
                    "properties": {
                        "key": {"type": "string"},
                        "kind": {"type": "string", "enum": ["yes_no", "choice", "multi"]},
                        "text": {"type": "string"},
                        "fresh_for_days": {
                            "type": "integer",
                            "minimum": 1,
                            "description": "with `returning=1`, a `ref`, or neither `returning` nor `r`",
                        },
                        "options": {"type": "array", "items": {"$ref": "#/components/schemas/Option"}},
                    },
                },
                "CompactQuestion": {
                    "type": "object",
                    "description": "A question as a definition asked for with `r` describes it",
                    "required": ["key", "text", "options"],
                    "properties": {
                        "key": {"type": "string"},
                        COMPACT_NAMES["multi"]: {
                            "type": "boolean",
                            "description": "`multi`: present (true) when the question takes several answers",
                        },
                        "text": {"type": "string"},
                        "fresh_for_days": {
                            "type": "integer",
                            "minimum": 1,
                            "description": "with `r=1` or a `ref`",
                        },
                        "options": {"type": "array", "items": {"$ref": "#/components/schemas/OptionPair"}},
                    },
                },
                "Widget": {
                    "type": "object",
                    "description": "The loader posts the submission to this URL + `/submissions`.",
                    "required": ["locale", "texts", "questions", "form_token", "now"],
                    "properties": {
                        "slug": {"type": "string", "description": "only without `returning` or `r`"},
                        "submit_url": {
                            "type": "string",
                            "format": "uri",
                            "description": "only without `returning` or `r`",
                        },
                        "locale": {"type": "string"},
                        "texts": {
                            "type": "object",
                            "description": "The form's texts in `locale`, by name; only those this form "
                            "shows: `first_name_label` with `ask_first_name`, `multi` (the hint under a "
                            "question that takes several answers) when such a question is asked, and those "
                            "for a returning reader only with `ref`, `r=1` or `returning=1` (or neither parameter). "
                            "With `r`, by their short names: "
                            + ", ".join(f"`{name}` as `{short}`" for name, short in COMPACT_NAMES.items())
                            + "; a text not listed goes by its own name",
                            "additionalProperties": {"type": "string"},
                        },
                        "report": {
                            "type": "object",
                            "description": "only without `r`",
                            "required": ["title", "description"],
                            "properties": {"title": {"type": "string"}, "description": {"type": "string"}},
                        },
                        "description": {
                            "type": "string",
                            "description": "with `r`: the report's description (its title is not shown)",
                        },
                        "questions": {
                            "type": "array",
                            "description": "`CompactQuestion`s with `r`, `Question`s without",
                            "items": {
                                "anyOf": [
                                    {"$ref": "#/components/schemas/Question"},
                                    {"$ref": "#/components/schemas/CompactQuestion"},
                                ]
                            },
                        },
                        "form_token": {
                            "type": "string",
                            "description": "Signed and timestamped; the submission echoes it",
                        },
                        "now": {
                            "oneOf": [
                                {"type": "string", "format": "date-time"},
                                {"type": "integer", "minimum": 0},
                            ],
                            "description": "the server's clock: with `r` in seconds since the epoch, without it "
                            "in UTC (`2026-01-31T09:00:00Z`)",
                        },
                        "reader": {"type": "string", "description": "only for a reader the `ref` named"},
                        "mask": {
                            "type": "string",
                            "description": "with `reader`: that reader's address as the widget shows it to them, "
                            "such as `l•••r@beleggen.nl`",
                        },
                        "ask_first_name": {
                            "type": "boolean",
                            "description": "present (true) when the form offers an optional first-name field",
                        },
                    },
                },
                "Submission": {
                    "type": "object",
                    "description": "`email` and every question's answer; or, from a returning reader's browser, "
                    "`reader` in place of `email` and the answers to any of the questions. Only with `ref`, "
                    "the reference from a link in that subscriber's own email, do the answers given for a "
                    "known address (pending, confirmed or unsubscribed) change at once; otherwise the email "
                    "to the address lets its owner apply them. "
                    "A submission "
                    "that fills in the hidden field, or comes sooner after its form token was issued than a "
                    "person could fill in the form, is answered with 202 like any other and stored nowhere.",
                    "required": ["answers", "consent", "form_token"],
                    "additionalProperties": False,
                    "example": {
                        "email": "lezer@example.com",
                        "answers": {
                            "is_investor": "yes",
                            "daytrading_experience": "none",
                            "investment_interests": ["stocks", "etfs"],
                        },
                        "consent": {"report": True, "sequences": False},
                        "page_url": "https://beleggen.example/artikel/daytraden",
                        "timezone": "Europe/Amsterdam",
                        "form_token": "the form_token of the widget definition",
                    },
                    "properties": {
                        "email": {"type": "string", "maxLength": MAX_EMAIL_LENGTH},
                        "reader": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
                        "ref": {
                            "type": "string",
                            "description": "The `lc` reference of a link in our email, proving the address; "
                            "one not genuine, expired or naming someone else proves nothing",
                        },
                        "first_name": {
                            "type": "string",
                            "maxLength": MAX_FIRST_NAME_LENGTH,
                            "description": "Optional; trimmed, no control characters. Like an answer, it "
                            "changes a known subscriber's name only with `ref`",
                        },
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
                        "page_url": {"type": "string", "maxLength": MAX_URL_LENGTH},
                        "timezone": {"type": "string", "maxLength": 64},
                        "form_token": {
                            "type": "string",
                            "description": "The `form_token` of the widget definition the form was shown from",
                        },
                        HONEYPOT: {
                            "type": "string",
                            "description": "Hidden from people; left empty by them. Filled in: a script.",
                        },
                    },
                },
            }
        },
    }
