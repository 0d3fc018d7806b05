"""`leadcapture content check|load|dump`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from leadcapture.config import content_dir_from_environment
from leadcapture.definitions import ContentBundle, read_content
from leadcapture.errors import DomainError
from leadcapture.extensions import db
from leadcapture.services.content import load_content
from leadcapture.services.editing import ContentDirectoryNotEmpty, dump_content

_DIRECTORY = click.argument(
    "directory", required=False, type=click.Path(file_okay=False, path_type=Path), metavar="[DIR]"
)


@click.group()
def content() -> None:
    """Validate, load and dump content files."""


@content.command()
@_DIRECTORY
def check(directory: Path | None) -> None:
    """Validate the content files in DIR; print every problem as `path: message`.

    Needs neither a database nor a secret key. DIR defaults to LEADCAPTURE_CONTENT_DIR, else ./content.
    """
    # Deliberately not through the app's settings: checking files must work where no app can start yet
    # (a CI job with no database or secret key).
    bundle = read_content(_folder(directory, content_dir_from_environment()))
    _refuse_on_problems(bundle, "")
    click.echo(f"ok: {bundle.summary()}")


@content.command()
@_DIRECTORY
@with_appcontext
def load(directory: Path | None) -> None:
    """Create or update questions, topics, reports, widgets and sequences from the files in DIR, and commit.

    Loads nothing if `content check` finds a problem. A sequence whose folder is gone from DIR/sequences/
    is switched off, not deleted. A topic whose file is gone from DIR/topics/ is retired (its URL rules
    cleared, its interest history kept), or deleted if no interest was ever recorded for it. DIR defaults to
    LEADCAPTURE_CONTENT_DIR, else ./content.
    """
    bundle = read_content(_folder(directory, current_app.config["SETTINGS"].content_dir))
    _refuse_on_problems(bundle, "; nothing was loaded")
    try:
        changes = load_content(bundle)
    except DomainError as exc:
        db.session.rollback()
        click.echo(f"content load: {exc}; nothing was loaded", err=True)
        raise SystemExit(1) from None
    db.session.commit()
    for change in changes:
        click.echo(str(change))
    if not changes:
        click.echo("nothing changed")


@content.command()
@click.argument("directory", type=click.Path(path_type=Path), metavar="DIR")
@click.option(
    "--force", is_flag=True, help="Replace the questions, topics, reports, widgets and sequences folders."
)
@with_appcontext
def dump(directory: Path, force: bool) -> None:
    """Write every question, topic, report, widget and active sequence in the database into DIR as files.

    The files are what `content check` and `content load` read, so content edited in the admin can be kept
    in git: dump, review the diff, commit. DIR must be new or empty; with --force, its section folders are
    replaced and anything else in it is left alone. Retired options and topics and switched-off sequences
    are not written.
    """
    try:
        bundle = dump_content(directory, force=force)
    except ContentDirectoryNotEmpty as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot write to {exc.filename or directory}: {exc.strerror or exc}"
        ) from None
    finally:
        db.session.rollback()  # the dump only reads
    for problem in bundle.problems:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"dumped {bundle.summary()} to {directory}")


def _folder(given: Path | None, configured: Path | None) -> Path:
    folder = given or configured
    if folder is None:
        raise click.ClickException(
            "no content folder: give it as DIR or set LEADCAPTURE_CONTENT_DIR (there is no ./content here; "
            "only `leadcapture demo` loads the bundled demo content)"
        )
    return folder


def _refuse_on_problems(bundle: ContentBundle, consequence: str) -> None:
    if not bundle.problems:
        return
    for problem in bundle.problems:
        click.echo(str(problem))
    count = len(bundle.problems)
    click.echo(f"{count} problem{'s' if count != 1 else ''} in {bundle.directory}{consequence}", err=True)
    raise SystemExit(1)
