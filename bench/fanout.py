"""Fan-out: many live viewers on one server process, against a bare ASGI server.

    REDIS_URL=redis://127.0.0.1:6379/11 .venv/bin/python bench/fanout.py [--quick] \\
        [--kind asgi,reference,wsgi,group,asgi2,flood] [--n 300,1000] \\
        [--mode ramp|settled] [--json rows.json]

For each N, server processes with the test settings and the Redis cache:

- ``asgi``: uvicorn, one worker, ``--loop uvloop --http httptools``, serving
  ``tests.support.asgi`` (through ``tests.support.servers.asgi_app``) with
  ``progress_ui.tuning.tune_garbage_collector()``, as the README recommends;
- ``reference``: ``bench/reference_asgi.py`` under the same uvicorn flags: no
  Django, no cache, messages of the mean size the package sent at that N;
- ``wsgi``: gunicorn gthread, one worker with N + 10 threads (a thread per stream);
- ``group``: as ``asgi``, each viewer following a group of 5 sessions over one
  group stream (``progress_ui:group_sse``): N / 10 sessions in blocks of 5,
  each block followed by 50 viewers (a viewer gets 50 messages a second);
- ``asgi2``: two ``asgi`` processes on the same Redis, each viewer of a session
  on either (half of them each): both follow every session;
- ``flood``: the writer flood (its own table): one job whose loop calls
  ``update()`` 10,000 times a second (``bench/fanout_flood.py``), watched by 10
  viewers on one ``asgi`` process.

``PROGRESS_UI["MAX_STREAMS"]`` is set to N + 10 (its WSGI default, 8, would
answer most streams 503: what is measured is what one process can serve) and
``MAX_STREAMS_PER_CLIENT`` to 0 (every viewer comes from one address).

N viewers over N / 10 sessions of two tasks: a writer process
(``bench/fanout_writer.py``) updates every session 10 times a second with
``ProgressSession.update()``, spread evenly, the message carrying the time of
the write; one load process (two above N = 1000, and one per server for
``asgi2``: ``bench/fanout_load.py``) opens the streams.

Two modes (``--mode``):

- ``ramp``, the default ("connecting while changing", how a site meets load:
  pages open while jobs run): the viewers connect at 500 a second while the
  sessions change, and the window measured starts with the first connection
  and ends 8 s after the last one (3 s with ``--quick``);
- ``settled``: the viewers connect at 1,000 a second first; once every stream
  has answered (or N / 100 + 15 s have passed), 3 s of warm-up, then 8 s
  measured (1 s and 3 s with ``--quick``).

``--quick`` also runs smaller N. A note under the table says when the writer
could not keep its rate or streams failed.

Columns: streams connected; answered (viewers whose response came within 2 s
of their request, and the 95th percentile of that wait); delivered % (the
distinct write timestamps viewers saw, written in the window after their
answer came, / the writes they should have seen: each viewer's sessions' writes
in the window after its answer, or after its request for a viewer never
answered); lag p50/p95/p99 (arrival minus write time); server CPU (user +
system time of the serving processes, gunicorn's worker not its arbiter, over
the window, % of one core); CPU per delivered message, and its ratio to the
reference at the same N and mode; KB per stream (RSS at the end of the window
minus RSS of the same server idle before the streams, after one warm-up
stream, / streams connected); threads of a serving process (the most seen in
the window); Redis reads and commands per change, per server process (GET and
MGET, and every command, that the server processes sent to Redis from one
second after the last viewer's request to the end of the window, / the writes
made meanwhile / the processes: the access check of a new viewer reads too; the
benchmark's server factories count every command at redis-py's connection, sync
and asyncio, and write the counts to a file on SIGUSR2; Redis's own INFO
commandstats counts every client of a shared server, and this Redis has no
per-client command counts).

The flood table: items per second of the job's CPU time (all its threads) in
its loop without and with the ``update()`` call (each item spins 100 us of CPU),
the speed lost, and the same per wall-clock second (on a shared machine the
job also waits for a core); the job's store writes a second (the Redis
commands it sent while updating); the viewers' messages a second each, the
shortest gaps between two messages of one viewer (1st percentile and minimum:
at most one message per ``POLL_INTERVAL``, 100 ms, means no gap far below it)
and the lag of what they were sent.

Loopback only; every process it starts runs in its own process group and is
stopped by its PID; every step has a timeout.
"""

