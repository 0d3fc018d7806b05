"""The journey preview: a person's coming weeks of email, and what one changed answer changes. Checked
against the rules (local sending hours across DST, the frequency cap by priority, on_change, freshness),
against the real worker moved through time with `worker --once --at`, and for writing nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.errors import InvalidInput, NotFound
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Question,
    SequenceStep,
    SignalSource,
    Subscriber,
    Topic,
)
from leadcapture.services.journeys import (
    Behaviour,
    Difference,
    EventKind,
    Journey,
    JourneyEvent,
    Person,
    WhatIf,
    preview_journey,
)
from tests.factories import make_demo_widget, make_question, make_sequence
from tests.support.admin import add_account, sign_in
from tests.support.app import Client
from tests.support.sequences import answer, answers, enrollments, subscribe, tick

UTC_ = UTC
AMSTERDAM = "Europe/Amsterdam"
# Monday 2 March 2026, 22:00 in Amsterdam: a sign-up late in the evening.
EVENING = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
# The first step falls due at 21:00 the next evening, when sending hours (8-21) are over, so it waits in the
# outbox for 08:00; an answer changed at 22:00 that evening (day 1) finds it waiting.
LATE_FIRST = (("01-welcome.md", timedelta(hours=23)), ("02-next.md", timedelta(days=3)))

pytestmark = [
    pytest.mark.settings(WTF_CSRF_ENABLED=True, LEADCAPTURE_RATE_LIMITS="off"),
    pytest.mark.drains_outbox,
]


def build(app: Flask, *, beginners: str = "switch", **extra: Any) -> None:
    with app.app_context():
        make_demo_widget()
        make_sequence(
            "beginners", {"daytrading_experience": ["none", "some"]}, on_change=beginners, priority=5, **extra
        )
        make_sequence("active", {"daytrading_experience": "active"})
        db.session.commit()


def beginner(**extra: Any) -> Person:
    return Person(answers=answers("none"), locale="nl", timezone=AMSTERDAM, **extra)


def emails(events: list[JourneyEvent] | None) -> list[tuple[str, datetime]]:
    return [(event.subject or "", event.at) for event in events or [] if event.kind is EventKind.EMAIL]


def kinds(events: list[JourneyEvent], kind: EventKind) -> list[tuple[str | None, datetime]]:
    return [(event.sequence_slug, event.at) for event in events if event.kind is kind]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in March 2026, UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def preview(app: Flask, who: Person | str, **options: Any) -> Journey:
    with app.app_context():
        return preview_journey(who, **options)


def test_a_beginner_enters_the_beginners_sequence_and_gets_its_steps_at_local_times(
    app: Flask, frozen_clock: datetime
) -> None:
    build(app)
    journey = preview(app, beginner())
    assert kinds(journey.timeline, EventKind.ENTER) == [("beginners", frozen_clock)]
    assert emails(journey.timeline) == [
        ("beginners 01-welcome.md", frozen_clock + timedelta(days=1)),
        ("beginners 02-next.md", frozen_clock + timedelta(days=4)),
    ]
    first = journey.emails[0]
    assert (first.local.hour, first.local.minute, first.local.tzname()) == (10, 30, "CET")
    assert (first.sequence, first.step) == ("Sequence beginners", 1)
    assert kinds(journey.timeline, EventKind.COMPLETE) == [("beginners", frozen_clock + timedelta(days=4))]
    assert journey.end == frozen_clock + timedelta(weeks=6)

    # 09:30 UTC is 04:30 in New York: the first step waits for 08:00 there.
    new_york = preview(app, Person(answers=answers("none"), locale="nl", timezone="America/New_York"))
    first = new_york.emails[0]
    assert first.at == at(3, 13)
    assert (first.local.hour, first.local.tzname()) == (8, "EST")
    assert "sending hours" in first.detail


def test_the_subject_is_rendered_for_the_person(app: Flask, frozen_clock: datetime) -> None:
    build(app)
    with app.app_context():
        step = db.session.scalars(select(SequenceStep).where(SequenceStep.key == "01-welcome.md")).first()
        assert step is not None
        step.subject = "Welkom{% if first_name %}, {{ first_name }}{% endif %}: {{ answers.is_investor }}"
        db.session.commit()
    journey = preview(app, beginner(first_name="Anna"))
    assert journey.emails[0].subject == "Welkom, Anna: yes"


def test_the_frequency_cap_spaces_two_sequences_higher_priority_first(
    app: Flask, frozen_clock: datetime
) -> None:
    with app.app_context():
        make_demo_widget()
        one_step = (("01-welcome.md", timedelta(days=1)),)
        make_sequence("low", {"is_investor": "yes"}, steps=one_step, priority=0)
        make_sequence("high", {"is_investor": "yes"}, steps=one_step, priority=10)
        db.session.commit()
    journey = preview(app, beginner())
    assert emails(journey.timeline) == [
        ("high 01-welcome.md", frozen_clock + timedelta(days=1)),
        ("low 01-welcome.md", frozen_clock + timedelta(days=2)),
    ]
    assert "frequency cap" in journey.emails[1].detail


def test_quiet_hours_follow_local_time_across_the_dst_change(app: Flask) -> None:
    clock.freeze(datetime(2026, 3, 27, 23, 0, tzinfo=UTC))  # Saturday 00:00 in Amsterdam (CET)
    build(app)
    journey = preview(app, beginner())
    first, second = journey.emails
    # Due Sunday 01:00 local, the night clocks go forward: sent at 08:00 CEST, which is 06:00 UTC.
    assert first.at == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert (first.local.hour, first.local.tzname()) == (8, "CEST")
    assert "sending hours" in first.detail
    assert second.at == datetime(2026, 4, 1, 6, 0, tzinfo=UTC)
    assert (second.local.hour, second.local.tzname()) == (8, "CEST")


def test_a_what_if_switch_moves_them_at_once_and_drops_the_waiting_step(app: Flask) -> None:
    clock.freeze(EVENING)
    build(app, beginners="switch", steps=LATE_FIRST)
    journey = preview(app, beginner(), weeks=2, what_if=WhatIf("daytrading_experience", "active", 1))
    assert emails(journey.timeline) == [
        ("beginners 01-welcome.md", at(4, 7)),  # due 21:00, waits for 08:00 CET
        ("beginners 02-next.md", at(7, 7)),
    ]
    assert journey.change_at == at(3, 21)
    assert emails(journey.changed_timeline) == [
        ("active 01-welcome.md", at(5, 7)),
        ("active 02-next.md", at(8, 7)),
    ]
    (leave,) = [event for event in journey.changed_timeline or [] if event.kind is EventKind.LEAVE]
    assert (leave.sequence_slug, leave.at) == ("beginners", at(3, 21))
    assert "answers changed" in leave.detail
    assert "waiting step 1 is not sent" in leave.detail
    differences = {
        (row.event.kind, row.event.subject): row.difference
        for row in journey.comparison
        if row.event.is_email
    }
    assert differences == {
        (EventKind.EMAIL, "beginners 01-welcome.md"): Difference.GONE,
        (EventKind.EMAIL, "beginners 02-next.md"): Difference.GONE,
        (EventKind.EMAIL, "active 01-welcome.md"): Difference.NEW,
        (EventKind.EMAIL, "active 02-next.md"): Difference.NEW,
    }
    times = [row.event.at for row in journey.comparison]
    assert times == sorted(times)


def test_a_what_if_with_finish_step_sends_the_waiting_step_first(app: Flask) -> None:
    clock.freeze(EVENING)
    build(app, beginners="finish_step", steps=LATE_FIRST)
    journey = preview(app, beginner(), weeks=2, what_if=WhatIf("daytrading_experience", "active", 1))
    assert emails(journey.changed_timeline) == [
        ("beginners 01-welcome.md", at(4, 7)),
        ("active 01-welcome.md", at(5, 7)),
        ("active 02-next.md", at(8, 7)),
    ]
    changed = journey.changed_timeline or []
    assert kinds(changed, EventKind.LEAVING) == [("beginners", at(3, 21))]
    assert kinds(changed, EventKind.LEAVE) == [("beginners", at(4, 7))]
    rows = {row.event.subject: row.difference for row in journey.comparison if row.event.is_email}
    assert rows["beginners 01-welcome.md"] is Difference.SAME
    assert rows["beginners 02-next.md"] is Difference.GONE


def test_a_what_if_with_finish_step_and_nothing_waiting_leaves_at_once(
    app: Flask, frozen_clock: datetime
) -> None:
    build(app, beginners="finish_step")
    journey = preview(app, beginner(), what_if=WhatIf("daytrading_experience", "active", 0))
    assert kinds(journey.changed_timeline or [], EventKind.LEAVE) == [("beginners", frozen_clock)]
    assert [subject for subject, _at in emails(journey.changed_timeline)] == [
        "active 01-welcome.md",
        "active 02-next.md",
    ]


def test_a_what_if_with_stay_keeps_them_in_and_adds_the_new_sequence(app: Flask) -> None:
    clock.freeze(EVENING)
    build(app, beginners="stay", steps=LATE_FIRST)
    journey = preview(app, beginner(), weeks=2, what_if=WhatIf("daytrading_experience", "active", 1))
    assert emails(journey.changed_timeline) == [
        ("beginners 01-welcome.md", at(4, 7)),
        ("active 01-welcome.md", at(5, 7)),  # the cap: a day after the beginners' email
        ("beginners 02-next.md", at(7, 7)),
        ("active 02-next.md", at(8, 7)),
    ]
    assert kinds(journey.changed_timeline or [], EventKind.STAYS) == [("beginners", at(3, 21))]
    assert kinds(journey.changed_timeline or [], EventKind.LEAVE) == []


def test_an_answer_going_stale_takes_them_out_of_a_fresh_only_sequence_and_is_re_asked(
    app: Flask, frozen_clock: datetime
) -> None:
    with app.app_context():
        make_question("daytrading_experience", "choice", fresh_for_days=10)
        make_demo_widget()
        weekly = tuple((f"{n:02}.md", timedelta(days=7)) for n in range(1, 5))
        make_sequence("fresh", {"daytrading_experience": ["none"]}, fresh_only=True, steps=weekly)
        db.session.commit()
    journey = preview(app, beginner(), weeks=4, what_if=WhatIf("daytrading_experience", "none", 9))
    stale_at = frozen_clock + timedelta(days=10)
    assert [event.at for event in journey.timeline if event.kind is EventKind.STALE] == [stale_at]
    (leave,) = [event for event in journey.timeline if event.kind is EventKind.LEAVE]
    assert leave.at == stale_at
    assert "answers went stale" in leave.detail
    assert [subject for subject, _at in emails(journey.timeline)] == ["fresh 01.md"]
    (refresh,) = [event for event in journey.timeline if event.kind is EventKind.REFRESH]
    assert refresh.question == "daytrading_experience"
    assert refresh.at == stale_at
    # Answered again on day 9, the answer stays fresh ten days more: one more step, then they leave.
    changed = journey.changed_timeline or []
    assert [subject for subject, _at in emails(changed)] == ["fresh 01.md", "fresh 02.md"]
    assert kinds(changed, EventKind.LEAVE) == [("fresh", frozen_clock + timedelta(days=19))]
    moved = {row.event.kind: row for row in journey.comparison if row.difference is Difference.MOVED}
    assert moved[EventKind.REFRESH].shift == timedelta(days=9)
    assert moved[EventKind.LEAVE].shift == timedelta(days=9)


def sent_around(
    app: Flask, runner: FlaskCliRunner, predicted: list[JourneyEvent] | None
) -> list[tuple[str, datetime]]:
    """Worker ticks just before and at each predicted email and two weeks on; the sequence emails sent."""
    for _subject, moment in emails(predicted):
        tick(runner, moment - timedelta(minutes=1))
        tick(runner, moment)
    tick(runner, EVENING + timedelta(weeks=2))
    with app.app_context():
        return [
            (row.subject or "", row.sent_at)
            for row in db.session.scalars(
                select(Delivery)
                .where(Delivery.kind == DeliveryKind.SEQUENCE, Delivery.status == DeliveryStatus.SENT)
                .order_by(Delivery.sent_at)
            )
        ]


def test_the_preview_matches_what_the_real_worker_sends_through_an_answer_change(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    clock.freeze(EVENING)
    build(app, beginners="finish_step", steps=LATE_FIRST)
    change = WhatIf("daytrading_experience", "active", 1)
    predicted = preview(app, beginner(), weeks=2, what_if=change)

    subscribe(client, "none")
    as_subscriber = preview(app, "lezer@example.com", weeks=2, what_if=change)
    assert emails(as_subscriber.timeline) == emails(predicted.timeline)
    assert emails(as_subscriber.changed_timeline) == emails(predicted.changed_timeline)

    # Time travel: worker ticks around each predicted moment, and the answer given on day 1 through the widget.
    tick(runner, at(3, 20))  # the first step falls due and waits in the outbox for the morning
    clock.freeze(at(3, 21))
    answer(client, "active")
    assert sent_around(app, runner, predicted.changed_timeline) == emails(predicted.changed_timeline)
    assert enrollments(app) == {"beginners": EnrollmentState.EXITED, "active": EnrollmentState.COMPLETED}


def test_a_switch_drops_a_waiting_last_step_in_the_preview_as_the_worker_does(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    clock.freeze(EVENING)
    build(app, beginners="switch", steps=LATE_FIRST[:1])
    change = WhatIf("daytrading_experience", "active", 1)
    predicted = preview(app, beginner(), weeks=2, what_if=change)
    assert "beginners 01-welcome.md" in [subject for subject, _ in emails(predicted.timeline)]
    assert "beginners 01-welcome.md" not in [subject for subject, _ in emails(predicted.changed_timeline)]

    subscribe(client, "none")
    tick(runner, at(3, 20))  # the only step falls due and waits in the outbox for the morning
    clock.freeze(at(3, 21))
    answer(client, "active")
    assert sent_around(app, runner, predicted.changed_timeline) == emails(predicted.changed_timeline)
    assert enrollments(app)["beginners"] is EnrollmentState.EXITED


def test_a_subscriber_mid_sequence_continues_from_their_next_step(
    app: Flask, client: Client, runner: FlaskCliRunner, frozen_clock: datetime
) -> None:
    build(app)
    subscribe(client, "none")
    tick(runner, frozen_clock + timedelta(days=1, minutes=1))  # the first step goes out
    clock.freeze(frozen_clock + timedelta(days=2))
    journey = preview(app, "Lezer@Example.com")
    assert journey.who == "lezer@example.com"
    assert journey.start == frozen_clock + timedelta(days=2)
    assert emails(journey.timeline) == [("beginners 02-next.md", frozen_clock + timedelta(days=4))]
    assert kinds(journey.timeline, EventKind.ENTER) == []
    assert any("Last follow-up email sent" in note for note in journey.notes)
    # And it is what the worker does.
    tick(runner, frozen_clock + timedelta(days=4))
    with app.app_context():
        last = db.session.scalars(
            select(Delivery).where(Delivery.kind == DeliveryKind.SEQUENCE).order_by(Delivery.id.desc())
        ).first()
        assert last is not None
        assert (last.subject, last.sent_at) == ("beginners 02-next.md", frozen_clock + timedelta(days=4))


def test_a_subscriber_without_follow_up_consent_gets_nothing(
    app: Flask, client: Client, frozen_clock: datetime
) -> None:
    build(app)
    subscribe(client, "none", sequences=False)
    journey = preview(app, "lezer@example.com", what_if=WhatIf("daytrading_experience", "active", 3))
    assert journey.emails == []
    assert journey.changed_emails == []
    assert any("Not opted in" in note for note in journey.notes)
    assert preview(app, beginner(opted_in=False)).emails == []


def counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {
            model.__name__: db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Subscriber, Answer, Enrollment, Delivery)
        }


def test_the_preview_writes_nothing(
    app: Flask, client: Client, runner: FlaskCliRunner, frozen_clock: datetime
) -> None:
    build(app, beginners="finish_step")
    subscribe(client, "none")
    tick(runner, frozen_clock + timedelta(days=1))
    before = counts(app)
    with app.app_context():
        states = {
            e.sequence.slug: (e.state, e.steps_done, e.next_due_at)
            for e in db.session.scalars(select(Enrollment))
        }
        journey = preview_journey(
            "lezer@example.com", weeks=26, what_if=WhatIf("daytrading_experience", "active", 1)
        )
        preview_journey(beginner(), what_if=WhatIf("daytrading_experience", "active", 0))
        assert journey.changed_emails
        assert not db.session.new
        assert not db.session.dirty
        assert not db.session.deleted
        db.session.commit()
    assert counts(app) == before
    with app.app_context():
        assert states == {
            e.sequence.slug: (e.state, e.steps_done, e.next_due_at)
            for e in db.session.scalars(select(Enrollment))
        }


@pytest.mark.parametrize(
    ("who", "options", "field"),
    [
        (Person(answers={"nope": "yes"}, locale="nl"), {}, "answers.nope"),
        (
            Person(answers={"daytrading_experience": "expert"}, locale="nl"),
            {},
            "answers.daytrading_experience",
        ),
        (Person(answers={"interests": ["stocks", "gold"]}, locale="nl"), {}, "answers.interests"),
        (Person(answers={}, locale="de"), {}, "locale"),
        (Person(answers={}, locale="nl", timezone="Mars/Olympus"), {}, "timezone"),
        (Person(answers={}, locale="nl"), {"weeks": 0}, "weeks"),
        (Person(answers={}, locale="nl"), {"weeks": 27}, "weeks"),
        (Person(answers={}, locale="nl"), {"what_if": WhatIf("nope", "yes", 1)}, "change"),
        (Person(answers={}, locale="nl"), {"what_if": WhatIf("is_investor", "maybe", 1)}, "change"),
        (
            Person(answers={}, locale="nl"),
            {"weeks": 2, "what_if": WhatIf("is_investor", "yes", 14)},
            "change_day",
        ),
        (Person(answers={}, locale="nl"), {"what_if": WhatIf("is_investor", "yes", -1)}, "change_day"),
    ],
)
def test_bad_input_is_refused_with_the_field_named(
    app: Flask, frozen_clock: datetime, who: Person, options: dict[str, Any], field: str
) -> None:
    build(app)
    with app.app_context(), pytest.raises(InvalidInput) as raised:
        preview_journey(who, **options)
    assert field in raised.value.errors


def test_an_unknown_address_is_not_found(app: Flask, frozen_clock: datetime) -> None:
    build(app)
    with app.app_context(), pytest.raises(NotFound):
        preview_journey("nobody@example.com")


# The page


@pytest.fixture
def editor(app: Flask) -> None:
    add_account(app)


def test_the_page_needs_a_signed_in_editor(client: Client) -> None:
    response = client.get("/admin/journey?answer-is_investor=yes&weeks=6")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")


@pytest.mark.usefixtures("editor")
def test_the_time_zone_list_offers_zones_people_live_in(app: Flask, client: Client) -> None:
    build(app)
    assert sign_in(client).status_code == 302
    page = client.get("/admin/journey").text
    zones = re.findall(
        r'<option (?:selected )?value="([^"]+)"', page.split('name="timezone"', 1)[1].split("</select>")[0]
    )
    assert zones[0] == "UTC"
    assert {"Europe/Amsterdam", "America/New_York", "Asia/Tokyo"} <= set(zones)
    assert not {"Factory", "localtime", "US/Eastern", "Etc/GMT+1", "CET", "posixrules"} & set(zones)
    assert 'data-zones=""' in page  # the editor's own zone is moved first in the browser


@pytest.mark.usefixtures("editor")
def test_the_page_shows_both_timelines_with_the_differences_marked(
    app: Flask, client: Client, frozen_clock: datetime
) -> None:
    build(app)
    assert sign_in(client).status_code == 302
    form = client.get("/admin/journey")
    assert form.status_code == 200
    assert 'name="answer-daytrading_experience"' in form.text
    assert 'type="checkbox"' in form.text  # the multi question
    assert "Journeys" in form.text  # in the navigation
    query = {
        "answer-daytrading_experience": "none",
        "answer-interests": ["stocks", "crypto"],
        "locale": "nl",
        "timezone": AMSTERDAM,
        "opted_in": "yes",
        "weeks": "6",
        "change": "daytrading_experience=active",
        "change_day": "2",
    }
    page = client.get("/admin/journey", query_string=query)
    assert page.status_code == 200, page.text
    assert "beginners 01-welcome.md" in page.text
    assert "active 01-welcome.md" in page.text
    assert 'class="diff-gone kind-email"' in page.text
    assert 'class="diff-new kind-email"' in page.text
    assert '<time datetime="2026-03-03T09:30:00+00:00">Tue 03 Mar 2026, 10:30 CET</time>' in page.text
    assert "If daytrading_experience is answered “Active” on day 2" in page.text
    assert client.post("/admin/journey", data=query).status_code in (400, 405)  # a preview is a GET


@pytest.mark.usefixtures("editor")
def test_the_page_names_bad_input_and_keeps_hostile_text_inert(
    app: Flask, client: Client, frozen_clock: datetime
) -> None:
    build(app)
    with app.app_context():
        step = db.session.scalars(select(SequenceStep)).first()
        assert step is not None
        step.subject = "<script>alert(1)</script>"
        db.session.commit()
    assert sign_in(client).status_code == 302
    page = client.get("/admin/journey", query_string={"answer-daytrading_experience": "none", "weeks": "6"})
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)" not in page.text

    hostile = '"><img src=x onerror=alert(1)>@example.com'
    page = client.get("/admin/journey", query_string={"email": hostile, "weeks": "6"})
    assert page.status_code == 422
    assert "<img src=x" not in page.text

    page = client.get("/admin/journey", query_string={"email": "nobody@example.com", "weeks": "6"})
    assert page.status_code == 422
    assert "No subscriber has this address." in page.text

    page = client.get(
        "/admin/journey",
        query_string={"answer-daytrading_experience": "expert", "weeks": "99", "change_day": "x"},
    )
    assert page.status_code == 422
    assert "Choose from 1 to 26 weeks." in page.text

    page = client.get("/admin/journey", query_string={"answer-daytrading_experience": "expert", "weeks": "6"})
    assert page.status_code == 422
    assert "unknown option &#39;expert&#39;" in page.text
    assert 'aria-describedby="answer-daytrading_experience-error"' in page.text


def test_a_pause_holds_their_emails_back_as_the_worker_does(
    app: Flask, client: Client, runner: FlaskCliRunner, frozen_clock: datetime
) -> None:
    build(app)
    subscribe(client, "none")
    with app.app_context():
        from leadcapture.services.preferences import pause_marketing

        until = pause_marketing(db.session.scalars(select(Subscriber)).one())
        db.session.commit()
    journey = preview(app, "lezer@example.com")
    assert any("Paused follow-up emails until" in note for note in journey.notes)
    first = journey.emails[0]
    assert first.at == until  # 09:30 UTC on 1 April: 11:30 in Amsterdam, within sending hours
    assert "the pause" in first.detail
    for _subject, moment in emails(journey.timeline):
        tick(runner, moment - timedelta(minutes=1))
        tick(runner, moment)
    with app.app_context():
        sent = [
            (row.subject or "", row.sent_at)
            for row in db.session.scalars(
                select(Delivery)
                .where(Delivery.kind == DeliveryKind.SEQUENCE, Delivery.status == DeliveryStatus.SENT)
                .order_by(Delivery.sent_at)
            )
        ]
    assert sent == emails(journey.timeline)


# Behaviour what-ifs: clicks and reads as interest


HOT = {"interest": {"topic": "daytrading", "at_least": 3}}


def build_topics(app: Flask, *, about: str | None = None, hot_on_change: str = "switch") -> None:
    """The beginners sequences, a daytrading topic (half-life 30 days; about `about`, a question key) and a
    sequence for readers keen on it."""
    build(app)
    with app.app_context():
        now = clock.now()
        question = db.session.scalars(select(Question.id).where(Question.key == about)).first()
        db.session.add(
            Topic(
                key="daytrading",
                name={"en": "Daytrading"},
                urls=["https://beleggen.example/daytraden/"],
                half_life_days=30,
                question_id=question,
                created_at=now,
                updated_at=now,
            )
        )
        make_sequence(
            "hot",
            HOT,
            on_change=hot_on_change,
            steps=(("01-hot.md", timedelta(days=1)), ("02-hot.md", timedelta(days=30))),
            priority=9,
        )
        db.session.commit()


def midnight(moment: datetime, days: int = 0) -> datetime:
    return datetime.combine(moment.date(), datetime.min.time(), UTC) + timedelta(days=days)


def test_clicks_enter_an_interest_sequence_on_the_third_click_and_the_fading_score_leaves_it(
    app: Flask, frozen_clock: datetime
) -> None:
    build_topics(app)
    clicks = Behaviour("daytrading", day=2, count=4)
    journey = preview(app, beginner(), weeks=4, behaviour=[clicks])
    assert kinds(journey.timeline, EventKind.ENTER) == [("beginners", frozen_clock)]
    assert journey.changed_timeline is not None
    clicked = frozen_clock + timedelta(days=2)
    signals = [event for event in journey.changed_timeline if event.kind is EventKind.SIGNAL]
    assert [(event.at, event.topic, event.detail) for event in signals] == [
        (clicked, "daytrading", f"clicks a daytrading link: interest {n}.00 → {n + 1}.00") for n in range(4)
    ]
    (entered,) = [
        event
        for event in journey.changed_timeline
        if event.sequence_slug == "hot" and event.kind is EventKind.ENTER
    ]
    assert entered.at == clicked
    assert entered.detail == "enters: interest in daytrading changed"
    # Entered at the third click: between it and the fourth in the timeline.
    order = [event.kind for event in journey.changed_timeline if event.at == clicked]
    assert order[:5] == [EventKind.SIGNAL] * 3 + [EventKind.ENTER, EventKind.SIGNAL]
    assert ("hot 01-hot.md", clicked + timedelta(days=1)) in emails(journey.changed_timeline)
    # 4 · ½^(d/30) < 3 from d = 13 on: that UTC day, the worker's look at fading interest lets them go.
    faded = midnight(clicked, 13)
    (fades,) = [event for event in journey.changed_timeline if event.kind is EventKind.FADES]
    assert (fades.at, fades.topic) == (faded, "daytrading")
    assert fades.detail == "interest in daytrading decays to 2.96: below 3"
    assert kinds(journey.changed_timeline, EventKind.LEAVE) == [("hot", faded)]
    assert "hot 02-hot.md" not in [subject for subject, _ in emails(journey.changed_timeline)]
    new = [
        row.event.subject
        for row in journey.comparison
        if row.difference is Difference.NEW and row.event.is_email
    ]
    assert new == ["hot 01-hot.md"]


def test_a_read_a_day_and_the_policy_of_the_sequence_apply_as_for_answers(
    app: Flask, frozen_clock: datetime
) -> None:
    build_topics(app, hot_on_change="stay")
    reads = [Behaviour("daytrading", day=day, count=1, source=SignalSource.READ) for day in (0, 0, 1)]
    journey = preview(app, beginner(), weeks=6, behaviour=reads)
    assert journey.changed_timeline is not None
    # Two reads today and one tomorrow: 2 · ½^(1/30) + 1 ≈ 2.95 is not 3 yet.
    assert kinds(journey.changed_timeline, EventKind.ENTER) == [("beginners", frozen_clock)]
    more = [*reads, Behaviour("daytrading", day=1, count=1, source=SignalSource.READ)]
    journey = preview(app, beginner(), weeks=6, behaviour=more)
    assert journey.changed_timeline is not None
    one_day = frozen_clock + timedelta(days=1)
    entered = kinds(journey.changed_timeline, EventKind.ENTER)
    assert entered == [("beginners", frozen_clock), ("hot", one_day)]
    assert [e.detail for e in journey.changed_timeline if e.kind is EventKind.SIGNAL][-1] == (
        "reads a daytrading article: interest 2.95 → 3.95"
    )
    # on_change stay: the score fading below 3 does not take them out, and every step goes out.
    assert kinds(journey.changed_timeline, EventKind.LEAVE) == []
    assert [(e.sequence_slug, e.detail) for e in journey.changed_timeline if e.kind is EventKind.STAYS] == [
        ("hot", "no longer matches (interest faded) but stays: on_change stay")
    ]
    assert {"hot 01-hot.md", "hot 02-hot.md"} <= {subject for subject, _ in emails(journey.changed_timeline)}


def test_answering_the_topic_question_counts_as_interest_as_confirming_does(
    app: Flask, frozen_clock: datetime
) -> None:
    build_topics(app, about="daytrading_experience")
    with app.app_context():
        curious = {"interest": {"topic": "daytrading", "at_least": 1}}
        make_sequence("curious", curious, steps=(("01-c.md", timedelta(days=3)), ("02-c.md", timedelta(days=60))))
        db.session.commit()
    journey = preview(app, beginner(), weeks=6, what_if=WhatIf("daytrading_experience", "some", 0))
    # The answer given at sign-up is one signal: 1 today, so in at once; below 1 the next UTC day.
    both = [("beginners", frozen_clock), ("curious", frozen_clock)]
    assert kinds(journey.timeline, EventKind.ENTER) == both
    assert kinds(journey.timeline, EventKind.LEAVE) == [("curious", midnight(frozen_clock, 1))]
    # Answering again on day 0 adds another: 2 today, so they stay in until it decays below 1.
    assert journey.changed_timeline is not None
    assert kinds(journey.changed_timeline, EventKind.LEAVE) == [("curious", midnight(frozen_clock, 31))]


def test_clicks_of_someone_without_follow_up_consent_count_for_nothing(
    app: Flask, frozen_clock: datetime
) -> None:
    build_topics(app)
    journey = preview(app, beginner(opted_in=False), behaviour=[Behaviour("daytrading", day=1, count=5)])
    assert journey.changed_timeline is not None
    (signal,) = [event for event in journey.changed_timeline if event.kind is EventKind.SIGNAL]
    assert signal.detail == "clicks 5 daytrading links: not counted without follow-up consent"
    assert journey.changed_emails == []


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (Behaviour("beleggen", day=1), "no such topic 'beleggen'"),
        (Behaviour("daytrading", day=1, count=0), "choose from 1 to 50 at once"),
        (Behaviour("daytrading", day=1, count=51), "choose from 1 to 50 at once"),
        (Behaviour("daytrading", day=14), "choose a day from 0 to 13: within the preview"),
        (Behaviour("daytrading", day=-1), "choose a day from 0 to 13: within the preview"),
        (Behaviour("daytrading", day=1, source=SignalSource.ANSWER), "choose clicks or reads"),
        (Behaviour("goud", day=1), "topic 'goud' is retired: no click or read counts for it"),
    ],
)
def test_a_bad_behaviour_what_if_is_refused_with_its_place_named(
    app: Flask, frozen_clock: datetime, behaviour: Behaviour, message: str
) -> None:
    build_topics(app)
    with app.app_context():
        now = clock.now()
        db.session.add(Topic(key="goud", name={"en": "Gold"}, urls=[], created_at=now, updated_at=now))
        db.session.commit()
    with app.app_context(), pytest.raises(InvalidInput) as raised:
        preview_journey(beginner(), weeks=2, behaviour=[Behaviour("daytrading", day=1), behaviour])
    assert raised.value.errors == {"behaviour.1": message}
    with app.app_context(), pytest.raises(InvalidInput) as raised:
        preview_journey(beginner(), behaviour=[Behaviour("daytrading", day=1)] * 11)
    assert "behaviour" in raised.value.errors


@pytest.mark.usefixtures("editor")
def test_the_page_takes_behaviour_what_ifs_next_to_an_answer_change(
    app: Flask, client: Client, frozen_clock: datetime
) -> None:
    build_topics(app)
    assert sign_in(client).status_code == 302
    with app.app_context():
        now = clock.now()
        db.session.add(Topic(key="goud", name={"en": "Gold"}, urls=[], created_at=now, updated_at=now))
        db.session.commit()
    form = client.get("/admin/journey")
    assert 'name="behaviour-0-signal"' in form.text
    assert '<optgroup label="Daytrading">' in form.text
    assert '<option value="click:daytrading">clicks daytrading links</option>' in form.text
    assert '<option value="read:daytrading">reads daytrading articles</option>' in form.text
    assert "goud" not in form.text  # retired: counts no click or read
    query = {
        "answer-daytrading_experience": "none",
        "locale": "nl",
        "timezone": AMSTERDAM,
        "weeks": "4",
        "change": "daytrading_experience=active",
        "change_day": "1",
        "behaviour-0-signal": "click:daytrading",
        "behaviour-0-count": "3",
        "behaviour-0-day": "2",
        "behaviour-1-signal": "",  # a row where the reader does nothing is no what-if
        "behaviour-1-count": "7",
        "behaviour-2-signal": "read:daytrading",
        "behaviour-2-count": "1",
        "behaviour-2-day": "5",
    }
    page = client.get("/admin/journey", query_string=query)
    assert page.status_code == 200, page.text
    assert (
        "If daytrading_experience is answered “Active” on day 1 and the reader clicks 3 daytrading links"
        " on day 2 and the reader reads a daytrading article on day 5" in page.text
    )
    assert "hot 01-hot.md" in page.text
    assert 'class="diff-new kind-signal"' in page.text
    assert "clicks a daytrading link: interest 2.00 → 3.00" in page.text

    bad = {**query, "behaviour-2-day": "40"}
    page = client.get("/admin/journey", query_string=bad)
    assert page.status_code == 422
    assert "choose a day from 0 to 27: within the preview" in page.text
    assert 'aria-describedby="behaviour-2-signal-error"' in page.text
    forged = client.get("/admin/journey", query_string={**query, "behaviour-0-signal": "answer:daytrading"})
    assert forged.status_code == 422
    assert "choose clicks or reads" in forged.text
