"""Task worker processes for tests: start one, wait until it is ready, stop it by PID.

Generic (any command): :func:`start_process`, :func:`stop_process`,
:func:`kill_process` (SIGKILL, for worker-loss tests) and :func:`running_process`
(start, yield, always stop). Django Tasks: :func:`db_worker_command` and
:func:`running_db_worker` for django-tasks-db's ``db_worker``.

A worker is a separate process: it sees the test's progress only through a
shared cache (Redis or the file cache) and its tasks only through a database
file or server that both processes use.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Seconds for a worker to get ready (Django set-up on 2 shared, noisy cores).
START_TIMEOUT = 60.0
#: Seconds a worker gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0


class WorkerError(RuntimeError):
    """The process exited or never got ready; the message carries its output."""


@dataclass
class WorkerProcess:
    """A started process, its own process group leader, with its output in a file."""

    argv: list[str]
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self, limit: int = 8000) -> str:
        """The last ``limit`` characters of its stdout and stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no output captured)"

    def exit_status(self) -> int | None:
        """Its exit code (``-N`` for signal N) once it has exited, else None.

        The process is left unreaped (a zombie) until :func:`stop_process`: while
        it is, its PID and process group id cannot be reused, so signalling its
        group can only reach processes started here."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return None
        return -info.si_status if info.si_code in _KILLED else info.si_status

    def is_running(self) -> bool:
        return self.exit_status() is None

    def wait_exit(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for it to exit (without reaping it)."""
        deadline = time.monotonic() + timeout
        while (status := self.exit_status()) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return status


_KILLED = (os.CLD_KILLED, os.CLD_DUMPED)


#: A readiness test: a line the process prints, or a function of the process.
Ready = str | Callable[[WorkerProcess], bool]


def start_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    ready: Ready | None = None,
    timeout: float = START_TIMEOUT,
    log_dir: str | Path | None = None,
) -> WorkerProcess:
    """Start ``argv`` in its own session (so it and its children can be signalled
    as a group), in the repository root with it on ``PYTHONPATH``, unbuffered,
    with ``env`` added to this process's environment. Waits until ``ready``
    (a string found in its output, or a function returning True) holds;
    stops it and raises :class:`WorkerError` if it exits or ``timeout`` passes."""
    child_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    log_path = Path(tempfile.mkdtemp(prefix="progress-worker-", dir=log_dir)) / "output.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(list(argv), proc, log_path)
    try:
        wait_ready(worker, ready, timeout)
    except BaseException:
        stop_process(worker)
        raise
    return worker


def wait_ready(worker: WorkerProcess, ready: Ready | None, timeout: float) -> None:
    """Wait until ``ready`` holds for a started process (see :func:`start_process`)."""
    if ready is None:
        return
    deadline = time.monotonic() + timeout
    while not _is_ready(worker, ready):
        if (status := worker.exit_status()) is not None:
            raise WorkerError(
                f"{worker.argv[:4]} exited with {status} before it was ready:\n{worker.output()}"
            )
        if time.monotonic() > deadline:
            raise WorkerError(
                f"{worker.argv[:4]} was not ready within {timeout:.0f}s:\n{worker.output()}"
            )
        time.sleep(0.05)


def _is_ready(worker: WorkerProcess, ready: Ready) -> bool:
    if isinstance(ready, str):
        return ready in worker.output(limit=1_000_000)
    return ready(worker)


#: ``sitecustomize`` that shifts a child's wall clock (see its docstring).
SKEWED_CLOCK = ROOT / "tests" / "support" / "skewed_clock"


def skewed_clock_env(skew: float) -> dict[str, str]:
    """The environment of a child process whose wall clock runs ``skew`` seconds
    ahead (behind, when negative) of this machine's."""
    return {
        "PROGRESS_TEST_CLOCK_SKEW": str(skew),
        # Python imports the sitecustomize of the first directory that has one.
        "PYTHONPATH": os.pathsep.join([str(SKEWED_CLOCK), str(ROOT)]),
    }


