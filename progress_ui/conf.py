"""Settings for progress_ui, read from the ``PROGRESS_UI`` dict in Django settings.

Every default lives here, and ``settings`` is rebuilt whenever Django's
``setting_changed`` signal reports ``PROGRESS_UI`` (so ``override_settings`` works).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver


def gettext_noop(message: str) -> str:
    """Marks ``message`` for ``makemessages``; it is translated where it is shown.
    Django's own ``gettext_noop`` reads the settings, and this module (and the
    package's) must import before they are configured (a worker, the CLI)."""
    return message


@dataclass(frozen=True)
class ProgressSettings:
    #: Alias in ``CACHES`` that holds progress state. Must be shared by every
    #: process that drives or reads a session (Redis, database, file-based).
    CACHE_ALIAS: str = "default"
    #: Prefix of every cache key written by progress_ui.
    KEY_PREFIX: str = "progress_ui"
    #: Seconds a session lives without a write (renewed by every write).
    TTL: int = 300
    #: Seconds a finished session stays readable, so a reload or a late viewer
    #: sees the final state.
    FINISHED_TTL: int = 600
    #: Simulated percent: cap * (1 - 0.5 ** (elapsed / half_life)).
    SIMULATION_HALF_LIFE: float = 5.0
    #: The simulated percent never passes this while a task runs.
    SIMULATION_CAP: float = 95.0
    #: Real progress is shown at most this high until the task completes.
    RUNNING_CAP: float = 99.0
    #: Seconds over which a completed task animates from its percent to 100.
    COMPLETING_DURATION: float = 0.3
    #: Longest task message (characters); longer text is cut with an ellipsis.
    MAX_MESSAGE_LENGTH: int = 500
    #: Longest task display name (characters).
    MAX_NAME_LENGTH: int = 200
    #: Most tasks in one session.
    MAX_TASKS: int = 100
    #: Characters of text one session may hold: its task names together at most
    #: this, and each task's message at most this divided by the number of tasks
    #: (and ``MAX_MESSAGE_LENGTH``). Bounds what one message to a browser costs.
    MAX_SESSION_TEXT: int = 10_000
    #: Shown for an exception that is not a ``ProgressError`` (details are
    #: logged, never sent to browsers). The default is stored in English and
    #: shown in the viewer's language; a text set here is shown as it is.
    GENERIC_ERROR_MESSAGE: str = gettext_noop("Something went wrong.")
    #: Minimum seconds between cache writes from ``iterate()``.
    ITERATE_WRITE_INTERVAL: float = 0.2
    #: Minimum seconds between two progress writes of one task by ``update()``:
    #: a call that comes sooner is held (the newest value of each field wins) and
    #: stored once the interval has passed, by the next call or by a thread of the
    #: process, or at once by the task's ending, or before this process reads the
    #: session. So a job may report after every item of a fast loop (10,000 times
    #: a second) at little cost. 0: store every call.
    UPDATE_WRITE_INTERVAL: float = 0.05
    #: Seconds between stream polls of the cache.
    POLL_INTERVAL: float = 0.1
    #: With Django's Redis cache, wake viewers through Redis pub/sub as soon as a
    #: session changes, instead of at the next poll (polling stays the fallback,
    #: and sessions nobody changes cost no reads). Other caches always poll.
    PUSH: bool = True
    #: Seconds between heartbeat comments on an idle stream.
    HEARTBEAT_INTERVAL: float = 15.0
    #: Longest a single stream stays open (seconds); clients reconnect after.
    MAX_STREAM_DURATION: float = 3600.0
    #: Open streams (SSE and NDJSON) per process. One more is answered ``503``
    #: with ``Retry-After``, and ``progress_ui.js`` polls that component instead.
    #: Under ASGI a stream takes one place per session it follows (a group stream
    #: of 20 takes 20); under WSGI one, for its server thread.
    #: None: 8 under WSGI, where every open stream holds a server thread (keep it
    #: well below gunicorn's ``--threads``, half or less, so pages find a thread),
    #: and 500 under ASGI: one uvicorn process keeps up with about 1,000 viewers of
    #: busy sessions at one full core (see the costs page), and pages need the rest.
    MAX_STREAMS: int | None = None
    #: Stream places one client may hold in one process (0: no limit): a
    #: logged-in user, by owner token; anyone else, by IP address (IPv6: its /64).
    #: Places as for ``MAX_STREAMS``: under ASGI a group stream takes one per
    #: session. One more is answered ``429`` with ``Retry-After``, and
    #: ``progress_ui.js`` polls that component instead. Behind a proxy, have the
    #: server take the client's address from the proxy's header (uvicorn
    #: ``--proxy-headers --forwarded-allow-ips``), else every anonymous visitor
    #: counts as the proxy.
    MAX_STREAMS_PER_CLIENT: int = 40
    #: Under WSGI, seconds a stream stays open (at most ``MAX_STREAM_DURATION``):
    #: then it tells the component to poll instead (``event: progress-poll``,
    #: then ``done``), so a long job does not keep a server thread for an hour.
    WSGI_MAX_STREAM_DURATION: float = 60.0
    #: Seconds a stream keeps looking for a session that disappeared (expired, or
    #: lost by a cache that restarted empty) before it shows "no longer
    #: available": a queued job that starts later stores its session again, and
    #: its viewers see it run. 0: say so at once.
    MISSING_GRACE: float = 30.0
    #: ``retry:`` hint (milliseconds) sent on the first SSE message.
    SSE_RETRY_MS: int = 2000
    #: Most sessions one group stream (``progress_ui:group_sse``) follows: a page
    #: shows several sessions over one connection. More ids are answered 400; a
    #: group rendered with more live sessions gives the rest their own connection.
    MAX_GROUP_SESSIONS: int = 20
    #: htmx major version the template tags and components emit markup for.
    HTMX_VERSION: int = 2
    #: Dotted path of ``has_progress_permission(request, session) -> bool``.
    PERMISSION_FUNCTION: str = "progress_ui.access.has_progress_permission"
    #: False: a progress write that the cache refuses or cannot take is logged
    #: (a rate-limited warning) and dropped, so progress never fails the job.
    #: True: it raises ``progress_ui.engine.store.CacheUnavailable``.
    STRICT_WRITES: bool = False
    #: Seconds between the liveness writes of a process that runs tasks (one
    #: write per process, whatever the number of its tasks).
    WORKER_BEAT_INTERVAL: float = 5.0
    #: Lifetime of a process's liveness key. A RUNNING task whose process has
    #: not renewed it is marked ERROR with ``WORKER_LOST_MESSAGE`` (readers
    #: confirm the loss over 1.5 beat intervals first: about 25 s in all).
    WORKER_STALE_TIMEOUT: float = 10.0
    #: (Like every default message: stored in English, shown translated.)
    WORKER_LOST_MESSAGE: str = gettext_noop("The worker stopped responding.")
    #: The message of a task stopped by ``ProgressSession.cancel()``.
    CANCELLED_MESSAGE: str = gettext_noop("Cancelled.")
    #: Sessions the session index keeps, for the staff page and ``manage.py
    #: progress list`` (the newest; 0: no index, nothing is listed). Each session
    #: created costs one more read and one more write; each listing reads them all.
    INDEX_SIZE: int = 1000
    #: The permission (``"app_label.codename"``) that lets a user see the staff
    #: page and read and cancel every session. Superusers have every permission.
    STAFF_PERMISSION: str = "progress_ui.manage_progress_sessions"
    #: Where ``StartProgressMixin`` runs its job: "threads" (this process),
    #: "django_tasks" or "celery" (``progress_ui.contrib``).
    RUNNER: str = "threads"


def _build() -> ProgressSettings:
    user: Any = getattr(django_settings, "PROGRESS_UI", {}) or {}
    if not isinstance(user, dict):
        raise ImproperlyConfigured("settings.PROGRESS_UI must be a dict.")
    known = {f.name for f in fields(ProgressSettings)}
    unknown = sorted(set(user) - known)
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown PROGRESS_UI setting(s): {', '.join(unknown)}. "
            f"Valid settings: {', '.join(sorted(known))}."
        )
    return replace(ProgressSettings(), **user)


_current: ProgressSettings | None = None


def current() -> ProgressSettings:
    """The settings (``settings.PROGRESS_UI`` over the defaults), built on first
    use and again after ``setting_changed``; the one way the package reads them."""
    global _current
    if _current is None:
        _current = _build()
    return _current


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    global _current
    if setting == "PROGRESS_UI":
        _current = None
