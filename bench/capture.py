"""Capture throughput: POST /api/v1/widgets/{slug}/submissions against a bare JSON endpoint of the same app.

    python bench/capture.py                           # SQLite, then PostgreSQL
    python bench/capture.py --db postgresql --seconds 15

SPEC §5: submissions per second ≥ 0.6 x the requests per second of a bare JSON endpoint of the same app on
the same server and database. The baseline is `POST /bench/bare` (bench/capture_app.py): it parses the JSON
body, inserts it as one row, commits, and answers 202 {"status": "accepted"}, the least any endpoint that
takes a submission must do. One gunicorn serves both (`bench.capture_app:app`, leadcapture's app plus that
route) on loopback against one freshly migrated and seeded database, and the same wrk script sends both the
same JSON bodies (every one a new reader with a unique address, from an allowed origin). Runs alternate
(bare, submissions, healthz, bare, …) after a warm-up and the medians are compared, because these machines
are noisy; `GET /healthz` (a SELECT 1, no body, no write) is printed as context only, not in the ratio.

The web app only keeps each accepted submission as one intake row; no worker runs during the runs. Afterwards
the database must hold one `bench_bare` row per accepted bare request and one intake per accepted submission,
nothing stored or sent yet. Then, untimed for the ratio, `leadcapture worker --once` must store every intake
(one subscriber, one submission and one confirmation each) and send every confirmation (mail `outbox:`);
how long that took and the rate are printed. Exit status 1
when a ratio misses the bar or a check fails. Needs wrk (`apt-get install wrk`) and, for PostgreSQL, a local
server that lets `postgres` in.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gunicorn import config as gunicorn_settings  # type: ignore[import-untyped]
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "capture.lua"
APP = "bench.capture_app:app"  # wsgi:app plus POST /bench/bare; gunicorn runs from REPO so `bench` imports
BAR = 0.6
WIDGET = "daytrading-report"
ORIGIN = "https://beleggen.example"
BARE = "/bench/bare"  # bench/capture_app.py BARE_PATH
SUBMISSIONS = f"/api/v1/widgets/{WIDGET}/submissions"
HEALTHZ = "/healthz"
NAMES = {BARE: "bare", SUBMISSIONS: "submissions", HEALTHZ: "healthz"}
BARE_TABLE = {
    "sqlite": "CREATE TABLE bench_bare (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    "postgresql": "CREATE TABLE bench_bare (id serial PRIMARY KEY, body text NOT NULL)",
}
# Two cores: one gunicorn process per core so Python uses both, and threads inside each so a request waiting
# on the database (a PostgreSQL round trip, SQLite's write lock) does not idle its core. The client gets one
# wrk thread; its CPU is reported so it can be seen not to be the bottleneck.
WORKERS = 2
THREADS = 4
WARMUP_SECONDS = 3
SETTLE_TIMEOUT = 10.0  # after a run, for the requests wrk left in flight to land
WORKER_TIMEOUT = 900.0  # `leadcapture worker --once` sending the whole backlog
CLK_TCK = os.sysconf("SC_CLK_TCK")
# gunicorn 25+ opens a control socket at one fixed path per user; two servers would fight over it.
NO_CONTROL_SOCKET = [
    "--no-control-socket"
    for setting in gunicorn_settings.KNOWN_SETTINGS
    if setting.name == "control_socket_disable"
]

# Used when `leadcapture content load` cannot load the bundled content (it is still being written).
SEED_FALLBACK = f"""
from leadcapture import create_app
from leadcapture.extensions import db
from tests.factories import make_demo_widget
with create_app().app_context():
    make_demo_widget({WIDGET!r}, allowed_origins=[{ORIGIN!r}])
    db.session.commit()
