"""DKIM signatures (RFC 6376) for outgoing mail, made with dkimpy."""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import dkim  # type: ignore[import-untyped]
from dkim.crypto import UnparsableKeyError, parse_pem_private_key  # type: ignore[import-untyped]

from leadcapture.config import PREFIX, Config
from leadcapture.errors import ConfigError
from leadcapture.mail.transport import wire_bytes

# Named explicitly: dkimpy's default list leaves out List-Unsubscribe-Post, and a one-click unsubscribe
# header that is not signed may be added by anyone on the way (RFC 8058 section 4).
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


@dataclass(frozen=True)
class Signer:
    """Signs with one key as d=`domain`, s=`selector`: rsa-sha256, relaxed/relaxed."""

    domain: str
    selector: str
    private_key: bytes  # PEM, PKCS#1 or PKCS#8

    def sign(self, message: EmailMessage, *, international: bool = False) -> None:
        """Add a DKIM-Signature header over the bytes the message will be sent as.

        `international` is the transport's choice for this message (RFC 6532 headers); the headers sign
        as they will be written. Sign once, after the last change to the message.
        """
        signature = self._signature(wire_bytes(message, international=international), message)
        _, _, value = signature.decode("ascii").partition(":")
        # Relaxed canonicalisation unfolds the header anyway; unfolded it survives our policy untouched.
        message["DKIM-Signature"] = " ".join(value.split())

    def signed(self, payload: bytes, message: EmailMessage) -> bytes:
        """The wire bytes `payload` of `message` with a DKIM-Signature header in front of them.

        For the sender, which serialises each message once: prepending the header (as RFC 6376 5.6 has
        it) signs the very bytes that are sent, where `sign` would have the message written out again.
        """
        return self._signature(payload, message) + payload

    def _signature(self, payload: bytes, message: EmailMessage) -> bytes:
        present = [name.encode("ascii") for name in SIGNED_HEADERS if name in message]
        signature: bytes = dkim.sign(
            payload,
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=present,
        )
        return signature

    def dns_record(self) -> str:
        """The TXT record to publish at <selector>._domainkey.<domain>."""
        return public_key_record(self.private_key)


def signer_for(settings: Config) -> Signer | None:
    """The signer the settings ask for, or None when no key is configured.

    Raises ConfigError when the key cannot be read or d= is not aligned with the From domain.
    """
    if settings.dkim_key_file is None:
        return None
    domain = (settings.dkim_domain or settings.mail_from.domain).lower().rstrip(".")
    if not aligned(domain, settings.mail_from.domain):
        raise ConfigError(
            PREFIX + "DKIM_DOMAIN",
            f"{domain} is not aligned with the From domain {settings.mail_from.domain}: use that domain, "
            "a parent of it (not a public suffix) or a subdomain of it",
        )
    return _load(settings.dkim_key_file, settings.dkim_selector or "", domain)


@functools.lru_cache(maxsize=4)
def _load(key_file: Path, selector: str, domain: str) -> Signer:
    if not selector or not selector.isascii() or any(char.isspace() or char == ";" for char in selector):
        raise ConfigError(PREFIX + "DKIM_SELECTOR", f"not a DKIM selector: {selector!r}")
    try:
        private_key = key_file.read_bytes()
        parse_pem_private_key(private_key)
    except OSError as exc:
        raise ConfigError(PREFIX + "DKIM_KEY_FILE", f"cannot read {key_file}: {exc.strerror}") from exc
    except (UnparsableKeyError, ValueError, IndexError) as exc:
        raise ConfigError(PREFIX + "DKIM_KEY_FILE", f"{key_file} holds no PEM RSA private key") from exc
    return Signer(domain=domain, selector=selector, private_key=private_key)


def aligned(dkim_domain: str, from_domain: str) -> bool:
    """Relaxed DMARC alignment of d= with the From domain: the same domain, or one a subdomain of the other.

    Without the public suffix list a parent domain is accepted only when it has two labels or more, so
    d=com or d=uk never passes.
    """
    signing = dkim_domain.lower().rstrip(".")
    author = from_domain.lower().rstrip(".")
    if signing == author:
        return True
    if author.endswith("." + signing):
        return signing.count(".") >= 1
    return signing.endswith("." + author)


def verify(raw: bytes, public_record: str) -> bool:
    """Whether every header named in the first DKIM-Signature and the body verify against this key record."""
    lookup: Callable[..., bytes] = lambda name, timeout=5: public_record.encode("ascii")  # noqa: E731
    return bool(dkim.verify(raw, dnsfunc=lookup))


def public_key_record(private_key: bytes) -> str:
    """The DKIM TXT record (RFC 6376 3.6.1) of a PEM RSA private key's public half."""
    key = parse_pem_private_key(private_key)
    public = _der(0x30, _der_integer(key["modulus"]) + _der_integer(key["publicExponent"]))  # RSAPublicKey
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode("ascii")


def _der_integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content
