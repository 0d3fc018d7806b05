"""Addresses as stored: an email address in its canonical form, a reader's IP address cut to its network."""

from __future__ import annotations

import ipaddress

from email_validator import validate_email

MAX_EMAIL_LENGTH = 254


def normalize_email(raw: str) -> str:
    """The canonical form of an address: validated syntax, IDNA domain, lower case. No DNS lookups."""
    result = validate_email(raw.strip(), check_deliverability=False)
    return result.normalized.lower()


def truncate_ip(address: str | None) -> str | None:
    """Keep only the network part of an address: /24 for IPv4, /48 for IPv6."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
