"""Loopback ports for servers a test starts in another process or thread."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port nobody listens on (right now): the OS picks it, so parallel test runs never collide."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
