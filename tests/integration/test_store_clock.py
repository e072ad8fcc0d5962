"""The store's clock (``progress_ui.engine.store.clock``): each process's offset to
the clock of the store it shares, measured with real stores (Redis ``TIME``, the
database's clock, the file system's), at most once per ``REFRESH``, and kept
when the store cannot be reached. The skewed processes themselves are in
``test_clock_skew.py``."""

from __future__ import annotations

import asyncio
import math
import time
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from progress_ui.engine import store
from progress_ui.engine.plans import Op, arun, run
from progress_ui.engine.store import clock as clock_module
from progress_ui.engine.store.clock import REFRESH, RETRY, StoreClock
from progress_ui.engine.store.redis import RedisBackend
from tests.conftest import require_redis
from tests.integration.test_cache_outage import free_port, start_redis
from tests.support.workers import stop_process

#: How far a measured offset may be from the truth on this machine (seconds).
CLOSE = 0.25


def skewed(monkeypatch: pytest.MonkeyPatch, skew: float) -> None:
    """This process's wall clock, as the clock module reads it, ``skew`` s off."""
    real = time.time
    monkeypatch.setattr(
        clock_module, "time", SimpleNamespace(time=lambda: real() + skew, monotonic=time.monotonic)
    )


def fresh_clock(monkeypatch: pytest.MonkeyPatch) -> StoreClock:
    """The progress store's clock, as in a process that never measured it."""
    clock = StoreClock()
    monkeypatch.setattr(store.backend(), "clock", clock)
    return clock


