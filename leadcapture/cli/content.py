"""`leadcapture content check|load`."""

from __future__ import annotations

import click


@click.group()
def content() -> None:
    """Validate and load content files."""
