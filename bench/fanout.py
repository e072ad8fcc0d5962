"""Fan-out: many live viewers on one server process, against a bare ASGI server.

    REDIS_URL=redis://127.0.0.1:6379/11 .venv/bin/python bench/fanout.py \\
        [--quick] [--kind asgi,reference,wsgi] [--n 100,1000] [--json rows.json]

For each N, one server process with the test settings and the Redis cache:

- ``asgi``: uvicorn, one worker, ``--loop uvloop --http httptools``, serving
  ``tests.asgi`` (through ``tests.servers.asgi_app``) with
  ``progress_ui.tuning.tune_garbage_collector()``, as the README recommends;
- ``reference``: ``bench/reference_asgi.py`` under the same uvicorn flags: no
  Django, no cache, messages of the mean size the package sent at that N;
- ``wsgi``: gunicorn gthread, one worker with N + 10 threads (a thread per stream).

``PROGRESS_UI["MAX_STREAMS"]`` is set to N + 10 (its WSGI default, 8, would
answer most streams 503: what is measured is what one process can serve).

N viewers over N / 10 sessions of two tasks: a writer process
(``bench/fanout_writer.py``) updates every session 10 times a second with
``ProgressSession.update()``, spread evenly, the message carrying the time of
the write; one load process (two above N = 1000, ``bench/fanout_load.py``)
opens the streams, 1,000 a second. Once every stream has answered (or N / 100
+ 15 s have passed: a saturated server accepts connections late, and
"connected" then falls short of N), 3 s of warm-up, then 8 s measured (1 s and
3 s with ``--quick``, which also runs smaller N). A note under the table says
when the writer could not keep its rate or streams failed.

Columns: streams connected; delivered % (distinct write timestamps the viewers
saw, of those written in the window, / writes in the window x 10 viewers);
lag p50/p95/p99 (arrival minus write time); server CPU (user + system time of
the serving process, gunicorn's worker not its arbiter, over the window, % of
one core); CPU per delivered message, and its ratio to the reference at the
same N; KB per stream (RSS at the end of the window minus RSS of the same
server idle before the streams, after one warm-up stream, / streams connected);
threads of the serving process (the most seen in the window); cache reads per
second (GET and MGET the server process sent to Redis: the benchmark's server
factories count every command at redis-py's connection, sync and asyncio, and
write the counts to a file on SIGUSR2; Redis's own INFO counts every client of
a shared server, and this Redis has no per-client command counts).

Loopback only; every process it starts runs in its own process group and is
stopped by its PID; every step has a timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port  # noqa: E402

PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
ASGI_N = (100, 300, 1000, 2000, 4000)
WSGI_N = (50, 100, 300)
QUICK_ASGI_N = (100, 300)
QUICK_WSGI_N = (50,)
KINDS = ("asgi", "reference", "wsgi")
VIEWERS_PER_SESSION = 10
RATE = 10.0
GRACE = 1.0
READ_COMMANDS = ("GET", "MGET")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


# --- In the server process -------------------------------------------------

COMMANDS: Counter[str] = Counter()


def _name(command: Any) -> str:
    return (command.decode() if isinstance(command, bytes) else str(command)).upper()


def _count_redis_commands() -> None:
    """Count every command this process sends to Redis, by name. Sync redis-py
    packs single commands in ``send_command`` and pipelines in
    ``pack_commands``; asyncio redis-py packs both through ``pack_command``."""
    import redis.asyncio.connection
    import redis.connection

    sync = redis.connection.AbstractConnection
    send_command, pack_commands = sync.send_command, sync.pack_commands

    def counted_send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        COMMANDS[_name(args[0])] += 1
        return send_command(self, *args, **kwargs)

    def counted_pack_commands(self: Any, commands: Iterable[Any]) -> Any:
        commands = list(commands)
        COMMANDS.update(_name(c[0]) for c in commands)
        return pack_commands(self, commands)

    sync.send_command = counted_send_command  # type: ignore[method-assign]
    sync.pack_commands = counted_pack_commands  # type: ignore[method-assign]

    asyncio_ = redis.asyncio.connection.AbstractConnection
    pack_command = asyncio_.pack_command

    def counted_pack_command(self: Any, *args: Any) -> Any:
        COMMANDS[_name(args[0])] += 1
        return pack_command(self, *args)

    asyncio_.pack_command = counted_pack_command  # type: ignore[method-assign]


def _dump_counts_on_signal() -> None:
    """On SIGUSR2, write the time and the counts to ``FANOUT_COUNTS_FILE``. A
    signal, not an HTTP request: an overloaded server answers a request late or
    never, while Python runs a signal handler between any two bytecodes."""
    path = Path(os.environ["FANOUT_COUNTS_FILE"])

    def dump(signum: int, frame: FrameType | None) -> None:
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({"time": time.time(), "commands": dict(COMMANDS)}))
        partial.replace(path)

    signal.signal(signal.SIGUSR2, dump)


ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def package_app() -> ASGIApp:
    """uvicorn factory: the test settings' ASGI app (static files too), Redis
    commands counted, the garbage collector tuned as the README recommends."""
    from progress_ui.tuning import tune_garbage_collector
    from tests.servers import asgi_app

    _count_redis_commands()
    _dump_counts_on_signal()
    app: ASGIApp = asgi_app()
    tune_garbage_collector()
    return app


def package_wsgi_app() -> Any:
    """gunicorn factory (``bench.fanout:package_wsgi_app()``): as
    :func:`package_app`, for ``tests.servers.wsgi_app``. (Called in the worker,
    after gunicorn has set its own signal handlers, none of them SIGUSR2.)"""
    from tests.servers import wsgi_app

    _count_redis_commands()
    _dump_counts_on_signal()
    return wsgi_app()


def reference_app() -> ASGIApp:
    """uvicorn factory for ``bench/reference_asgi.py``, the garbage collector
    tuned as for the package."""
    from progress_ui.tuning import tune_garbage_collector

    sys.path.insert(0, str(HERE))
    from reference_asgi import make_app

    _dump_counts_on_signal()  # no Redis: counts nothing, answers as the others do
    app = make_app()
    tune_garbage_collector()
    return app


# --- In the orchestrator ---------------------------------------------------


class BenchTimeout(Exception):
    """A run went past its hard time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise BenchTimeout(f"run took more than {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _raise_fd_limit() -> None:
    """In each child before it starts: as many open files as allowed (a socket each)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PROGRESS_TEST_CACHE": "redis",
        "REDIS_URL": REDIS_URL,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def server_command(kind: str, port: int, n: int) -> list[str]:
    if kind == "wsgi":
        return [
            PY, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
            "--worker-class", "gthread", "--workers", "1",
            "--threads", str(n + 10), "--worker-connections", str(n + 100),
            "--backlog", "8192", "--timeout", "120", "--graceful-timeout", "2",
            "--log-level", "warning", "bench.fanout:package_wsgi_app()",
        ]  # fmt: skip
    factory = "bench.fanout:package_app" if kind == "asgi" else "bench.fanout:reference_app"
    return [
        PY, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--lifespan", "off",
        "--no-access-log", "--log-level", "warning", "--backlog", "8192",
        "--timeout-graceful-shutdown", "2",
    ]  # fmt: skip


def start(
    command: list[str], *, env: dict[str, str] | None = None, stderr: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """A child in its own process group (gunicorn forks), pipes to talk to it."""
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=child_env(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_raise_fd_limit,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the child's process group, SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def read_json(proc: subprocess.Popen[bytes], timeout: float) -> Any:
    """The next JSON line a child prints, within ``timeout`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise BenchTimeout(f"no answer within {timeout:.0f} s from {proc.args!r:.120}")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{proc.args!r:.120} exited with {proc.wait(5)}")
    return json.loads(line)


def tell(proc: subprocess.Popen[bytes], value: Any) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(value).encode() + b"\n")
    proc.stdin.flush()


def wait_until_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/__up__", timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # it answered (404)
        except OSError:
            time.sleep(0.1)
    raise BenchTimeout("server did not answer")


def warm_up(port: int, sid: str, timeout: float = 10) -> None:
    """One stream until its first message, so that "idle" memory includes what
    the first request loads (templates, URL resolvers), not the streams."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET /progress/{sid}/events/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        received = b""
        while b"\n\n" not in received.partition(b"\r\n\r\n")[2]:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"warm-up stream closed: {received[:200]!r}")
            received += chunk


def serving_pid(kind: str, pid: int) -> int:
    """The process that serves requests (gunicorn's worker, not its arbiter)."""
    if kind != "wsgi":
        return pid
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise BenchTimeout("no gunicorn worker")


def status_field(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """User + system time of every thread of ``pid``, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def redis_commands(pid: int, path: Path, timeout: float = 10) -> tuple[float, Counter[str]]:
    """The server's clock and the Redis commands it has sent so far, by name."""
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise BenchTimeout("the server did not write its Redis command counts")
        time.sleep(0.01)
    data = json.loads(path.read_text())
    return float(data["time"]), Counter(data["commands"])


def percentile(histogram: Counter[int], q: float) -> float:
    """From a lag histogram of 0.1 ms buckets, in ms."""
    total = sum(histogram.values())
    if not total:
        return float("nan")
    rank, seen = q * total, 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket / 10
    return max(histogram) / 10


@dataclass
class Row:
    kind: str
    n: int
    connected: int
    delivered: float
    p50: float
    p95: float
    p99: float
    cpu: float
    us_per_message: float
    kb_per_stream: float
    threads: int
    reads_per_s: float | None
    bytes_per_message: float
    writes_made: float
    failed: int
    failures: dict[str, int]
    dropped: int
    commands_per_s: dict[str, float]
    ratio: float | None = None


def load_command(port: int, ids: list[str], connect_rate: float, n: int) -> list[str]:
    # "--ids=...": a session id may start with "-".
    return [
        PY, str(HERE / "fanout_load.py"), "--port", str(port), f"--ids={','.join(ids)}",
        "--viewers", str(VIEWERS_PER_SESSION), "--connect-rate", str(connect_rate),
        "--connect-timeout", str(connect_timeout(n)), "--grace", str(GRACE),
    ]  # fmt: skip


def connect_timeout(n: int) -> float:
    """Seconds for N streams to answer, on a busy machine."""
    return n / 100 + 15


def run(kind: str, n: int, quick: bool, message_bytes: float) -> Row:
    sessions = max(1, n // VIEWERS_PER_SESSION)
    warm, measure = (1.0, 3.0) if quick else (3.0, 8.0)
    connect_rate = 1000.0
    procs: list[subprocess.Popen[bytes]] = []
    with (
        tempfile.TemporaryFile() as server_log,
        tempfile.TemporaryDirectory(prefix="fanout-") as tmp,
        time_limit(connect_timeout(n) + 120),
    ):
        counts_file = Path(tmp) / "redis-commands.json"
        try:
            port = free_port()
            server = start(
                server_command(kind, port, n),
                env={
                    "FANOUT_MESSAGE_BYTES": str(int(message_bytes)),
                    "FANOUT_RATE": str(RATE),
                    "FANOUT_COUNTS_FILE": str(counts_file),
                    # The cap on open streams (503 beyond it) is not what is measured.
                    "PROGRESS_TEST_UI": json.dumps({"MAX_STREAMS": n + 10}),
                    "PROGRESS_SERVER_APP": f"tests.{'wsgi' if kind == 'wsgi' else 'asgi'}"
                    ":application",
                },
                stderr=server_log,
            )
            procs.append(server)
            wait_until_up(port, server)
            pid = serving_pid(kind, server.pid)
            writer = None
            if kind == "reference":
                ids = [f"ref{i:05d}" for i in range(sessions)]
            else:
                writer = start(
                    [PY, str(HERE / "fanout_writer.py"), "--sessions", str(sessions),
                     "--rate", str(RATE), "--grace", str(GRACE), "--max-seconds", "300"],
                )  # fmt: skip
                procs.append(writer)
                ids = read_json(writer, 60)["ids"]
            warm_up(port, ids[0])
            time.sleep(1.0)
            rss_idle = status_field(pid, "VmRSS")
            parts = 1 if n <= 1000 else 2
            loads = []
            for i in range(parts):
                loads.append(start(load_command(port, ids[i::parts], connect_rate / parts, n)))
                procs.append(loads[-1])
            for load in loads:
                read_json(load, connect_timeout(n) + 30)
            window = (time.time() + warm, time.time() + warm + measure)
            for child in [*loads, writer] if writer else loads:
                tell(child, window)
            time.sleep(max(0.0, window[0] - time.time()))
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            counts0 = redis_commands(pid, counts_file)
            threads = status_field(pid, "Threads")
            while time.time() < window[1]:
                time.sleep(min(1.0, max(0.0, window[1] - time.time())))
                threads = max(threads, status_field(pid, "Threads"))
            cpu1, t1 = cpu_seconds(pid), time.monotonic()
            rss_open = status_field(pid, "VmRSS")
            counts1 = redis_commands(pid, counts_file)
            results = [read_json(load, GRACE + 30) for load in loads]
            if writer is not None:
                written = read_json(writer, GRACE + 30)
                writes, due = written["writes_in_window"], written["due_in_window"]
                with contextlib.suppress(subprocess.TimeoutExpired):
                    writer.wait(30)  # it deletes its sessions before exiting
            else:
                writes = due = round(measure * RATE * sessions)
        except BaseException:
            server_log.seek(0)
            tail = server_log.read()[-3000:].decode(errors="replace")
            print(f"--- {kind} server, N = {n}: stderr ---\n{tail}", file=sys.stderr)
            raise
        finally:
            for proc in reversed(procs):
                stop(proc)
    changes = sum(r["changes"] for r in results)
    connected = sum(r["connected"] for r in results)
    if not connected or not changes:
        raise RuntimeError(f"{kind}, N = {n}: {connected} streams connected, {changes} changes")
    lags: Counter[int] = Counter()
    for r in results:
        lags.update({int(k): v for k, v in r["lags"].items()})
    messages = sum(r["messages"] for r in results)
    seconds = counts1[0] - counts0[0]
    commands = {name: (count - counts0[1][name]) / seconds for name, count in counts1[1].items()}
    cpu = cpu1 - cpu0
    return Row(
        kind=kind,
        n=n,
        connected=connected,
        delivered=100.0 * changes / (writes * VIEWERS_PER_SESSION) if writes else float("nan"),
        p50=percentile(lags, 0.50),
        p95=percentile(lags, 0.95),
        p99=percentile(lags, 0.99),
        cpu=100.0 * cpu / (t1 - t0),
        us_per_message=1e6 * cpu / changes if changes else float("nan"),
        kb_per_stream=(rss_open - rss_idle) / connected if connected else float("nan"),
        threads=threads,
        reads_per_s=sum(commands.get(c, 0.0) for c in READ_COMMANDS)
        if kind != "reference"
        else None,
        bytes_per_message=sum(r["bytes"] for r in results) / messages if messages else 0.0,
        writes_made=100.0 * writes / due if due else float("nan"),
        failed=sum(r["failed"] for r in results),
        failures=dict(sum((Counter(r["failures"]) for r in results), Counter[str]())),
        dropped=sum(r["dropped"] for r in results),
        commands_per_s={k: round(v, 1) for k, v in sorted(commands.items()) if v},
    )


NAMES = {"asgi": "uvicorn", "reference": "bare ASGI", "wsgi": "gunicorn gthread"}


def print_table(rows: list[Row]) -> None:
    print(
        "| server | N | connected | delivered | lag p50 / p95 / p99 ms | server CPU "
        "| CPU per message | vs reference | KB per stream | threads | cache reads/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r.ratio:.1f}x" if r.ratio is not None else ""
        reads = f"{r.reads_per_s:.0f}" if r.reads_per_s is not None else "-"
        print(
            f"| {NAMES[r.kind]} | {r.n} | {r.connected} | {r.delivered:.1f} % "
            f"| {r.p50:.0f} / {r.p95:.0f} / {r.p99:.0f} | {r.cpu:.0f} % "
            f"| {r.us_per_message:.0f} µs | {ratio} | {r.kb_per_stream:.0f} | {r.threads} "
            f"| {reads} |"
        )
    notes = [
        f"{NAMES[r.kind]} N = {r.n}: the writer made {r.writes_made:.0f} % of its writes"
        for r in rows
        if r.kind != "reference" and r.writes_made < 95
    ]
    notes += [
        f"{NAMES[r.kind]} N = {r.n}: {r.failed} streams failed {r.failures}, "
        f"{r.dropped} closed by the server"
        for r in rows
        if r.failed or r.dropped
    ]
    for note in notes:
        print(f"\n- {note}", end="")
    print()


def progress(row: Row) -> None:
    print(
        f"{NAMES[row.kind]} N = {row.n}: {row.delivered:.1f} % delivered, "
        f"CPU {row.cpu:.0f} %, {row.us_per_message:.0f} µs per message",
        file=sys.stderr,
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller N, shorter windows")
    parser.add_argument(
        "--kind", default=",".join(KINDS), help="comma-separated: " + ", ".join(KINDS)
    )
    parser.add_argument("--n", help="comma-separated N, for every kind asked")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    kinds = args.kind.split(",")
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown kind {', '.join(sorted(unknown))}; use {', '.join(KINDS)}")
    chosen = tuple(int(x) for x in args.n.split(",")) if args.n else None
    asgi_n = chosen or (QUICK_ASGI_N if args.quick else ASGI_N)
    wsgi_n = chosen or (QUICK_WSGI_N if args.quick else WSGI_N)
    _raise_fd_limit()
    began = time.monotonic()
    rows: list[Row] = []
    for n in asgi_n:
        package = None
        if "asgi" in kinds:
            package = run("asgi", n, args.quick, 0)
            rows.append(package)
            progress(package)
        if "reference" in kinds:
            size = package.bytes_per_message if package and package.bytes_per_message else 1500
            reference = run("reference", n, args.quick, size)
            rows.append(reference)
            progress(reference)
            if package is not None:
                package.ratio = package.us_per_message / reference.us_per_message
    if "wsgi" in kinds:
        for n in wsgi_n:
            rows.append(run("wsgi", n, args.quick, 0))
            progress(rows[-1])
    print(
        f"\n{VIEWERS_PER_SESSION} viewers per session, {RATE:.0f} changes a second per session, "
        f"{time.monotonic() - began:.0f} s in all\n"
    )
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")


if __name__ == "__main__":
    main()
