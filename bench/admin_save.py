"""Time one admin save (a question's text edited) with the demo content and with ten times as many definitions.

    python bench/admin_save.py [--saves 20]

Each run builds a throwaway SQLite database, loads the bundled demo content (and, for the larger run, nine
copies of every question, widget and sequence under other names), then saves the same question `--saves`
times, alternating two wordings so every save changes something, and prints the median. The ratio is the
larger content's median over the demo's: a save that only checks and writes what it must stays near 1x.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from leadcapture import create_app
from leadcapture.definitions import read_content
from leadcapture.extensions import db
from leadcapture.models import Question
from leadcapture.services import editing
from leadcapture.services.content import load_content

DEMO = Path(__file__).resolve().parent.parent / "content"


def _multiplied(source: Path, target: Path, copies: int) -> None:
    """The demo content plus `copies` renamed copies of each question, widget and sequence."""
    shutil.copytree(source, target)
    keys = sorted(path.stem for path in (source / "questions").glob("*.yaml"))
    for copy in range(1, copies + 1):

        def renamed(text: str, copy: int = copy) -> str:
            for key in keys:
                text = text.replace(key, f"{key}_{copy}")
            return text

        for path in (source / "questions").glob("*.yaml"):
            (target / "questions" / f"{path.stem}_{copy}.yaml").write_text(renamed(path.read_text()))
        for path in (source / "widgets").glob("*.yaml"):
            text = renamed(path.read_text()).replace(f"slug: {path.stem}", f"slug: {path.stem}-{copy}")
            (target / "widgets" / f"{path.stem}-{copy}.yaml").write_text(text)
        for folder in (source / "sequences").iterdir():
            copied = target / "sequences" / f"{folder.name}-{copy}"
            shutil.copytree(folder, copied)
            sequence = copied / "sequence.yaml"
            sequence.write_text(
                renamed(sequence.read_text()).replace(f"slug: {folder.name}", f"slug: {folder.name}-{copy}")
            )


def _median_save(content: Path, saves: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(
            {
                "TESTING": True,
                "LEADCAPTURE_DATABASE_URL": f"sqlite:///{folder}/bench.sqlite",
                "LEADCAPTURE_SECRET_KEY": "bench",
                "LEADCAPTURE_MAIL_URL": "outbox:",
            }
        )
        with app.app_context():
            db.create_all()
            bundle = read_content(content)
            assert bundle.ok, bundle.problems
            load_content(bundle, quiet=True)
            db.session.commit()
            definitions = sum(
                len(items) for items in (bundle.questions, bundle.reports, bundle.widgets, bundle.sequences)
            )
            question = db.session.query(Question).filter_by(key="is_investor").one()
            document = editing.question_document(question)
            timings = []
            for number in range(saves):
                document["text"]["en"] = f"Do you invest already? ({number % 2})"
                started = time.perf_counter()
                editing.save_question(document)
                db.session.commit()
                timings.append(time.perf_counter() - started)
                db.session.expire_all()
    return statistics.median(timings), definitions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--saves", type=int, default=20)
    arguments = parser.parse_args()
    demo, demo_count = _median_save(DEMO, arguments.saves)
    print(f"demo content ({demo_count} definitions): {demo * 1000:.1f} ms per save", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        larger_dir = Path(folder) / "content"
        _multiplied(DEMO, larger_dir, 9)
        larger, larger_count = _median_save(larger_dir, arguments.saves)
    print(f"10x content ({larger_count} definitions): {larger * 1000:.1f} ms per save")
    print(f"ratio {larger / demo:.2f}x")


if __name__ == "__main__":
    main()
