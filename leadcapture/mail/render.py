"""Template → EmailMessage. Knows nothing of transport, the database or services."""

from __future__ import annotations

import email.policy
import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import quoprimime
from email.errors import NonASCIILocalPartDefect
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from leadcapture.i18n import normalize_locale, translate

KINDS = frozenset({"confirm", "report", "sequence", "refresh"})
MARKETING_KINDS = frozenset({"sequence", "refresh"})


_UNFOLDED = frozenset({"list-unsubscribe", "dkim-signature"})


class _Policy(email.policy.EmailPolicy):
    """email.policy.SMTP, except that List-Unsubscribe and DKIM-Signature are never folded.

    Python folds an over-long ASCII token (a URL with a signed token easily passes 78 characters) by
    turning it into RFC 2047 encoded-words, after which mail clients no longer see the <https://…> that
    RFC 2369 and RFC 8058 require literally, and a DKIM b= tag no longer verifies. Unfolded, these lines
    stay well below the 998-octet limit.
    """

    def fold(self, name: str, value: str) -> str:
        folded: str = super(_Policy, self._unfolded(name)).fold(name, value)
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        return super(_Policy, self._unfolded(name)).fold_binary(name, value)

    def _unfolded(self, name: str) -> _Policy:
        return self.clone(max_line_length=None) if name.lower() in _UNFOLDED else self


class _FoldedOnce:
    """A header that keeps its folded form per folding setting: headers are immutable, and the shared ones
    (From, Subject, the MIME headers of the parts) are folded for every message otherwise, which costs more
    than the rest of serialising a message."""

    def fold(self, *, policy: email.policy.Policy) -> str:
        folds: dict[tuple[Any, ...], str] = self.__dict__.setdefault("_folds", {})
        key = (policy.max_line_length, policy.linesep, getattr(policy, "utf8", False))
        folded = folds.get(key)
        if folded is None:
            folded = folds[key] = super().fold(policy=policy)  # type: ignore[misc]
        return folded


class _HeaderFactory(HeaderRegistry):
    """The standard header registry, minus the work it repeats for every message.

    HeaderRegistry makes a new class for every header it parses (and once more for the max-count check
    of every assignment), and most headers of a sending batch are the same in every message: From,
    Subject, the MIME headers. Classes are made once per name, and parsed header values, which are
    immutable, are shared between messages. Both caches are bounded, so memory stays flat however long
    a worker runs.
    """

    _MAX_NAMES = 64
    _MAX_VALUES = 256

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}
        self._values: OrderedDict[tuple[str, str], BaseHeader] = OrderedDict()
        self._lock = threading.Lock()  # the policy is module-wide, and a scheduler runs jobs in threads

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = type(f"_Folded{name}", (_FoldedOnce, super().__getitem__(name)), {})
            if len(self._classes) < self._MAX_NAMES:
                self._classes[key] = cls
        return cls

    def __call__(self, name: str, value: Any) -> BaseHeader:
        # A header made from an Address is parsed from the Address's str() too, so that is its identity.
        text = str(value) if type(value) is Address else value
        if type(text) is not str:
            header: BaseHeader = self[name](name, value)
            return header
        key = (name, text)
        with self._lock:
            header = self._values.get(key)  # type: ignore[assignment]
            if header is not None:
                self._values.move_to_end(key)
                return header
        header = self[name](name, value)
        with self._lock:
            self._values[key] = header
            if len(self._values) > self._MAX_VALUES:
                self._values.popitem(last=False)
        return header


MAX_LINE_LENGTH = 78
# The settings of email.policy.SMTP.
POLICY = _Policy(linesep="\r\n", max_line_length=MAX_LINE_LENGTH, header_factory=_HeaderFactory())


def _part_headers(subtype: str) -> tuple[tuple[str, Any], ...]:
    """The headers set_content gives a quoted-printable UTF-8 text part: the same in every message."""
    prototype = EmailMessage(policy=POLICY)
    prototype.set_content("", subtype=subtype, cte="quoted-printable")
    return tuple((name, value) for name, value in prototype.items() if name.lower() != "mime-version")


