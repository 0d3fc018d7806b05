"""URL rules: which pages and links belong to a topic.

A rule is an absolute http(s) URL read as a prefix: `https://beleggen.example/daytraden/` covers that page
and everything below it. Without the closing slash, `https://beleggen.example/daytraden` covers the page
`/daytraden` and everything below it, but not `/daytradenx`: a rule never ends in the middle of a path
segment. A rule without a path covers the whole site.

`*` stands for any run of characters (none included) within one host label or one path segment; it never
crosses a `.` in the host or a `/` in the path: `https://*.beleggen.example/*/daytraden/` covers
`https://www.beleggen.example/nl/daytraden/x` but not `https://beleggen.example/nl/daytraden/` (no label for
the first `*`) or `https://www.beleggen.example/nl/blog/daytraden/` (two segments for the second).

Scheme and host compare without regard to case, a scheme's default port is the same as no port, and the
query string and fragment of a URL are ignored (a rule may not have either). Paths compare exactly after
normalising percent-escapes and dot segments, so `/caf%c3%a9/` and `/café/` are one path.

Pure and safe on hostile input: a URL that is too long, not http(s) or not a URL at all matches no rule,
and nothing here raises for what a reader's browser sends. Matching has no backtracking regular
expressions; each `*` is matched by searching for the literal text after it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import SplitResult, quote, urlsplit

MAX_RULE_LENGTH = 500
MAX_URL_LENGTH = 4096  # longer URLs match nothing: no page of a publisher's has one
MAX_WILDCARDS = 10
DEFAULT_PORTS = {"http": 80, "https": 443}
EXAMPLE = "e.g. https://beleggen.example/daytraden/"

_LABEL_RE = re.compile(r"[a-z0-9*_]([a-z0-9*_-]{0,61}[a-z0-9*_])?")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# What a path may hold as it is: RFC 3986's pchar and '/', plus '%' (escapes are normalised separately).
_PATH_SAFE = "/!$&'()*+,;=:@-._~%"

# A glob within one host label or path segment: the literal texts between its `*`s.
_Glob = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Rule:
    scheme: str
    host: tuple[_Glob, ...]  # one glob per label
    port: int
    path: tuple[_Glob, ...]  # one glob per segment of the prefix, the leading empty one included
    below_only: bool  # written with a closing '/': the URL's path must go on after the prefix
    canonical: str  # the rule in one spelling: lowercase scheme and host, no default port, escapes normalised

    @property
    def specificity(self) -> int:
        """How many literal characters the rule names: more is more specific."""
        return len(self.canonical) - self.canonical.count("*")


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: str
    host: tuple[str, ...]
    port: int
    path: tuple[str, ...]


class _Refused(ValueError):
    """A rule that is not one; the message says why, for the editor."""


def check_rule(text: object) -> str | None:
    """What is wrong with a URL rule, as a sentence for the editor; None when it is a valid rule."""
    if not isinstance(text, str):
        return f"must be a URL ({EXAMPLE})"
    try:
        _compiled(text)
    except _Refused as exc:
        return str(exc)
    return None


def matches(rule: str, url: str) -> bool:
    """Whether `url` falls under `rule`. An invalid rule or URL matches nothing."""
    compiled = _rule_or_none(rule)
    parsed = _parse_url(url)
    return compiled is not None and parsed is not None and _matches(compiled, parsed)


def specificity(rule: str) -> int:
    """How specific a valid rule is (the literal characters it names); -1 for an invalid one."""
    compiled = _rule_or_none(rule)
    return -1 if compiled is None else compiled.specificity


def topic_for_url(topics: Iterable[tuple[str, Sequence[str]]], url: str) -> str | None:
    """The key of the topic `url` belongs to: of the topics with a rule it falls under, the one whose
    matching rule is the most specific; between equally specific ones, the first key in sorted order."""
    parsed = _parse_url(url)
    if parsed is None:
        return None
    best: tuple[int, str] | None = None
    for key, rules in topics:
        for rule in rules:
            compiled = _rule_or_none(rule)
            if compiled is None or not _matches(compiled, parsed):
                continue
            if best is None or (-compiled.specificity, key) < (-best[0], best[1]):
                best = (compiled.specificity, key)
    return None if best is None else best[1]


def origin(url: str) -> str | None:
    """The origin of an http(s) URL as a browser sends it in an Origin header: scheme://host[:port] in lower
    case, without the scheme's default port; None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    netloc = parts.hostname if port in (None, DEFAULT_PORTS[parts.scheme]) else f"{parts.hostname}:{port}"
    return f"{parts.scheme}://{netloc}".lower()


