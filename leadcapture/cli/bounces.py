"""`leadcapture bounces read SOURCE`: bounces and complaints from the mailbox the return path delivers to."""

from __future__ import annotations

import imaplib
import mailbox
import ssl
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urlsplit

import click
from flask.cli import with_appcontext

from leadcapture.extensions import db
from leadcapture.services.bounces import UnreadableReport, parse_bounce_message, record_bounce

# One mailbox message: a label to print, its bytes, and what to do once it has been handled.
Item = tuple[str, bytes, Callable[[], None]]


@click.group()
def bounces() -> None:
    """Bounces and spam complaints about the mail we sent."""


@bounces.command("read")
@click.argument("source")
@with_appcontext
def read(source: str) -> None:
    """Read bounce reports and spam complaints from SOURCE and suppress the addresses they condemn.

    SOURCE is a Maildir directory, an mbox file, or imaps://user:password@host[:port]/MAILBOX (unread
    messages only; each is marked read once handled). RFC 3464 delivery reports and RFC 5965 complaints are
    tied to the delivery they are about through the VERP return path (bounce+<id>@...) or the original
    Message-ID. Reading the same report twice counts it once; a message that is neither is reported and
    skipped.
    """
    totals: Counter[str] = Counter()
    with _open(source) as items:
        for label, raw, done in items:
            totals["messages"] += 1
            try:
                reports = parse_bounce_message(raw)
            except UnreadableReport as exc:
                click.echo(f"{label}: skipped: {exc}")
                totals["skipped"] += 1
                done()
                continue
            if not reports:
                click.echo(f"{label}: nothing to do (no failed or delayed recipient)")
            for report in reports:
                outcome = record_bounce(report)
                what = f"{report.kind.value} {report.status_code or ''}".strip()
                if outcome.delivery_id is None:
                    click.echo(f"{label}: {what}: {outcome.action}")
                    totals["unmatched"] += 1
                else:
                    click.echo(f"{label}: delivery {outcome.delivery_id}: {what}: {outcome.action}")
                    totals["recorded" if outcome.recorded else "already recorded"] += 1
            db.session.commit()
            done()
    summary = ", ".join(
        f"{totals[name]} {name}" for name in ("recorded", "already recorded", "unmatched", "skipped")
    )
    click.echo(f"read {totals['messages']} messages: {summary}")


def _open(source: str) -> AbstractContextManager[Iterator[Item]]:
    if source.startswith("imaps://"):
        return _imap(source)
    path = Path(source)
    if path.is_dir():
        if not all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            raise click.ClickException(f"{source} is a directory but not a Maildir (no cur, new and tmp)")
        return _local(mailbox.Maildir(path, factory=None, create=False), "")
    if path.is_file():
        return _local(mailbox.mbox(path, create=False), "message ")
    raise click.ClickException(f"no such Maildir or mbox file: {source} (or give an imaps:// URL)")


@contextmanager
def _local(box: mailbox.Mailbox[mailbox.Message], prefix: str) -> Iterator[Iterator[Item]]:
    box.lock()
    try:

        def items() -> Iterator[Item]:
            for number, key in enumerate(box.iterkeys(), start=1):
                yield f"{prefix}{number if prefix else key}", box.get_bytes(key), _nothing

        yield items()
    finally:
        box.unlock()
        box.close()


def _nothing() -> None:
    return None


@contextmanager
def _imap(source: str) -> Iterator[Iterator[Item]]:
    url = urlsplit(source)
    if not (url.hostname and url.username):
        raise click.ClickException("an IMAP source reads imaps://user:password@host[:port]/MAILBOX")
    folder = unquote(url.path.lstrip("/")) or "INBOX"
    try:
        imap = imaplib.IMAP4_SSL(url.hostname, url.port or 993, ssl_context=ssl.create_default_context())
    except OSError as exc:
        raise click.ClickException(f"cannot reach {url.hostname}: {exc}") from exc
    try:
        try:
            imap.login(unquote(url.username), unquote(url.password or ""))
            status, _ = imap.select(_quoted(folder))
            if status != "OK":
                raise click.ClickException(f"no mailbox {folder!r} on {url.hostname}")
            _, found = imap.uid("SEARCH", "UNSEEN")
        except imaplib.IMAP4.error as exc:
            raise click.ClickException(f"{url.hostname}: {exc}") from exc

        def items() -> Iterator[Item]:
            for uid in bytes(found[0] or b"").decode("ascii").split():
                _, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = next((part[1] for part in data if isinstance(part, tuple)), None)
                if isinstance(raw, bytes):
                    yield f"uid {uid}", raw, partial(_mark_read, imap, uid)

        yield items()
    finally:
        with suppress(OSError, imaplib.IMAP4.error):
            imap.logout()


def _mark_read(imap: imaplib.IMAP4, uid: str) -> None:
    imap.uid("STORE", uid, "+FLAGS", r"(\Seen)")


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
