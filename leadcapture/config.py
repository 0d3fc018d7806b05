"""The one place that reads the environment. Validated once, at start-up."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from leadcapture.errors import ConfigError

PREFIX = "LEADCAPTURE_"
PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    """A folder that ships with the code: inside the package in a wheel, at the top of a checkout.

    The wheel's force-include puts templates, migrations and the demo content under the package, where an
    installed copy finds them; an editable install runs from the checkout, whose top level holds them.
    """
    in_wheel = PACKAGE_DIR / "_data" / name
    return in_wheel if in_wheel.is_dir() else PACKAGE_DIR.parent / name


TEMPLATES_DIR = _shipped("templates")
MIGRATIONS_DIR = _shipped("migrations")
BUNDLED_CONTENT_DIR = _shipped("content")


@dataclass(frozen=True)
class MailUrl:
    """Where mail goes: an SMTP relay or the database-only outbox."""

    scheme: str  # "outbox", "smtp", "smtp+starttls" or "smtps"
    host: str = ""
    port: int = 0
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0

    @property
    def is_outbox(self) -> bool:
        return self.scheme == "outbox"


@dataclass(frozen=True)
class Config:
    database_url: str
    secret_keys: tuple[str, ...]
    base_url: str
    # The publisher's site, which every email's footer links to: the base URL unless configured apart.
    site_url: str
    mail: MailUrl
    mail_from: Address
    # None: neither configured nor ./content; only the demo then falls back to BUNDLED_CONTENT_DIR.
    content_dir: Path | None
    timezone: str
    rate_limits: bool
    marketing_per_day: int = 1
    sending_hours: tuple[int, int] = (8, 21)
    retry_for: timedelta = timedelta(hours=72)
    refresh_every: timedelta = timedelta(days=30)
    redis_url: str | None = None
    dkim_key_file: Path | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    # Bounces come back to bounce+<delivery id>@<domain of this address> (VERP).
    return_path: str = "bounce@localhost.localdomain"
    # Shared with the mail provider: signs the events it posts to /api/v1/mail-events. Unset: no webhook.
    mail_events_secret: str | None = None
    unconfirmed_retention: timedelta = timedelta(days=30)
    # What behaviour shapes interest profiles: clicks on links in marketing email, articles read after one.
    track_clicks: bool = True
    track_reads: bool = True
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def loopback(self) -> bool:
        """The base URL names this machine: a development setup, whose links no mailbox provider follows."""
        host = urlsplit(self.base_url).hostname or ""
        try:
            return host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def mail_domain(self) -> str:
        return self.mail_from.domain


def resolve_content_dir(configured: str | None) -> Path | None:
    """The configured directory, else ./content if there is one, else None.

    Never the bundled demo content as a fallback: loaded by mistake, it would put made-up questions and
    sequences into a real database.
    """
    if configured is not None and configured.strip():
        return Path(configured.strip())
    return Path("content") if Path("content").is_dir() else None


def content_dir_from_environment() -> Path | None:
    """The content directory for commands that must run where no app can start (no secret key, no database)."""
    return resolve_content_dir(os.environ.get(PREFIX + "CONTENT_DIR"))


def current() -> Config:
    """The validated settings of the running app."""
    from flask import current_app

    settings: Config = current_app.config["SETTINGS"]
    return settings


def load(
    environ: Mapping[str, str] | None = None,
    *,
    instance_path: Path,
    relaxed: bool = False,
) -> Config:
    """Read, coerce and validate the configuration; raise ConfigError naming the variable.

    `relaxed` is for the demo and tests, where a throwaway secret key is acceptable.
    """
    env = _merged_environ(os.environ if environ is None else environ, instance_path)

    def get(name: str) -> str | None:
        value = env.get(PREFIX + name)
        return value.strip() if value is not None and value.strip() else None

    database_url = get("DATABASE_URL") or f"sqlite:///{instance_path / 'leadcapture.sqlite'}"
    if not database_url.startswith(("sqlite:", "postgresql")):
        raise ConfigError(PREFIX + "DATABASE_URL", "must be a sqlite:/// or postgresql+psycopg:// URL")
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")

    secret = get("SECRET_KEY")
    if secret is None:
        if not relaxed:
            raise ConfigError(PREFIX + "SECRET_KEY", "is required (a long random string)")
        secret = "insecure-demo-key-" + str(instance_path)
    secret_keys = tuple(key.strip() for key in secret.split(",") if key.strip())
    if not relaxed and any(len(key) < 16 for key in secret_keys):
        raise ConfigError(PREFIX + "SECRET_KEY", "every key must be at least 16 characters")

    base_url = _site_address("BASE_URL", get("BASE_URL") or "http://127.0.0.1:5000", "https://news.example")
    site_url = _site_address("SITE_URL", get("SITE_URL") or base_url, "https://beleggen.example")

    mail = _parse_mail_url(get("MAIL_URL") or "outbox:")
    mail_from = _parse_mail_from(get("MAIL_FROM"), mail, urlsplit(base_url).hostname or "")

    content_dir = resolve_content_dir(get("CONTENT_DIR"))

    timezone = get("TIMEZONE") or "Europe/Amsterdam"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(PREFIX + "TIMEZONE", f"unknown time zone {timezone!r}") from exc

    track_clicks, track_reads = _tracking(get("TRACKING"))
    rate_limits = (get("RATE_LIMITS") or "on").lower()
    if rate_limits not in ("on", "off"):
        raise ConfigError(PREFIX + "RATE_LIMITS", "must be 'on' or 'off'")

    marketing_per_day = _int_setting(get, "MARKETING_PER_DAY", 1, 1, 24)
    sending_hours = _sending_hours(get("SENDING_HOURS") or "8-21")
    retry_for = timedelta(hours=_int_setting(get, "RETRY_HOURS", 72, 1, 24 * 14))
    refresh_every = timedelta(days=_int_setting(get, "REFRESH_DAYS", 30, 1, 3650))

    redis_url = get("REDIS_URL")
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(PREFIX + "REDIS_URL", "must be a redis:// URL")

    return_path = f"bounce@{mail_from.domain}"
    if (raw_return_path := get("RETURN_PATH")) is not None:
        _, addr = parseaddr(raw_return_path)
        if not addr or addr.count("@") != 1 or "+" in addr or not addr.split("@")[1]:
            raise ConfigError(PREFIX + "RETURN_PATH", "must be an address such as bounce@news.example")
        return_path = addr
    mail_events_secret = get("MAIL_EVENTS_SECRET")
    if mail_events_secret is not None and len(mail_events_secret) < 16:
        raise ConfigError(PREFIX + "MAIL_EVENTS_SECRET", "must be at least 16 characters")
    unconfirmed_retention = timedelta(days=_int_setting(get, "UNCONFIRMED_RETENTION_DAYS", 30, 1, 3650))

    dkim_key_file = get("DKIM_KEY_FILE")
    dkim_selector = get("DKIM_SELECTOR")
    if dkim_key_file is not None:
        if not Path(dkim_key_file).is_file():
            raise ConfigError(PREFIX + "DKIM_KEY_FILE", f"no such file: {dkim_key_file}")
        if dkim_selector is None:
            raise ConfigError(PREFIX + "DKIM_SELECTOR", "is required when a DKIM key is configured")

    return Config(
        database_url=database_url,
        secret_keys=secret_keys,
        base_url=base_url,
        site_url=site_url,
        mail=mail,
        mail_from=mail_from,
        content_dir=content_dir,
        timezone=timezone,
        rate_limits=rate_limits == "on",
        marketing_per_day=marketing_per_day,
        sending_hours=sending_hours,
        retry_for=retry_for,
        refresh_every=refresh_every,
        redis_url=redis_url,
        dkim_key_file=Path(dkim_key_file) if dkim_key_file else None,
        dkim_selector=dkim_selector,
        dkim_domain=get("DKIM_DOMAIN") or (mail_from.domain if dkim_key_file else None),
        return_path=return_path,
        mail_events_secret=mail_events_secret,
        unconfirmed_retention=unconfirmed_retention,
        track_clicks=track_clicks,
        track_reads=track_reads,
    )


def _tracking(raw: str | None) -> tuple[bool, bool]:
    """(clicks, reads) from `clicks,reads` (the default), `clicks` or `off`."""
    value = (raw or "clicks,reads").lower().replace(" ", "")
    choices = {"clicks,reads": (True, True), "reads,clicks": (True, True), "clicks": (True, False), "off": (False, False)}
    if value not in choices:
        raise ConfigError(PREFIX + "TRACKING", "must be 'clicks,reads', 'clicks' or 'off'")
    return choices[value]


def _site_address(name: str, raw: str, example: str) -> str:
    url = raw.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(PREFIX + name, f"must be an absolute http(s) URL such as {example}")
    return url


def _int_setting(get: Callable[[str], str | None], name: str, default: int, low: int, high: int) -> int:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigError(PREFIX + name, f"must be a whole number from {low} to {high}")
    return value


def _sending_hours(raw: str) -> tuple[int, int]:
    start, _, end = raw.partition("-")
    try:
        hours = (int(start), int(end))
    except ValueError:
        hours = (0, 0)
    if not 0 <= hours[0] < hours[1] <= 23:
        raise ConfigError(PREFIX + "SENDING_HOURS", "must be START-END in whole local hours, e.g. 8-21")
    return hours


def _merged_environ(environ: Mapping[str, str], instance_path: Path) -> dict[str, str]:
    """The process environment over `.env` files (instance folder, then working directory)."""
    merged: dict[str, str] = {}
    for candidate in (instance_path / ".env", Path(".env")):
        if candidate.is_file():
            values = dotenv_values(candidate)
            merged.update({k: v for k, v in values.items() if k.startswith(PREFIX) and v is not None})
    merged.update({k: v for k, v in environ.items() if k.startswith(PREFIX)})
    return merged


def _parse_mail_url(raw: str) -> MailUrl:
    name = PREFIX + "MAIL_URL"
    if raw == "outbox:":
        return MailUrl(scheme="outbox")
    parts = urlsplit(raw)
    defaults = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
    if parts.scheme not in defaults:
        raise ConfigError(name, "must be outbox:, smtp://, smtp+starttls:// or smtps://")
    try:
        port = parts.port or defaults[parts.scheme]
    except ValueError as exc:
        raise ConfigError(name, "has an invalid port") from exc
    if not parts.hostname:
        raise ConfigError(name, "needs a host")
    timeout = 30.0
    for pair in filter(None, parts.query.split("&")):
        key, _, value = pair.partition("=")
        if key != "timeout":
            raise ConfigError(name, f"unknown option {key!r} (only timeout= is understood)")
        try:
            timeout = float(value)
        except ValueError as exc:
            raise ConfigError(name, "timeout must be a number of seconds") from exc
        if not 0 < timeout <= 600:
            raise ConfigError(name, "timeout must be between 0 and 600 seconds")
    return MailUrl(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
    )


def _parse_mail_from(raw: str | None, mail: MailUrl, base_host: str) -> Address:
    name = PREFIX + "MAIL_FROM"
    if raw is None:
        if not mail.is_outbox:
            raise ConfigError(name, "is required when mail goes to an SMTP relay")
        domain = base_host if "." in base_host else "localhost.localdomain"
        return Address(display_name="leadcapture", addr_spec=f"noreply@{domain}")
    display, addr = parseaddr(raw)
    if not addr or addr.count("@") != 1 or not addr.split("@")[1]:
        raise ConfigError(name, f"is not an email address: {raw!r}")
    try:
        return Address(display_name=display, addr_spec=addr)
    except (ValueError, IndexError) as exc:
        raise ConfigError(name, f"is not an email address: {raw!r}") from exc