def canonical(rule: str) -> str | None:
    """A rule in one spelling, so two ways of writing it compare equal ('HTTPS://X.example:443' and
    'https://x.example/' are one rule); None for an invalid one."""
    compiled = _rule_or_none(rule)
    return None if compiled is None else compiled.canonical


# --- rules ------------------------------------------------------------------------------------------------


def _rule_or_none(rule: object) -> _Rule | None:
    if not isinstance(rule, str):
        return None
    try:
        return _compiled(rule)
    except _Refused:
        return None


@lru_cache(maxsize=4096)
def _compiled(text: str) -> _Rule:
    """A rule taken apart for matching; `_Refused` saying why it is not one."""
    if not text.strip():
        raise _Refused("is empty")
    if len(text) > MAX_RULE_LENGTH:
        raise _Refused(f"is {len(text)} characters long; the limit is {MAX_RULE_LENGTH}")
    if any(character.isspace() or not character.isprintable() for character in text):
        raise _Refused(f"must not contain spaces or control characters ({EXAMPLE})")
    if text.count("*") > MAX_WILDCARDS:
        raise _Refused(f"has more than {MAX_WILDCARDS} wildcards (*)")
    scheme = text.partition(":")[0].lower()
    if scheme not in DEFAULT_PORTS or not text[len(scheme) :].startswith("://"):
        raise _Refused(f"must be a URL starting with https:// or http:// ({EXAMPLE})")
    if "?" in text or "#" in text:
        raise _Refused("must not have a query (?…) or fragment (#…): a rule matches a URL's path")
    try:
        parts = urlsplit(text)
    except ValueError:  # an unbalanced '[' in the host
        raise _Refused("has an invalid host name") from None
    if "@" in parts.netloc:
        raise _Refused("must not contain a user name or password")
    host_text, port = _host_and_port(parts)
    host = _rule_host(host_text)
    segments = _path_segments(parts.path or "/")
    if segments is None:
        raise _Refused("must not have '.' or '..' path segments")
    below_only = segments[-1] == "" and len(segments) > 1
    if below_only:
        segments = segments[:-1]
    path = tuple(_glob(segment) for segment in segments)
    shown_host = ".".join("*".join(label) for label in host)
    shown_port = "" if port == DEFAULT_PORTS[scheme] else f":{port}"
    shown = f"{scheme}://{shown_host}{shown_port}{'/'.join(segments)}{'/' if below_only else ''}"
    return _Rule(scheme, host, port, path, below_only, shown)


def _host_and_port(parts: SplitResult) -> tuple[str, int]:
    netloc = parts.netloc
    if netloc.startswith("["):
        address, bracket, rest = netloc[1:].partition("]")
        try:
            host = f"[{ipaddress.IPv6Address(address).compressed}]"
        except ValueError:
            raise _Refused("has an invalid host name") from None
        if not bracket or (rest and not rest.startswith(":")):
            raise _Refused("has an invalid host name")
        port_text = rest[1:] if rest else None
    else:
        host, colon, after = netloc.partition(":")
        port_text = after if colon else None
    if port_text is None:
        return host, DEFAULT_PORTS[parts.scheme.lower()]
    digits = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    if not digits or not 0 < int(port_text) < 65536:
        raise _Refused("has an invalid port")
    return host, int(port_text)


def _rule_host(host: str) -> tuple[_Glob, ...]:
    if host.startswith("["):
        return ((host,),)
    if not host:
        raise _Refused(f"has no host name ({EXAMPLE})")
    labels = host.rstrip(".").split(".") if host != "." else [""]
    globs: list[_Glob] = []
    for label in labels:
        ascii_label = _ascii_label(label)
        if ascii_label is None or not _LABEL_RE.fullmatch(ascii_label):
            raise _Refused("has an invalid host name (with a wildcard: e.g. https://*.beleggen.example/)")
        globs.append(_glob(ascii_label))
    if all(glob == ("", "") for glob in globs):
        raise _Refused("needs a host name that is more than wildcards, e.g. https://*.beleggen.example/")
    return tuple(globs)


