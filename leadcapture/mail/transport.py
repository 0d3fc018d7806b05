"""Sending only: an SMTP relay, or the outbox (messages stay in the database for the dev inbox)."""

from __future__ import annotations

import contextlib
import enum
import re
import smtplib
import ssl
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import Literal, Protocol

from leadcapture.config import MailUrl
from leadcapture.mail.render import PLAIN_ADDRESS

Stage = Literal["connect", "MAIL FROM", "RCPT TO", "DATA"]

# RFC 3463 enhanced status code at the start of the reply text: class.subject.detail.
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})\b")


class FailureKind(enum.Enum):
    TRANSIENT = "transient"  # 4xx, timeouts, refused or dropped connections: retry later, same Message-ID
    RECIPIENT = "recipient"  # 5.1.x (550/551/553 at RCPT without enhanced code): hard bounce, suppress
    POLICY = "policy"  # auth failures, TLS, the sender refused (at MAIL FROM, 5.1.7/5.1.8): alert and pause
    # A 5.7.x at RCPT or DATA: the receiving side's policy refuses this one recipient (or this message to
    # them). Anyone can sign up an address whose server answers so; it says nothing about us on its own.
    REFUSED = "refused"
    PERMANENT = "permanent"  # any other 5xx: give up on this one message only


class SendFailure(Exception):
    """A message was not accepted; `kind` says what the caller should do about it."""

    def __init__(self, kind: FailureKind, code: int | None, detail: str, status: str | None = None) -> None:
        super().__init__(kind, code, detail)
        self.kind = kind
        self.code = code
        self.detail = detail
        self.status = status  # the RFC 3463 enhanced status code of the reply, e.g. "5.7.1", when it gave one

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}"


class Connection(Protocol):
    def send(
        self,
        message: EmailMessage | bytes,
        *,
        envelope_from: str,
        to: str,
        meanwhile: Callable[[], None] | None = None,
        go_ahead: Callable[[], bool] | None = None,
    ) -> bool:
        """Hand one message over for one recipient; raise SendFailure when it was not accepted. Bytes are
        sent as they are: `wire_bytes` of the message, serialised by the caller. `meanwhile`, if given, is
        called while the relay works and before its answer is read, at most once per wait (an SMTP relay
        answering RCPT TO, then taking in the message): work to overlap with the relay's, done a slice at a
        time (a sender renders its next message there, a stage per call). `go_ahead`, if given, is asked
        once, before any of the message goes (an SMTP relay meanwhile answers MAIL FROM): when it says no,
        nothing is sent and this returns False."""


class Transport(Protocol):
    keeps_messages: bool  # the caller stores the raw bytes: nothing else will ever hold the message

    def connect(self) -> contextlib.AbstractContextManager[Connection]:
        """A batch: every send inside the block may share one connection."""


def verp_sender(return_path: str, delivery_id: int) -> str:
    """The envelope sender of one delivery: bounce@news.example becomes bounce+42@news.example (VERP), so a
    bounce sent back to it names the delivery it is about."""
    local, _, domain = return_path.rpartition("@")
    return f"{local}+{delivery_id}@{domain}"


def transport_for(mail: MailUrl) -> Transport:
    """The transport LEADCAPTURE_MAIL_URL asks for."""
    return OutboxTransport() if mail.is_outbox else SmtpTransport(mail)


class OutboxTransport:
    """Sends nothing; the caller keeps the message in the outbox table for the dev inbox."""

    keeps_messages = True

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        yield _OutboxConnection()


class _OutboxConnection:
    def send(
        self,
        message: EmailMessage | bytes,
        *,
        envelope_from: str,
        to: str,
        meanwhile: Callable[[], None] | None = None,
        go_ahead: Callable[[], bool] | None = None,
    ) -> bool:
        if go_ahead is not None and not go_ahead():
            return False
        if meanwhile is not None:
            meanwhile()
        return True


def is_international(envelope_from: str, to: str) -> bool:
    """Whether a message to these addresses goes out with SMTPUTF8 and RFC 6532 headers."""
    return not (envelope_from.isascii() and to.isascii())


def wire_bytes(message: EmailMessage, *, international: bool) -> bytes:
    """The bytes an SMTP relay is given for this message (and that a DKIM signature covers)."""
    policy = message.policy
    if policy.linesep != "\r\n":
        policy = policy.clone(linesep="\r\n")
    if international and isinstance(policy, EmailPolicy):
        policy = policy.clone(utf8=True)  # RFC 6532 headers, sent with SMTPUTF8
    return message.as_bytes(policy=policy)


