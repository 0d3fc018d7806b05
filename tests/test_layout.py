"""The test suite's own layout: helpers live in tests/support and conftest, never in another test module."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def is_test_module(name: str) -> bool:
    return name.startswith("tests.") and any(part.startswith("test_") for part in name.split("."))


def test_no_test_module_imports_another() -> None:
    # Importing a test module runs its collection-time code and, under pytest, re-registers its tests
    # and fixtures in the importer; shared code belongs in tests/support (or a fixture in conftest).
    offenders = {
        f"{path.relative_to(TESTS.parent)}: {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in imported_modules(path)
        if is_test_module(name)
    }
    assert not offenders, "\n".join(sorted(offenders))


def test_the_check_sees_a_test_module_import(tmp_path: Path) -> None:
    module = tmp_path / "test_example.py"
    module.write_text("from tests.test_api import post\nimport tests.web.test_pages\n", encoding="utf-8")
    assert {name for name in imported_modules(module) if is_test_module(name)} == {
        "tests.test_api",
        "tests.test_api.post",
        "tests.web.test_pages",
    }
    assert not is_test_module("tests.support.submissions")


def test_test_folders_mirror_the_package() -> None:
    # Tests of leadcapture/web/admin live in tests/web/admin, and so on; browser tests, helpers and data
    # files have folders of their own.
    own = {"browser", "support", "fixtures", "golden", "references", "__pycache__"}
    package = TESTS.parent / "leadcapture"
    strays = [
        str(folder.relative_to(TESTS))
        for folder in TESTS.rglob("*")
        if folder.is_dir()
        and not own.intersection(folder.relative_to(TESTS).parts)
        and not (package / folder.relative_to(TESTS)).is_dir()
    ]
    assert not strays, f"test folders with no package folder of that name: {strays}"
