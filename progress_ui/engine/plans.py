"""One body for blocking and async I/O: plans ("sans-I/O").

A *plan* is a generator holding the whole logic of a write or a lifecycle call
(what to read, what to store given what was read, what to do when the cache
cannot be reached). It does no I/O itself: it yields each step it needs as an
:class:`Op` and is sent the step's result back, or thrown its exception.
:func:`run` performs the steps with blocking calls, :func:`arun` awaits them. So
``session.update()`` and ``await session.aupdate()`` run the same code, and the
choice between the two is made once, at the edge (the style guide's "one body,
dispatched once"); an ``Op`` is the only place where the two differ, and it is
one call in each form.

Plans compose with ``yield from``: ``written = yield from store.update(...)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, ParamSpec, TypeVar

__all__ = ["Op", "Plan", "arun", "io", "run"]

V = TypeVar("V")
P = ParamSpec("P")


class Op(Generic[V]):
    """One step of I/O, in a blocking and an awaitable form of the same call."""

    __slots__ = ("acall", "call")

    def __init__(self, call: Callable[[], V], acall: Callable[[], Awaitable[V]]) -> None:
        self.call = call
        self.acall = acall


#: A plan returning ``V``: yields ``Op`` steps and is sent their results.
Plan = Generator[Op[Any], Any, V]


def io(
    call: Callable[P, V], acall: Callable[P, Awaitable[V]], /, *args: P.args, **kwargs: P.kwargs
) -> Op[V]:
    """The step ``call(*args, **kwargs)``, or ``await acall(*args, **kwargs)``.

    The functions are looked up when the plan is built, so a test that replaces
    ``store.read_all`` sees the plans use its replacement."""
    return Op(lambda: call(*args, **kwargs), lambda: acall(*args, **kwargs))


def run(plan: Plan[V]) -> V:
    """Carry out ``plan`` with blocking I/O; its result, or what it raised."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = plan.throw(error) if error is not None else plan.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            result, error = op.call(), None
        except BaseException as exc:  # the plan decides (KeyboardInterrupt included)
            result, error = None, exc


async def arun(plan: Plan[V]) -> V:
    """Carry out ``plan`` awaiting its I/O: :func:`run` for the event loop."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = plan.throw(error) if error is not None else plan.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            result, error = await op.acall(), None
        except BaseException as exc:  # asyncio.CancelledError included
            result, error = None, exc