def test_each_shared_store_has_a_clock_that_a_skewed_process_corrects_for(
    shared_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = fresh_clock(monkeypatch)
    skewed(monkeypatch, -30.0)
    assert abs(store.now() - (time.time() - 30)) < CLOSE  # not measured yet
    run(store.sync_clock())
    assert clock.measured
    assert abs(clock.offset - 30.0) < CLOSE
    assert abs(store.now() - time.time()) < CLOSE


def test_the_async_path_measures_the_same_clock(
    shared_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database cache is queried in a thread of its own: Django refuses
    # database access where an event loop runs.
    clock = fresh_clock(monkeypatch)
    skewed(monkeypatch, 30.0)
    asyncio.run(arun(store.sync_clock()))
    assert clock.measured
    assert abs(clock.offset + 30.0) < CLOSE


def test_a_per_process_cache_is_its_own_clock(locmem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = fresh_clock(monkeypatch)
    assert store.backend().clock_reading() is None
    run(store.sync_clock())
    assert (clock.offset, clock.measured, clock.due) == (0.0, False, math.inf)


def test_reads_and_writes_measure_at_most_once_per_refresh(
    shared_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from progress_ui import ProgressSession

    clock = fresh_clock(monkeypatch)
    found = store.backend()
    measured: list[float] = []
    reading = found.clock_reading

    def counted() -> Op[float] | None:
        measured.append(time.monotonic())
        return reading()

    monkeypatch.setattr(found, "clock_reading", counted)
    session = ProgressSession.create({"a": "A"})
    for i in range(20):
        session.update("a", current=i, total=20)
        session.to_dict()
    session.complete("a")
    assert len(measured) == 1
    assert clock.measured
    # Due again after REFRESH seconds (moved back here rather than waited for).
    clock.due = time.monotonic() - 1
    session.to_dict()
    assert len(measured) == 2
    assert clock.due >= time.monotonic() + REFRESH - 5


def test_an_unreachable_store_keeps_the_last_offset_and_never_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real Redis server, measured, then stopped: the offset measured stays,
    reading the time does not raise, and the next attempt waits RETRY seconds."""
    require_redis()
    skewed(monkeypatch, 30.0)
    port = free_port()
    server = start_redis(port)
    conf: dict[str, Any] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{port}/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
    with override_settings(CACHES={**settings.CACHES, "clock-test": conf}):
        try:
            backend = RedisBackend("clock-test", conf)
            clock = StoreClock()
            run(clock.sync(backend.clock_reading))
            assert abs(clock.offset + 30.0) < CLOSE
        finally:
            stop_process(server)
        clock.due = -math.inf
        run(clock.sync(backend.clock_reading))  # refused: no exception
    assert abs(clock.offset + 30.0) < CLOSE
    assert abs(clock.now() - time.time()) < CLOSE
    assert time.monotonic() + RETRY - 1 < clock.due <= time.monotonic() + RETRY


def test_a_store_never_reached_reads_as_this_process_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "unreachable"}):
        clock = fresh_clock(monkeypatch)
        run(store.sync_clock())
        asyncio.run(arun(store.sync_clock()))  # not due: no second attempt
        assert (clock.offset, clock.measured) == (0.0, False)
        assert abs(store.now() - time.time()) < CLOSE


def test_a_measurement_a_little_behind_never_moves_the_time_back() -> None:
    """Each measurement is off by up to half its round trip, so two of them can
    differ by milliseconds: a completing bar (its animation runs on ``now``)
    read just before and just after a re-measurement went from 68 % back to
    63 % (COMPLETING_DURATION 0.05 s in test_properties). A small step back is
    held until the wall clock catches up; a large one is taken."""
    clock = StoreClock()
    readings = iter([1000.0, 999.996, 970.0])  # store times, as read

    def measure() -> None:
        reading = next(readings)
        clock.due = -math.inf
        op = Op(lambda: reading - 1000.0 + time.time(), lambda: asyncio.sleep(0, reading))
        run(clock.sync(lambda: op))

    measure()
    before = clock.now()
    measure()  # 4 ms behind the first
    assert clock.offset < -0.003
    held = [clock.now() for _ in range(50)]
    assert held[0] >= before and held == sorted(held)
    time.sleep(0.01)
    assert clock.now() - before > 0.004  # caught up, and moving again
    measure()  # 30 s back: the local clock was set back, say
    assert clock.now() < before - 29


def test_lifetimes_follow_the_store_clock_where_the_writer_dates_expiry() -> None:
    clock = StoreClock()
    clock.offset = 30.0  # this process runs 30 s behind the store
    assert clock.ttl(10) == 40
    clock.offset = -30.0  # ahead: as short as the cache allows
    assert clock.ttl(10) == 1
    assert clock.ttl(300) == 270
    clock.offset = 0.004
    assert clock.ttl(300) == 300


def test_a_beat_holds_for_its_lifetime_on_the_store_clock(shared_backend: str) -> None:
    # Stored by hand: a beat written 5 s ago for 1 s, by a process whose clock
    # ran ahead (so the cache still holds it), and the plain 1 of earlier versions.
    found = store.backend()
    found.set_many(
        {
            store.alive_key("stale"): {"at": store.now() - 5, "for": 1},
            store.alive_key("fresh"): {"at": store.now(), "for": 1},
            store.alive_key("older-version"): 1,
        },
        60,
    )
    assert store.alive(["stale", "fresh", "older-version", "missing"]) == {
        "fresh",
        "older-version",
    }
    assert asyncio.run(store.aalive(["stale", "fresh"])) == {"fresh"}
    store.mark_alive("marked", 2)
    assert store.alive(["marked"]) == {"marked"}
    assert settings.PROGRESS_UI["CACHE_ALIAS"] == shared_backend


def test_the_postgresql_clock_is_read_through_django(django_db_blocker: Any) -> None:
    """The query the database cache's clock runs on PostgreSQL, on a real server
    (``clock_timestamp()``: the time now, also inside a long transaction)."""
    from django.db import connections, transaction

    from progress_ui.engine.store.cache import _DATABASE_NOW, _database_time
    from tests.integration.test_contrib_django_tasks import PG_ALIAS, postgres_database

    with django_db_blocker.unblock(), postgres_database():
        assert connections[PG_ALIAS].vendor == "postgresql"
        sql = _DATABASE_NOW["postgresql"]
        with transaction.atomic(using=PG_ALIAS):
            first = _database_time(PG_ALIAS, sql)
            time.sleep(0.3)
            second = _database_time(PG_ALIAS, sql)
        assert abs(first - time.time()) < 1.0
        assert second - first >= 0.3
