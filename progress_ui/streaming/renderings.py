"""The renderings a session's viewers share: one per published snapshot, per
rendering function, previous snapshot and language (``hub._Channel.render``)."""

from __future__ import annotations

from collections.abc import Callable

from django.utils import translation

from progress_ui.core.snapshot import SessionSnapshot


class Renderings:
    """The memo of one channel: renderings of the snapshot it last published."""

    def __init__(self) -> None:
        #: Renderings of ``_memo_of`` by (function, id of the previous snapshot, language).
        self._memo_of: SessionSnapshot | None = None
        self._memo: dict[tuple[object, int, str | None], tuple[SessionSnapshot | None, str]] = {}

    def render(
        self,
        snapshot: SessionSnapshot,
        fn: Callable[..., str],
        previous: SessionSnapshot | None = None,
        language: str | None = None,
        *,
        activate: bool = False,
    ) -> str:
        """``fn(snapshot, previous)`` (``fn(snapshot)`` without ``previous``),
        computed once per published snapshot for all viewers that pass the same
        ``fn`` (compared with ``==``: a bound method of a per-request object is a
        different ``fn`` for every viewer), the same ``previous`` (viewers that
        keep up were all sent the snapshot published before) and the same
        ``language`` (viewers of one session may read different ones). With
        ``activate``, ``fn`` runs with ``language`` active (the caller is not the
        viewer's request: the poller, for its direct viewers)."""
        if self._memo_of is not snapshot:
            self._memo_of, self._memo = snapshot, {}
        key = (fn, id(previous), language)
        found = self._memo.get(key)
        if found is not None and found[0] is previous:
            return found[1]
        if activate and language is not None:
            with translation.override(language):
                payload = fn(snapshot) if previous is None else fn(snapshot, previous)
        else:
            payload = fn(snapshot) if previous is None else fn(snapshot, previous)
        self._memo[key] = (previous, payload)
        return payload
