"""What operators install: a wheel that carries its templates, content and migrations, served by gunicorn."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip install .` builds from this checkout."""
    folder = tmp_path_factory.mktemp("wheel")
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
            str(folder),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = folder.glob("leadcapture-*.whl")
    return built


def test_the_wheel_ships_templates_content_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "leadcapture/_data/templates/email/confirm/body.html",
        "leadcapture/_data/templates/email/report/subject.txt",
        "leadcapture/_data/templates/subscriber/page.html",
        "leadcapture/static/embed.js",
        "leadcapture/static/embed.min.js",
        "leadcapture/static/favicon.svg",
        "leadcapture/_data/content/widgets/daytrading-report.yaml",
        "leadcapture/_data/content/reports/files/daytrading-guide.pdf",
        "leadcapture/_data/migrations/env.py",
        "leadcapture/_data/migrations/alembic.ini",
    ):
        assert expected in names, expected
    assert any(name.startswith("leadcapture/_data/migrations/versions/") for name in names)
    assert not any("__pycache__" in name or name.startswith("tests/") for name in names)


@pytest.mark.packaging
def test_the_installed_wheel_sets_up_the_demo_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """A fresh virtual environment with only the wheel and its dependencies, run from a folder of its own:
    the migrations, the demo content and the templates are found inside the installed package."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    python, command = venv / "bin" / "python", str(venv / "bin" / "leadcapture")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LEADCAPTURE_", "PYTHON", "VIRTUAL_ENV", "FLASK_"))
    }
    env.update(
        LEADCAPTURE_SECRET_KEY="a-long-enough-secret-key",
        LEADCAPTURE_DATABASE_URL=f"sqlite:///{tmp_path}/installed.sqlite",
        LEADCAPTURE_MAIL_URL="outbox:",
    )

    def run(*args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            args, cwd=outside, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run(str(python), "-m", "pip", "install", "-q", str(wheel), timeout=600)
    located = run(
        str(python),
        "-c",
        "from leadcapture import config; "
        "print(config.TEMPLATES_DIR, config.MIGRATIONS_DIR, config.BUNDLED_CONTENT_DIR, sep='\\n')",
    ).split()
    templates, migrations, content = (Path(folder) for folder in located)
    for folder in (templates, migrations, content):
        assert folder.is_relative_to(venv), folder
    assert (templates / "email/confirm/body.html").is_file()
    assert (migrations / "alembic.ini").is_file()

    run(command, "db", "upgrade")
    assert run(command, "content", "check", str(content)).startswith("ok: ")
    run(command, "content", "load", str(content))

    port, article_port = free_port(), free_port()
    demo = subprocess.Popen(
        [command, "demo", "--port", str(port), "--article-port", str(article_port)],
        cwd=outside,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        article = _fetch(article_port, "/en", within=60)
        assert f"http://127.0.0.1:{port}/embed.js" in article
        assert "<form" in _fetch(port, "/admin/login", within=10)
    finally:
        demo.terminate()
        demo.wait(timeout=30)


def _fetch(port: int, path: str, *, within: float) -> str:
    """The page's text, once the server on this port answers with it."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                text: str = response.read().decode()
                return text
        except OSError:
            assert time.monotonic() < deadline, f"no answer on port {port} within {within} s"
            time.sleep(0.3)


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


def _imported_modules(*folders: Path) -> set[str]:
    """The top-level names every Python file under these folders imports, absolute imports only."""
    names: set[str] = set()
    for folder in folders:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return names


def _declared(*extras: str) -> set[str]:
    """The distributions pyproject.toml names: the dependencies and those of the given extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return {canonical(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]) for requirement in requirements}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _undeclared(modules: set[str], declared: set[str]) -> dict[str, list[str]]:
    # _typeshed exists only for type checkers, imported under TYPE_CHECKING.
    ours = {"leadcapture", "tests", "bench", "wsgi", "_typeshed"}
    providers = importlib.metadata.packages_distributions()
    missing: dict[str, list[str]] = {}
    for module in sorted(modules - ours - sys.stdlib_module_names):
        distributions = sorted({canonical(d) for d in providers.get(module, [])})
        if not set(distributions) & declared:
            missing[module] = distributions
    return missing


def test_every_import_of_the_package_is_a_declared_dependency() -> None:
    # What is on this machine by chance must not be what makes the code work: a fresh install has only these.
    assert _undeclared(_imported_modules(ROOT / "leadcapture"), _declared()) == {}


def test_every_import_of_the_tests_is_a_declared_test_dependency() -> None:
    assert _undeclared(_imported_modules(ROOT / "tests"), _declared("test")) == {}
