"""The loader pages get is built from embed.js and embed-names.json with Node (`npm run build:widget`) and
committed, so that the app and the tests need no Node; these check, without it, that the built file is not
behind either."""

from __future__ import annotations

import hashlib
import re

from leadcapture.web.widget import EMBED_PATH, served

SOURCE_PATH = EMBED_PATH.with_name("embed.js")
NAMES_PATH = EMBED_PATH.with_name("embed-names.json")
BANNER = re.compile(
    r"/\* Generated from embed\.js by npm run build:widget\. embed\.js SHA-256: (?P<sha256>[0-9a-f]{64})"
    r" embed-names\.json SHA-256: (?P<names_sha256>[0-9a-f]{64}) \*/"
)
REBUILD = "run `npm install && npm run build:widget` and commit leadcapture/static/embed.min.js"


def test_the_built_loader_comes_from_the_current_source() -> None:
    banner = EMBED_PATH.read_text(encoding="utf-8").partition("\n")[0]
    match = BANNER.fullmatch(banner)
    assert match, (
        f"{EMBED_PATH.name} does not start with the banner naming the embed.js it was built from: {REBUILD}"
    )
    source = hashlib.sha256(SOURCE_PATH.read_bytes()).hexdigest()
    assert match["sha256"] == source, f"{EMBED_PATH.name} was built from an older embed.js: {REBUILD}"
    # The server sends the texts by these short names: a loader built with others would find none.
    names = hashlib.sha256(NAMES_PATH.read_bytes()).hexdigest()
    assert match["names_sha256"] == names, (
        f"{EMBED_PATH.name} was built from an older embed-names.json: {REBUILD}"
    )


def test_pages_get_the_built_loader_without_its_banner() -> None:
    built = EMBED_PATH.read_bytes()
    body = served(built)
    assert built.endswith(body)
    assert BANNER.search(body.decode()) is None
    assert body.startswith(b"((")
