"""Articles read, in real Chromium: a reader who arrives on a tagged article through our email's link (`lc`) has
its topics recorded by the loader's beacon; a browser that asks not to be tracked, a browser that only typed an
address into a widget, and a reference for someone who is not a confirmed, consenting subscriber record
nothing. Then POST /api/v1/reads itself against hostile bodies, without a browser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask, request, request_started
from flask.testing import FlaskClient
from playwright.sync_api import Page, Request, expect
from sqlalchemy import func, select

from leadcapture.cli.demo import SITE_NAME
from leadcapture.extensions import db
from leadcapture.models import InterestEvent, InterestScore, SignalSource, SubscriberStatus, Widget
from leadcapture.services.widgets import mail_reference, reader_ref
from leadcapture.tokens import Purpose, TokenService, make_token
from tests.factories import make_confirmed_subscriber, make_demo_widget
from tests.fixtures.browser import (
    DEMO_SLUG,
    EMAIL,
    HostPage,
    answer_questions,
    button,
    fill_email_step,
    nl,
    widget,
)
from tests.support.interest import add_topic

pytestmark = pytest.mark.browser

# Where the article lives is under no topic's URL rule: its topics come from its leadcapture:topics tag alone.
ARTICLE = "/artikel/beginnen-met-daytraden"
OTHER_ARTICLE = "/artikel/spreads-en-kosten"
GPC = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
DNT = "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})"


def serve_article(host: HostPage, path: str, topics: str = "daytrading, beleggen") -> str:
    """The demo article at `path` on the publisher's site, tagged with `topics`; its URL."""
    template = host.live.app.jinja_env.get_template("demo/article.html")
    html = template.render(
        base_url=host.live.url, site_name=SITE_NAME, widget_slug=DEMO_SLUG, lang="nl", title=None, topics=topics
    )
    return host.serve(path, html)


def add_reader(
    host: HostPage,
    *,
    status: SubscriberStatus = SubscriberStatus.CONFIRMED,
    marketing_consent: bool = True,
) -> tuple[int, str]:
    """The daytrading topic (its URL rule names no article here) and a subscriber who signed up through the
    demo widget; their id and the reference our email's article links carry for them."""
    with host.live.app.app_context():
        add_topic("daytrading", ["https://beleggen.example/daytraden/"])
        demo = db.session.scalars(select(Widget).where(Widget.slug == DEMO_SLUG)).one()
        person, _ = make_confirmed_subscriber(demo, email=EMAIL, marketing_consent=marketing_consent)
        person.status = status
        person.reader_ref = reader_ref(EMAIL)
        db.session.commit()
        return person.id, mail_reference(person.id)


def reads(app: Flask, subscriber_id: int | None = None) -> list[tuple[int, str, str | None]]:
    """Every read recorded (of one subscriber): who, which topic, which page."""
    with app.app_context():
        query = select(InterestEvent).where(InterestEvent.source == SignalSource.READ)
        if subscriber_id is not None:
            query = query.where(InterestEvent.subscriber_id == subscriber_id)
        return [(event.subscriber_id, event.topic.key, event.url) for event in db.session.scalars(query)]


def beacons(page: Page) -> list[Request]:
    """Every request to /api/v1/reads the page sends from now on."""
    sent: list[Request] = []
    page.on("request", lambda request: sent.append(request) if request.url.endswith("/api/v1/reads") else None)
    return sent


def beacons_received(app: Flask) -> list[dict[str, str]]:
    """The headers of every beacon the app receives from now on. Seen by the app: the browser adds Origin and
    cookies to a keepalive request past where Playwright looks."""
    received: list[dict[str, str]] = []

    def note(_sender: Flask, **_extra: Any) -> None:
        if request.path == "/api/v1/reads":
            received.append(dict(request.headers))

    request_started.connect(note, app, weak=False)
    return received


def open_without_beacon(page: Page, url: str, sent: list[Request]) -> None:
    """Open `url` and wait until the loader has shown the widget, which it does only after it would have sent a
    read; none was sent."""
    with page.expect_response(lambda response: "/api/v1/widgets/" in response.url):
        page.goto(url)
    expect(button(page, nl("start")).or_(button(page, nl("start_ready")))).to_be_visible()
    assert sent == []