"""


@dataclass
class Run:
    """One wrk run: against one endpoint (`name`: its path here, what bench/clicks.py ran there)."""

    name: str
    seconds: float
    ok: int  # responses with the expected status
    unexpected: int
    sent: int
    errors: int  # socket errors and timeouts
    p50_ms: float
    p99_ms: float
    client_cores: float
    server_cores: float | None
    busy_cores: float | None
    wrapped: int = 0  # times a script that takes its paths from a list went through the whole list

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    @property
    def in_flight(self) -> int:
        """Requests wrk had sent but not seen answered when it stopped; the server still handles them."""
        return self.sent - self.ok - self.unexpected

    def cpu_ms(self, cores: float | None) -> float | None:
        """CPU time per answered request, in milliseconds."""
        return None if cores is None or not self.ok else cores * 1000 / self.rate


@dataclass
class WorkerPass:
    """`leadcapture worker --once` sending the confirmations the runs left in the outbox."""

    sent: int
    seconds: float  # wall time of the whole command
    startup_seconds: float  # the same command over an empty outbox: process start, app, one empty pass
    cores: float  # its CPU (not the database server's) over its wall time

    @property
    def rate(self) -> float:
        """Deliveries per second, process start-up left out."""
        return self.sent / max(self.seconds - self.startup_seconds, 1e-9)


@dataclass
class Result:
    db: str
    baseline: list[Run] = field(default_factory=list)
    capture: list[Run] = field(default_factory=list)
    healthz: list[Run] = field(default_factory=list)  # context only
    worker: WorkerPass | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def baseline_rate(self) -> float:
        return statistics.median(run.rate for run in self.baseline)

    @property
    def capture_rate(self) -> float:
        return statistics.median(run.rate for run in self.capture)

    @property
    def healthz_rate(self) -> float:
        return statistics.median(run.rate for run in self.healthz)

    @property
    def ratio(self) -> float:
        return self.capture_rate / self.baseline_rate


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="bare/submissions/healthz rounds (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (16)")
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="an admin connection; the bench creates and drops its own database through it",
    )
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2

    results = []
    for name in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
        with fresh_database(name, args.postgres_url) as (database_url, workdir):
            results.append(bench(name, database_url, workdir, wrk, args))

    print()
    failed = False
    for result in results:
        print(summary_line(result))
        if result.worker is not None:
            print(worker_line(result.worker))
        for problem in result.problems:
            print(f"{'':12}FAILED: {problem}")
        failed |= bool(result.problems) or result.ratio < BAR
    return 1 if failed else 0


def bench(name: str, database_url: str, workdir: Path, wrk: str, args: argparse.Namespace) -> Result:
    result = Result(name)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEADCAPTURE_")}
    env |= {
        "LEADCAPTURE_DATABASE_URL": database_url,
        "LEADCAPTURE_SECRET_KEY": secrets.token_hex(16),
        "LEADCAPTURE_BASE_URL": f"http://127.0.0.1:{port}",
        "LEADCAPTURE_MAIL_URL": "outbox:",
        "LEADCAPTURE_RATE_LIMITS": "off",
    }
    print(f"{name}: migrating and seeding a fresh database", flush=True)
    leadcapture(env, "db", "upgrade")
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(BARE_TABLE[engine.dialect.name]))
        if leadcapture(env, "content", "load", str(REPO / "content"), check=False).returncode != 0:
            print(f"{name}: content load failed; seeding the widget from tests/factories.py", flush=True)
            subprocess.run(
                [sys.executable, "-c", SEED_FALLBACK], cwd=REPO, env=env, check=True, capture_output=True
            )
        startup_seconds = worker_once(env)[0]  # the fixed cost of the command, measured on an empty outbox

        with gunicorn(env, port, workdir / "gunicorn.log") as server:
            base = f"http://127.0.0.1:{port}"
            wrk_run = WrkRunner(wrk, base, args.connections, server, submission_template(base))
            prefix = secrets.token_hex(4)
            print(
                f"{name}: warm-up, then {args.rounds} x ({args.seconds:g} s bare, {args.seconds:g} s "
                f"submissions, {args.seconds:g} s healthz), {args.connections} connections, "
                f"gunicorn {WORKERS} workers x {THREADS} threads, {APP}",
                flush=True,
            )
            runs = [
                wrk_run(BARE, WARMUP_SECONDS, f"{prefix}-wb"),
                wrk_run(SUBMISSIONS, WARMUP_SECONDS, f"{prefix}-ws"),
                wrk_run(HEALTHZ, WARMUP_SECONDS),
            ]
            for round_number in range(args.rounds):
                for endpoint, runs_of_kind in (
                    (BARE, result.baseline),
                    (SUBMISSIONS, result.capture),
                    (HEALTHZ, result.healthz),
                ):
                    run = wrk_run(endpoint, args.seconds, f"{prefix}-{round_number}{NAMES[endpoint][0]}")
                    runs.append(run)
                    settle(engine, runs)
                    print(run_line(run), flush=True)
                    runs_of_kind.append(run)
        result.problems += server_errors(workdir / "gunicorn.log")
        result.problems += verify(engine, runs)
        # End to end, not timed for the ratio: the worker sends what the submissions queued.
        result.worker, problems = send_backlog(env, engine, startup_seconds)
        result.problems += problems
    finally:
        engine.dispose()
    return result


class WrkRunner:
    def __init__(
        self, wrk: str, base: str, connections: int, server: subprocess.Popen[bytes], body: str
    ) -> None:
        self.wrk, self.base, self.connections, self.server, self.body = wrk, base, connections, server, body

    def __call__(self, path: str, seconds: float, prefix: str = "") -> Run:
        """GET healthz; POST the same JSON bodies to bare and submissions, addresses unique per prefix."""
        posting = path != HEALTHZ
        extra = [self.body, prefix, ORIGIN] if posting else []
        expected = 202 if posting else 200
        arguments = [path, str(expected), *extra]
        return run_wrk(self.wrk, LUA, self.base, self.connections, self.server, path, seconds, arguments)


def run_wrk(
    wrk: str,
    script: Path,
    base: str,
    connections: int,
    server: subprocess.Popen[bytes],
    name: str,
    seconds: float,
    arguments: list[str],
) -> Run:
    """One wrk run of `script` (one thread, `connections` keep-alive connections) with `arguments`, read from
    the RESULT line the script prints, with the CPU the client, the server and the machine used meanwhile."""
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base,
        "--",
        *arguments,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before, busy_before = server_cpu(server.pid), machine_cpu()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after, busy_after = server_cpu(server.pid), machine_cpu()
    match = re.search(r"^RESULT (.*)$", completed.stdout, re.MULTILINE)
    if completed.returncode != 0 or match is None:
        raise SystemExit(f"wrk failed:\n{completed.stdout}{completed.stderr}")
    figures = {key: int(value) for key, value in (pair.split("=") for pair in match.group(1).split())}
    elapsed = figures["duration_us"] / 1e6
    client = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / elapsed

    def cores(start: float | None, end: float | None) -> float | None:
        return None if start is None or end is None else (end - start) / elapsed

    return Run(
        name=name,
        seconds=elapsed,
        ok=figures["expected"],
        unexpected=figures["unexpected"],
        sent=figures["sent"],
        errors=sum(figures[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts")),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        client_cores=client,
        server_cores=cores(server_before, server_after),
        busy_cores=cores(busy_before, busy_after),
        wrapped=figures.get("wrapped", 0),
    )


def submission_template(base: str) -> str:
    """A valid submission for the widget as the API describes it: the first option of every question."""
    url = f"{base}/api/v1/widgets/{WIDGET}"
    request = urllib.request.Request(url, headers={"Origin": ORIGIN})  # noqa: S310 - a loopback URL built here
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        definition = json.load(response)
    answers: dict[str, str | list[str]] = {}
    for question in definition["questions"]:
        first = question["options"][0]["value"]
        answers[question["key"]] = [first] if question["kind"] == "multi" else first
    return json.dumps(
        {
            "email": "{email}",
            "answers": answers,
            "consent": {"report": True, "sequences": False},
            "page_url": f"{ORIGIN}/artikel/daytraden",
            "timezone": "Europe/Amsterdam",
            "form_token": definition["form_token"],
        }
    )


def settle(engine: Engine, runs: list[Run]) -> None:
    """Wait until the server has written every request sent so far, those wrk left in flight included."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if count(engine, "SELECT count(*) FROM bench_bare") >= expected(runs, BARE) and count(
            engine, "SELECT count(*) FROM intakes"
        ) >= expected(runs, SUBMISSIONS):
            return
        time.sleep(0.1)


