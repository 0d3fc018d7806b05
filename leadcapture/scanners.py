"""Which clicks on tracked links a person made, and which software: the rules, in one place.

Secure email gateways and link scanners fetch every link of every email, often before the person has
opened it, and they would double click rates and make everyone look interested in everything. A click
judged automated is still recorded (the admin shows how many there were), with the rule that judged it,
and left out of every score. The rules, each a function below:

- trap: the link no person sees (hidden from view, screen readers and the keyboard) was fetched; and any
  click of the same email within TRAP_WINDOW of that fetch, before or after it, is the same software.
- early: within EARLY of the email being handed to the relay, which no person opens and reads that fast.
- burst: another link of the same email within BURST of this one: a person follows one link at a time.
- network: from an address in a known scanner network.
- agent: a user agent that names a scanner or an HTTP library, or none at all.
- repeat: the same link of the same email clicked before: counted once.

HEAD requests are never recorded at all (GET and HEAD change no row; the redirect answers HEAD without
recording it). Nothing here reads the database or the clock.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Final

TRAP_POSITION: Final = -1
TRAP_WINDOW: Final = timedelta(minutes=2)
EARLY: Final = timedelta(seconds=10)
BURST: Final = timedelta(seconds=2)

# Networks mail security gateways fetch links from, as their operators publish them.
SCANNER_NETWORKS: Final = tuple(
    ipaddress.ip_network(network)
    for network in (
        "40.92.0.0/15",  # Microsoft Exchange Online Protection (Safe Links)
        "40.107.0.0/16",
        "52.100.0.0/14",
        "104.47.0.0/17",
        "148.163.128.0/19",  # Proofpoint
        "67.231.144.0/20",
        "205.139.110.0/24",  # Mimecast
        "207.211.30.0/24",
        "64.235.144.0/20",  # Barracuda
        "209.222.80.0/21",
        "35.190.247.0/24",  # Google link inspection
    )
)
_SCANNER_AGENTS: Final = re.compile(
    r"bot\b|crawl|spider|scan|slurp|preview|proofpoint|mimecast|barracuda|safelinks|forcepoint|trend ?micro"
    r"|sophos|symantec|fortiguard|python-|curl/|wget/|go-http-client|java/|okhttp|libwww|httpclient|axios"
    r"|node-fetch|headless(?!chrome)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Seen:
    """A click already recorded for the same email."""

    position: int
    at: datetime
    automated: str | None


@dataclass(frozen=True)
class Judgement:
    """Why this click is automated (None: a person's), and whether it shows earlier ones were too."""

    reason: str | None
    # The rule that now also applies to earlier clicks of the email (trap or burst), or None.
    earlier: str | None = None


def judge(
    position: int,
    at: datetime,
    *,
    sent_at: datetime | None,
    earlier: Sequence[Seen],
    remote_address: str | None,
    user_agent: str | None,
) -> Judgement:
    """The rules applied to one click of one email, given the clicks recorded for it before."""
    if position == TRAP_POSITION:
        return Judgement("trap", earlier="trap")
    if trapped(at, earlier):
        return Judgement("trap")
    if is_early(at, sent_at):
        return Judgement("early")
    if in_burst(position, at, earlier):
        return Judgement("burst", earlier="burst")
    if from_scanner_network(remote_address):
        return Judgement("network")
    if scanner_agent(user_agent):
        return Judgement("agent")
    if repeated(position, earlier):
        return Judgement("repeat")
    return Judgement(None)


def trapped(at: datetime, earlier: Sequence[Seen]) -> bool:
    return any(seen.position == TRAP_POSITION and abs(seen.at - at) <= TRAP_WINDOW for seen in earlier)


def is_early(at: datetime, sent_at: datetime | None) -> bool:
    return sent_at is not None and at - sent_at < EARLY


def in_burst(position: int, at: datetime, earlier: Sequence[Seen]) -> bool:
    return any(
        seen.position not in (position, TRAP_POSITION) and abs(at - seen.at) <= BURST for seen in earlier
    )


def from_scanner_network(remote_address: str | None) -> bool:
    if not remote_address:
        return False
    return _in_scanner_network(remote_address)


@lru_cache(maxsize=4096)
def _in_scanner_network(remote_address: str) -> bool:
    try:
        address = ipaddress.ip_address(remote_address)
    except ValueError:
        return False
    return any(address in network for network in SCANNER_NETWORKS if network.version == address.version)


def scanner_agent(user_agent: str | None) -> bool:
    return not (user_agent or "").strip() or _SCANNER_AGENTS.search(user_agent or "") is not None


def repeated(position: int, earlier: Sequence[Seen]) -> bool:
    return any(seen.position == position and seen.automated is None for seen in earlier)


def caught_by(rule: str, at: datetime, earlier: Sequence[Seen]) -> list[Seen]:
    """The earlier clicks counted as a person's that `rule` (trap or burst), found at `at`, now judges
    automated too."""
    window = TRAP_WINDOW if rule == "trap" else BURST
    return [seen for seen in earlier if seen.automated is None and abs(at - seen.at) <= window]