def test_a_reader_from_our_email_has_the_article_s_topics_recorded_and_the_reference_leaves_the_address_bar(
    page: Page, host_page: HostPage
) -> None:
    subscriber_id, reference = add_reader(host_page)
    url = serve_article(host_page, ARTICLE)
    # A cookie the app's origin set earlier does not travel with the beacon (navigator.sendBeacon's would).
    page.context.add_cookies([{"name": "tracking", "value": "1", "url": host_page.live.url}])
    received = beacons_received(host_page.live.app)

    with page.expect_response(lambda response: response.url.endswith("/api/v1/reads")) as answered:
        page.goto(f"{url}?lc={reference}")
    response = answered.value
    assert response.status == 204
    sent = response.request
    assert sent.method == "POST"
    assert sent.headers["content-type"].startswith("text/plain")  # a simple request: no preflight
    assert json.loads(sent.post_data or "") == {"ref": reference, "url": url, "topics": "daytrading, beleggen"}
    assert [(headers.get("Origin"), headers.get("Cookie")) for headers in received] == [(host_page.origin, None)]

    expect(page).to_have_url(url)  # the reference is off the address bar, so a shared link does not name them
    assert reads(host_page.live.app) == [(subscriber_id, "daytrading", url)]
    with host_page.live.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(InterestScore)) == 1


def test_the_reference_this_browser_remembers_counts_no_later_page_as_read_from_our_email(
    page: Page, host_page: HostPage
) -> None:
    subscriber_id, reference = add_reader(host_page)
    first, later = serve_article(host_page, ARTICLE), serve_article(host_page, OTHER_ARTICLE)
    with page.expect_response(lambda response: response.url.endswith("/api/v1/reads")):
        page.goto(f"{first}?lc={reference}")
    expect(button(page, nl("start_ready")).or_(button(page, nl("start")))).to_be_visible()
    # The server recognised the reference, so this browser keeps it as proof of the address for its answers.
    assert page.evaluate("JSON.parse(localStorage.leadcapture).p") == reference

    open_without_beacon(page, later, beacons(page))
    assert reads(host_page.live.app) == [(subscriber_id, "daytrading", first)]


@pytest.mark.parametrize(
    ("script", "headers"),
    [
        pytest.param(GPC, {}, id="navigator.globalPrivacyControl"),
        pytest.param(DNT, {}, id="navigator.doNotTrack"),
        pytest.param(None, {"Sec-GPC": "1"}, id="Sec-GPC header"),
        pytest.param(None, {"DNT": "1"}, id="DNT header"),
    ],
)
def test_a_browser_that_asks_not_to_be_tracked_has_nothing_recorded(
    page: Page, host_page: HostPage, script: str | None, headers: dict[str, str]
) -> None:
    """The loader sends nothing when the browser says so; a browser that says so only in its headers (the
    loader cannot see them) has its beacon dropped by the server."""
    subscriber_id, reference = add_reader(host_page)
    url = serve_article(host_page, ARTICLE)
    if script:
        page.context.add_init_script(script)
    page.context.set_extra_http_headers(headers)
    sent = beacons(page)

    if script:
        open_without_beacon(page, f"{url}?lc={reference}", sent)
    else:
        with page.expect_response(lambda response: response.url.endswith("/api/v1/reads")) as answered:
            page.goto(f"{url}?lc={reference}")
        assert answered.value.status == 204
        assert {name.lower(): value for name, value in headers.items()}.items() <= sent[0].all_headers().items()
    expect(page).to_have_url(url)
    assert reads(host_page.live.app, subscriber_id) == []


def test_a_browser_that_only_typed_the_address_into_the_widget_has_nothing_recorded(
    page: Page, host_page: HostPage
) -> None:
    """Typing an address proves nothing (anyone can type anyone's), so the `reader` a submission leaves in the
    browser never attributes reading to that person."""
    subscriber_id, _reference = add_reader(host_page)
    url = serve_article(host_page, ARTICLE)
    sent = beacons(page)
    open_without_beacon(page, url, sent)
    answer_questions(page)
    fill_email_step(page, EMAIL)
    button(page, nl("submit")).click()
    expect(widget(page).get_by_text(nl("success"))).to_be_visible()
    assert page.evaluate("JSON.parse(localStorage.leadcapture).r")  # the browser now remembers a reader

    open_without_beacon(page, serve_article(host_page, OTHER_ARTICLE), sent)
    assert reads(host_page.live.app, subscriber_id) == []


