"""URL parts the whole app shares."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

# Ids are PostgreSQL `integer` columns: a larger number is no row of ours, and asking for one fails the query
# (numeric value out of range) instead of finding nothing.
MAX_ID = 2**31 - 1


class DatabaseId(IntegerConverter):
    """`<int:…>` in every route: a number beyond MAX_ID matches no route, so it is a 404 before any query."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def init_app(app: Flask) -> None:
    """Before any blueprint adds its rules: a rule takes its converters when it is added."""
    app.url_map.converters["int"] = DatabaseId
