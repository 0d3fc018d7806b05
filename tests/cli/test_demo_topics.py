"""The demo articles and the demo topics agree: each article lives at a URL its topics' rules cover, names
those topics in its leadcapture:topics tag, and the site's front pages lead to it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from werkzeug.test import Client as WsgiClient

from leadcapture import urlrules
from leadcapture.cli.demo import ARTICLES, FRONT_PAGES, _article_app, demo_app
from leadcapture.config import BUNDLED_CONTENT_DIR
from leadcapture.definitions import read_content

BASE_URL = "http://127.0.0.1:5000"
ORIGINS = ("http://127.0.0.1:5001", "http://localhost:5001", "https://beleggen.example")


@pytest.fixture
def articles(settings: dict[str, Any]) -> WsgiClient:
    """The demo's article site, as `leadcapture demo` serves it on its second origin."""
    app = demo_app(BASE_URL, ORIGINS[0], settings)
    return WsgiClient(_article_app(app, BASE_URL))


def named_topics(page: str) -> list[str]:
    tag = re.search(r'<meta name="leadcapture:topics" content="([^"]*)">', page)
    assert tag, "the article names no topics"
    return tag.group(1).split(",")


@pytest.mark.parametrize("path", sorted(ARTICLES))
def test_each_demo_article_falls_under_the_topics_it_names(articles: WsgiClient, path: str) -> None:
    topics = read_content(BUNDLED_CONTENT_DIR).topics
    response = articles.get(path)
    assert response.status_code == 200
    named = named_topics(response.get_data(as_text=True))
    assert set(named) <= set(topics)
    rules = [(key, definition.urls) for key, definition in topics.items()]
    for origin in ORIGINS:  # the demo's origin, its other name, and the publisher's own site
        assert urlrules.topic_for_url(rules, f"{origin}{path}") in named, origin
        assert urlrules.topic_for_url(rules, f"{origin}{path}?lc=abc#reacties") in named, origin


@pytest.mark.parametrize(("front", "article"), sorted(FRONT_PAGES.items()))
def test_the_front_pages_lead_with_their_article(articles: WsgiClient, front: str, article: str) -> None:
    page = articles.get(front, query_string={"lc": "abc"}).get_data(as_text=True)
    assert page == articles.get(article).get_data(as_text=True)
    assert f'<link rel="canonical" href="{ORIGINS[0]}{article}">' in page
    assert f'data-leadcapture="{ARTICLES[article]["widget_slug"]}"' in page


def test_other_paths_are_not_articles(articles: WsgiClient) -> None:
    assert articles.get("/daytraden/").status_code == 404
    assert articles.get("/daytraden/zo-begin-je-verstandig/../../etc/passwd").status_code == 404
