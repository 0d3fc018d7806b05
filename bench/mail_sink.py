"""A loopback SMTP server that accepts every message and writes down when it arrived and to whom.

    python -m bench.mail_sink --port 2525 --log arrivals.txt

One line per recipient of each message, written and flushed as the message's data has been received:
`ARRIVAL RECIPIENT`, ARRIVAL in seconds since the epoch (the wall clock, comparable with the database's UTC
times on the same machine). bench/capture_latency.py starts it in a process of its own, as a relay is one, and
reads the file; `arrivals()` parses it. SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from aiosmtpd.controller import Controller


class Recorder:
    """aiosmtpd handler: accept the message, record its arrival for each recipient."""

    def __init__(self, log: IO[str]) -> None:
        self.log = log

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        arrived = time.time()
        self.log.write("".join(f"{arrived:.6f} {recipient}\n" for recipient in envelope.rcpt_tos))
        self.log.flush()
        return "250 OK"


def arrivals(log: Path) -> dict[str, float]:
    """When the first message to each recipient arrived, by lower-cased address."""
    first: dict[str, float] = {}
    if not log.exists():
        return first
    for line in log.read_text().splitlines():
        moment, _, recipient = line.partition(" ")
        if recipient:  # a line still being written has no recipient yet
            first.setdefault(recipient.lower(), float(moment))
    return first


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    with args.log.open("a") as log:
        controller = Controller(Recorder(log), hostname="127.0.0.1", port=args.port)
        controller.start()
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
