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
    #: logged, never sent to browsers).
    GENERIC_ERROR_MESSAGE: str = "Something went wrong."
    #: Minimum seconds between cache writes from ``iterate()``.
    ITERATE_WRITE_INTERVAL: float = 0.2
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
    #: None: 8 under WSGI, where every open stream holds a server thread (keep it
    #: well below gunicorn's ``--threads``, half or less, so pages find a thread),
    #: and 10,000 under ASGI, where a stream holds no thread.
    MAX_STREAMS: int | None = None
    #: Under WSGI, seconds a stream stays open (at most ``MAX_STREAM_DURATION``):
    #: then it tells the component to poll instead (``event: progress-poll``,
    #: then ``done``), so a long job does not keep a server thread for an hour.
    WSGI_MAX_STREAM_DURATION: float = 60.0
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
    #: True: it raises ``progress_ui.store.CacheUnavailable``.
    STRICT_WRITES: bool = False
    #: Seconds between the liveness writes of a process that runs tasks (one
    #: write per process, whatever the number of its tasks).
    WORKER_BEAT_INTERVAL: float = 5.0
    #: Lifetime of a process's liveness key. A RUNNING task whose process has
    #: not renewed it is marked ERROR with ``WORKER_LOST_MESSAGE`` (readers
    #: confirm the loss over 1.5 beat intervals first: about 25 s in all).
    WORKER_STALE_TIMEOUT: float = 10.0
    WORKER_LOST_MESSAGE: str = "The worker stopped responding."
    #: The message of a task stopped by ``ProgressSession.cancel()``.
    CANCELLED_MESSAGE: str = "Cancelled."
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


class _LazySettings:
    """Attribute access to the current ``ProgressSettings``, built on first use."""

    _value: ProgressSettings | None = None

    def _get(self) -> ProgressSettings:
        if self._value is None:
            self._value = _build()
        return self._value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    def reload(self) -> None:
        self._value = None


settings: Any = _LazySettings()


def current() -> ProgressSettings:
    """The settings object itself (typed), for code that wants it whole."""
    return settings._get()  # type: ignore[no-any-return]


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "PROGRESS_UI":
        settings.reload()
