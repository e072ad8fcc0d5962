"""Real servers for tests: gunicorn (WSGI, gthread) and uvicorn (ASGI) as subprocesses.

``run_server("asgi")`` starts uvicorn on the test settings' ASGI app, waits until it
answers HTTP, yields its base URL (``http://127.0.0.1:PORT``) and stops it on exit.
Both kinds serve static files (Django's staticfiles handlers, as ``runserver`` does),
so browser tests can load the vendored JS from the same origin.

The server is a separate process: progress written by the test process reaches it
only through a shared cache. Pass ``env={"PROGRESS_TEST_CACHE": "redis"}`` (or
``"file"``) and use the same alias in the test (``shared_backend`` fixture).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: Seconds to wait for a server to answer its first request (2 shared, noisy cores).
START_TIMEOUT = 60.0
#: Threads of the gunicorn gthread worker: each open stream holds one.
WSGI_THREADS = 32
KINDS = ("wsgi", "asgi")
#: Base URL -> PID of the server process serving it (uvicorn's only process,
#: gunicorn's arbiter), while it runs.
PIDS: dict[str, int] = {}


class ServerError(RuntimeError):
    """The server exited or never answered; the message carries its stderr."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def default_app(kind: str, settings_module: str) -> str:
    """``<settings package>.wsgi:application`` or ``...asgi:application``."""
    package = settings_module.rpartition(".")[0] or settings_module
    return f"{package}.{kind}:application"


def _import_app(spec: str) -> Any:
    from django.utils.module_loading import import_string

    module, _, attr = spec.partition(":")
    return import_string(f"{module}.{attr or 'application'}")


def wsgi_app() -> Any:
    """gunicorn factory (``tests.support.servers:wsgi_app()``): the app named by
    ``PROGRESS_SERVER_APP``, serving static files too."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler

    from progress_ui.streaming.shutdown import end_streams_on_signals

    app = _import_app(os.environ["PROGRESS_SERVER_APP"])
    # What the deployment docs ask of wsgi.py: streams end at SIGTERM (gunicorn
    # loads the app in the worker's main thread, after its own handlers).
    end_streams_on_signals()
    return app if isinstance(app, StaticFilesHandler) else StaticFilesHandler(app)


def asgi_app() -> Any:
    """uvicorn factory (``--factory tests.support.servers:asgi_app``), as :func:`wsgi_app`."""
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    app = _import_app(os.environ["PROGRESS_SERVER_APP"])
    return app if isinstance(app, ASGIStaticFilesHandler) else ASGIStaticFilesHandler(app)


def _command(kind: str, port: int, graceful_timeout: float) -> list[str]:
    if kind == "wsgi":
        return [
            sys.executable, "-m", "gunicorn",
            "--bind", f"127.0.0.1:{port}",
            "--worker-class", "gthread",
            "--workers", "1",
            "--threads", str(WSGI_THREADS),
            "--graceful-timeout", str(graceful_timeout),
            "--timeout", "120",
            "--log-level", "warning",
            "tests.support.servers:wsgi_app()",
        ]  # fmt: skip
    if kind == "asgi":
        return [
            sys.executable, "-m", "uvicorn",
            "--factory", "tests.support.servers:asgi_app",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--lifespan", "off",
            "--no-access-log",
            "--log-level", "warning",
            "--timeout-graceful-shutdown", str(int(graceful_timeout)),
        ]  # fmt: skip
    raise ValueError(f"Unknown server kind {kind!r}; use one of: {', '.join(KINDS)}")


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/__server_ready__")
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()


def _stderr_tail(path: Path, limit: int = 8000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no stderr captured)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    # The server runs in its own process group (gunicorn forks workers).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def run_server(
    kind: str,
    *,
    settings_module: str = "tests.support.settings",
    env: dict[str, str] | None = None,
    app: str | None = None,
    timeout: float = START_TIMEOUT,
    graceful_timeout: float = 2,
) -> Iterator[str]:
    """Start a ``"wsgi"`` (gunicorn gthread) or ``"asgi"`` (uvicorn) server on a free
    127.0.0.1 port and yield its base URL. ``app`` is ``"module:attr"``
    (default ``<settings package>.wsgi:application`` / ``.asgi:application``);
    ``env`` is added to this process's environment for the server;
    ``graceful_timeout`` is the server's longest wait for open responses at
    SIGTERM (``--graceful-timeout``, ``--timeout-graceful-shutdown``)."""
    command = _command(kind, port := free_port(), graceful_timeout)
    child_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "PROGRESS_SERVER_APP": app or default_app(kind, settings_module),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    with tempfile.TemporaryDirectory(prefix="progress-server-") as tmp:
        stderr_path = Path(tmp) / "stderr.log"
        with stderr_path.open("wb") as stderr:
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + timeout
            while not _answers(port):
                if proc.poll() is not None:
                    raise ServerError(
                        f"{kind} server exited with {proc.returncode} before answering:\n"
                        f"{_stderr_tail(stderr_path)}"
                    )
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"{kind} server did not answer within {timeout:.0f}s:\n"
                        f"{_stderr_tail(stderr_path)}"
                    )
                time.sleep(0.1)
            url = f"http://127.0.0.1:{port}"
            PIDS[url] = proc.pid
            try:
                yield url
            except BaseException:
                # Whatever failed in the test, show what the server said.
                sys.stderr.write(f"--- {kind} server stderr ---\n{_stderr_tail(stderr_path)}\n")
                raise
        finally:
            PIDS.pop(f"http://127.0.0.1:{port}", None)
            _stop(proc)


if __name__ == "__main__":  # manual use: python -m tests.support.servers asgi [app]
    kind_arg = sys.argv[1] if len(sys.argv) > 1 else "asgi"
    with run_server(kind_arg, app=sys.argv[2] if len(sys.argv) > 2 else None) as url:
        print(f"{kind_arg} server at {url} (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