# Both parts are quoted-printable, in which "=" only ever starts an escape ("=3D", "=20") or a soft line
# break, so a boundary starting with "=_" cannot occur in them (RFC 2045 §6.7, RFC 2046 §5.1.1). One fixed
# boundary spares the generator searching every message for a collision and making up another, and its
# header is parsed once for all messages.
_MULTIPART = 'multipart/alternative; boundary="=_leadcapture_alternative"'

_PART_HEADERS = {subtype: _part_headers(subtype) for subtype in ("plain", "html")}


@dataclass(frozen=True)
class Envelope:
    """Who a message goes to and the headers that are not the template's business."""

    kind: str  # "confirm" | "report" | "sequence" | "refresh" -> X-Leadcapture-Kind
    to: str  # addr-spec
    sender: Address
    message_id: str  # "<...@domain>", stable across retries; used verbatim
    date: datetime  # aware
    list_id: str | None = None  # marketing kinds only, e.g. "Beleggen <beleggen.example>"
    unsubscribe_url: str | None = None  # marketing kinds only: the /unsubscribe/{token} link
    unsubscribe_mailto: str | None = None  # optional, "mailto:…" or a bare address


class MailRenderer:
    """Renders `templates/email/<template>/{subject.txt, body.txt, body.html}` into a message.

    Besides the caller's context (which must hold `locale`, and for the layouts `site_name`, `site_url` and
    `site_link`, the link to the site as this reader follows it) templates see `t` (the translator for that
    locale), `sender`, `unsubscribe_url` (None for transactional kinds) and, in the bodies, `subject`.
    """

    def __init__(self, template_dir: Path) -> None:
        self._env = Environment(
            loader=FileSystemLoader(template_dir),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # templates ship with the code; no stat() per message
        )

    def render(self, envelope: Envelope, template: str, context: Mapping[str, Any]) -> EmailMessage:
        """The complete message: headers from the envelope, a text and an HTML alternative."""
        _check(envelope)
        if "locale" not in context:
            raise ValueError("the context needs a locale")
        locale = normalize_locale(context["locale"])
        names = {
            **context,
            "locale": locale,
            "t": functools.partial(translate, locale),
            "sender": envelope.sender,
            "unsubscribe_url": envelope.unsubscribe_url,
        }
        # One line whatever the template or the context holds: a newline in a title must not add headers.
        subject = " ".join(self._render(template, "subject.txt", names).split())
        if not subject:
            raise ValueError(f"email/{template}/subject.txt rendered an empty subject")
        names["subject"] = subject
        text = self._render(template, "body.txt", names)
        html = self._render(template, "body.html", names)

        message = EmailMessage(policy=POLICY)
        message["From"] = envelope.sender
        message["To"] = _address(envelope.to)
        message["Subject"] = subject
        message["Date"] = format_datetime(envelope.date)
        message["Message-ID"] = envelope.message_id
        message["MIME-Version"] = "1.0"
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders must not answer
        message["X-Leadcapture-Kind"] = envelope.kind
        if envelope.list_id and envelope.unsubscribe_url:  # _check: exactly the marketing kinds
            message["List-Id"] = envelope.list_id
            targets = [envelope.unsubscribe_url]
            if envelope.unsubscribe_mailto:
                mailto = envelope.unsubscribe_mailto
                targets.append(mailto if mailto.startswith("mailto:") else "mailto:" + mailto)
            message["List-Unsubscribe"] = ", ".join(f"<{target}>" for target in targets)
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
        # What set_content() and add_alternative() would build, assembled from parts whose headers are made
        # once: those two re-parse every MIME header of every message, which costs more than the rest of
        # rendering together (tests/test_mail_render.py holds the two ways to the same bytes).
        message["Content-Type"] = _MULTIPART
        message.attach(_text_part(text, "plain"))
        message.attach(_text_part(html, "html"))
        return message

    def _render(self, template: str, part: str, names: Mapping[str, Any]) -> str:
        return self._env.get_template(f"email/{template}/{part}").render(names)


