"""The widget's weight: the loader (code, markup, styles: one file) as /embed.js serves it (embed.min.js, built
from embed.js by `npm run build:widget`, gzipped by the app with Zopfli), and the definition response of each
widget in content/ as the app serves it gzipped, against 5 KB for the two together.

python bench/widget_size.py        # exit status 1 when over budget

The definitions come from a throwaway SQLite database (`leadcapture db upgrade`, `leadcapture content load
content/`), asked for from an allowed origin as the loader asks a stranger's browser for them.
"""

from __future__ import annotations

import gzip
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUDGET = 5 * 1024


def gzipped(body: bytes) -> int:
    return len(gzip.compress(body, compresslevel=9, mtime=0))


def served(directory: Path) -> tuple[bytes, bytes, dict[str, tuple[bytes, bytes]]]:
    """The loader as the app serves it, plain and gzipped, and each widget's definition response alike, by slug."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEADCAPTURE_")}
    env |= {
        "LEADCAPTURE_DATABASE_URL": f"sqlite:///{directory / 'size.sqlite'}",
        "LEADCAPTURE_SECRET_KEY": secrets.token_hex(16),
        "LEADCAPTURE_BASE_URL": "https://leadcapture.example",
        "LEADCAPTURE_MAIL_FROM": "Bench <bench@leadcapture.example>",
    }
    command = [sys.executable, "-m", "leadcapture.cli"]
    for args in (["db", "upgrade"], ["content", "load", str(REPO / "content")]):
        subprocess.run([*command, *args], env=env, cwd=directory, check=True, capture_output=True)
    os.environ.update(env)
    from sqlalchemy import select

    from leadcapture import create_app
    from leadcapture.extensions import db
    from leadcapture.models import Widget

    app = create_app()
    client = app.test_client()
    with app.app_context():
        widgets = [(widget.slug, widget.allowed_origins[0]) for widget in db.session.scalars(select(Widget))]

    def both(url: str, headers: dict[str, str]) -> tuple[bytes, bytes]:
        plain = client.get(url, headers=headers)
        zipped = client.get(url, headers={**headers, "Accept-Encoding": "gzip"})
        assert plain.status_code == zipped.status_code == 200, plain.get_data(as_text=True)
        assert zipped.headers["Content-Encoding"] == "gzip"
        return plain.data, zipped.data

    loader, loader_gzipped = both("/embed.js", {})
    bodies = {slug: both(f"/api/v1/widgets/{slug}?r=0", {"Origin": origin}) for slug, origin in widgets}
    return loader, loader_gzipped, bodies


def main() -> int:
    from leadcapture.web.widget import EMBED_PATH

    source = EMBED_PATH.with_name("embed.js").read_bytes()
    with tempfile.TemporaryDirectory() as directory:
        built, built_gzipped, bodies = served(Path(directory))
    loader = len(built_gzipped)
    print(f"loader source:   {len(source)} B, gzipped {gzipped(source)} B")
    print(
        f"loader served:   {len(built)} B, gzipped {loader} B (zlib level 9: {gzipped(built)} B)"
        f" ({loader / BUDGET:.2f}x of the {BUDGET} B budget)"
    )
    whole = loader
    for slug, (body, body_gzipped) in sorted(bodies.items()):
        size = len(body_gzipped)
        whole = max(whole, loader + size)
        print(
            f"definition {slug}: {len(body)} B, gzipped {size} B; with the loader {loader + size} B"
            f" ({(loader + size) / BUDGET:.2f}x)"
        )
    print(f"whole widget:    {whole} B gzipped ({whole / BUDGET:.2f}x of the {BUDGET} B budget)")
    if whole > BUDGET:
        print(f"over budget by {whole - BUDGET} B", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
