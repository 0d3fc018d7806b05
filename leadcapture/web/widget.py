from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("widget", __name__)


def init_app(app: Flask) -> None:
    pass