def expected(runs: list[Run], endpoint: str) -> int:
    """Answered with 202, plus what wrk had sent but not seen answered when it stopped (at most one per
    connection): the server completes those anyway."""
    return sum(run.ok + run.in_flight for run in runs if run.name == endpoint)


def count(engine: Engine, query: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(query)).scalar_one())


def verify(engine: Engine, runs: list[Run]) -> list[str]:
    """One row per accepted bare request; one intake per accepted submission, and nothing stored or sent (the
    web app only keeps the submission; the worker stores it)."""
    problems = []
    unexpected = sum(run.unexpected for run in runs)
    errors = sum(run.errors for run in runs)
    if unexpected:
        problems.append(f"{unexpected} responses with an unexpected status (not 202 / not 200)")
    if errors:
        problems.append(f"{errors} socket errors or timeouts")

    bare_expected = expected(runs, BARE)
    bare_rows = count(engine, "SELECT count(*) FROM bench_bare")
    captures = [run for run in runs if run.name == SUBMISSIONS]
    accepted, in_flight = sum(run.ok for run in captures), sum(run.in_flight for run in captures)
    wanted = expected(runs, SUBMISSIONS)
    intakes = count(engine, "SELECT count(*) FROM intakes WHERE failed_at IS NULL")
    stored = count(engine, "SELECT count(*) FROM subscribers") + count(engine, "SELECT count(*) FROM deliveries")
    print(
        f"{'':12}check: bare {bare_expected} accepted or in flight, {bare_rows} rows; submissions {accepted} x "
        f"202 + {in_flight} in flight at cut-off = {wanted}; database holds {intakes} intakes, "
        f"{stored} subscribers and deliveries",
        flush=True,
    )
    if bare_rows != bare_expected:
        problems.append(
            f"bench_bare holds {bare_rows} rows, not one per accepted bare request ({bare_expected})"
        )
    if intakes != wanted:
        problems.append(f"{intakes} intakes, not one per accepted submission ({wanted})")
    if stored:
        problems.append(f"{stored} subscribers and deliveries while no worker ran: the web app stores")
    return problems


