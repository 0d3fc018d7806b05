"""GET /embed.js: the widget loader, served from leadcapture/static/embed.min.js to any page that embeds it;
and the app's icon, which browsers ask for on every page."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import zopfli.gzip
from flask import Blueprint, Flask, Response, request

from leadcapture.config import PACKAGE_DIR

bp = Blueprint("widget", __name__)

# Built from embed.js by `npm run build:widget` (terser, which also shortens names) and
# committed, so that running the app needs no Node.
EMBED_PATH = PACKAGE_DIR / "static" / "embed.min.js"
# An SVG under the name browsers ask for: they go by the Content-Type, not the extension.
ICON_PATH = PACKAGE_DIR / "static" / "favicon.svg"
ICON_MAX_AGE = 86400
# Short enough that a fixed loader reaches every page within minutes; the ETag makes revalidation cheap.
MAX_AGE = 300


_BANNER = re.compile(rb"\A/\*[^\n]*\*/\n")


def served(built: bytes) -> bytes:
    """The built loader as pages get it: without its banner, which tells whoever opens the file what it was
    built from and would only add bytes to every page that loads it."""
    return _BANNER.sub(b"", built)


@dataclass(frozen=True)
class Asset:
    """One version of a file in both representations, with an ETag for each."""

    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def load(cls, path: Path) -> Asset:
        body = served(path.read_bytes())
        # Zopfli: a deflate stream any gzip client reads, 1.5-2% smaller than zlib's level 9, for about 30 ms once
        # per version and process; every page that embeds the widget downloads it. The header's mtime is 0, so
        # every web worker sends the same bytes.
        gzipped = zopfli.gzip.compress(body, numiterations=15)
        return cls(body=body, gzipped=gzipped, etag=hashlib.sha256(body).hexdigest()[:20])


_cache: dict[tuple[Path, int, int], Asset] = {}


def _asset(path: Path) -> Asset:
    """The file's content, read and compressed once per version (a stat per request notices an edit)."""
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    asset = _cache.get(key)
    if asset is None:
        asset = Asset.load(path)
        _cache.clear()
        _cache[key] = asset
    return asset


@bp.get("/embed.js")
def embed_js() -> Response:
    asset = _asset(EMBED_PATH)
    use_gzip = request.accept_encodings.quality("gzip") > 0
    # A representation's strong ETag must differ from the other's (RFC 9110 8.8.3); both are the same version,
    # so either one in If-None-Match means the client is up to date.
    etag = asset.etag + ("-gz" if use_gzip else "")
    headers = {
        "Content-Type": "text/javascript; charset=utf-8",
        "Cache-Control": f"public, max-age={MAX_AGE}",
        "ETag": f'"{etag}"',
        "Vary": "Accept-Encoding",
        "Access-Control-Allow-Origin": "*",
        # Pages served with Cross-Origin-Embedder-Policy may load it too.
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
    }
    if request.if_none_match.contains_weak(asset.etag) or request.if_none_match.contains_weak(
        asset.etag + "-gz"
    ):
        return Response(status=304, headers=headers)
    if use_gzip:
        headers["Content-Encoding"] = "gzip"
    return Response(asset.gzipped if use_gzip else asset.body, headers=headers)


@bp.get("/favicon.ico")
def favicon() -> Response:
    return Response(
        ICON_PATH.read_bytes(),
        mimetype="image/svg+xml",
        headers={"Cache-Control": f"public, max-age={ICON_MAX_AGE}", "X-Content-Type-Options": "nosniff"},
    )


def init_app(app: Flask) -> None:
    pass
