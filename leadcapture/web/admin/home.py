"""The admin's start page: the dashboard of how widgets convert and how subscribers answer."""

from __future__ import annotations

from flask import render_template, request
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField

from leadcapture.services.insights import DEFAULT_PERIOD, PERIODS, gather_insights
from leadcapture.web.admin import bp
from leadcapture.web.admin.auth import editor_required


class PeriodForm(FlaskForm):  # type: ignore[misc]
    """The dashboard's period, chosen in a GET form: nothing is changed, so there is no CSRF token."""

    class Meta:
        csrf = False

    period = SelectField(
        "Period",
        choices=[SelectChoice(days, f"Last {days} days") for days in PERIODS],
        coerce=int,
        default=DEFAULT_PERIOD,
    )


@bp.get("/")
@editor_required
def index() -> tuple[str, int]:
    form = PeriodForm(request.args)
    status = 200
    if "period" in request.args and not form.validate():
        form.period.errors = ["Choose one of the periods offered; showing the last 30 days."]
        form.period.data = DEFAULT_PERIOD
        status = 400
    insights = gather_insights(form.period.data or DEFAULT_PERIOD)
    return render_template("admin/index.html", form=form, insights=insights), status