class SmtpTransport:
    """An SMTP relay: smtp:// (plain), smtp+starttls:// (STARTTLS required) or smtps:// (implicit TLS).

    `ssl_context` replaces the default verifying context, for a private CA or a test certificate.
    """

    keeps_messages = False

    def __init__(
        self,
        mail: MailUrl,
        *,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if mail.scheme not in ("smtp", "smtp+starttls", "smtps"):
            raise ValueError(f"not an SMTP mail URL scheme: {mail.scheme!r}")
        self.mail = mail
        self.local_hostname = local_hostname  # EHLO name; smtplib uses the host's FQDN when None
        self._ssl_context = ssl_context

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        connection = _SmtpConnection(self)
        try:
            yield connection
        finally:
            connection.close()


class _SmtpConnection:
    """One SMTP session, opened on the first send and reused for the rest of the batch. Not thread-safe."""

    def __init__(self, transport: SmtpTransport) -> None:
        self._transport = transport
        self._smtp: smtplib.SMTP | None = None

    def send(
        self,
        message: EmailMessage | bytes,
        *,
        envelope_from: str,
        to: str,
        meanwhile: Callable[[], None] | None = None,
        go_ahead: Callable[[], bool] | None = None,
    ) -> bool:
        international = is_international(envelope_from, to)
        asked = _Once(go_ahead)
        # Serialise once, so a retry on a fresh connection sends the very same bytes.
        payload = message if isinstance(message, bytes) else wire_bytes(message, international=international)
        # The message's DATA as the relay gets it (RFC 5321 4.5.2 dot-stuffing), ready before the session.
        data = _terminated(payload)
        for attempt in (1, 2):
            reused = self._smtp is not None
            try:
                return self._transaction(
                    data, payload.isascii(), envelope_from, to, international, meanwhile, asked
                )
            except _StaleConnection as stale:
                # The relay closed our idle connection between two messages (RFC 5321 4.5.3.2.7 allows
                # it, sometimes announced by a 421). Nothing of this message was sent: reconnect once.
                if not reused or attempt == 2:
                    raise stale.failure from stale.__cause__
        raise AssertionError("a message is tried at most twice")  # pragma: no cover

    def close(self) -> None:
        """QUIT politely; a relay that no longer answers is simply dropped."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except OSError:  # smtplib.SMTPException included
                smtp.close()

    def _transaction(
        self,
        data: bytes,
        ascii_only: bool,
        envelope_from: str,
        to: str,
        international: bool,
        meanwhile: Callable[[], None] | None,
        go_ahead: _Once,
    ) -> bool:
        stage: Stage = "connect"
        try:
            smtp = self._smtp = self._smtp or self._open()
            options = []
            if international:
                if not smtp.has_extn("smtputf8"):
                    raise SendFailure(FailureKind.PERMANENT, None, f"the relay lacks SMTPUTF8 for {to!r}")
                options = ["SMTPUTF8", "BODY=8BITMIME"]
            elif not ascii_only and smtp.has_extn("8bitmime"):
                options = ["BODY=8BITMIME"]
            stage = "MAIL FROM"
            # smtplib's mail() in two halves, so that `go_ahead` is asked while the relay answers.
            if international:
                smtp.command_encoding = "utf-8"
            smtp.putcmd("mail", f"FROM:{_quoted(envelope_from)}{''.join(' ' + o for o in options)}")
            try:
                wanted = go_ahead()
            except BaseException:
                self._discard()  # its reply still unread: the session cannot be trusted any more
                raise
            _expect(smtp.getreply(), {250})
            if not wanted:
                if not self._reset():
                    self._discard()
                return False
            stage = "RCPT TO"
            # smtplib's rcpt() in two halves, and data() below, so that `meanwhile` runs while the relay works.
            smtp.putcmd("rcpt", f"TO:{_quoted(to)}")
            if meanwhile is not None:
                meanwhile()
            _expect(smtp.getreply(), {250, 251})
            stage = "DATA"
            _expect(smtp.docmd("data"), {354})
            smtp.send(data)
            if meanwhile is not None:
                meanwhile()
            _expect(smtp.getreply(), {250})
            return True
        except smtplib.SMTPResponseException as exc:
            failure = _failure(exc.smtp_code, exc.smtp_error, stage)
            if exc.smtp_code == 421 or not 400 <= exc.smtp_code <= 599:
                self._discard()  # 421: the relay is closing the session; a garbled reply: we lost track
            elif stage != "connect" and not self._reset():
                self._discard()
            if stage == "MAIL FROM" and exc.smtp_code == 421:
                raise _StaleConnection(failure) from exc
            raise failure from exc
        except OSError as exc:  # includes smtplib.SMTPServerDisconnected and smtplib's other refusals
            self._discard()
            failure = _transport_failure(exc, stage)
            timed_out = isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)
            if stage == "MAIL FROM" and not _is_refusal(exc) and not timed_out:
                raise _StaleConnection(failure) from exc
            raise failure from exc

    def _open(self) -> smtplib.SMTP:
        transport = self._transport
        mail = transport.mail
        smtp: smtplib.SMTP
        if mail.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(
                mail.host,
                mail.port,
                local_hostname=transport.local_hostname,
                timeout=mail.timeout,
                context=transport.ssl_context,
            )
        else:
            smtp = smtplib.SMTP(
                mail.host, mail.port, local_hostname=transport.local_hostname, timeout=mail.timeout
            )
        try:
            smtp.ehlo_or_helo_if_needed()
            if mail.scheme == "smtp+starttls":
                # Never fall back to plain text: a missing STARTTLS may be someone stripping it.
                if not smtp.has_extn("starttls"):
                    raise SendFailure(FailureKind.POLICY, None, f"{mail.host} does not offer STARTTLS")
                smtp.starttls(context=transport.ssl_context)
                smtp.ehlo_or_helo_if_needed()
            if mail.username is not None:
                smtp.login(mail.username, mail.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _reset(self) -> bool:
        """RSET after a refused command; False when the session cannot be trusted any more."""
        if self._smtp is None:
            return False
        try:
            return self._smtp.rset()[0] == 250
        except OSError:
            return False

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()


def _quoted(address: str) -> str:
    """An envelope address as MAIL FROM and RCPT TO take it: smtplib.quoteaddr, which parses every address,
    where it is not plain."""
    return f"<{address}>" if PLAIN_ADDRESS.fullmatch(address) else smtplib.quoteaddr(address)


def _terminated(payload: bytes) -> bytes:
    """A message's DATA as smtplib's data() sends bytes: a leading dot doubled on every line, ended by
    CRLF.CRLF."""
    data = re.sub(rb"(?m)^\.", b"..", payload)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class _StaleConnection(Exception):
    """The connection died before this message's first command was answered."""

    def __init__(self, failure: SendFailure) -> None:
        super().__init__(failure)
        self.failure = failure


class _Once:
    """A go-ahead asked at most once, however often a message is tried; yes when there is none to ask."""

    def __init__(self, ask: Callable[[], bool] | None) -> None:
        self._ask = ask
        self.answer: bool | None = None if ask is not None else True

    def __call__(self) -> bool:
        if self.answer is None and self._ask is not None:
            self.answer = self._ask()
        return bool(self.answer)


def _expect(reply: tuple[int, bytes], codes: set[int]) -> None:
    code, text = reply
    if code not in codes:
        raise smtplib.SMTPResponseException(code, text)


def _failure(code: int, text: bytes | str, stage: Stage) -> SendFailure:
    detail = (text.decode("utf-8", "replace") if isinstance(text, bytes) else text).strip()
    enhanced = _ENHANCED.match(detail)
    status = enhanced[0] if enhanced is not None else None
    return SendFailure(_classify(code, detail, stage), code, f"{stage}: {code} {detail}", status)


def _classify(code: int, text: str, stage: Stage) -> FailureKind:
    """What an SMTP reply means for us (RFC 5321 reply codes, RFC 3463 enhanced codes)."""
    if not 500 <= code <= 599:
        return FailureKind.TRANSIENT  # 4xx; or a garbled reply, after which the session is dropped
    if stage in ("connect", "MAIL FROM"):
        return FailureKind.POLICY  # greeting, EHLO, AUTH or our sender address refused
    enhanced = _ENHANCED.match(text)
    if enhanced is not None and enhanced[1] == "5":
        subject, detail = int(enhanced[2]), int(enhanced[3])
        if subject == 7:
            return FailureKind.REFUSED
        if subject == 1:
            # 5.1.7 and 5.1.8 are about the sender's address, the rest of 5.1.x about the recipient's.
            return FailureKind.POLICY if detail in (7, 8) else FailureKind.RECIPIENT
        return FailureKind.PERMANENT
    # Without an enhanced code only RCPT replies clearly blame the mailbox; a bare 550 after DATA is
    # as often a content filter, and suppressing a good address for that would be wrong.
    if stage == "RCPT TO" and code in (550, 551, 553):
        return FailureKind.RECIPIENT
    return FailureKind.PERMANENT


def _transport_failure(exc: OSError, stage: Stage) -> SendFailure:
    """A failure without an SMTP reply: the network, TLS or the client library."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        # A certificate we do not trust will not fix itself by retrying: configuration, so alert.
        return SendFailure(FailureKind.POLICY, None, f"{stage}: TLS certificate: {exc.verify_message}")
    if _is_refusal(exc):
        # smtplib's own refusals: no AUTH offered, no usable AUTH mechanism. Configuration again.
        return SendFailure(FailureKind.POLICY, None, f"{stage}: {exc}")
    after = " (the message may have arrived)" if stage == "DATA" else ""
    return SendFailure(FailureKind.TRANSIENT, None, f"{stage}: {type(exc).__name__}: {exc}{after}")


def _is_refusal(exc: OSError) -> bool:
    """smtplib declined to go on by itself, as opposed to losing the connection."""
    return isinstance(exc, smtplib.SMTPException) and not isinstance(exc, smtplib.SMTPServerDisconnected)
