"""What the dashboard counts: impressions as readers' browsers report a widget shown, first downloads, the
funnel and the answers."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from leadcapture import clock
from leadcapture.errors import InvalidInput
from leadcapture.extensions import db
from leadcapture.models import (
    Click,
    Delivery,
    DeliveryKind,
    Impression,
    Submission,
    Subscriber,
    Topic,
    Widget,
    WidgetImpressions,
)
from leadcapture.services.insights import Insights, count_impressions, fold_impressions, gather_insights
from tests.factories import PDF_BYTES, make_question, make_widget
from tests.support.insights import add_person, build_answers, build_funnels
from tests.support.interest import NOW, build_interest_history
from tests.support.mail import link_in, sent
from tests.support.sql import statements
from tests.support.submissions import ORIGIN, post, valid_body

DEFINITION = "/api/v1/widgets/daytrading-report"
IMPRESSIONS = DEFINITION + "/impressions"


def impressions(app: Flask) -> dict[date, int]:
    with app.app_context():
        per_day: dict[date, int] = {}
        for (_, day), count in count_impressions(date.min, date.max).items():
            per_day[day] = per_day.get(day, 0) + count
        return per_day


def shown(client: FlaskClient, origin: str | None = ORIGIN, url: str = IMPRESSIONS) -> int:
    """What the loader sends once it has shown the widget to a reader: a POST without a body."""
    headers = {"Origin": origin} if origin else {}
    return client.post(url, headers=headers).status_code


@pytest.mark.usefixtures("widget")
class TestImpressions:
    def test_every_widget_shown_on_an_allowed_page_counts_on_its_utc_day(
        self, app: Flask, client: FlaskClient
    ) -> None:
        # 23:59:59 UTC is already the next day in Amsterdam; the tally goes by UTC.
        clock.freeze(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC))
        assert shown(client) == 204
        assert shown(client, ORIGIN + "/") == 204
        clock.advance(timedelta(seconds=1))
        assert shown(client) == 204
        assert impressions(app) == {date(2026, 3, 1): 2, date(2026, 3, 2): 1}

    def test_reading_the_definition_refused_origins_previews_and_unknown_widgets_count_nothing(
        self, app: Flask, client: FlaskClient
    ) -> None:
        for method in ("GET", "HEAD"):
            assert client.open(DEFINITION, method=method, headers={"Origin": ORIGIN}).status_code == 200
        assert shown(client, "https://elders.example") == 403
        assert shown(client, None) == 403  # a server or a script: no browser showed it on a page
        assert shown(client, "http://127.0.0.1:5000") == 403  # the admin's own origin previewing it
        assert shown(client, url="/api/v1/widgets/no-such-widget/impressions") == 404
        assert impressions(app) == {}

    def test_concurrent_impressions_are_all_answered_and_all_counted(self, app: Flask) -> None:
        threads, posts = 8, 15
        statuses: list[int] = []
        start = threading.Barrier(threads)

        def reader(number: int) -> None:
            client = app.test_client()
            start.wait()
            # Each its own address, as readers are; one address may send only so many a minute.
            statuses.extend(
                client.post(
                    IMPRESSIONS, headers={"Origin": ORIGIN}, environ_base={"REMOTE_ADDR": f"10.0.0.{number}"}
                ).status_code
                for _ in range(posts)
            )

        # Each request reads the widget first (the tests keep no widget cache) while the others write.
        workers = [threading.Thread(target=reader, args=(number,)) for number in range(1, threads + 1)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert statuses == [204] * threads * posts
        assert sum(impressions(app).values()) == threads * posts

    def test_the_worker_folds_appended_impressions_into_the_same_tallies(
        self, app: Flask, client: FlaskClient
    ) -> None:
        clock.freeze(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC))
        with app.app_context():
            demo = db.session.scalars(select(Widget).where(Widget.slug == "daytrading-report")).one()
            db.session.add(WidgetImpressions(widget_id=demo.id, day=date(2026, 3, 1), count=10))
            gone = make_widget("gone-widget")
            db.session.flush()
            db.session.add(Impression(widget_id=gone.id, day=date(2026, 3, 1)))
            db.session.delete(gone)
            db.session.commit()
        for _ in range(3):
            assert shown(client) == 204
        clock.advance(timedelta(seconds=1))
        assert shown(client) == 204
        # The deleted widget's impression is still appended; the dashboard shows only the widgets there are.
        assert impressions(app) == {date(2026, 3, 1): 14, date(2026, 3, 2): 1}
        with app.app_context():
            funnels = gather_insights(7).funnels
            assert fold_impressions(limit=2) == 2
            db.session.commit()
            assert fold_impressions() == 3
            db.session.commit()
            assert fold_impressions() == 0
            assert db.session.scalars(select(Impression)).all() == []
            tallies = {row.day: row.count for row in db.session.scalars(select(WidgetImpressions))}
            assert gather_insights(7).funnels == funnels
        assert tallies == impressions(app) == {date(2026, 3, 1): 13, date(2026, 3, 2): 1}


@pytest.mark.usefixtures("widget")
class TestDownloads:
    def download_link(self, app: Flask, client: FlaskClient) -> str:
        post(client, valid_body())
        client.post(link_in(sent(app, DeliveryKind.CONFIRM)[0], "confirm"))
        return link_in(sent(app, DeliveryKind.REPORT)[-1], "download")

    def downloaded_at(self, app: Flask) -> datetime | None:
        with app.app_context():
            return db.session.scalars(select(Submission.downloaded_at)).one()

    @pytest.mark.drains_outbox
    def test_the_first_download_is_recorded_and_later_ones_leave_it(
        self, app: Flask, client: FlaskClient, frozen_clock: datetime
    ) -> None:
        link = self.download_link(app, client)
        assert self.downloaded_at(app) is None
        clock.advance(timedelta(minutes=2))  # a person, not a scanner opening the link as the email arrives
        assert client.head(link).status_code == 200
        assert client.get(link).status_code == 200  # the page with the button
        assert self.downloaded_at(app) is None
        first = client.post(link)
        assert first.data == PDF_BYTES
        assert self.downloaded_at(app) == clock.now()
        clock.advance(timedelta(days=2))
        assert client.post(link).data == PDF_BYTES
        assert self.downloaded_at(app) == clock.now() - timedelta(days=2)

    @pytest.mark.drains_outbox
    def test_an_expired_or_tampered_link_records_nothing(
        self, app: Flask, client: FlaskClient, frozen_clock: datetime
    ) -> None:
        link = self.download_link(app, client)
        assert client.post(link[:-2] + "xx").status_code == 400
        clock.advance(timedelta(days=31))
        assert client.get(link).status_code == 410
        assert client.post(link).status_code == 200  # the button on that page: a fresh link by email
        assert self.downloaded_at(app) is None


def funnel_numbers(result: Insights) -> dict[str, list[tuple[int, float | None]]]:
    return {
        funnel.slug: [
            (step.count, None if step.rate is None else round(step.rate, 4)) for step in funnel.steps
        ]
        for funnel in result.funnels
    }


@pytest.mark.usefixtures("app_context", "frozen_clock")
class TestFunnel:
    def test_last_7_days(self) -> None:
        build_funnels()
        result = gather_insights(7)
        assert (result.first_day, result.last_day) == (date(2026, 2, 24), date(2026, 3, 2))
        assert funnel_numbers(result) == {
            "alpha": [(15, None), (3, 0.2), (2, 0.6667), (1, 0.5)],
            "beta": [(0, None), (1, None), (1, 1.0), (0, 0.0)],
        }
        alpha = result.funnels[0]
        assert alpha.report_title == "Report alpha-report"
        assert alpha.overall == pytest.approx(1 / 15)

    def test_last_30_and_90_days(self) -> None:
        build_funnels()
        assert funnel_numbers(gather_insights())["alpha"] == [
            (115, None),
            (4, 0.0348),
            (3, 0.75),
            (2, 0.6667),
        ]
        assert funnel_numbers(gather_insights(90))["alpha"] == [
            (1115, None),
            (5, 0.0045),
            (4, 0.8),
            (2, 0.5),
        ]

    def test_a_widget_without_any_history_shows_zeros(self) -> None:
        make_widget("quiet")
        assert funnel_numbers(gather_insights()) == {"quiet": [(0, None), (0, None), (0, None), (0, None)]}

    @pytest.mark.parametrize("period", [0, 1, 14, -7, 10**9])
    def test_only_the_offered_periods(self, period: int) -> None:
        with pytest.raises(InvalidInput):
            gather_insights(period)


def shares(result: Insights) -> dict[str, tuple[int, list[tuple[str, str, int, bool]]]]:
    return {
        item.key: (item.respondents, [(o.value, o.label, o.count, o.retired) for o in item.options])
        for item in result.distributions
    }


@pytest.mark.usefixtures("app_context", "frozen_clock")
class TestAnswerDistribution:
    def test_current_answers_of_confirmed_subscribers_only(self) -> None:
        build_answers()
        assert shares(gather_insights()) == {
            "experience": (
                3,
                [
                    ("none", "New", 0, False),
                    ("some", "Tried", 1, False),
                    ("veteran", "Veteran", 1, True),
                    ("legacy", "legacy", 1, True),
                ],
            ),
            "interests": (
                3,
                [("stocks", "Stocks", 1, False), ("etfs", "ETFs", 0, False), ("crypto", "Crypto", 2, False)],
            ),
            "is_investor": (3, [("yes", "Yes", 2, False), ("no", "No", 1, False)]),
        }

    def test_shares_are_of_the_people_who_answered(self) -> None:
        build_answers()
        interests = next(item for item in gather_insights().distributions if item.key == "interests")
        assert [option.share for option in interests.options] == pytest.approx([1 / 3, 0, 2 / 3])
        assert interests.text == "Question interests?"

    def test_a_question_nobody_answered(self) -> None:
        make_question("quiet", "choice")
        (item,) = gather_insights().distributions
        assert item.respondents == 0
        assert [(option.count, option.share) for option in item.options] == [(0, None)] * 3


def activity(result: Insights) -> dict[str | None, tuple[int, int, int, tuple[tuple[str, int], ...]]]:
    return {topic.key: (topic.clicks, topic.reads, topic.people, topic.automated) for topic in result.topics}


@pytest.mark.usefixtures("app_context", "frozen_clock")
class TestTopicActivity:
    """Clicks judged a person's and reads per topic, the people behind them, and scanners' clicks apart."""

    @pytest.fixture(autouse=True)
    def history(self, app_context: None, frozen_clock: datetime) -> None:
        build_interest_history([add_person(f"p{number}@example.com") for number in (1, 2, 3)])

    def test_last_7_days(self) -> None:
        assert activity(gather_insights(7)) == {
            "crypto": (0, 0, 0, ()),  # an answer about a topic is neither a click nor a read
            "daytrading": (3, 1, 3, (("burst", 1), ("trap", 2))),
            "etfs": (1, 0, 1, (("agent", 1),)),
            None: (1, 0, 1, ()),
        }

    def test_last_30_and_90_days(self) -> None:
        assert activity(gather_insights(30)) == {
            "crypto": (0, 0, 0, ()),
            "daytrading": (4, 2, 3, (("burst", 1), ("trap", 2))),
            "etfs": (1, 1, 2, (("agent", 1),)),
            None: (1, 0, 1, ()),
        }
        result = gather_insights(90)
        assert activity(result) == {
            "crypto": (0, 0, 0, ()),
            "daytrading": (5, 2, 3, (("burst", 1), ("early", 1), ("trap", 2))),
            "etfs": (1, 1, 2, (("agent", 1),)),
            None: (1, 0, 1, ()),
        }
        daytrading = result.topics[1]
        assert (daytrading.name, daytrading.automated_total) == ("Daytrading", 4)
        assert result.topics[-1].name == "Links in no topic"
        assert result.topic_peak == 5

    def test_the_count_takes_the_same_few_statements_however_many_clicks(self) -> None:
        with statements() as few:
            gather_insights(90)
        person = db.session.scalars(select(Subscriber).order_by(Subscriber.id)).first()
        assert person is not None
        email = db.session.scalars(select(Delivery).where(Delivery.subscriber_id == person.id)).one()
        topic = db.session.scalars(select(Topic).where(Topic.key == "etfs")).one()
        db.session.add_all(
            Click(delivery_id=email.id, subscriber_id=person.id, position=0, url="https://x.example/",
                  topic_id=topic.id, clicked_at=NOW - timedelta(minutes=minutes), automated=None)
            for minutes in range(200)
        )  # fmt: skip
        db.session.flush()
        with statements() as many:
            result = gather_insights(90)
        assert len(many) == len(few)
        assert activity(result)["etfs"] == (201, 1, 2, (("agent", 1),))


def test_no_topics_no_topic_activity(app_context: None) -> None:
    assert gather_insights().topics == ()
