"""URL rules: which pages and links fall under a topic, and what an editor hears of a rule that is not one."""

from __future__ import annotations

import time

import pytest

from leadcapture.urlrules import MAX_RULE_LENGTH, canonical, check_rule, matches, origin, topic_for_url

DAYTRADEN = "https://beleggen.example/daytraden/"


@pytest.mark.parametrize(
    "url",
    [
        "https://beleggen.example/daytraden/",
        "https://beleggen.example/daytraden/zo-begin-je",
        "https://beleggen.example/daytraden/2026/05/kosten",
        "https://BELEGGEN.Example/daytraden/x",  # host without regard to case
        "HTTPS://beleggen.example/daytraden/x",  # scheme too
        "https://beleggen.example:443/daytraden/x",  # the default port is no port
        "https://beleggen.example/daytraden/x?utm_source=mail&lc=abc#reacties",  # query and fragment ignored
        "https://beleggen.example/daytraden/?",
        "https://beleggen.example/nieuws/../daytraden/x",  # dot segments resolved, as a browser does
        "https://beleggen.example/%64aytraden/x",  # an escaped unreserved character is that character
        "https://beleggen.example./daytraden/x",  # the fully qualified host name
    ],
)
def test_a_prefix_covers_its_page_and_everything_below(url: str) -> None:
    assert matches(DAYTRADEN, url)


@pytest.mark.parametrize(
    "url",
    [
        "https://beleggen.example/daytraden",  # the closing slash is part of the rule
        "https://beleggen.example/daytradenx/",
        "https://beleggen.example/Daytraden/x",  # paths keep their case
        "https://beleggen.example/nieuws/daytraden/",
        "https://beleggen.example/",
        "http://beleggen.example/daytraden/x",  # another scheme
        "https://beleggen.example:8443/daytraden/x",  # another port
        "https://www.beleggen.example/daytraden/x",  # another host
        "https://beleggen.example.evil.example/daytraden/x",
        "https://evil.example/?next=https://beleggen.example/daytraden/",
        "https://evil.example/daytraden/#https://beleggen.example/daytraden/",
        "https://beleggen.example@evil.example/daytraden/x",  # the host is evil.example
        "https://beleggen.example/daytraden/../crypto/",  # resolves out of the prefix
    ],
)
def test_a_prefix_does_not_cover_other_pages(url: str) -> None:
    assert not matches(DAYTRADEN, url)


def test_without_the_closing_slash_a_rule_ends_at_a_segment() -> None:
    rule = "https://beleggen.example/daytraden"
    assert matches(rule, "https://beleggen.example/daytraden")
    assert matches(rule, "https://beleggen.example/daytraden/")
    assert matches(rule, "https://beleggen.example/daytraden/zo-begin-je")
    assert not matches(rule, "https://beleggen.example/daytradenx")
    assert not matches(rule, "https://beleggen.example/daytraden-gids")


def test_a_rule_without_a_path_covers_the_whole_site() -> None:
    for rule in ("https://beleggen.example", "https://beleggen.example/"):
        assert matches(rule, "https://beleggen.example")
        assert matches(rule, "https://beleggen.example/daytraden/x")
        assert not matches(rule, "https://beleggen.example.evil.example/")


def test_a_wildcard_stays_within_one_host_label_or_path_segment() -> None:
    rule = "https://*.beleggen.example/*/daytraden/"
    assert matches(rule, "https://www.beleggen.example/nl/daytraden/x")
    assert matches(rule, "https://m.beleggen.example/en/daytraden/")
    assert not matches(rule, "https://beleggen.example/nl/daytraden/x")  # no label for the *
    assert not matches(rule, "https://a.b.beleggen.example/nl/daytraden/x")  # * does not cross '.'
    assert not matches(rule, "https://www.beleggen.example/nl/blog/daytraden/x")  # nor '/'
    assert not matches(rule, "https://www.evil.example/nl/daytraden/x")

    within = "https://beleggen.example/daytraden-*/"
    assert matches(within, "https://beleggen.example/daytraden-2026/x")
    assert matches(within, "https://beleggen.example/daytraden-/x")  # a run may be empty
    assert not matches(within, "https://beleggen.example/daytraden/x")
    assert matches("https://beleggen.example/*-gids-*.html", "https://beleggen.example/etf-gids-2026.html")
    assert not matches("https://beleggen.example/*-gids-*.html", "https://beleggen.example/etf-gids.html")


