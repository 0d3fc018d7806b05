"""`leadcapture subscribers`."""

from __future__ import annotations

import click


@click.group()
def subscribers() -> None:
    """subscribers."""
