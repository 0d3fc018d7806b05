"""The rules that tell a person's click from a mail scanner's, one test per rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadcapture import scanners
from leadcapture.scanners import TRAP_POSITION, Seen, judge

SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = SENT + timedelta(hours=2)
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"


def judged(position: int = 0, at: datetime = LATER, *, earlier: tuple[Seen, ...] = (), address: str | None = "203.0.113.9", agent: str | None = BROWSER) -> scanners.Judgement:
    return judge(position, at, sent_at=SENT, earlier=earlier, remote_address=address, user_agent=agent)


def test_a_persons_click_counts() -> None:
    assert judged() == scanners.Judgement(None)


def test_trap_the_hidden_link_is_never_a_person_and_says_so_of_the_clicks_around_it() -> None:
    assert judged(TRAP_POSITION) == scanners.Judgement("trap", earlier="trap")
    fetched = (Seen(TRAP_POSITION, LATER, "trap"),)
    assert judged(1, LATER + timedelta(seconds=90), earlier=fetched).reason == "trap"
    assert judged(1, LATER - timedelta(seconds=90), earlier=fetched).reason == "trap"
    assert judged(1, LATER + timedelta(minutes=3), earlier=fetched).reason is None
    before = (Seen(0, LATER - timedelta(seconds=30), None), Seen(1, LATER - timedelta(minutes=5), None))
    assert scanners.caught_by("trap", LATER, before) == [before[0]]


def test_early_no_person_opens_and_clicks_within_seconds_of_sending() -> None:
    assert judged(at=SENT + timedelta(seconds=4)).reason == "early"
    assert judged(at=SENT + timedelta(seconds=10)).reason is None


def test_burst_several_links_of_one_email_within_two_seconds() -> None:
    first = (Seen(0, LATER, None),)
    assert judged(1, LATER + timedelta(seconds=1), earlier=first) == scanners.Judgement("burst", earlier="burst")
    assert judged(1, LATER + timedelta(seconds=3), earlier=first).reason is None
    # The same link again is a repeat, not a burst.
    assert judged(0, LATER + timedelta(seconds=1), earlier=first).reason == "repeat"
    assert scanners.caught_by("burst", LATER + timedelta(seconds=1), first) == list(first)


@pytest.mark.parametrize("address", ["40.93.12.7", "148.163.150.1", "205.139.110.30", "64.235.150.9"])
def test_network_known_scanner_networks(address: str) -> None:
    assert judged(address=address).reason == "network"


@pytest.mark.parametrize("address", ["203.0.113.9", "2001:db8::1", "not an address", "", None, "999.1.1.1"])
def test_network_other_addresses_and_garbage_are_no_scanner(address: str | None) -> None:
    assert judged(address=address).reason is None


@pytest.mark.parametrize(
    "agent",
    ["", None, "   ", "curl/8.5.0", "python-requests/2.32", "Go-http-client/1.1", "Barracuda Sentinel (EE)",
     "Mozilla/5.0 (compatible; Googlebot/2.1)", "Mimecast URL protect", "Microsoft Office Protocol Discovery SafeLinks"],
)  # fmt: skip
def test_agent_scanners_libraries_and_no_agent_at_all(agent: str | None) -> None:
    assert judged(agent=agent).reason == "agent"


@pytest.mark.parametrize(
    "agent",
    [BROWSER, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", "x" * 10_000],
)  # fmt: skip
def test_agent_browsers_are_people(agent: str) -> None:
    assert judged(agent=agent).reason is None


def test_repeat_a_link_clicked_before_counts_once() -> None:
    earlier = (Seen(0, LATER - timedelta(hours=1), None),)
    assert judged(0, earlier=earlier).reason == "repeat"
    # After an automated fetch of it, a person's first click still counts.
    fetched = (Seen(0, LATER - timedelta(hours=1), "agent"),)
    assert judged(0, earlier=fetched).reason is None
