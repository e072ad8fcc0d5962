"""Settings through conf.py, and the system checks."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from progress_ui.checks import check_cache, check_runner
from progress_ui.conf import current, settings


def test_defaults_follow_the_spec() -> None:
    with override_settings(PROGRESS_UI={}):
        assert settings.TTL == 300
        assert settings.CACHE_ALIAS == "default"
        assert 90 <= settings.SIMULATION_CAP <= 95
        assert pytest.approx(0.3) == settings.COMPLETING_DURATION


def test_settings_are_reread_on_setting_changed() -> None:
    with override_settings(PROGRESS_UI={"TTL": 7}):
        assert settings.TTL == 7
        assert current().TTL == 7
    with override_settings(PROGRESS_UI={"TTL": 9}):
        assert settings.TTL == 9


def test_unknown_setting_names_the_valid_ones() -> None:
    with override_settings(PROGRESS_UI={"TTTL": 7}), pytest.raises(ImproperlyConfigured) as e:
        _ = settings.TTL
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
        assert check_cache() == []  # tests/settings.py sets transaction_mode
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
    with override_settings(PROGRESS_UI={"RUNNER": "celery"}, DEBUG=False):
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
        INSTALLED_APPS=apps, MIDDLEWARE=middleware, ROOT_URLCONF="tests.urls_without_progress"
    ):
        found = {m.id: m for m in check_installation()}
    assert sorted(found) == ["progress_ui.E005", "progress_ui.W005", "progress_ui.W006"]
    assert 'include("progress_ui.urls")' in (found["progress_ui.E005"].hint or "")
