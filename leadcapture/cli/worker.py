"""`leadcapture worker`."""

from __future__ import annotations

import click


@click.group()
def worker() -> None:
    """worker."""
