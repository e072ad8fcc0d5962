"""An HTTP response read by a thread and handed over with a deadline.

Reading a socket blocks. With the read in the caller's thread, a server that
sends a byte every 2 s, or valid lines forever, holds the caller for as long as
it likes: a socket timeout bounds one receive, not the whole. So a daemon thread
opens the URL and reads the body; each receive is bounded by ``read_timeout``
(the socket's timeout: an idle limit per byte, whatever arrives), and the caller
waits on a small queue for no longer than its deadline allows. At the deadline
the caller shuts the connection down (through a duplicate of the response's
``fileno()``), which ends the thread's read at once. Memory is bounded by the
queue: at most :data:`QUEUED` chunks of :data:`CHUNK` bytes wait.

Only ``urllib``'s and ``http.client``'s public API is used (``read1``,
``fileno``, ``headers``), so proxies from the environment keep working.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import queue
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

from progress_ui.cli.deadlines import remaining
from progress_ui.cli.exits import EXIT_GONE, EXIT_TRANSPORT, WatchFailed
from progress_ui.cli.sanitize import safe_text

#: Bytes asked for per read.
CHUNK = 64 * 1024
#: Chunks read ahead of the caller, at most.
QUEUED = 4
#: Seconds the caller waits for the reading thread to notice it was stopped.
JOIN_TIMEOUT = 0.5


@dataclass(frozen=True)
class Opened:
    """The response's headers arrived: its media type."""

    content_type: str


#: What the thread hands over: the headers, a chunk (b"" at the end), or what it raised.
Received = Opened | bytes | BaseException


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would carry the credentials (Cookie, Authorization) to wherever
    # it points: answer it as an error instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def open_url(url: str, headers: dict[str, str], timeout: float) -> http.client.HTTPResponse:
    """The response to a GET of ``url`` (http or https, checked by the caller),
    or :class:`WatchFailed` with a terminal-safe reason."""
    opener = urllib.request.build_opener(_NoRedirects)
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked by the caller)
        url, headers={"Accept": "application/x-ndjson", **headers}
    )
    try:
        return cast(http.client.HTTPResponse, opener.open(request, timeout=timeout))
    except urllib.error.HTTPError as exc:
        location = exc.headers.get("Location") if exc.headers else None
        exc.close()
        if exc.code in (401, 403, 404, 410):
            raise WatchFailed(
                EXIT_GONE,
                f"Not found: HTTP {exc.code} (unknown or expired session, or not visible "
                "with these credentials).",
            ) from None
        if 300 <= exc.code < 400:
            raise WatchFailed(
                EXIT_TRANSPORT,
                f"Failed: HTTP {exc.code}, redirected to '{safe_text(location, 200)}' "
                "(use that URL, or pass the credentials it asks for).",
            ) from None
        raise WatchFailed(EXIT_TRANSPORT, f"Failed: HTTP {exc.code} from the server.") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WatchFailed(
            EXIT_TRANSPORT, f"Failed: could not connect ({safe_text(reason, 200)})."
        ) from None


class HTTPBody:
    """``url``'s response, opened and read in a thread; use as a context manager
    and call :meth:`receive` until it returns b"" (the end) or None (the deadline)."""

    def __init__(self, url: str, headers: dict[str, str], read_timeout: float) -> None:
        self._items: queue.Queue[Received] = queue.Queue(maxsize=QUEUED)
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(
            target=self._run,
            args=(url, headers, read_timeout),
            name="progress-watch-http",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> HTTPBody:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def receive(self, deadline: float | None) -> Received | None:
        """The next thing the thread handed over, or None once ``deadline`` passed."""
        left = remaining(deadline)
        if left is not None and left <= 0:
            return None
        try:
            return self._items.get(timeout=left)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Stop the thread: end its connection, make room for its last item."""
        with self._lock:
            self._stopped.set()
            sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        while True:
            try:
                self._items.get_nowait()
            except queue.Empty:
                break
        self._thread.join(JOIN_TIMEOUT)

    # -- the reading thread ----------------------------------------------------------

    def _put(self, item: Received) -> None:
        if not self._stopped.is_set():
            self._items.put(item)

    def _run(self, url: str, headers: dict[str, str], read_timeout: float) -> None:
        try:
            response = open_url(url, headers, read_timeout)
        except BaseException as exc:  # the caller decides what it means
            self._put(exc)
            return
        try:
            if not self._attach(response):
                return
            self._put(Opened(response.headers.get_content_type()))
            while not self._stopped.is_set():
                data = response.read1(CHUNK)
                self._put(data)
                if not data:
                    return
        except BaseException as exc:
            self._put(exc)
        finally:
            response.close()

    def _attach(self, response: http.client.HTTPResponse) -> bool:
        """Keep a duplicate of the connection's socket for :meth:`close` to shut
        down; False when the caller has stopped already."""
        sock: socket.socket | None
        try:
            sock = socket.socket(fileno=os.dup(response.fileno()))
        except (OSError, ValueError):
            sock = None  # not a socket: the read's own timeout ends it
        with self._lock:
            if not self._stopped.is_set():
                self._socket = sock
                return True
        if sock is not None:
            sock.close()
        return False
