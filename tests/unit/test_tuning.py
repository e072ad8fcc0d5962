"""``tune_garbage_collector``: what it changes in the process, and nothing else."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from progress_ui.tuning import STREAMING_GC_THRESHOLD, tune_garbage_collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_freezes_what_is_loaded_and_collects_young_objects_less_often(restored_gc: None) -> None:
    middle, old = gc.get_threshold()[1:]
    loaded = [[] for _ in range(1000)]  # tracked by the collector until frozen
    frozen = gc.get_freeze_count()
    tune_garbage_collector()
    assert gc.get_freeze_count() >= frozen + len(loaded)
    assert not any(loaded[0] is o for o in gc.get_objects())  # out of its way
    assert gc.get_threshold() == (STREAMING_GC_THRESHOLD, middle, old)


def test_the_threshold_can_be_chosen(restored_gc: None) -> None:
    tune_garbage_collector(threshold=5000)
    assert gc.get_threshold()[0] == 5000