def _ascii_label(label: str) -> str | None:
    """A host label as DNS spells it (IDNA, lowercase); the parts between wildcards converted one by one."""
    try:
        return "*".join(
            part.encode("idna").decode("ascii").lower() if part and not part.isascii() else part.lower()
            for part in label.split("*")
        )
    except UnicodeError:
        return None


def _glob(text: str) -> _Glob:
    return tuple(text.split("*"))


# --- URLs -------------------------------------------------------------------------------------------------


def _parse_url(url: object) -> _Url | None:
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        return None
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.netloc:
            return None
        port = parts.port
        hostname = parts.hostname
    except ValueError:  # an invalid port or IPv6 address
        return None
    if not hostname or any(character.isspace() or not character.isprintable() for character in url):
        return None
    if ":" in hostname:
        try:
            host: tuple[str, ...] = (f"[{ipaddress.IPv6Address(hostname).compressed}]",)
        except ValueError:
            return None
    else:
        labels = []
        for label in hostname.rstrip(".").split("."):
            ascii_label = _ascii_label(label)
            if not ascii_label or "*" in ascii_label:
                return None
            labels.append(ascii_label)
        host = tuple(labels)
    segments = _path_segments(parts.path or "/", resolve=True)
    if segments is None:
        return None
    return _Url(scheme, host, DEFAULT_PORTS[scheme] if port is None else port, tuple(segments))


def _path_segments(path: str, *, resolve: bool = False) -> list[str] | None:
    """The normalised segments of a path ('/a/b/' → ['', 'a', 'b', '']). Dot segments are resolved for a URL
    (as a browser does) and refused (None) in a rule."""
    if not path.startswith("/"):
        path = "/" + path
    segments = [_normalised(segment) for segment in path.split("/")]
    if not any(segment in (".", "..") for segment in segments):
        return segments
    if not resolve:
        return None
    resolved: list[str] = [""]
    for index, segment in enumerate(segments[1:], start=1):
        last = index == len(segments) - 1
        if segment == "..":
            if len(resolved) > 1:
                resolved.pop()
            if last:
                resolved.append("")
        elif segment == ".":
            if last:
                resolved.append("")
        else:
            resolved.append(segment)
    return resolved if len(resolved) > 1 else ["", ""]


def _normalised(segment: str) -> str:
    """One path segment with its percent-escapes in one spelling: unreserved characters decoded, other
    escapes in uppercase, and what a browser would escape (non-ASCII, quotes...) escaped as UTF-8."""
    escaped = quote(segment, safe=_PATH_SAFE)

    def one(match: re.Match[str]) -> str:
        character = chr(int(match.group(1), 16))
        return character if character in _UNRESERVED else match.group(0).upper()

    return _ESCAPE_RE.sub(one, escaped)


# --- matching ---------------------------------------------------------------------------------------------


def _matches(rule: _Rule, url: _Url) -> bool:
    if rule.scheme != url.scheme or rule.port != url.port or len(rule.host) != len(url.host):
        return False
    if not all(_glob_matches(glob, label) for glob, label in zip(rule.host, url.host, strict=True)):
        return False
    path = url.path
    if rule.below_only:
        # '/daytraden/' covers '/daytraden/' and below: at least one more segment, possibly empty.
        if len(path) <= len(rule.path):
            return False
    elif len(path) < len(rule.path):
        return False
    return all(_glob_matches(glob, segment) for glob, segment in zip(rule.path, path, strict=False))


def _glob_matches(glob: _Glob, text: str) -> bool:
    """Whether `text` is the glob's literal parts in order with anything between them. Taking each middle
    part at its first place is always right when `*` is the only wildcard, and needs no backtracking."""
    if len(glob) == 1:
        return glob[0] == text
    first, *middle, last = glob
    if len(text) < len(first) + len(last) or not text.startswith(first) or not text.endswith(last):
        return False
    position, end = len(first), len(text) - len(last)
    for part in middle:
        found = text.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True