@pytest.mark.parametrize(
    ("status", "marketing_consent"),
    [
        pytest.param(SubscriberStatus.PENDING, True, id="unconfirmed"),
        pytest.param(SubscriberStatus.UNSUBSCRIBED, True, id="unsubscribed"),
        pytest.param(SubscriberStatus.CONFIRMED, False, id="confirmed without marketing consent"),
    ],
)
def test_a_reference_for_someone_not_confirmed_and_consenting_has_nothing_recorded(
    page: Page, host_page: HostPage, status: SubscriberStatus, marketing_consent: bool
) -> None:
    """Each case leaves the other condition met (a consent flag on an unconfirmed or unsubscribed person), so
    the one it names is what refuses the read."""
    subscriber_id, reference = add_reader(host_page, status=status, marketing_consent=marketing_consent)
    url = serve_article(host_page, ARTICLE)
    with page.expect_response(lambda response: response.url.endswith("/api/v1/reads")) as answered:
        page.goto(f"{url}?lc={reference}")
    assert answered.value.status == 204
    expect(page).to_have_url(url)
    assert reads(host_page.live.app, subscriber_id) == []


# --- POST /api/v1/reads against hostile input (no browser needed) ---------------------------------------------

PUBLISHER = "https://beleggen.example"
PAGE = PUBLISHER + "/artikel/beginnen"
ELSEWHERE = "https://elders.example"


@pytest.fixture
def reader(app: Flask) -> tuple[int, str]:
    """The demo widget on beleggen.example, the daytrading topic and a confirmed, consenting subscriber: their
    id and their genuine reference."""
    with app.app_context():
        make_demo_widget()
        add_topic("daytrading", [PUBLISHER + "/daytraden/"])
        demo = db.session.scalars(select(Widget)).one()
        person, _ = make_confirmed_subscriber(demo, marketing_consent=True)
        db.session.commit()
        return person.id, mail_reference(person.id)


def post(
    client: FlaskClient,
    body: str | bytes,
    *,
    origin: str | None = PUBLISHER,
    address: str = "10.0.0.1",
    content_type: str = "text/plain;charset=UTF-8",
) -> int:
    """The beacon's POST with this body, from a page on `origin` (None: no Origin header), from `address`."""
    headers = {"Content-Type": content_type} | ({"Origin": origin} if origin is not None else {})
    response = client.post("/api/v1/reads", data=body, headers=headers, environ_base={"REMOTE_ADDR": address})
    return response.status_code


def recorded(app: Flask) -> tuple[int, int]:
    """How many interest events and scores there are."""
    with app.app_context():
        events = db.session.scalar(select(func.count()).select_from(InterestEvent)) or 0
        scores = db.session.scalar(select(func.count()).select_from(InterestScore)) or 0
        return events, scores


