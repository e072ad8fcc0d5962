"""Process settings for a server that keeps thousands of streams open.

Each open stream keeps a few hundred Python objects alive (Django's request,
the response, the stream's generators). Python's cycle collector walks the
objects it tracks each time allocations outnumber frees by 700, and every
object from time to time: with 2,000 open streams on one uvicorn worker, about
a quarter of the process's CPU went to the collector (``bench/fanout.py``).
Streams create almost no reference cycles, so collecting young objects far
less often loses nothing but that time.
"""

from __future__ import annotations

import gc

#: Allocations (net of frees) between two collections of young objects.
STREAMING_GC_THRESHOLD = 10_000


def tune_garbage_collector(threshold: int = STREAMING_GC_THRESHOLD) -> None:
    """Call once at start-up, after the application is loaded (e.g. in
    ``asgi.py`` after ``get_asgi_application()``): ``gc.freeze()`` moves
    everything loaded so far out of the collector's way for good, and young
    objects are collected every ``threshold`` allocations instead of 700. The
    older generations keep their thresholds."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(threshold, middle, old)