def _signal(worker: WorkerProcess, signum: int, group: bool) -> None:
    if worker.proc.returncode is not None:
        return  # reaped: its PID may belong to someone else by now
    with contextlib.suppress(ProcessLookupError):
        if group:
            # The process leads its own group (start_new_session): its children
            # (a prefork pool, a reloader's child) get the signal too.
            os.killpg(worker.pid, signum)
        else:
            os.kill(worker.pid, signum)


def stop_process(worker: WorkerProcess, timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM the process group, SIGKILL it after ``timeout`` seconds, reap it;
    returns the exit code. Safe to call again or on a process that has exited."""
    if worker.proc.returncode is not None:
        return worker.proc.returncode
    if worker.exit_status() is None:
        _signal(worker, signal.SIGTERM, group=True)
        if worker.wait_exit(timeout) is None:
            _signal(worker, signal.SIGKILL, group=True)
    # The leader has exited but is not reaped yet, so its group id is still its
    # own: end any children that outlived it, then reap it.
    _signal(worker, signal.SIGKILL, group=True)
    return worker.proc.wait(timeout=timeout)


def kill_process(
    worker: WorkerProcess, *, group: bool = True, timeout: float = STOP_TIMEOUT
) -> int:
    """SIGKILL the process (and by default its group), as a crash or an OOM kill
    would; returns its exit status (``-9``). It stays unreaped until
    :func:`stop_process`, which also ends whatever of its group is left."""
    _signal(worker, signal.SIGKILL, group=group)
    status = worker.wait_exit(timeout)
    if status is None:
        raise WorkerError(f"pid {worker.pid} did not die within {timeout:.0f}s of SIGKILL")
    return status


@contextlib.contextmanager
def running_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    ready: Ready | None = None,
    timeout: float = START_TIMEOUT,
) -> Iterator[WorkerProcess]:
    """:func:`start_process`, yield, and always :func:`stop_process`. When the body
    fails, the process's output is written to stderr (pytest shows it)."""
    worker = start_process(argv, env=env, ready=ready, timeout=timeout)
    try:
        yield worker
    except BaseException:
        sys.stderr.write(f"--- output of {worker.argv[:4]} (pid {worker.pid}) ---\n")
        sys.stderr.write(worker.output() + "\n")
        raise
    finally:
        stop_process(worker)


# -- django-tasks-db -------------------------------------------------------------

#: What db_worker logs (at verbosity 1) once set up, before its first poll.
DB_WORKER_READY = "Starting worker"


def db_worker_command(
    *,
    backend: str = "default",
    queues: str = "*",
    interval: float = 0.05,
    worker_id: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``python -m django db_worker`` with test-friendly options: all queues, a
    short poll interval, no startup delay, no autoreloader (its child process
    would outlive a SIGTERM to the parent)."""
    argv = [
        sys.executable, "-m", "django", "db_worker",
        "--backend", backend,
        "--queue-name", queues,
        "--interval", str(interval),
        "--no-startup-delay",
        "--no-reload",
        "--verbosity", "1",
    ]  # fmt: skip
    if worker_id is not None:
        argv += ["--worker-id", worker_id]
    return [*argv, *extra]


@contextlib.contextmanager
def running_db_worker(
    *,
    settings_module: str = "tests.support.settings_tasks",
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
    backend: str = "default",
    queues: str = "*",
    interval: float = 0.05,
    worker_id: str | None = None,
    extra: Sequence[str] = (),
) -> Iterator[WorkerProcess]:
    """A django-tasks-db ``db_worker`` process with ``settings_module``, ready
    when it logs its start; stopped by PID on exit, whatever happened. The other
    options are :func:`db_worker_command`'s."""
    argv = db_worker_command(
        backend=backend, queues=queues, interval=interval, worker_id=worker_id, extra=extra
    )
    with running_process(
        argv,
        env={"DJANGO_SETTINGS_MODULE": settings_module, **(env or {})},
        ready=DB_WORKER_READY,
        timeout=timeout,
    ) as worker:
        yield worker
