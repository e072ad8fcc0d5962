"""Settings through conf.py, and the system checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from progress_ui import checks
from progress_ui.checks import check_cache, check_runner
from progress_ui.conf import current


def test_defaults_follow_the_spec() -> None:
    with override_settings(PROGRESS_UI={}):
        assert current().TTL == 300
        assert current().CACHE_ALIAS == "default"
        assert 90 <= current().SIMULATION_CAP <= 95
        assert pytest.approx(0.3) == current().COMPLETING_DURATION


def test_settings_are_reread_on_setting_changed() -> None:
    with override_settings(PROGRESS_UI={"TTL": 7}):
        assert current().TTL == 7
        assert current().TTL == 7
    with override_settings(PROGRESS_UI={"TTL": 9}):
        assert current().TTL == 9


def test_unknown_setting_names_the_valid_ones() -> None:
    with override_settings(PROGRESS_UI={"TTTL": 7}), pytest.raises(ImproperlyConfigured) as e:
        _ = current().TTL
    assert "TTTL" in str(e.value) and "TTL" in str(e.value)


def ids(messages: list) -> list[str]:  # type: ignore[type-arg]
    return [m.id for m in messages]


def test_check_warns_for_per_process_cache_in_debug_too() -> None:
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "locmem"}, DEBUG=False):
        assert ids(check_cache()) == ["progress_ui.W001"]
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "locmem"}, DEBUG=True):
        (message,) = check_cache()
        assert message.id == "progress_ui.W001" and "runserver" in message.msg


def test_check_accepts_shared_caches() -> None:
    for alias in ("redis", "file"):
        with override_settings(PROGRESS_UI={"CACHE_ALIAS": alias}):
            assert check_cache() == []


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_check_database_cache_on_sqlite_needs_immediate_transactions() -> None:
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "db"}):
        assert check_cache() == []  # tests/support/settings.py sets transaction_mode
    from django.conf import settings as django_settings

    db = {**django_settings.DATABASES["default"], "OPTIONS": {}}
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "db"}, DATABASES={"default": db}):
        assert ids(check_cache()) == ["progress_ui.W002"]


def test_check_errors_for_missing_alias_and_dummy_cache() -> None:
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "nope"}):
        (msg,) = check_cache()
        assert msg.id == "progress_ui.E001" and "locmem" in (msg.hint or "")
    caches = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    with override_settings(CACHES=caches, PROGRESS_UI={}):
        assert ids(check_cache()) == ["progress_ui.E002"]


def test_check_warns_when_jobs_run_in_web_threads_outside_debug() -> None:
    with override_settings(PROGRESS_UI={"RUNNER": "threads"}, DEBUG=False):
        assert ids(check_runner()) == ["progress_ui.W003"]
    with override_settings(PROGRESS_UI={"RUNNER": "threads"}, DEBUG=True):
        assert check_runner() == []
    with current_celery_app(), override_settings(PROGRESS_UI={"RUNNER": "celery"}, DEBUG=False):
        assert check_runner() == []


def test_check_explains_a_runner_that_does_not_load() -> None:
    with override_settings(PROGRESS_UI={"RUNNER": "myapp.nowhere.submit"}):
        [error] = check_runner()
    assert error.id == "progress_ui.E003"
    assert "myapp.nowhere.submit" in error.msg and "'django_tasks'" in error.msg


def test_check_warns_when_anonymous_visitors_cannot_own_sessions() -> None:
    from progress_ui.checks import check_ownership

    assert check_ownership() == []
    with override_settings(MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"]):
        assert ids(check_ownership()) == ["progress_ui.W004"]


def test_a_mistyped_setting_is_a_check_error_not_a_traceback() -> None:
    from progress_ui.checks import check_settings

    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "redis", "POLL_INTERVALL": 0.5}):
        (error,) = check_settings()
        assert error.id == "progress_ui.E004"
        assert "POLL_INTERVALL" in error.msg and "POLL_INTERVAL" in error.msg
        # The other checks step aside rather than raise.
        assert check_cache() == [] and check_runner() == []
    with override_settings(PROGRESS_UI={"TTL": "300", "STRICT_WRITES": 1}):
        assert sorted(e.msg.split("]")[0] for e in check_settings()) == [
            "PROGRESS_UI['STRICT_WRITES'",
            "PROGRESS_UI['TTL'",
        ]
    with override_settings(PROGRESS_UI={"POLL_INTERVAL": 1}):  # an int for a float is fine
        assert check_settings() == []


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("INDEX_SIZE", -1, "must be 0"),
        ("STAFF_PERMISSION", "manage_progress_sessions", "'app_label.codename'"),
        ("STAFF_PERMISSION", ".manage", "'app_label.codename'"),
    ],
)
def test_staff_settings_with_values_that_cannot_work_are_errors(
    setting: str, value: object, says: str
) -> None:
    with override_settings(PROGRESS_UI={setting: value}):
        (message,) = checks.check_settings()
    assert message.id == "progress_ui.E004" and says in message.msg


def test_a_missing_cache_client_library_is_named_with_its_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    # redis-py is installed here; a None in sys.modules makes importing it fail
    # as it would where it is missing.
    monkeypatch.setitem(sys.modules, "redis", None)
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "redis"}):
        (error,) = check_cache()
    assert error.id == "progress_ui.E006"
    assert "django-progress-ui[redis]" in (error.hint or "")


def test_installation_checks_name_what_is_missing() -> None:
    from django.conf import settings as django_settings

    from progress_ui.checks import check_installation

    assert check_installation() == []
    apps = [a for a in django_settings.INSTALLED_APPS if a != "django_cotton"]
    middleware = [m for m in django_settings.MIDDLEWARE if "Htmx" not in m]
    with override_settings(
        INSTALLED_APPS=apps,
        MIDDLEWARE=middleware,
        ROOT_URLCONF="tests.support.urls_without_progress",
    ):
        found = {m.id: m for m in check_installation()}
    assert sorted(found) == ["progress_ui.E005", "progress_ui.W005", "progress_ui.W006"]
    assert 'include("progress_ui.urls")' in (found["progress_ui.E005"].hint or "")


@contextmanager
def current_celery_app(main: str = "mysite", **conf: object) -> Iterator[None]:
    """A Celery app (``conf``) as the current one, for the duration: a project's,
    or with ``main="default"`` one like Celery's fallback app (no project app)."""
    from celery import Celery, current_app

    previous = current_app._get_current_object()
    app = Celery(main, set_as_current=False)
    app.conf.update(conf)
    app.set_current()
    try:
        yield
    finally:
        previous.set_current()


