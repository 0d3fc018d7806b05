"""Email: `render` turns a template triple into a message, `transport` hands messages to a relay, `steps`
renders the editor-written sequence steps that the `sequence` triple wraps.

Rendering knows nothing of sending; neither knows the database or the services.
"""

from leadcapture.mail.render import KINDS, MARKETING_KINDS, Envelope, MailRenderer
from leadcapture.mail.steps import STEP_CONTEXT, RenderedStep, check_step_template, render_step
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
    "STEP_CONTEXT",
    "Connection",
    "Envelope",
    "FailureKind",
    "MailRenderer",
    "OutboxTransport",
    "RenderedStep",
    "SendFailure",
    "SmtpTransport",
    "Transport",
    "check_step_template",
    "render_step",
    "transport_for",
]