def test_non_ascii_hosts_and_paths_compare_as_browsers_send_them() -> None:
    rule = "https://bücher.example/café/"
    assert matches(rule, "https://xn--bcher-kva.example/caf%C3%A9/menu")
    assert matches(rule, "https://BÜCHER.example/caf%c3%a9/menu")
    assert matches("https://x.example/caf%c3%a9/", "https://x.example/café/menu")
    assert canonical(rule) == "https://xn--bcher-kva.example/caf%C3%A9/"


def test_ip_addresses_and_ports() -> None:
    assert matches("http://127.0.0.1:5001/daytraden/", "http://127.0.0.1:5001/daytraden/x")
    assert not matches("http://127.0.0.1:5001/daytraden/", "http://127.0.0.1:5002/daytraden/x")
    assert matches("https://[::1]:8443/a", "https://[0:0::1]:8443/a/b")
    assert matches("http://localhost:80/", "http://localhost/x")


def test_the_most_specific_rule_chooses_the_topic() -> None:
    topics = [
        ("site", ["https://beleggen.example/"]),
        ("daytrading", ["https://beleggen.example/daytraden/", "https://beleggen.example/trading/"]),
        ("costs", ["https://beleggen.example/daytraden/kosten/"]),
        ("anywhere", ["https://*.beleggen.example/daytraden/kosten/"]),
    ]
    assert topic_for_url(topics, "https://beleggen.example/daytraden/kosten/spread") == "costs"
    assert topic_for_url(topics, "https://beleggen.example/daytraden/plan") == "daytrading"
    assert topic_for_url(topics, "https://beleggen.example/trading/") == "daytrading"
    assert topic_for_url(topics, "https://beleggen.example/crypto/") == "site"
    # A wildcard names fewer characters than the literal host it stands for.
    assert topic_for_url(topics, "https://www.beleggen.example/daytraden/kosten/x") == "anywhere"
    assert topic_for_url(topics, "https://elsewhere.example/daytraden/") is None


def test_equally_specific_rules_choose_the_first_key() -> None:
    topics = [
        ("zebra", [DAYTRADEN]),
        ("alpha", [DAYTRADEN]),
        ("middle", ["HTTPS://Beleggen.example:443/daytraden/"]),
    ]
    assert topic_for_url(topics, "https://beleggen.example/daytraden/x") == "alpha"
    assert topic_for_url(reversed(topics), "https://beleggen.example/daytraden/x") == "alpha"


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("", "is empty"),
        ("beleggen.example/daytraden/", "must be a URL starting with https:// or http://"),
        ("ftp://beleggen.example/", "must be a URL starting with https:// or http://"),
        ("javascript:alert(1)//", "must be a URL starting with https:// or http://"),
        ("https:/beleggen.example/", "must be a URL starting with https:// or http://"),
        ("https://", "has no host name"),
        ("https:///daytraden/", "has no host name"),
        ("https://*/", "needs a host name that is more than wildcards"),
        ("https://*.*/daytraden/", "needs a host name that is more than wildcards"),
        ("https://beleggen.example/daytraden/?page=1", "must not have a query (?…) or fragment (#…)"),
        ("https://beleggen.example/daytraden/#top", "must not have a query (?…) or fragment (#…)"),
        ("https://editor:secret@beleggen.example/", "must not contain a user name or password"),
        ("https://beleggen.example:0/", "has an invalid port"),
        ("https://beleggen.example:65536/", "has an invalid port"),
        ("https://beleggen.example:*/", "has an invalid port"),
        ("https://beleggen.example:0000443/", "has an invalid port"),
        ("https://bel_eggen..example/", "has an invalid host name"),
        ("https://-beleggen.example/", "has an invalid host name"),
        ("https://beleggen.example%2f/", "has an invalid host name"),
        ("https://[::1/", "has an invalid host name"),
        ("https://[nope]/", "has an invalid host name"),
        ("https://beleggen.example/a/../b/", "must not have '.' or '..' path segments"),
        ("https://beleggen.example/daytraden /", "must not contain spaces or control characters"),
        ("https://beleggen.example/\x00/", "must not contain spaces or control characters"),
        ("https://beleggen.example/" + "*/" * 11, "has more than 10 wildcards (*)"),
        ("https://beleggen.example/" + "a" * MAX_RULE_LENGTH, "characters long; the limit is 500"),
    ],
)
def test_an_invalid_rule_says_why_and_matches_nothing(rule: str, problem: str) -> None:
    message = check_rule(rule)
    assert message is not None
    assert problem in message
    assert not matches(rule, "https://beleggen.example/daytraden/x")
    assert topic_for_url([("daytrading", [rule])], "https://beleggen.example/daytraden/x") is None
    assert canonical(rule) is None


