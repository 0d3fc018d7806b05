"""Email: `render` turns a template triple into a message, `transport` hands messages to a relay.

Rendering knows nothing of sending; neither knows the database or the services.
"""

from leadcapture.mail.render import KINDS, MARKETING_KINDS, Envelope, MailRenderer
from leadcapture.mail.transport import (
    Connection,
    FailureKind,
    OutboxTransport,
    SendFailure,
    SmtpTransport,
    Transport,
    transport_for,
)

__all__ = [
    "KINDS",
    "MARKETING_KINDS",
    "Connection",
    "Envelope",
    "FailureKind",
    "MailRenderer",
    "OutboxTransport",
    "SendFailure",
    "SmtpTransport",
    "Transport",
    "transport_for",
]
