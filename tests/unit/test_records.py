"""The read rules for a stored task record: pure, ``now`` passed in."""

from __future__ import annotations

from progress_ui.conf import ProgressSettings
from progress_ui.core.records import aggregate_status, new_record, reading_at
from progress_ui.core.status import ProgressStatus as S

CONF = ProgressSettings()


def running(started: float = 100.0, **extra: object) -> dict[str, object]:
    r = dict(new_record(), status="running", started_at=started)
    r.update(extra)
    return r


def test_pending_reads_zero() -> None:
    assert reading_at(new_record(), 1000, CONF).percent == 0


def test_running_without_news_is_simulated_below_cap() -> None:
    reading = reading_at(running(), 100 + 10_000, CONF)  # type: ignore[arg-type]
    assert reading.simulated
    assert reading.status is S.RUNNING
    assert reading.percent <= CONF.SIMULATION_CAP


def test_measured_progress_replaces_simulation_but_never_drops_below_floor() -> None:
    r = running(current=10, total=100, floor=40.0)
    reading = reading_at(r, 105, CONF)  # type: ignore[arg-type]
    assert not reading.simulated
    assert reading.percent == 40
    r = running(current=60, total=100, floor=40.0)
    assert reading_at(r, 105, CONF).percent == 60  # type: ignore[arg-type]


def test_measured_progress_is_capped_until_complete() -> None:
    r = running(current=100, total=100)
    assert reading_at(r, 105, CONF).percent == CONF.RUNNING_CAP  # type: ignore[arg-type]


def test_completing_animates_then_reads_complete() -> None:
    r = dict(running(), status="completing", finished_at=200.0, floor=50.0)
    mid = reading_at(r, 200.1, CONF)  # type: ignore[arg-type]
    assert mid.status is S.COMPLETING and 50 < mid.percent < 100
    end = reading_at(r, 200 + CONF.COMPLETING_DURATION, CONF)  # type: ignore[arg-type]
    assert end.status is S.COMPLETE and end.percent == 100


def test_error_keeps_its_percent() -> None:
    r = dict(running(), status="error", floor=33.0)
    assert reading_at(r, 500, CONF).percent == 33  # type: ignore[arg-type]


def test_aggregate_status_precedence() -> None:
    assert aggregate_status([S.COMPLETE, S.ERROR, S.RUNNING]) is S.ERROR
    assert aggregate_status([S.COMPLETE, S.COMPLETE]) is S.COMPLETE
    assert aggregate_status([S.RUNNING, S.PENDING]) is S.RUNNING
    assert aggregate_status([S.COMPLETING, S.PENDING]) is S.RUNNING
    assert aggregate_status([S.PENDING, S.PENDING]) is S.PENDING
    # between two sequential steps the work is under way
    assert aggregate_status([S.COMPLETE, S.PENDING]) is S.RUNNING


def test_completing_is_reported_as_running() -> None:
    assert S.COMPLETING.reported == "running"
    assert S.COMPLETE.reported == "complete"


def test_a_counted_task_carries_rate_and_time_left() -> None:
    from progress_ui.core.estimate import add_sample
    from progress_ui.core.snapshot import build_snapshot

    record = new_record()
    record.update(status="running", started_at=100.0, current=0, total=100)
    samples: list[list[float]] = []
    for second in range(11):  # 5 rows a second for 10 s
        samples = add_sample(samples, 100.0 + second, 5.0 * second)
    record.update(current=50, samples=samples)
    task = build_snapshot("s" * 32, {"a": "A"}, {"a": record}, 110.0, CONF)["tasks"]["a"]
    assert task["rate"] == 5.0
    assert task["eta"] == 10.0  # 50 rows left at 5 a second
    assert not task["stalled"]
    assert task["started_at"] == 100.0
    stalled = build_snapshot("s" * 32, {"a": "A"}, {"a": record}, 200.0, CONF)["tasks"]["a"]
    assert stalled["stalled"] and stalled["eta"] is None