def _text_part(content: str, subtype: str) -> EmailMessage:
    # Quoted-printable keeps both parts 7-bit: no relay re-encodes them, so a DKIM body hash survives.
    # The encoding is email.contentmanager's for cte="quoted-printable": lines normalised to \n, the
    # policy's line length.
    part = EmailMessage(policy=POLICY)
    for name, value in _PART_HEADERS[subtype]:
        part[name] = value
    body = b"\n".join(content.encode("utf-8").splitlines()) + b"\n"
    part.set_payload(quoprimime.body_encode(body.decode("latin-1"), MAX_LINE_LENGTH))
    return part


def _check(envelope: Envelope) -> None:
    """Refuse an envelope that would produce a wrong or non-compliant message."""
    if envelope.kind not in KINDS:
        raise ValueError(f"unknown email kind {envelope.kind!r}")
    if envelope.date.tzinfo is None or envelope.date.utcoffset() is None:
        raise ValueError("the envelope date must be timezone-aware")
    message_id = envelope.message_id
    if not (message_id.startswith("<") and message_id.endswith(">") and "@" in message_id):
        raise ValueError(f"Message-ID must look like <local@domain>, not {message_id!r}")
    if not message_id.isascii() or any(char.isspace() for char in message_id):
        raise ValueError(f"Message-ID must be ASCII without spaces: {message_id!r}")
    single_line = (envelope.list_id, envelope.unsubscribe_url, envelope.unsubscribe_mailto)
    if any(value is not None and ("\r" in value or "\n" in value) for value in single_line):
        raise ValueError("list headers must be single lines")
    if envelope.kind not in MARKETING_KINDS:
        if any(value is not None for value in single_line):
            raise ValueError(f"a {envelope.kind} email is transactional: it takes no list headers")
        return
    if not envelope.list_id or not envelope.unsubscribe_url:
        raise ValueError(f"a {envelope.kind} email needs list_id and unsubscribe_url (RFC 2369, RFC 8058)")
    # RFC 8058 wants https; plain http is let through for the demo and tests on http://127.0.0.1.
    if not envelope.unsubscribe_url.startswith(("https://", "http://")):
        raise ValueError(f"unsubscribe_url must be an http(s) URL: {envelope.unsubscribe_url!r}")
    targets = (envelope.unsubscribe_url, envelope.unsubscribe_mailto or "")
    if not all(target.isascii() and not any(c in target for c in "<>, ") for target in targets):
        raise ValueError("unsubscribe targets must be ASCII (percent-encoded) URIs without <>, or spaces")


# An address made of dot-atoms only (RFC 5322 §3.4.1, with an ASCII letters-digits-hyphens domain), as
# nearly every address is: sound without a parser. Parsing it twice (here and again as the To header)
# would cost more than the rest of the headers together.
_DOT_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
PLAIN_ADDRESS = re.compile(rf"({_DOT_ATOM})@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")


def _address(addr_spec: str) -> Address:
    if plain := PLAIN_ADDRESS.fullmatch(addr_spec):
        return Address(username=plain[1], domain=plain[2])
    try:
        return Address(addr_spec=addr_spec)
    except NonASCIILocalPartDefect:
        # An RFC 6531 address, fine for a relay with SMTPUTF8; only this ASCII-era parser objects to it.
        local, _, domain = addr_spec.rpartition("@")
        _address("".join(char if char.isascii() else "x" for char in local) + "@" + domain)  # else sound?
        return Address(username=local, domain=domain)
    except Exception as exc:  # the parser raises ValueError, IndexError or a HeaderDefect
        raise ValueError(f"not an email address: {addr_spec!r}") from exc
