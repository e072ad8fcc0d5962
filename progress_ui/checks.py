"""System checks for configurations that would otherwise fail later: at the
first request, in production, or silently.

Ids: E001 cache alias unknown, E002 DummyCache, E003 runner does not load,
E004 PROGRESS_UI invalid, E005 URLs not included, E006 cache client library
missing, E007 "celery" runner without a Celery app, E008 "rq" runner without a
queue connection; W001 per-process cache, W002 DatabaseCache on SQLite without
IMMEDIATE, W003 jobs in web threads, W004 no SessionMiddleware, W005
django_cotton missing, W006 HtmxMiddleware missing, W007 the runner's queue runs
jobs inside the request, W008 a group stream larger than a stream cap.
"""

from __future__ import annotations

from dataclasses import fields
from importlib import import_module
from typing import Any

from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import router
from django.urls import NoReverseMatch, reverse

from progress_ui.conf import ProgressSettings, current
from progress_ui.contrib.threads import get_runner

#: Client library each cache backend needs, and where it comes from.
CLIENT_LIBRARIES = {
    "django.core.cache.backends.redis.RedisCache": (
        "redis",
        'pip install "django-progress-ui[redis]" (redis-py)',
    ),
    "django.core.cache.backends.memcached.PyMemcacheCache": (
        "pymemcache",
        "pip install pymemcache",
    ),
    "django.core.cache.backends.memcached.PyLibMCCache": ("pylibmc", "pip install pylibmc"),
}


def _importable(module: str) -> bool:
    try:
        import_module(module)
    except ImportError:
        return False
    return True


def _settings_valid() -> bool:
    # An invalid PROGRESS_UI is reported once, by check_settings; the other
    # checks step aside instead of raising.
    try:
        current()
    except ImproperlyConfigured:
        return False
    return True


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """PROGRESS_UI is a dict of known keys with values of the right type."""
    try:
        conf = current()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="Fix settings.PROGRESS_UI (see the settings reference in the docs).",
                id="progress_ui.E004",
            )
        ]
    defaults = ProgressSettings()
    errors: list[CheckMessage] = []
    for field in fields(ProgressSettings):
        value, default = getattr(conf, field.name), getattr(defaults, field.name)
        expected: tuple[type, ...] = (
            (int, float) if isinstance(default, float) else (type(default),)
        )
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, expected):
            errors.append(
                Error(
                    f"PROGRESS_UI[{field.name!r}] is {value!r}; it must be a "
                    f"{type(default).__name__} (default {default!r}).",
                    id="progress_ui.E004",
                )
            )
    return errors or _check_values(conf)


def _check_values(conf: ProgressSettings) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if conf.INDEX_SIZE < 0:
        errors.append(
            Error(
                f"PROGRESS_UI['INDEX_SIZE'] is {conf.INDEX_SIZE}; it must be 0 (no session "
                "index) or more.",
                id="progress_ui.E004",
            )
        )
    app_label, _, codename = conf.STAFF_PERMISSION.partition(".")
    if not app_label or not codename:
        errors.append(
            Error(
                f"PROGRESS_UI['STAFF_PERMISSION'] is {conf.STAFF_PERMISSION!r}; it must name a "
                "permission as 'app_label.codename', as User.has_perm() takes it.",
                hint="The default is 'progress_ui.manage_progress_sessions'.",
                id="progress_ui.E004",
            )
        )
    return errors


