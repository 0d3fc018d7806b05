"""Sending through a real SMTP server on loopback: delivery, reuse, TLS, AUTH, and what each failure means."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage

import pytest

from leadcapture.config import TEMPLATES_DIR, MailUrl
from leadcapture.mail.render import Envelope, MailRenderer
from leadcapture.mail.transport import (
    FailureKind,
    OutboxTransport,
    SendFailure,
    SmtpTransport,
    transport_for,
)
from tests.fixtures.smtp import SmtpSink, TlsCertificate

SENDER = Address("Beleggen", addr_spec="nieuws@beleggen.example")
RENDERER = MailRenderer(TEMPLATES_DIR)


def message(n: int = 1, to: str = "anna@example.com") -> EmailMessage:
    """A real rendered confirmation email with its own Message-ID."""
    envelope = Envelope(
        kind="confirm",
        to=to,
        sender=SENDER,
        message_id=f"<{n:032x}.confirm@beleggen.example>",
        date=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
    )
    context = {
        "locale": "nl",
        "first_name": None,
        "report_title": "Daytraden voor beginners",
        "confirm_url": f"https://beleggen.example/confirm/token-{n}",
        "site_name": "Beleggen",
        "site_url": "https://beleggen.example",
        "site_link": "https://beleggen.example",
    }
    return RENDERER.render(envelope, "confirm", context)


def transport(sink: SmtpSink, *, timeout: float = 5.0, **options: object) -> SmtpTransport:
    username = options.pop("username", None)
    password = options.pop("password", None)
    mail = MailUrl(
        scheme=sink.scheme,
        host=sink.host,
        port=sink.port,
        username=username if isinstance(username, str) else None,
        password=password if isinstance(password, str) else None,
        timeout=timeout,
    )
    return SmtpTransport(mail, local_hostname="client.test", **options)  # type: ignore[arg-type]


def send_one(smtp: SmtpTransport, msg: EmailMessage, to: str = "anna@example.com") -> None:
    with smtp.connect() as connection:
        connection.send(msg, envelope_from=SENDER.addr_spec, to=to)


def failure_of(smtp: SmtpTransport, msg: EmailMessage, to: str = "anna@example.com") -> SendFailure:
    with pytest.raises(SendFailure) as caught:
        send_one(smtp, msg, to)
    return caught.value


# -- delivery


def test_delivers_over_plain_smtp(smtp_sink: SmtpSink) -> None:
    sent = message()

    send_one(transport(smtp_sink), sent)

    [received] = smtp_sink.messages
    assert received.mail_from == "nieuws@beleggen.example"
    assert received.rcpt_tos == ("anna@example.com",)
    assert received.message_id == str(sent["Message-ID"])
    assert received.raw.replace(b"\r\n", b"\n") == bytes(sent).replace(b"\r\n", b"\n")
    assert received.peer[0] == "127.0.0.1"
    assert not received.encrypted
    assert str(received.message["Subject"]) == str(sent["Subject"])


def test_lines_starting_with_a_dot_arrive_as_written_and_meanwhile_runs_at_each_wait(
    smtp_sink: SmtpSink,
) -> None:
    # A lone "." on a line would end the message early unless the sender doubles it (RFC 5321 4.5.2).
    payload = b"Subject: punt\r\nMessage-ID: <dot@beleggen.example>\r\n\r\nEen\r\n.\r\n..twee\r\n.drie\r\n"
    rendered: list[int] = []

    with transport(smtp_sink).connect() as connection:
        connection.send(
            payload,
            envelope_from=SENDER.addr_spec,
            to="anna@example.com",
            meanwhile=lambda: rendered.append(1),
        )

    [received] = smtp_sink.messages
    assert received.raw.replace(b"\r\n", b"\n") == payload.replace(b"\r\n", b"\n")
    assert rendered == [1, 1]  # while the relay answers RCPT TO, and while it takes in the message


def test_a_batch_shares_one_connection(smtp_sink: SmtpSink) -> None:
    smtp = transport(smtp_sink)

    with smtp.connect() as connection:
        for n in range(1, 4):
            connection.send(message(n), envelope_from=SENDER.addr_spec, to=f"reader{n}@example.com")

    assert smtp_sink.connections == 1
    assert [received.connection for received in smtp_sink.messages] == [1, 1, 1]
    assert [received.rcpt_tos for received in smtp_sink.messages] == [
        ("reader1@example.com",),
        ("reader2@example.com",),
        ("reader3@example.com",),
    ]
    send_one(smtp, message(4))
    assert smtp_sink.connections == 2  # a new batch, a new connection


def test_an_empty_batch_opens_no_connection(smtp_sink: SmtpSink) -> None:
    with transport(smtp_sink).connect():
        pass

    assert smtp_sink.connections == 0


def test_a_dropped_idle_connection_is_reopened_once(smtp_sink: SmtpSink) -> None:
    with transport(smtp_sink).connect() as connection:
        connection.send(message(1), envelope_from=SENDER.addr_spec, to="anna@example.com")
        smtp_sink.drop_connections()
        connection.send(message(2), envelope_from=SENDER.addr_spec, to="anna@example.com")

    assert smtp_sink.connections == 2
    assert list(smtp_sink.message_ids().values()) == [1, 1]


def test_an_idle_timeout_421_is_retried_on_a_new_connection(smtp_sink: SmtpSink) -> None:
    with transport(smtp_sink).connect() as connection:
        connection.send(message(1), envelope_from=SENDER.addr_spec, to="anna@example.com")
        smtp_sink.fault("MAIL", "421 4.4.2 idle too long, closing", times=1)
        connection.send(message(2), envelope_from=SENDER.addr_spec, to="anna@example.com")

    assert smtp_sink.connections == 2
    assert len(smtp_sink.messages) == 2


def test_a_message_without_the_go_ahead_is_not_sent_and_the_session_goes_on(smtp_sink: SmtpSink) -> None:
    asked: list[str] = []

    def no() -> bool:
        asked.append("no")
        return False

    with transport(smtp_sink).connect() as connection:
        handed = connection.send(
            message(1), envelope_from=SENDER.addr_spec, to="gone@example.com", go_ahead=no
        )
        again = connection.send(
            message(2), envelope_from=SENDER.addr_spec, to="anna@example.com", go_ahead=lambda: True
        )

    assert (handed, again, asked) == (False, True, ["no"])
    assert smtp_sink.connections == 1  # RSET, then on with the same session
    assert [received.rcpt_tos for received in smtp_sink.messages] == [("anna@example.com",)]


def test_the_go_ahead_is_asked_once_when_a_stale_connection_is_retried(smtp_sink: SmtpSink) -> None:
    asked: list[int] = []

    def yes() -> bool:
        asked.append(1)
        return True

    with transport(smtp_sink).connect() as connection:
        connection.send(message(1), envelope_from=SENDER.addr_spec, to="anna@example.com")
        smtp_sink.fault("MAIL", "421 4.4.2 idle too long, closing", times=1)
        assert connection.send(
            message(2), envelope_from=SENDER.addr_spec, to="anna@example.com", go_ahead=yes
        )

    assert asked == [1]
    assert smtp_sink.connections == 2
    assert len(smtp_sink.messages) == 2


def test_the_outbox_asks_for_the_go_ahead_too() -> None:
    with OutboxTransport().connect() as connection:
        assert not connection.send(
            message(1), envelope_from=SENDER.addr_spec, to="anna@example.com", go_ahead=lambda: False
        )
        assert connection.send(
            message(2), envelope_from=SENDER.addr_spec, to="anna@example.com", go_ahead=lambda: True
        )


def test_a_refused_recipient_does_not_end_the_batch(smtp_sink: SmtpSink) -> None:
    smtp_sink.fault("RCPT", "550 5.1.1 no such user", address="gone@example.com")

    with transport(smtp_sink).connect() as connection:
        with pytest.raises(SendFailure) as caught:
            connection.send(message(1), envelope_from=SENDER.addr_spec, to="gone@example.com")
        connection.send(message(2), envelope_from=SENDER.addr_spec, to="anna@example.com")

    assert caught.value.kind is FailureKind.RECIPIENT
    assert smtp_sink.connections == 1  # RSET, then on with the same session
    assert [received.rcpt_tos for received in smtp_sink.messages] == [("anna@example.com",)]


def test_after_a_421_the_next_message_gets_a_new_connection(smtp_sink: SmtpSink) -> None:
    smtp_sink.fault("DATA", "421 4.3.2 shutting down", times=1)

    with transport(smtp_sink).connect() as connection:
        with pytest.raises(SendFailure) as caught:
            connection.send(message(1), envelope_from=SENDER.addr_spec, to="anna@example.com")
        connection.send(message(2), envelope_from=SENDER.addr_spec, to="anna@example.com")

    assert (caught.value.kind, caught.value.code) == (FailureKind.TRANSIENT, 421)
    assert smtp_sink.connections == 2
    assert [received.message_id for received in smtp_sink.messages] == [str(message(2)["Message-ID"])]


def test_an_international_address_goes_out_with_smtputf8(smtp_sink: SmtpSink) -> None:
    send_one(transport(smtp_sink), message(to="jöran@example.com"), to="jöran@example.com")

    [received] = smtp_sink.messages
    assert received.rcpt_tos == ("jöran@example.com",)
    assert str(received.message["To"]) == "jöran@example.com"


def test_several_senders_share_one_sink(smtp_sink: SmtpSink) -> None:
    def sender(first: int) -> None:
        with transport(smtp_sink).connect() as connection:
            for n in range(first, first + 5):
                connection.send(message(n), envelope_from=SENDER.addr_spec, to=f"reader{n}@example.com")

    threads = [threading.Thread(target=sender, args=(first,)) for first in (0, 100, 200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(smtp_sink.wait_for(15)) == 15
    assert smtp_sink.connections == 3
    assert set(smtp_sink.message_ids().values()) == {1}
    assert smtp_sink.count(str(message(104)["Message-ID"])) == 1


# -- TLS and AUTH


def test_starttls_with_a_trusted_certificate(
    make_smtp_sink: Callable[..., SmtpSink], tls_certificate: TlsCertificate
) -> None:
    sink = make_smtp_sink(starttls=tls_certificate.server_context())

    send_one(transport(sink, ssl_context=tls_certificate.client_context()), message())

    [received] = sink.messages
    assert sink.url.startswith("smtp+starttls://")
    assert received.encrypted


def test_starttls_refuses_an_untrusted_certificate(
    make_smtp_sink: Callable[..., SmtpSink], tls_certificate: TlsCertificate
) -> None:
    sink = make_smtp_sink(starttls=tls_certificate.server_context())

    failure = failure_of(transport(sink), message())  # the default context: system CAs only

    assert failure.kind is FailureKind.POLICY
    assert "certificate" in failure.detail
    assert sink.messages == []


def test_starttls_is_required_when_asked_for(smtp_sink: SmtpSink) -> None:
    plain_only = MailUrl(scheme="smtp+starttls", host=smtp_sink.host, port=smtp_sink.port, timeout=5)

    failure = failure_of(SmtpTransport(plain_only), message())

    assert (failure.kind, failure.code) == (FailureKind.POLICY, None)
    assert "STARTTLS" in failure.detail
    assert smtp_sink.messages == []


def test_implicit_tls(make_smtp_sink: Callable[..., SmtpSink], tls_certificate: TlsCertificate) -> None:
    sink = make_smtp_sink(implicit_tls=tls_certificate.server_context())

    send_one(transport(sink, ssl_context=tls_certificate.client_context()), message())

    [received] = sink.messages
    assert sink.url.startswith("smtps://")
    assert received.encrypted


def test_auth_over_starttls(make_smtp_sink: Callable[..., SmtpSink], tls_certificate: TlsCertificate) -> None:
    sink = make_smtp_sink(starttls=tls_certificate.server_context(), credentials=("relay-user", "s3cret pw"))
    smtp = transport(
        sink, ssl_context=tls_certificate.client_context(), username="relay-user", password="s3cret pw"
    )

    send_one(smtp, message())

    [received] = sink.messages
    assert received.encrypted
    assert received.login == "relay-user"


def test_wrong_password_is_a_policy_failure(
    make_smtp_sink: Callable[..., SmtpSink], tls_certificate: TlsCertificate
) -> None:
    sink = make_smtp_sink(starttls=tls_certificate.server_context(), credentials=("relay-user", "s3cret pw"))
    smtp = transport(
        sink, ssl_context=tls_certificate.client_context(), username="relay-user", password="wrong"
    )

    failure = failure_of(smtp, message())

    assert (failure.kind, failure.code) == (FailureKind.POLICY, 535)
    assert sink.messages == []


def test_missing_credentials_are_a_policy_failure(
    make_smtp_sink: Callable[..., SmtpSink], tls_certificate: TlsCertificate
) -> None:
    sink = make_smtp_sink(starttls=tls_certificate.server_context(), credentials=("relay-user", "s3cret pw"))

    failure = failure_of(transport(sink, ssl_context=tls_certificate.client_context()), message())

    assert (failure.kind, failure.code) == (FailureKind.POLICY, 530)  # 530 5.7.0 Authentication required


# -- what a refusal means


@pytest.mark.parametrize(
    ("command", "reply", "kind", "code"),
    [
        ("MAIL", "421 4.3.2 closing", FailureKind.TRANSIENT, 421),
        ("MAIL", "451 4.3.0 try later", FailureKind.TRANSIENT, 451),
        ("MAIL", "550 5.7.1 sender rejected", FailureKind.POLICY, 550),
        ("MAIL", "553 5.1.8 sender domain does not exist", FailureKind.POLICY, 553),
        ("RCPT", "450 4.2.0 mailbox busy", FailureKind.TRANSIENT, 450),
        ("RCPT", "451 4.7.1 greylisted, come back later", FailureKind.TRANSIENT, 451),
        ("RCPT", "452 4.2.2 mailbox full", FailureKind.TRANSIENT, 452),
        ("RCPT", "550 5.1.1 no such user", FailureKind.RECIPIENT, 550),
        ("RCPT", "550 no such user here", FailureKind.RECIPIENT, 550),
        ("RCPT", "553 mailbox name not allowed", FailureKind.RECIPIENT, 553),
        ("RCPT", "550 5.7.1 relaying denied", FailureKind.REFUSED, 550),
        ("RCPT", "553 5.1.7 sender address invalid", FailureKind.POLICY, 553),
        ("RCPT", "552 5.2.2 mailbox over quota", FailureKind.PERMANENT, 552),
        ("DATA", "421 4.3.2 closing", FailureKind.TRANSIENT, 421),
        ("DATA", "451 4.3.0 try later", FailureKind.TRANSIENT, 451),
        ("DATA", "550 5.7.26 unauthenticated mail is prohibited", FailureKind.REFUSED, 550),
        ("DATA", "550 5.1.1 no such user", FailureKind.RECIPIENT, 550),
        ("DATA", "554 5.6.0 message content rejected", FailureKind.PERMANENT, 554),
        ("DATA", "550 message refused", FailureKind.PERMANENT, 550),  # a content filter, not the mailbox
    ],
)
def test_refusals_are_classified(
    smtp_sink: SmtpSink, command: str, reply: str, kind: FailureKind, code: int
) -> None:
    smtp_sink.fault(command, reply)  # type: ignore[arg-type]

    failure = failure_of(transport(smtp_sink), message())

    assert (failure.kind, failure.code) == (kind, code)
    assert reply.split(" ", 1)[1] in failure.detail
    assert smtp_sink.messages == []


def test_a_closed_port_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = SmtpTransport(MailUrl(scheme="smtp", host="127.0.0.1", port=port, timeout=5))

    failure = failure_of(closed, message())

    assert (failure.kind, failure.code) == (FailureKind.TRANSIENT, None)
    assert "ConnectionRefusedError" in failure.detail


@pytest.mark.parametrize("command", ["EHLO", "MAIL", "RCPT", "DATA"])
def test_a_stall_past_the_timeout_is_transient(smtp_sink: SmtpSink, command: str) -> None:
    smtp_sink.fault(command, stall=30)  # type: ignore[arg-type]

    failure = failure_of(transport(smtp_sink, timeout=0.5), message())

    assert (failure.kind, failure.code) == (FailureKind.TRANSIENT, None)
    assert "timed out" in failure.detail


def test_a_stall_on_a_reused_connection_is_not_retried(smtp_sink: SmtpSink) -> None:
    with transport(smtp_sink, timeout=0.5).connect() as connection:
        connection.send(message(1), envelope_from=SENDER.addr_spec, to="anna@example.com")
        smtp_sink.fault("MAIL", stall=30)
        with pytest.raises(SendFailure) as caught:
            connection.send(message(2), envelope_from=SENDER.addr_spec, to="anna@example.com")

    assert caught.value.kind is FailureKind.TRANSIENT
    assert smtp_sink.connections == 1  # waiting out a second timeout would only delay the batch


def test_a_drop_after_data_is_transient(smtp_sink: SmtpSink) -> None:
    smtp_sink.fault("DATA", drop=True)

    failure = failure_of(transport(smtp_sink), message())

    assert (failure.kind, failure.code) == (FailureKind.TRANSIENT, None)
    assert failure.detail.startswith("DATA")


def test_a_drop_before_data_on_a_fresh_connection_is_transient(smtp_sink: SmtpSink) -> None:
    smtp_sink.fault("RCPT", drop=True)

    failure = failure_of(transport(smtp_sink), message())

    assert (failure.kind, failure.code) == (FailureKind.TRANSIENT, None)
    assert smtp_sink.connections == 1


def test_faults_can_fire_a_limited_number_of_times(smtp_sink: SmtpSink) -> None:
    smtp_sink.fault("RCPT", "451 4.7.1 greylisted", times=1)
    smtp = transport(smtp_sink)

    assert failure_of(smtp, message(1)).kind is FailureKind.TRANSIENT
    send_one(smtp, message(1))  # the retry, same Message-ID

    assert smtp_sink.count(str(message(1)["Message-ID"])) == 1


def test_send_failure_reads_well() -> None:
    failure = SendFailure(FailureKind.RECIPIENT, 550, "RCPT TO: 550 5.1.1 no such user")

    assert (failure.kind, failure.code, failure.detail) == (FailureKind.RECIPIENT, 550, failure.detail)
    assert str(failure) == "recipient: RCPT TO: 550 5.1.1 no such user"


# -- choosing a transport


def test_outbox_keeps_messages_and_sends_nothing(smtp_sink: SmtpSink) -> None:
    outbox = transport_for(MailUrl(scheme="outbox"))

    with outbox.connect() as connection:
        connection.send(message(), envelope_from=SENDER.addr_spec, to="anna@example.com")

    assert isinstance(outbox, OutboxTransport)
    assert outbox.keeps_messages is True
    assert smtp_sink.connections == 0


def test_an_smtp_url_gets_the_smtp_transport(smtp_sink: SmtpSink) -> None:
    smtp = transport_for(MailUrl(scheme="smtp", host=smtp_sink.host, port=smtp_sink.port, timeout=5))

    with smtp.connect() as connection:
        connection.send(message(), envelope_from=SENDER.addr_spec, to="anna@example.com")

    assert isinstance(smtp, SmtpTransport)
    assert smtp.keeps_messages is False
    assert len(smtp_sink.messages) == 1