def test_a_rule_that_is_not_text_is_refused() -> None:
    assert check_rule(None) == "must be a URL (e.g. https://beleggen.example/daytraden/)"
    assert check_rule(["https://beleggen.example/"]) is not None


@pytest.mark.parametrize(
    "rule",
    [
        DAYTRADEN,
        "http://127.0.0.1:5001/daytraden",
        "https://*.beleggen.example/*/daytraden/",
        "https://beleggen.example",
        "https://bücher.example/café/",
        "https://[::1]:8443/a",
    ],
)
def test_valid_rules_pass(rule: str) -> None:
    assert check_rule(rule) is None


def test_spellings_of_one_rule_share_their_canonical_form() -> None:
    assert canonical("HTTPS://Beleggen.Example:443") == canonical("https://beleggen.example/")
    assert canonical("https://beleggen.example/%7edaytraden/") == "https://beleggen.example/~daytraden/"
    assert canonical("https://beleggen.example/daytraden") != canonical("https://beleggen.example/daytraden/")


@pytest.mark.parametrize(
    "url",
    [
        None,
        42,
        b"https://beleggen.example/daytraden/",
        "",
        "daytraden",
        "/daytraden/x",
        "//beleggen.example/daytraden/x",
        "javascript:alert(1)",
        "data:text/html,<script>",
        "mailto:lezer@example.com",
        "ftp://beleggen.example/daytraden/",
        "https://beleggen.example:99999/daytraden/",
        "https://beleggen.example:abc/daytraden/",
        "https://[beleggen.example/daytraden/",
        "https://[zz::]/daytraden/",
        "https://beleggen..example/daytraden/",
        "https://*.example/daytraden/",
        "https://beleggen.example/daytraden/\x00",
        "https://beleggen.example/daytraden/ x",
        "https://beleggen.example/daytraden/" + "a" * 5000,
        "https://" + "a." * 3000 + "example/daytraden/",
        "https://\udcff.example/daytraden/",
    ],
)
def test_hostile_urls_match_nothing_and_never_raise(url: object) -> None:
    rules = [DAYTRADEN, "https://*.example/", "https://beleggen.example"]
    assert not any(matches(rule, url) for rule in rules)  # type: ignore[arg-type]
    assert topic_for_url([("daytrading", rules)], url) is None  # type: ignore[arg-type]


def test_matching_takes_no_time_whatever_the_rule_and_url() -> None:
    # Ten wildcards against a long segment without the final text: a backtracking matcher would take years.
    rule = "https://beleggen.example/" + "a*" * 10 + "b"
    assert check_rule(rule) is None
    url = "https://beleggen.example/" + "a" * 4000
    started = time.perf_counter()
    for _ in range(100):
        assert not matches(rule, url)
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Beleggen.Example/daytraden/?x=1#y", "https://beleggen.example"),
        ("https://beleggen.example:443/a", "https://beleggen.example"),  # the scheme's own port is no port
        ("http://beleggen.example:80", "http://beleggen.example"),
        ("https://beleggen.example:8443/", "https://beleggen.example:8443"),
        ("http://localhost:5000/artikel", "http://localhost:5000"),
        ("https://beleggen.example:99999/", None),  # no such port
        ("javascript:alert(1)", None),
        ("mailto:lezer@example.com", None),
        ("https:///pad", None),
        ("/relatief", None),
    ],
)
def test_the_origin_of_a_url_is_what_a_browser_sends_for_the_page(url: str, expected: str | None) -> None:
    assert origin(url) == expected