#: Backends whose data lives in one process: other processes cannot see progress.
PER_PROCESS_BACKENDS = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register(Tags.caches, Tags.compatibility)
def check_cache(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not _settings_valid():
        return []
    configured = getattr(django_settings, "CACHES", {})
    alias = current().CACHE_ALIAS
    if alias not in configured:
        return [
            Error(
                f"PROGRESS_UI['CACHE_ALIAS'] is {alias!r}, which is not in CACHES.",
                hint=f"Use one of: {', '.join(configured) or '(none configured)'}.",
                id="progress_ui.E001",
            )
        ]
    backend = configured[alias].get("BACKEND", "")
    if backend == "django.core.cache.backends.dummy.DummyCache":
        return [
            Error(
                f"The cache {alias!r} used by progress_ui is DummyCache: it stores nothing, "
                "so no progress can be read.",
                hint="Point PROGRESS_UI['CACHE_ALIAS'] at Redis, database or file-based cache.",
                id="progress_ui.E002",
            )
        ]
    if backend in CLIENT_LIBRARIES and not _importable(CLIENT_LIBRARIES[backend][0]):
        library, install = CLIENT_LIBRARIES[backend]
        return [
            Error(
                f"The cache {alias!r} used by progress_ui ({backend}) needs the "
                f"{library!r} package, which is not installed: every progress read "
                "and write would fail.",
                hint=install,
                id="progress_ui.E006",
            )
        ]
    if backend == "django.core.cache.backends.db.DatabaseCache":
        return _check_database_cache(alias)
    if backend in PER_PROCESS_BACKENDS:
        # In DEBUG too: runserver is one process, but `uvicorn --workers 2`,
        # gunicorn's workers and task workers are not, and the bars then freeze.
        return [
            Warning(
                f"The cache {alias!r} used by progress_ui is per-process ({backend}): "
                "progress written by one web or worker process is invisible to the others "
                "(fine only while one process does everything, as runserver does).",
                hint="Point PROGRESS_UI['CACHE_ALIAS'] at a RedisCache, DatabaseCache "
                "or FileBasedCache.",
                id="progress_ui.W001",
            )
        ]
    return []


def _check_database_cache(alias: str) -> list[CheckMessage]:
    cache_model = caches[alias].cache_model_class  # type: ignore[attr-defined]
    db_alias = router.db_for_write(cache_model)
    db: dict[str, Any] = django_settings.DATABASES.get(db_alias, {})
    sqlite = db.get("ENGINE") == "django.db.backends.sqlite3"
    if sqlite and db.get("OPTIONS", {}).get("transaction_mode") != "IMMEDIATE":
        return [
            Warning(
                f"progress_ui uses DatabaseCache {alias!r} on SQLite without "
                "transaction_mode='IMMEDIATE': concurrent progress writes can fail with "
                "'database is locked', and DatabaseCache drops such writes silently.",
                hint=f"Set DATABASES[{db_alias!r}]['OPTIONS']['transaction_mode'] = 'IMMEDIATE'.",
                id="progress_ui.W002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_runner(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The runner of the view mixins loads; threads outside DEBUG get a warning."""
    if not _settings_valid():
        return []
    runner = current().RUNNER
    try:
        get_runner(runner)
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="progress_ui.E003")]
    if runner in QUEUE_CHECKS:
        return QUEUE_CHECKS[runner]()
    if runner == "threads" and not django_settings.DEBUG:
        return [
            Warning(
                "progress_ui's view mixins run jobs in threads of the web process "
                "(PROGRESS_UI['RUNNER'] = 'threads'): a deploy, a restart or a worker "
                "timeout kills the job, and its bar turns to an error.",
                hint="Set PROGRESS_UI['RUNNER'] to 'django_tasks' or 'celery' and run their "
                "workers; silence progress_ui.W003 if threads are what you want.",
                id="progress_ui.W003",
            )
        ]
    return []


def _in_tests() -> bool:
    """Whether Django's test environment is set up (``manage.py test``, pytest-django):
    an eager queue is what tests want there."""
    from django.core import mail

    return hasattr(mail, "outbox")


def _runs_in_request(runner: str, how: str, fix: str) -> list[CheckMessage]:
    if _in_tests():
        return []
    return [
        Warning(
            f"PROGRESS_UI['RUNNER'] is {runner!r}, whose queue runs jobs inside the request "
            f"({how}): the start button waits for the whole job, and the bar first shows "
            "it finished.",
            hint=fix,
            id="progress_ui.W007",
        )
    ]


def _check_django_tasks() -> list[CheckMessage]:
    # Django's own framework, or the backport on Django 5.2 (the runner loaded, so
    # one of them is there; with both installed the types differ).
    try:
        from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
    except ImportError:
        from django_tasks import (  # type: ignore[no-redef,assignment,import-not-found,unused-ignore]
            DEFAULT_TASK_BACKEND_ALIAS,
            task_backends,
        )

    backend = task_backends[DEFAULT_TASK_BACKEND_ALIAS]
    if type(backend).__name__ != "ImmediateBackend":
        return []
    return _runs_in_request(
        "django_tasks",
        "settings.TASKS uses Django's ImmediateBackend, the default without TASKS",
        'Set TASKS = {"default": {"BACKEND": ...}} to a backend with workers '
        "(django_tasks_db.DatabaseBackend, ...) and run its worker.",
    )


def _check_celery() -> list[CheckMessage]:
    from celery import current_app

    app = current_app  # the current app (a proxy), as the runner's shared task uses
    if app.main == "default":  # Celery's fallback app: no project app was created
        return [
            Error(
                "PROGRESS_UI['RUNNER'] is 'celery', but no Celery app is configured: jobs "
                "would go to Celery's fallback app and its default broker.",
                hint="Create mysite/celery.py with app = Celery('mysite'); "
                "app.config_from_object('django.conf:settings', namespace='CELERY'), and "
                "import it in mysite/__init__.py: from .celery import app as celery_app.",
                id="progress_ui.E007",
            )
        ]
    if app.conf.task_always_eager:
        return _runs_in_request(
            "celery",
            "task_always_eager is set",
            "Set CELERY_TASK_ALWAYS_EAGER = False (task_always_eager) and run a worker.",
        )
    return []


def _check_rq() -> list[CheckMessage]:
    from progress_ui.contrib.rq import RUNNER_QUEUE

    queues = getattr(django_settings, "RQ_QUEUES", None) or {}
    if not _importable("django_rq") or RUNNER_QUEUE not in queues:
        return [
            Error(
                "PROGRESS_UI['RUNNER'] is 'rq', but no RQ queue connection is configured: "
                f"the runner sends jobs to django-rq's {RUNNER_QUEUE!r} queue.",
                hint='pip install django-rq, add "django_rq" to INSTALLED_APPS and set '
                f'RQ_QUEUES = {{"{RUNNER_QUEUE}": {{"URL": "redis://127.0.0.1:6379/0"}}}}.',
                id="progress_ui.E008",
            )
        ]
    if queues[RUNNER_QUEUE].get("ASYNC", True) is False:
        return _runs_in_request(
            "rq",
            f"RQ_QUEUES[{RUNNER_QUEUE!r}]['ASYNC'] is False",
            f"Remove 'ASYNC': False from RQ_QUEUES[{RUNNER_QUEUE!r}] and run rqworker.",
        )
    return []


#: Runner name -> the check of its queue's configuration (its runner loads).
QUEUE_CHECKS = {"django_tasks": _check_django_tasks, "celery": _check_celery, "rq": _check_rq}


@register(Tags.security)
def check_ownership(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Anonymous visitors own their sessions through Django's session framework."""
    middleware = getattr(django_settings, "MIDDLEWARE", None) or []
    if "django.contrib.sessions.middleware.SessionMiddleware" not in middleware:
        return [
            Warning(
                "SessionMiddleware is not installed: progress sessions that anonymous "
                "visitors start (ProgressSession.create(request=...), StartProgressMixin) "
                "get no owner, so anyone who learns an id can read and cancel them.",
                hint="Add django.contrib.sessions.middleware.SessionMiddleware to MIDDLEWARE, "
                "or require login for the views that start work.",
                id="progress_ui.W004",
            )
        ]
    return []


@register(Tags.compatibility, Tags.urls)
def check_installation(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """What a newcomer forgets: cotton, django-htmx's middleware, the URLs."""
    messages: list[CheckMessage] = []
    if "django_cotton" not in django_settings.INSTALLED_APPS:
        messages.append(
            Warning(
                "django_cotton is not in INSTALLED_APPS: the <c-progress.*> components "
                "would reach the browser as raw tags.",
                hint='Add "django_cotton" to INSTALLED_APPS (the {% progress_* %} template '
                "tags work without it).",
                id="progress_ui.W005",
            )
        )
    if "django_htmx.middleware.HtmxMiddleware" not in (django_settings.MIDDLEWARE or []):
        messages.append(
            Warning(
                "django_htmx's HtmxMiddleware is not in MIDDLEWARE: a POST from htmx to "
                "StartProgressMixin gets the whole page back, swapped into the target.",
                hint='Add "django_htmx.middleware.HtmxMiddleware" to MIDDLEWARE.',
                id="progress_ui.W006",
            )
        )
    try:
        reverse("progress_ui:sse", kwargs={"session_id": "A" * 32})
    except NoReverseMatch:
        messages.append(
            Error(
                "The progress_ui URLs are not included: components cannot name their "
                "stream, and pages fail at the first POST.",
                hint='Add path("progress/", include("progress_ui.urls")) to your URLconf '
                "(from django.urls import include, path).",
                id="progress_ui.E005",
            )
        )
    except Exception:  # noqa: S110  (a broken URLconf is reported by Django's own checks)
        pass
    return messages


@register(Tags.compatibility)
def check_stream_caps(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A group stream fits under the stream caps. Under ASGI a group stream takes
    one place per session it follows (``progress_ui.streaming.limits``), and
    ``{% progress_group %}`` puts up to ``MAX_GROUP_SESSIONS`` running sessions in
    one: with a cap below that, such a stream is refused every time (429 or 503),
    and its components fall back to polling each on its own."""
    if not _settings_valid():
        return []
    conf = current()
    group = conf.MAX_GROUP_SESSIONS
    caps = [("MAX_STREAMS_PER_CLIENT", conf.MAX_STREAMS_PER_CLIENT, 429)]
    if conf.MAX_STREAMS is not None:  # None: the server's default, far above a group
        caps.append(("MAX_STREAMS", conf.MAX_STREAMS, 503))
    messages: list[CheckMessage] = []
    for name, cap, status in caps:
        # (0 places per client: no limit.) A mistyped value is check_settings' E004.
        if not isinstance(cap, int) or not isinstance(group, int) or isinstance(cap, bool):
            continue
        if name == "MAX_STREAMS_PER_CLIENT" and cap == 0:
            continue
        if cap < group:
            messages.append(
                Warning(
                    f"PROGRESS_UI[{name!r}] ({cap}) is below PROGRESS_UI['MAX_GROUP_SESSIONS'] "
                    f"({group}): under ASGI a group stream takes one place per session, so "
                    f"a group of more than {cap} sessions is answered {status} every time "
                    "and its components poll instead.",
                    hint=f"Raise {name} to at least MAX_GROUP_SESSIONS, or lower "
                    "MAX_GROUP_SESSIONS to fit.",
                    id="progress_ui.W008",
                )
            )
    return messages
