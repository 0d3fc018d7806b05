"""What the dashboard counts: impressions as pages fetch a widget, first downloads, the funnel and the answers."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import DeliveryKind, Submission, WidgetImpressions
from tests.factories import PDF_BYTES, make_demo_widget
from tests.test_api import ORIGIN, post, valid_body
from tests.test_links import link_in, sent

DEFINITION = "/api/v1/widgets/daytrading-report"


@pytest.fixture
def widget(app: Flask) -> None:
    with app.app_context():
        make_demo_widget()
        db.session.commit()


def impressions(app: Flask) -> dict[date, int]:
    with app.app_context():
        return {row.day: row.count for row in db.session.scalars(select(WidgetImpressions))}


def fetch(client: FlaskClient, origin: str | None = ORIGIN, method: str = "GET") -> int:
    headers = {"Origin": origin} if origin else {}
    return client.open(DEFINITION, method=method, headers=headers).status_code


@pytest.mark.usefixtures("widget")
class TestImpressions:
    def test_every_fetch_from_an_allowed_origin_counts_on_its_utc_day(
        self, app: Flask, client: FlaskClient
    ) -> None:
        # 23:59:59 UTC is already the next day in Amsterdam; the tally goes by UTC.
        clock.freeze(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC))
        assert fetch(client) == 200
        assert fetch(client, ORIGIN + "/") == 200
        clock.advance(timedelta(seconds=1))
        assert fetch(client) == 200
        assert impressions(app) == {date(2026, 3, 1): 2, date(2026, 3, 2): 1}

    def test_preflights_refused_origins_previews_and_unknown_widgets_count_nothing(
        self, app: Flask, client: FlaskClient
    ) -> None:
        assert fetch(client, method="OPTIONS") == 204
        assert fetch(client, "https://elders.example") == 403
        assert fetch(client, None) == 200  # same-origin (an editor's preview) or a server: no page was shown
        assert client.get("/api/v1/widgets/no-such-widget", headers={"Origin": ORIGIN}).status_code == 404
        assert impressions(app) == {}

    def test_concurrent_fetches_are_all_answered_and_all_counted(self, app: Flask) -> None:
        threads, fetches = 8, 15
        statuses: list[int] = []
        start = threading.Barrier(threads)

        def reader() -> None:
            client = app.test_client()
            client.sends_after_each_request = False  # type: ignore[attr-defined]
            start.wait()
            statuses.extend(fetch(client) for _ in range(fetches))

        # Each fetch reads the widget first (the tests keep no widget cache), so every GET holds a read
        # snapshot on SQLite while the others write their counts.
        workers = [threading.Thread(target=reader) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert statuses == [200] * threads * fetches
        assert sum(impressions(app).values()) == threads * fetches


@pytest.mark.usefixtures("widget")
class TestDownloads:
    def download_link(self, app: Flask, client: FlaskClient) -> str:
        post(client, valid_body())
        client.post(link_in(sent(app, DeliveryKind.CONFIRM)[0], "confirm"))
        return link_in(sent(app, DeliveryKind.REPORT)[-1], "download")

    def downloaded_at(self, app: Flask) -> datetime | None:
        with app.app_context():
            return db.session.scalars(select(Submission.downloaded_at)).one()

    def test_the_first_download_is_recorded_and_later_ones_leave_it(
        self, app: Flask, client: FlaskClient, frozen_clock: datetime
    ) -> None:
        link = self.download_link(app, client)
        assert self.downloaded_at(app) is None
        assert client.head(link).status_code == 200  # a HEAD fetches no file
        assert self.downloaded_at(app) is None
        first = client.get(link)
        assert first.data == PDF_BYTES
        assert self.downloaded_at(app) == frozen_clock
        clock.advance(timedelta(days=2))
        assert client.get(link).data == PDF_BYTES
        assert self.downloaded_at(app) == frozen_clock

    def test_an_expired_or_tampered_link_records_nothing(
        self, app: Flask, client: FlaskClient, frozen_clock: datetime
    ) -> None:
        link = self.download_link(app, client)
        assert client.get(link[:-2] + "xx").status_code == 400
        clock.advance(timedelta(days=31))
        assert client.get(link).status_code == 410
        assert self.downloaded_at(app) is None