def hostile_bodies(subscriber_id: int, reference: str) -> list[tuple[str, str | bytes, str | None]]:
    """(what, the body as sent, its Origin) for beacons that must record nothing (in an app context)."""
    good = {"ref": reference, "url": PAGE, "topics": "daytrading"}
    other_key = TokenService(["another-secret-key-0123456789"]).make(Purpose.READER, {"s": subscriber_id})
    json_bodies: list[tuple[str, Any, str | None]] = [
        ("an array", [good], PUBLISHER),
        ("a string", json.dumps(good), PUBLISHER),
        ("null", None, PUBLISHER),
        ("a number", 1e308, PUBLISHER),
        ("no reference", {**good, "ref": None}, PUBLISHER),
        ("a reference that is a number", {**good, "ref": subscriber_id}, PUBLISHER),
        ("a reference that is a list", {**good, "ref": [reference]}, PUBLISHER),
        ("a reference that is an object", {**good, "ref": {"s": subscriber_id}}, PUBLISHER),
        ("a forged reference", {**good, "ref": "eyJzIjoxfQ.forged.signature"}, PUBLISHER),
        ("a reference signed with another key", {**good, "ref": other_key}, PUBLISHER),
        ("a confirm token", {**good, "ref": make_token(Purpose.CONFIRM, {"s": subscriber_id})}, PUBLISHER),
        ("a click token", {**good, "ref": make_token(Purpose.CLICK, {"s": subscriber_id, "d": 1})}, PUBLISHER),
        ("a URL that is a list", {**good, "url": [PAGE]}, PUBLISHER),
        ("a URL that is a number", {**good, "url": 7}, PUBLISHER),
        ("no URL", {"ref": reference, "topics": "daytrading"}, PUBLISHER),
        ("a URL too long", {**good, "url": PAGE + "?q=" + "x" * 3000}, PUBLISHER),
        ("a URL that is no web page", {**good, "url": "javascript:alert(1)"}, PUBLISHER),
        ("a port no widget allows", {**good, "url": PUBLISHER + ":8443/artikel"}, PUBLISHER + ":8443"),
        ("topics that are an object", {**good, "topics": {"daytrading": 1}}, PUBLISHER),
        ("topics that are a number", {**good, "topics": 3}, PUBLISHER),
        ("topics nested", {**good, "topics": [["daytrading"]]}, PUBLISHER),
        ("unknown topics on a page under none", {**good, "topics": ["crypto", "x" * 500]}, PUBLISHER),
        ("another site's page, from that site", {**good, "url": ELSEWHERE + "/a"}, ELSEWHERE),
        ("another site's page, from ours", {**good, "url": ELSEWHERE + "/a"}, PUBLISHER),
        ("our page, from another site", good, ELSEWHERE),
        ("our page, from no page", good, None),
        ("our page, from an opaque origin", good, "null"),
    ]
    return [
        ("not JSON", "ref=" + reference, PUBLISHER),
        ("truncated JSON", json.dumps(good)[:-1], PUBLISHER),
        ("not UTF-8", b'{"ref": "\xff\xfe"}', PUBLISHER),
        ("empty", "", PUBLISHER),
        ("nested deeper than the decoder recurses", "[" * 5000 + "]" * 5000, PUBLISHER),
        *((what, json.dumps(body), origin) for what, body, origin in json_bodies),
    ]


def test_hostile_bodies_are_answered_204_or_413_and_record_nothing(
    app: Flask, client: FlaskClient, reader: tuple[int, str]
) -> None:
    subscriber_id, reference = reader
    with app.app_context():
        cases = hostile_bodies(subscriber_id, reference)
    for number, (what, body, origin) in enumerate(cases):
        assert post(client, body, origin=origin, address=f"10.0.1.{number}") == 204, what
        assert recorded(app) == (0, 0), what

    # Beyond the 16 KB every API body is held to: refused before it is read.
    huge = json.dumps({"ref": reference, "url": PAGE, "topics": ["daytrading"] * 2000})
    assert len(huge) > 16 * 1024
    assert post(client, huge, address="10.0.2.1") == 413
    # Other content types get the same answer.
    form = "application/x-www-form-urlencoded"
    assert post(client, "ref=x&url=y", content_type=form, address="10.0.2.2") == 204
    assert post(client, "[1, 2]", content_type="application/json", address="10.0.2.3") == 204
    assert recorded(app) == (0, 0)

    # The genuine beacon from the page it names, as JSON: counted.
    good = json.dumps({"ref": reference, "url": PAGE, "topics": "daytrading"})
    assert post(client, good, content_type="application/json", address="10.0.3.1") == 204
    assert recorded(app) == (1, 1)


def test_a_script_replaying_one_reference_counts_one_read_and_is_then_rate_limited(
    app: Flask, client: FlaskClient, reader: tuple[int, str]
) -> None:
    _subscriber_id, reference = reader
    body = json.dumps({"ref": reference, "url": PAGE, "topics": "daytrading"})
    statuses = [post(client, body, address="10.0.4.1") for _ in range(61)]
    assert set(statuses[:60]) == {204}
    assert statuses[60] == 429
    assert recorded(app) == (1, 1)


def test_a_get_of_the_beacon_route_changes_nothing(app: Flask, client: FlaskClient, reader: tuple[int, str]) -> None:
    _subscriber_id, reference = reader
    query = {"ref": reference, "url": PAGE, "topics": "daytrading"}
    response = client.get("/api/v1/reads", query_string=query, headers={"Origin": PUBLISHER})
    assert response.status_code == 405
    assert recorded(app) == (0, 0)