def send_backlog(env: dict[str, str], engine: Engine, startup_seconds: float) -> tuple[WorkerPass, list[str]]:
    """Run `leadcapture worker --once` over the intakes the runs left: every one must end up stored as one
    subscriber and one submission, with its confirmation sent."""
    queued = count(engine, "SELECT count(*) FROM intakes")
    print(f"{'':12}worker --once: storing {queued} submissions and sending their confirmations", flush=True)
    seconds, cores, output = worker_once(env)
    problems = [f"worker log: {line}" for line in error_lines(output)]
    left = count(engine, "SELECT count(*) FROM intakes")
    subscribers = count(engine, "SELECT count(*) FROM subscribers")
    submissions = count(engine, "SELECT count(*) FROM submissions")
    sent = count(engine, "SELECT count(*) FROM deliveries WHERE kind = 'confirm' AND status = 'sent'")
    total = count(engine, "SELECT count(*) FROM deliveries")
    if not (left == 0 and subscribers == submissions == sent == total == queued):
        problems.append(
            f"after worker --once: {left} intakes left, {subscribers} subscribers, {submissions} submissions, "
            f"{sent} of {total} deliveries sent confirmations; wanted one each per intake ({queued})"
        )
    return WorkerPass(sent, seconds, startup_seconds, cores), problems


