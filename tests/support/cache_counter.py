"""Counts calls to one Django cache object, by method name (used by tests and bench)."""

from __future__ import annotations

from typing import Any

WRITES = ("set", "set_many", "add", "touch", "incr", "delete", "delete_many")
READS = ("get", "get_many")


class CacheCounter:
    """Wraps the cache's methods in place. Only top-level calls count:
    ``BaseCache.get_many`` calls ``get()`` per key on local backends (no network
    there; RedisCache sends one MGET). ``patch(obj, name, value)`` installs a
    wrapper (``monkeypatch.setattr`` in tests, ``setattr`` elsewhere)."""

    def __init__(self, cache: Any, patch: Any = setattr) -> None:
        self.calls: dict[str, int] = {}
        #: The key (or keys) of every top-level write, in order.
        self.written: list[Any] = []
        self.depth = 0
        for name in WRITES + READS:
            patch(cache, name, self._wrap(name, getattr(cache, name)))

    def _wrap(self, name: str, original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self.depth == 0:
                self.calls[name] = self.calls.get(name, 0) + 1
                if name in WRITES and args:
                    self.written.append(args[0])
            self.depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1

        return wrapper

    def reset(self) -> None:
        self.calls.clear()
        self.written.clear()

    @property
    def writes(self) -> int:
        return sum(self.calls.get(n, 0) for n in WRITES)

    @property
    def reads(self) -> int:
        return sum(self.calls.get(n, 0) for n in READS)
