"""Fan-out: many live viewers on one server process, against a bare ASGI server.

    .venv/bin/python bench/fanout.py [--quick] [--kinds asgi,reference,wsgi] [--n 100,1000]

For each N: one server process (uvicorn with uvloop and httptools, or gunicorn
gthread with N + 16 threads), N viewers over N / 10 sessions of two tasks, each
session updated 10 times a second by a writer process (``ProgressSession.update``,
the message carrying the time of the write), and load-generator processes
reading the streams (``bench/fanout_load.py``). Then the same N against
``bench/reference_asgi.py``: no Django, no cache, messages of the size the
package sent at that N. Both ASGI servers run with
``progress_ui.tuning.tune_garbage_collector()``, as the README recommends.

Prints one table: connected, delivered % (changes that reached viewers in the
measuring window / writes in it x viewers per session), lag p50/p95/p99 (arrival
minus write time), server CPU (% of one core), CPU per delivered message and its
ratio to the reference at the same N, memory per open stream (RSS with the
streams open minus RSS before, / N), server threads, and cache reads per second
(Redis ``MGET`` calls server-wide in the window: the writer makes none then).
Loopback only; every process it starts is stopped by its PID (its process group).
Redis at REDIS_URL (default redis://127.0.0.1:6379/15, flushed by the tests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
ASGI_N = [100, 300, 1000, 2000, 4000]
WSGI_N = [50, 100, 300]
VIEWERS_PER_SESSION = 10
RATE = 10.0


def package_app() -> object:
    """uvicorn factory: the test settings' ASGI app, serving static files, with
    the garbage-collector tuning the README recommends."""
    from progress_ui.tuning import tune_garbage_collector
    from tests.servers import asgi_app

    app = asgi_app()
    tune_garbage_collector()
    return app


def reference_app() -> object:
    from progress_ui.tuning import tune_garbage_collector

    sys.path.insert(0, str(HERE))
    from reference_asgi import make_app

    app = make_app()
    tune_garbage_collector()
    return app


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(kind: str, port: int, n: int) -> list[str]:
    if kind == "wsgi":
        return [
            PY, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
            "--worker-class", "gthread", "--workers", "1",
            "--threads", str(n + 16), "--worker-connections", str(n + 100),
            "--timeout", "120", "--graceful-timeout", "2", "--log-level", "warning",
            "tests.servers:wsgi_app()",
        ]  # fmt: skip
    factory = "bench.fanout:package_app" if kind == "asgi" else "bench.fanout:reference_app"
    return [
        PY, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--lifespan", "off", "--no-access-log",
        "--log-level", "warning", "--backlog", "8192", "--timeout-graceful-shutdown", "2",
    ]  # fmt: skip


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PROGRESS_TEST_CACHE": "redis",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextlib.contextmanager
def started(
    command: list[str], extra_env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env(extra_env), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_raise_fd_limit,
    )  # fmt: skip
    try:
        yield proc
    finally:
        stop(proc)


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
    raise RuntimeError("server did not answer")


def worker_pid(kind: str, pid: int) -> int:
    """The process that serves requests (gunicorn's worker, not its arbiter)."""
    if kind != "wsgi":
        return pid
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("no gunicorn worker")


def status_field(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def redis_mgets() -> int:
    import redis

    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))


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
    reads_per_s: float
    bytes_per_message: float
    ratio: float | None = None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(kind: str, n: int, quick: bool, message_bytes: float) -> Row:
    port = free_port()
    sessions = max(1, n // VIEWERS_PER_SESSION)
    connect = n / 800 + 2.0
    warm, measure = (1.0, 4.0) if quick else (2.0, 8.0)
    extra = {
        "FANOUT_MESSAGE_BYTES": str(int(message_bytes)),
        "PROGRESS_SERVER_APP": f"tests.{'wsgi' if kind == 'wsgi' else 'asgi'}:application",
    }
    with started(server_command(kind, port, n), extra) as server:
        wait_until_up(port, server)
        pid = worker_pid(kind, server.pid)
        begin = time.time() + 3.0  # the writer's sessions exist before viewers connect
        window = (begin + connect + warm, begin + connect + warm + measure)
        until = window[1] + 0.5
        writer = None
        if kind == "reference":
            ids = [f"ref{i:05d}" for i in range(sessions)]
        else:
            writer = subprocess.Popen(
                [PY, str(HERE / "fanout_writer.py"), "--sessions", str(sessions),
                 "--rate", str(RATE), "--start", str(begin), "--until", str(until),
                 "--window", str(window[0]), str(window[1])],
                cwd=ROOT, env=env(), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            assert writer.stdout is not None
            ids = json.loads(writer.stdout.readline())["ids"]
        try:
            time.sleep(max(0.0, begin - time.time()))
            rss_before = status_field(pid, "VmRSS")
            parts = 1 if n <= 1000 else 2
            loads = [
                subprocess.Popen(
                    [
                        PY,
                        str(HERE / "fanout_load.py"),
                        "--port",
                        str(port),
                        "--ids",
                        ",".join(ids[i::parts]),
                        "--viewers",
                        str(VIEWERS_PER_SESSION),
                        "--connect-rate",
                        str(800 / parts),
                        "--window",
                        str(window[0]),
                        str(window[1]),
                    ],
                    cwd=ROOT,
                    env=env(),
                    stdout=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=_raise_fd_limit,
                )
                for i in range(parts)
            ]
            try:
                time.sleep(max(0.0, window[0] - time.time()))
                rss_open, threads = status_field(pid, "VmRSS"), status_field(pid, "Threads")
                cpu0, reads0, t0 = cpu_seconds(pid), redis_mgets(), time.time()
                time.sleep(max(0.0, window[1] - time.time()))
                cpu1, reads1, t1 = cpu_seconds(pid), redis_mgets(), time.time()
                threads = max(threads, status_field(pid, "Threads"))
                results = [json.loads(p.communicate(timeout=60)[0]) for p in loads]
            finally:
                for p in loads:
                    stop(p)
            if writer is not None:
                assert writer.stdout is not None
                writes = json.loads(writer.stdout.readline())["writes_in_window"]
            else:
                writes = int(measure * RATE * sessions)
        finally:
            if writer is not None:
                stop(writer)
    changes = sum(r["changes"] for r in results)
    lags = [lag for r in results for lag in r["lags"]]
    expected = writes * VIEWERS_PER_SESSION
    cpu = (cpu1 - cpu0) / (t1 - t0)
    sizes = [r["bytes_per_message"] for r in results if r["bytes_per_message"]]
    return Row(
        kind=kind,
        n=n,
        connected=sum(r["connected"] for r in results),
        delivered=100.0 * changes / expected if expected else float("nan"),
        p50=percentile(lags, 0.50),
        p95=percentile(lags, 0.95),
        p99=percentile(lags, 0.99),
        cpu=100.0 * cpu,
        us_per_message=1e6 * (cpu1 - cpu0) / changes if changes else float("nan"),
        kb_per_stream=(rss_open - rss_before) / n,
        threads=threads,
        reads_per_s=(reads1 - reads0) / (t1 - t0) if kind != "reference" else 0.0,
        bytes_per_message=statistics.mean(sizes) if sizes else 0.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N, short windows")
    parser.add_argument("--kinds", default="asgi,reference,wsgi")
    parser.add_argument("--n", help="comma-separated N for every kind")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    asgi_n = (
        [int(x) for x in args.n.split(",")] if args.n else ([100, 300] if args.quick else ASGI_N)
    )
    wsgi_n = [int(x) for x in args.n.split(",")] if args.n else ([50] if args.quick else WSGI_N)
    rows: list[Row] = []
    started_at = time.monotonic()
    sizes: dict[int, float] = {}
    for n in asgi_n:
        package = None
        if "asgi" in kinds:
            package = run("asgi", n, args.quick, 0)
            sizes[n] = package.bytes_per_message
            rows.append(package)
        if "reference" in kinds:
            reference = run("reference", n, args.quick, sizes.get(n) or 1500)
            rows.append(reference)
            if package is not None and reference.us_per_message:
                package.ratio = package.us_per_message / reference.us_per_message
    if "wsgi" in kinds:
        rows.extend(run("wsgi", n, args.quick, 0) for n in wsgi_n)
    print(
        f"\n{VIEWERS_PER_SESSION} viewers per session, {RATE:.0f} changes/s per session; "
        f"{time.monotonic() - started_at:.0f} s in all\n"
    )
    print(
        "| server | N | connected | delivered | lag p50 / p95 / p99 ms | server CPU | "
        "CPU per message | vs reference | KB per stream | threads | cache reads/s | bytes/msg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = {"asgi": "uvicorn", "reference": "bare ASGI", "wsgi": "gunicorn gthread"}
    for r in rows:
        ratio = f"{r.ratio:.1f}x" if r.ratio is not None else ""
        print(
            f"| {names[r.kind]} | {r.n} | {r.connected} | {r.delivered:.1f} % | "
            f"{r.p50:.0f} / {r.p95:.0f} / {r.p99:.0f} | {r.cpu:.0f} % | "
            f"{r.us_per_message:.0f} us | {ratio} | {r.kb_per_stream:.0f} | {r.threads} | "
            f"{r.reads_per_s:.0f} | {r.bytes_per_message:.0f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in rows], indent=1))


if __name__ == "__main__":
    main()
