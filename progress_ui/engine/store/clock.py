"""The store's clock: one time for every process that shares a store.

Records hold wall-clock times (when a task started and ended, when each count
was sampled), and readers compare them with their own "now": the simulated
curve, the completing animation, "stalled", the time left and "took N seconds"
all rest on one difference of two clocks. When the writer and the reader run on
different machines, that difference is off by the skew between them (a worker
30 s ahead held a completed bar at 99 % for 30 s). So every process reads and
writes times on the clock of the store they share (:meth:`StoreClock.now`): its
own wall clock plus an offset to the store's, measured now and then with one
cheap call to the store (:meth:`StoreClock.sync`):

- Redis: ``TIME``;
- the database cache: the database's clock (one ``SELECT``);
- the file cache: the modification time the file system gives a file in the
  cache directory when it is touched (over NFS, the file server's clock);
- a cache of this process only (LocMem) or one without a clock to ask
  (memcached, the dummy cache): this process's clock, offset 0.

Cost: one extra round trip per process per :data:`REFRESH` seconds (the first
read or write of a process measures), none otherwise: :meth:`StoreClock.now` is
``time.time()`` plus a number. The offset is measured from the round trip's
midpoint, so it is good to half a round trip (about 0.1 ms on a LAN; the file
cache's timestamps are good to a few milliseconds). A measurement that fails
(the store cannot be reached) keeps the last offset, or 0 before the first, and
is tried again after :data:`RETRY` seconds: reading the time never raises.

The time read never goes back by less than :data:`MAX_HOLD`: a measurement
that moves the offset back a few milliseconds (each one is off by up to half
its round trip) would otherwise move every bar this process computes back too
(a completing bar's animation runs on ``now``). Such a step holds the time
still until the wall clock has caught up; a larger step (the local clock set
back, a first measurement far off) is taken at once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from progress_ui.engine.plans import Op, Plan
from progress_ui.exceptions import CacheUnavailable

logger = logging.getLogger("progress_ui")

#: Seconds between two measurements of a process's offset to the store's clock.
#: Clocks kept by NTP drift apart by well under a millisecond a minute; a step
#: of the local clock is corrected at the next measurement.
REFRESH = 60.0
#: Seconds before measuring again after a failed or too slow measurement.
RETRY = 5.0
#: A measurement whose round trip took longer than this (seconds) says little
#: (its error is up to half of it): it is used only when there is no offset yet.
MAX_ROUND_TRIP = 0.5
#: Steps back of the store's time shorter than this (seconds) are held, not taken.
MAX_HOLD = 1.0

#: The step that reads the store's clock (seconds since the epoch), or None when
#: the store has no clock of its own but this process's.
Reading = Callable[[], Op[float] | None]


class StoreClock:
    """This process's offset to one store's clock (one per store backend)."""

    def __init__(self) -> None:
        #: The store's clock minus this process's wall clock, in seconds.
        self.offset = 0.0
        #: True once an offset was measured (else the store's clock is unknown).
        self.measured = False
        #: ``time.monotonic()`` from which a measurement is due.
        self.due = -math.inf
        #: The latest time :meth:`now` returned (see :data:`MAX_HOLD`).
        self._last = -math.inf
        self._lock = threading.Lock()

    def now(self) -> float:
        """The store's time: seconds since the epoch on the store's clock (this
        process's own until a measurement succeeds), never a little earlier than
        it returned before (:data:`MAX_HOLD`). No I/O."""
        value = time.time() + self.offset
        with self._lock:
            if self._last - MAX_HOLD < value < self._last:
                return self._last
            self._last = value
        return value

    def sync(self, reading: Reading) -> Plan[None]:
        """The plan that measures the offset when due (at most once per
        :data:`REFRESH` seconds); a failure only delays the next attempt."""
        started = time.monotonic()
        if started < self.due:
            return
        op = reading()
        if op is None:
            self.due = math.inf  # this process's clock is the store's
            return
        # Claimed before the I/O: the other threads of the process go on with the
        # current offset instead of measuring too.
        self.due = started + REFRESH
        wall, sent = time.time(), time.monotonic()
        try:
            store_time = yield op
        except CacheUnavailable as exc:
            self.due = time.monotonic() + RETRY
            logger.debug("progress_ui: could not read the store's clock: %s", exc)
            return
        # The store read its clock somewhere in the round trip: its middle is
        # the best guess (the round trip's own clock is monotonic, so a step of
        # the wall clock meanwhile does not skew it).
        round_trip = time.monotonic() - sent
        if round_trip > MAX_ROUND_TRIP and self.measured:
            self.due = time.monotonic() + RETRY
            return
        self.offset = store_time - (wall + round_trip / 2)
        self.measured = True

    def ttl(self, ttl: int) -> int:
        """``ttl`` for a cache that dates expiry by the writer's clock and checks
        it by the reader's (Django's file and database caches): lengthened or
        shortened by this process's offset, so entries expire on the store's
        clock. At least 1 s (such caches store nothing for 0 or less)."""
        return max(1, ttl + round(self.offset))