from __future__ import annotations

import argparse
import bisect
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

from tests.support.servers import free_port  # noqa: E402

PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
ASGI_N = (300, 1000, 4000)
WSGI_N = (300,)
GROUP_N = (1000,)
TWO_N = (1000, 4000)
QUICK_ASGI_N = (100, 300)
QUICK_WSGI_N = (50,)
QUICK_GROUP_N = (100,)
QUICK_TWO_N = (300,)
KINDS = ("asgi", "reference", "wsgi", "group", "asgi2", "flood")
MODES = ("ramp", "settled")
VIEWERS_PER_SESSION = 10
GROUP_SIZE = 5
RATE = 10.0
GRACE = 1.0
#: New viewers a second in the ramp mode (the issue's "500 a second").
RAMP_RATE = 500.0
#: Viewers answered later than this count as slow (the goal: within 2 s).
SLOW_CONNECT = 2.0
FLOOD_VIEWERS = 10
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
    from tests.support.servers import asgi_app

    _count_redis_commands()
    _dump_counts_on_signal()
    app: ASGIApp = asgi_app()
    tune_garbage_collector()
    return app


def package_wsgi_app() -> Any:
    """gunicorn factory (``bench.fanout:package_wsgi_app()``): as
    :func:`package_app`, for ``tests.support.servers.wsgi_app``. (Called in the worker,
    after gunicorn has set its own signal handlers, none of them SIGUSR2.)"""
    from tests.support.servers import wsgi_app

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
        "DJANGO_SETTINGS_MODULE": "tests.support.settings",
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


def percentile(histogram: Counter[int], q: float, per_ms: int = 10) -> float:
    """From a histogram of ``1 / per_ms`` ms buckets, in ms."""
    total = sum(histogram.values())
    if not total:
        return float("nan")
    rank, seen = q * total, 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket / per_ms
    return max(histogram) / per_ms


@dataclass
class Row:
    kind: str
    mode: str
    n: int
    processes: int
    connected: int
    #: Viewers answered within SLOW_CONNECT of their request, and the p95 wait (s).
    answered_in_time: int
    connect_p95: float
    delivered: float
    p50: float
    p95: float
    p99: float
    cpu: float
    us_per_message: float
    kb_per_stream: float
    threads: int
    reads_per_change: float | None
    commands_per_change: float | None
    bytes_per_message: float
    writes_made: float
    failed: int
    failures: dict[str, int]
    dropped: int
    commands_per_s: dict[str, float]
    ratio: float | None = None


@dataclass
class FloodRow:
    bare_rate: float
    progress_rate: float
    bare_wall: float
    progress_wall: float
    loss: float
    updates_per_s: float
    store_commands_per_s: float
    job_commands: dict[str, int]
    messages_per_viewer_s: float
    gap_p1: float
    gap_min: float
    p50: float
    p95: float
    server_cpu: float
    connected: int


def load_command(
    port: int,
    ids: list[str],
    *,
    viewers: int,
    connect_rate: float,
    n: int,
    out: Path,
    group_size: int = 1,
    ramp: bool = False,
) -> list[str]:
    # "--ids=...": a session id may start with "-".
    return [
        PY, str(HERE / "fanout_load.py"), "--port", str(port), f"--ids={','.join(ids)}",
        "--viewers", str(viewers), "--connect-rate", str(connect_rate),
        "--connect-timeout", str(connect_timeout(n)), "--grace", str(GRACE),
        "--group-size", str(group_size), *(["--ramp"] if ramp else []), "--out", str(out),
    ]  # fmt: skip


def load_result(load: subprocess.Popen[bytes], timeout: float) -> Any:
    """The result a load process wrote to its ``--out`` file."""
    return json.loads(Path(read_json(load, timeout)["out"]).read_text())


def connect_timeout(n: int) -> float:
    """Seconds for N streams to answer, on a busy machine."""
    return n / 100 + 15


def server_kind(kind: str) -> str:
    """The server a row runs: ``group`` and ``asgi2`` are the package's uvicorn."""
    return kind if kind in ("reference", "wsgi") else "asgi"