def worker_once(env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, CPU cores and output of one `leadcapture worker --once`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    try:
        completed = leadcapture(env, "worker", "--once", timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"leadcapture worker --once did not finish within {WORKER_TIMEOUT:g} s") from None
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu / seconds, completed.stdout + completed.stderr


def server_errors(log: Path) -> list[str]:
    """Anything the app logged at ERROR or worse fails the bench."""
    return [f"server log: {line}" for line in error_lines(log.read_text(errors="replace"))]


def error_lines(output: str) -> list[str]:
    lines = [line for line in output.splitlines() if re.search(r"[ [](ERROR|CRITICAL)[] ]", line)]
    return lines[:5] + ([f"… and {len(lines) - 5} more"] if len(lines) > 5 else [])


def run_line(run: Run) -> str:
    return (
        f"{'':12}{NAMES[run.name]:<12}{run.rate:7.0f} req/s   p50 {run.p50_ms:6.1f} ms   "
        f"p99 {run.p99_ms:7.1f} ms   CPU/request: server {fmt(run.cpu_ms(run.server_cores))} ms, "
        f"machine {fmt(run.cpu_ms(run.busy_cores))} ms   cores: server {fmt(run.server_cores)} "
        f"wrk {fmt(run.client_cores)} busy {fmt(run.busy_cores)}/{os.cpu_count()}"
    )


def summary_line(result: Result) -> str:
    return (
        f"{result.db}  bare {result.baseline_rate:.0f} req/s  submissions {result.capture_rate:.0f} req/s  "
        f"ratio {result.ratio:.2f}x (bar ≥ {BAR}x)  (healthz {result.healthz_rate:.0f} req/s)"
    )


def worker_line(worker: WorkerPass) -> str:
    return (
        f"{'':12}worker --once stored and sent {worker.sent} confirmations in {worker.seconds:.1f} s "
        f"({worker.startup_seconds:.1f} s of it start-up): {worker.rate:.0f} deliveries/s, "
        f"worker {worker.cores:.2f} cores"
    )


def fmt(value: float | None) -> str:
    return "  ? " if value is None else f"{value:4.2f}"


def server_cpu(master: int) -> float | None:
    """CPU seconds used so far by gunicorn's workers (Linux /proc); None where that cannot be read."""
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        total = 0
        for pid in [str(master), *children]:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except OSError:
        return None
    return total / CLK_TCK


def machine_cpu() -> float | None:
    """CPU seconds spent busy by the whole machine so far: server, database, client and anything else."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def leadcapture(
    env: dict[str, str], *command: str, check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "leadcapture.cli", *command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and completed.returncode != 0:
        raise SystemExit(f"leadcapture {' '.join(command)} failed:\n{completed.stdout}{completed.stderr}")
    return completed


@contextmanager
def gunicorn(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(WORKERS),
        "--threads",
        str(THREADS),
        "--bind",
        f"127.0.0.1:{port}",
        *NO_CONTROL_SOCKET,
        APP,
    ]
    with log.open("wb") as output:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_up(server, port, log)
        yield server
    finally:
        server.terminate()  # gunicorn's graceful stop: workers finish their requests first
        try:
            server.wait(timeout=35)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_until_up(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{HEALTHZ}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer /healthz within 30 s:\n{log.read_text()[-3000:]}")


@contextmanager
def fresh_database(kind: str, postgres_url: str) -> Iterator[tuple[str, Path]]:
    """A throwaway database and a scratch folder, both removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="leadcapture-bench-") as scratch:
        workdir = Path(scratch)
        if kind == "sqlite":
            yield f"sqlite:///{workdir / 'bench.sqlite'}", workdir
            return
        name = f"leadcapture_bench_{secrets.token_hex(4)}"
        admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False), workdir
            finally:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


if __name__ == "__main__":
    sys.exit(main())
