"""What operators install: a wheel that carries its templates, content and migrations, served by gunicorn."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_templates_content_and_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("leadcapture-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "leadcapture/templates/email/confirm/body.html",
        "leadcapture/templates/email/report/subject.txt",
        "leadcapture/templates/subscriber/page.html",
        "leadcapture/static/embed.js",
        "leadcapture/content/widgets/daytrading-report.yaml",
        "leadcapture/content/reports/files/daytrading-guide.pdf",
        "leadcapture/migrations/env.py",
        "leadcapture/migrations/alembic.ini",
    ):
        assert expected in names, expected
    assert any(name.startswith("leadcapture/migrations/versions/") for name in names)
    assert not any("__pycache__" in name or name.startswith("tests/") for name in names)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_gunicorn_serves_wsgi_app(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADCAPTURE_")}
    env.update(
        LEADCAPTURE_SECRET_KEY="a-long-enough-secret-key",
        LEADCAPTURE_DATABASE_URL=f"sqlite:///{tmp_path}/g.db",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    assert response.status == 200
                    assert b'"database":"ok"' in response.read().replace(b" ", b"")
                    break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not answer within 30 s"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=10)