def start_server(
    kind: str, n: int, message_bytes: float, counts_file: Path, log: IO[bytes]
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    server = start(
        server_command(server_kind(kind), port, n),
        env={
            "FANOUT_MESSAGE_BYTES": str(int(message_bytes)),
            "FANOUT_RATE": str(RATE),
            "FANOUT_COUNTS_FILE": str(counts_file),
            # The caps on open streams (503 beyond the process's, 429 beyond
            # one client's: the load comes from one address) are not what is
            # measured. (A group stream takes a place per session.)
            "PROGRESS_TEST_UI": json.dumps(
                {"MAX_STREAMS": n * GROUP_SIZE + 10, "MAX_STREAMS_PER_CLIENT": 0}
            ),
            "PROGRESS_SERVER_APP": f"tests.support.{'wsgi' if kind == 'wsgi' else 'asgi'}"
            ":application",
        },
        stderr=log,
    )
    return server, port


def expected_changes(
    results: list[Any],
    blocks: list[list[list[int]]],
    stamps: list[list[int]] | None,
    window: tuple[float, float],
) -> int:
    """The changes the viewers should have seen: for each viewer, the writes to
    its sessions in the window after its answer came (after its request if it
    never came). ``stamps``: each session's write times in the window, in us
    after its start (None: the reference, which ticks RATE times a second)."""
    start, end = window
    total = 0
    for result, load_blocks in zip(results, blocks, strict=True):
        for block, requested, answered in result["viewers"]:
            since = requested if answered is None else answered
            for index in load_blocks[block]:
                if stamps is None:
                    total += max(0, int((end - max(start, since)) * RATE))
                else:
                    times = stamps[index]
                    total += len(times) - bisect.bisect_left(times, int((since - start) * 1e6))
    return total


def run(kind: str, n: int, quick: bool, message_bytes: float, mode: str) -> Row:
    ramp = mode == "ramp"
    processes = 2 if kind == "asgi2" else 1
    group = GROUP_SIZE if kind == "group" else 1
    sessions = max(group, n // VIEWERS_PER_SESSION // group * group)
    block_count = sessions // group
    per_block = max(1, n // block_count)
    warm, measure = (1.0, 3.0) if quick else (3.0, 8.0)
    hold = 3.0 if quick else 8.0
    connect_rate = RAMP_RATE if ramp else 1000.0
    procs: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(processes)]
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fanout-")))
        stack.enter_context(time_limit(connect_timeout(n) + 150))
        counts_files = [tmp / f"redis-commands-{i}.json" for i in range(processes)]
        try:
            servers = []
            for i in range(processes):
                server, port = start_server(kind, n, message_bytes, counts_files[i], logs[i])
                procs.append(server)
                servers.append((server, port))
            for server, port in servers:
                wait_until_up(port, server)
            pids = [serving_pid(server_kind(kind), server.pid) for server, _ in servers]
            ports = [port for _, port in servers]
            writer = None
            if kind == "reference":
                ids = [f"ref{i:05d}" for i in range(sessions)]
            else:
                writer = start(
                    [PY, str(HERE / "fanout_writer.py"), "--sessions", str(sessions),
                     "--rate", str(RATE), "--grace", str(GRACE), "--max-seconds", "300",
                     *(["--label"] if group > 1 else [])],
                )  # fmt: skip
                procs.append(writer)
                ids = read_json(writer, 60)["ids"]
            for port in ports:
                warm_up(port, ids[0])
            time.sleep(1.0)
            rss_idle = [status_field(pid, "VmRSS") for pid in pids]
            # What each load process opens: its port, its blocks (session indexes).
            all_blocks = [list(range(b * group, (b + 1) * group)) for b in range(block_count)]
            plans: list[tuple[int, list[list[int]], int]] = []
            if processes == 2:
                # Every session followed in both processes: half its viewers each.
                plans = [(port, all_blocks, max(1, per_block // 2)) for port in ports]
            else:
                parts = 1 if n <= 1000 else 2
                plans = [(ports[0], all_blocks[i::parts], per_block) for i in range(parts)]
            loads = []
            for k, (port, blocks, viewers) in enumerate(plans):
                load_ids = [ids[i] for block in blocks for i in block]
                loads.append(
                    start(
                        load_command(
                            port, load_ids, viewers=viewers, n=n, group_size=group,
                            connect_rate=connect_rate / len(plans), ramp=ramp,
                            out=tmp / f"load-{k}.json",
                        )
                    )
                )  # fmt: skip
                procs.append(loads[-1])
            if ramp:
                first = time.time() + 1.0
                window = (first, first + n / connect_rate + hold)
            else:
                for load in loads:
                    read_json(load, connect_timeout(n) + 30)
                window = (time.time() + warm, time.time() + warm + measure)
            for child in [*loads, writer] if writer else loads:
                tell(child, window)
            time.sleep(max(0.0, window[0] - time.time()))
            cpu0, t0 = sum(cpu_seconds(pid) for pid in pids), time.monotonic()
            # Redis commands are counted once every viewer has connected (the
            # access check of each new viewer reads the session's description).
            hold_from = window[0] + (n / connect_rate + 1.0 if ramp else 0.0)
            counts0 = None
            threads = max(status_field(pid, "Threads") for pid in pids)
            while time.time() < window[1]:
                if counts0 is None and time.time() >= hold_from:
                    counts0 = [
                        redis_commands(pid, f) for pid, f in zip(pids, counts_files, strict=True)
                    ]
                    hold_from = time.time()
                time.sleep(min(0.25, max(0.0, window[1] - time.time())))
                threads = max(threads, *(status_field(pid, "Threads") for pid in pids))
            if counts0 is None:
                raise RuntimeError("the window ended before every viewer connected")
            cpu1, t1 = sum(cpu_seconds(pid) for pid in pids), time.monotonic()
            rss_open = [status_field(pid, "VmRSS") for pid in pids]
            counts1 = [redis_commands(pid, f) for pid, f in zip(pids, counts_files, strict=True)]
            results = [load_result(load, GRACE + 60) for load in loads]
            stamps = None
            if writer is not None:
                written = read_json(writer, GRACE + 30)
                writes, due = written["writes_in_window"], written["due_in_window"]
                stamps = [sorted(times) for times in written["stamps"]]
                with contextlib.suppress(subprocess.TimeoutExpired):
                    writer.wait(30)  # it deletes its sessions before exiting
            else:
                writes = due = round((window[1] - window[0]) * RATE * sessions)
        except BaseException:
            for i, log in enumerate(logs):
                log.seek(0)
                tail = log.read()[-3000:].decode(errors="replace")
                print(f"--- {kind} server {i}, N = {n}: stderr ---\n{tail}", file=sys.stderr)
            raise
        finally:
            for proc in reversed(procs):
                stop(proc)
    changes = sum(r["changes"] for r in results)
    connected = sum(r["connected"] for r in results)
    if not connected or not changes:
        raise RuntimeError(f"{kind}, N = {n}: {connected} streams connected, {changes} changes")
    expected = expected_changes(results, [blocks for _, blocks, _ in plans], stamps, window)
    lags: Counter[int] = Counter()
    for r in results:
        lags.update({int(k): v for k, v in r["lags"].items()})
    waits = sorted(t for r in results for t in r["connect_times"])
    messages = sum(r["messages"] for r in results)
    commands: Counter[str] = Counter()
    for (time0, before), (time1, after) in zip(counts0, counts1, strict=True):
        commands.update({k: (v - before[k]) / (time1 - time0) for k, v in after.items()})
    # Changes a second while the commands were counted (from the writer's stamps).
    if stamps is not None:
        counted = int((hold_from - window[0]) * 1e6)
        held = sum(len(t) - bisect.bisect_left(t, counted) for t in stamps)
        writes_per_s = held / (window[1] - hold_from)
    else:
        writes_per_s = writes / (window[1] - window[0])
    per_change = processes * writes_per_s
    cpu = cpu1 - cpu0
    package = kind != "reference"
    return Row(
        kind=kind,
        mode=mode,
        n=n,
        processes=processes,
        connected=connected,
        answered_in_time=sum(1 for t in waits if t <= SLOW_CONNECT),
        connect_p95=waits[min(len(waits) - 1, int(0.95 * len(waits)))] if waits else float("nan"),
        delivered=100.0 * changes / expected if expected else float("nan"),
        p50=percentile(lags, 0.50),
        p95=percentile(lags, 0.95),
        p99=percentile(lags, 0.99),
        cpu=100.0 * cpu / (t1 - t0),
        us_per_message=1e6 * cpu / changes if changes else float("nan"),
        kb_per_stream=sum(o - i for o, i in zip(rss_open, rss_idle, strict=True)) / connected,
        threads=threads,
        reads_per_change=sum(commands.get(c, 0.0) for c in READ_COMMANDS) / per_change
        if package and per_change
        else None,
        commands_per_change=sum(commands.values()) / per_change if package and per_change else None,
        bytes_per_message=sum(r["bytes"] for r in results) / messages if messages else 0.0,
        writes_made=100.0 * writes / due if due else float("nan"),
        failed=sum(r["failed"] for r in results),
        failures=dict(sum((Counter(r["failures"]) for r in results), Counter[str]())),
        dropped=sum(r["dropped"] for r in results),
        commands_per_s={k: round(v, 1) for k, v in sorted(commands.items()) if v},
    )


def run_flood(quick: bool) -> FloodRow:
    """The writer-flood row: a job calling ``update()`` 10,000 times a second."""
    bare, measure = (2.0, 3.0) if quick else (3.0, 6.0)
    procs: list[subprocess.Popen[bytes]] = []
    with (
        tempfile.TemporaryFile() as server_log,
        tempfile.TemporaryDirectory(prefix="fanout-") as tmp,
        time_limit(120),
    ):
        try:
            server, port = start_server(
                "asgi", FLOOD_VIEWERS, 0, Path(tmp) / "redis-commands.json", server_log
            )
            procs.append(server)
            wait_until_up(port, server)
            job = start([PY, str(HERE / "fanout_flood.py")])
            procs.append(job)
            ids = read_json(job, 60)["ids"]
            warm_up(port, ids[0])
            load = start(
                load_command(
                    port,
                    ids,
                    viewers=FLOOD_VIEWERS,
                    connect_rate=100,
                    n=FLOOD_VIEWERS,
                    out=Path(tmp) / "load.json",
                )
            )
            procs.append(load)
            read_json(load, 30)
            window = (time.time() + bare, time.time() + bare + measure)
            tell(job, window)
            tell(load, window)
            time.sleep(max(0.0, window[0] - time.time()))
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
            time.sleep(max(0.0, window[1] - time.time()))
            cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
            result = load_result(load, GRACE + 30)
            outcome = read_json(job, 60)
            with contextlib.suppress(subprocess.TimeoutExpired):
                job.wait(30)
        except BaseException:
            server_log.seek(0)
            tail = server_log.read()[-3000:].decode(errors="replace")
            print(f"--- flood server: stderr ---\n{tail}", file=sys.stderr)
            raise
        finally:
            for proc in reversed(procs):
                stop(proc)
    lags = Counter({int(k): v for k, v in result["lags"].items()})
    gaps = Counter({int(k): v for k, v in result["gaps"].items()})
    return FloodRow(
        bare_rate=outcome["bare_rate"],
        progress_rate=outcome["progress_rate"],
        bare_wall=outcome["bare_wall"],
        progress_wall=outcome["progress_wall"],
        loss=100.0 * (1 - outcome["progress_rate"] / outcome["bare_rate"]),
        updates_per_s=outcome["updates"] / measure,
        store_commands_per_s=sum(outcome["commands"].values()) / measure,
        job_commands=outcome["commands"],
        messages_per_viewer_s=result["messages"] / max(1, result["connected"]) / measure,
        gap_p1=percentile(gaps, 0.01, per_ms=1),
        gap_min=min(gaps) if gaps else float("nan"),
        p50=percentile(lags, 0.50),
        p95=percentile(lags, 0.95),
        server_cpu=100.0 * (cpu1 - cpu0) / (t1 - t0),
        connected=result["connected"],
    )


NAMES = {
    "asgi": "uvicorn",
    "reference": "bare ASGI",
    "wsgi": "gunicorn gthread",
    "group": "uvicorn, groups of 5",
    "asgi2": "2 x uvicorn",
}


def print_table(rows: list[Row]) -> None:
    print(
        "| server | mode | N | connected | answered in 2 s (p95) | delivered "
        "| lag p50 / p95 / p99 ms | server CPU | CPU per message | vs reference "
        "| KB per stream | threads | Redis reads / commands per change per process |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r.ratio:.1f}x" if r.ratio is not None else ""
        redis = (
            f"{r.reads_per_change:.2f} / {r.commands_per_change:.2f}"
            if r.reads_per_change is not None and r.commands_per_change is not None
            else "-"
        )
        print(
            f"| {NAMES[r.kind]} | {r.mode} | {r.n} | {r.connected} "
            f"| {r.answered_in_time} ({r.connect_p95 * 1000:.0f} ms) | {r.delivered:.1f} % "
            f"| {r.p50:.0f} / {r.p95:.0f} / {r.p99:.0f} | {r.cpu:.0f} % "
            f"| {r.us_per_message:.0f} µs | {ratio} | {r.kb_per_stream:.0f} | {r.threads} "
            f"| {redis} |"
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


def print_flood(row: FloodRow) -> None:
    print(
        "\n| job items per CPU s without / with update() | speed lost "
        "| items per wall s without / with | update() calls/s "
        "| job's Redis commands/s | messages per viewer per s | gap p1 / min ms "
        "| lag p50 / p95 ms | server CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {row.bare_rate:,.0f} / {row.progress_rate:,.0f} | {row.loss:.1f} % "
        f"| {row.bare_wall:,.0f} / {row.progress_wall:,.0f} | {row.updates_per_s:,.0f} "
        f"| {row.store_commands_per_s:,.0f} "
        f"| {row.messages_per_viewer_s:.1f} | {row.gap_p1:.0f} / {row.gap_min:.0f} "
        f"| {row.p50:.0f} / {row.p95:.0f} | {row.server_cpu:.0f} % |"
    )


def progress(row: Row) -> None:
    print(
        f"{NAMES[row.kind]} {row.mode} N = {row.n}: {row.delivered:.1f} % delivered, "
        f"lag p95 {row.p95:.0f} ms, CPU {row.cpu:.0f} %, {row.us_per_message:.0f} µs per message",
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
    parser.add_argument("--mode", default="ramp", choices=MODES)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    kinds = args.kind.split(",")
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown kind {', '.join(sorted(unknown))}; use {', '.join(KINDS)}")
    chosen = tuple(int(x) for x in args.n.split(",")) if args.n else None
    asgi_n = chosen or (QUICK_ASGI_N if args.quick else ASGI_N)
    wsgi_n = chosen or (QUICK_WSGI_N if args.quick else WSGI_N)
    group_n = chosen or (QUICK_GROUP_N if args.quick else GROUP_N)
    two_n = chosen or (QUICK_TWO_N if args.quick else TWO_N)
    _raise_fd_limit()
    began = time.monotonic()
    rows: list[Row] = []

    failed: list[str] = []

    def add(kind: str, n: int, message_bytes: float = 0) -> Row | None:
        """Run one row; a row that fails (a time limit on an overloaded machine)
        is reported under the table, and the others still run."""
        try:
            row = run(kind, n, args.quick, message_bytes, args.mode)
        except (BenchTimeout, RuntimeError) as exc:
            failed.append(f"{NAMES[kind]} N = {n}: no row ({type(exc).__name__}: {exc})")
            print(failed[-1], file=sys.stderr, flush=True)
            return None
        rows.append(row)
        progress(row)
        return row

    if "asgi" in kinds or "reference" in kinds:
        for n in asgi_n:
            package = add("asgi", n) if "asgi" in kinds else None
            if "reference" in kinds:
                size = package.bytes_per_message if package and package.bytes_per_message else 1500
                reference = add("reference", n, size)
                if package is not None and reference is not None:
                    package.ratio = package.us_per_message / reference.us_per_message
    for kind, sizes in (("group", group_n), ("asgi2", two_n), ("wsgi", wsgi_n)):
        if kind in kinds:
            for n in sizes:
                add(kind, n)
    flood = run_flood(args.quick) if "flood" in kinds else None
    print(
        f"\n{VIEWERS_PER_SESSION} viewers per session, {RATE:.0f} changes a second per session, "
        f"{time.monotonic() - began:.0f} s in all\n"
    )
    if rows:
        print_table(rows)
    for note in failed:
        print(f"- {note}")
    if flood is not None:
        print_flood(flood)
    if args.json:
        data = {"rows": [asdict(r) for r in rows], "flood": asdict(flood) if flood else None}
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