@pytest.fixture
def outside_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks as they run in a deployment (not under Django's test environment)."""
    monkeypatch.setattr(checks, "_in_tests", lambda: False)


def test_the_celery_runner_without_a_celery_app_is_an_error() -> None:
    pytest.importorskip("celery")
    # Other tests' Celery app may be current in this process: stand in the fallback.
    with override_settings(PROGRESS_UI={"RUNNER": "celery"}), current_celery_app(main="default"):
        [error] = check_runner()
    assert error.id == "progress_ui.E007"
    assert "from .celery import app as celery_app" in (error.hint or "")


def test_an_eager_celery_app_warns_outside_tests(outside_tests: None) -> None:
    pytest.importorskip("celery")
    with override_settings(PROGRESS_UI={"RUNNER": "celery"}):
        with current_celery_app(task_always_eager=True):
            assert ids(check_runner()) == ["progress_ui.W007"]
        with current_celery_app(task_always_eager=False):
            assert check_runner() == []


def test_the_rq_runner_needs_a_queue_connection() -> None:
    pytest.importorskip("django_rq")
    with override_settings(PROGRESS_UI={"RUNNER": "rq"}, RQ_QUEUES={}):
        [error] = check_runner()
    assert error.id == "progress_ui.E008"
    assert 'RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:6379/0"}}' in (error.hint or "")
    queues = {"default": {"URL": "redis://127.0.0.1:6379/0"}}
    with override_settings(PROGRESS_UI={"RUNNER": "rq"}, RQ_QUEUES=queues):
        assert check_runner() == []


def test_an_rq_queue_that_is_not_async_warns_outside_tests(outside_tests: None) -> None:
    pytest.importorskip("django_rq")
    queues = {"default": {"URL": "redis://127.0.0.1:6379/0", "ASYNC": False}}
    with override_settings(PROGRESS_UI={"RUNNER": "rq"}, RQ_QUEUES=queues):
        assert ids(check_runner()) == ["progress_ui.W007"]


def test_the_immediate_django_tasks_backend_warns_outside_tests_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("progress_ui.contrib.django_tasks", exc_type=ImportError)
    immediate = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    if not _has_django_tasks():
        immediate = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    with override_settings(PROGRESS_UI={"RUNNER": "django_tasks"}, TASKS=immediate):
        assert check_runner() == []  # under the test environment: what tests want
        monkeypatch.setattr(checks, "_in_tests", lambda: False)
        [warning] = check_runner()
    assert warning.id == "progress_ui.W007" and "ImmediateBackend" in warning.msg


def _has_django_tasks() -> bool:
    from importlib.util import find_spec

    return find_spec("django.tasks") is not None


def test_a_group_stream_that_can_never_be_served_warns() -> None:
    from progress_ui.checks import check_stream_caps

    # The defaults fit: 20 sessions in a group, 40 places per client.
    with override_settings(PROGRESS_UI={}):
        assert check_stream_caps() == []
    tight = {"MAX_STREAMS_PER_CLIENT": 10, "MAX_GROUP_SESSIONS": 20}
    with override_settings(PROGRESS_UI=tight):
        [warning] = check_stream_caps()
    assert warning.id == "progress_ui.W008"
    assert "MAX_STREAMS_PER_CLIENT" in warning.msg and "429" in warning.msg
    # No per-client limit, or groups that fit: nothing to say.
    for fits in ({**tight, "MAX_STREAMS_PER_CLIENT": 0}, {**tight, "MAX_GROUP_SESSIONS": 10}):
        with override_settings(PROGRESS_UI=fits):
            assert check_stream_caps() == []
    # The process cap too, when set (None: the server's default, 8 or 500 places).
    with override_settings(PROGRESS_UI={"MAX_STREAMS": 5}):
        [warning] = check_stream_caps()
    assert warning.id == "progress_ui.W008" and "503" in warning.msg
    # A mistyped value is E004's, not a crash here.
    with override_settings(PROGRESS_UI={"MAX_STREAMS_PER_CLIENT": "10"}):
        assert check_stream_caps() == []
