"""Texts progress_ui itself writes into task records, translated when shown.

A record holds one message, written by whichever process ended the task, in
whatever language that process had active: so progress_ui writes its own texts
in English, as they are here, and the English text is the key. The display
(``progress_ui.render.display.own_text``) shows a message that is exactly one of
them (or one of :data:`TEMPLATES` with its numbers) in the viewer's language;
any other message (the work's own, a ``ProgressError``'s, a setting that
overrides a default) is shown as written. JSON, NDJSON and the watcher carry the
stored text: a stable English key a client may translate itself.
"""

from __future__ import annotations

import re

from progress_ui.conf import ProgressSettings, gettext_noop

# The settings' defaults are marked for translation where they are defined
# (``conf``, below this layer): one text, one place.
_DEFAULTS = ProgressSettings()

#: A task still PENDING whose queued job its queue reports FAILED: the worker
#: never ran the work (it could not import the task, say: web and worker on
#: different code), so nothing else would ever end the bar.
JOB_NOT_STARTED = gettext_noop("The worker could not start this task.")
#: A RUNNING task whose process stopped beating (``WORKER_LOST_MESSAGE``).
WORKER_LOST = _DEFAULTS.WORKER_LOST_MESSAGE
#: A task whose process was told to stop at once (``SystemExit``,
#: ``KeyboardInterrupt``: a worker's forced shutdown).
INTERRUPTED = gettext_noop("Interrupted.")
#: ``ProgressSession.cancel()`` (``CANCELLED_MESSAGE``), a revoked Celery task.
CANCELLED = _DEFAULTS.CANCELLED_MESSAGE
#: A Celery message that expired (``expires=``) before it ran.
EXPIRED = gettext_noop("Expired.")
#: An exception that is not a ``ProgressError`` (``GENERIC_ERROR_MESSAGE``).
GENERIC_ERROR = _DEFAULTS.GENERIC_ERROR_MESSAGE
#: A runner's retry is pending (Celery, RQ, Dramatiq): ``{attempt}`` is the next
#: attempt (2 for the first retry), ``{attempts}`` all attempts allowed.
RETRYING = gettext_noop("Retrying (attempt {attempt} of {attempts})…")
#: The same without a retry limit.
RETRYING_UNLIMITED = gettext_noop("Retrying (attempt {attempt})…")

#: The messages translated as they are.
TRANSLATED = frozenset(
    {JOB_NOT_STARTED, WORKER_LOST, INTERRUPTED, CANCELLED, EXPIRED, GENERIC_ERROR}
)
#: The messages with numbers in them (``str.format`` fields, all whole numbers).
TEMPLATES = (RETRYING, RETRYING_UNLIMITED)

_FIELD = re.compile(r"\{(\w+)\}")


def _pattern(template: str) -> re.Pattern[str]:
    # re.split with a group alternates literal text and field names.
    parts = _FIELD.split(template)
    return re.compile(
        "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>[0-9]{{1,9}})"
            for i, part in enumerate(parts)
        )
    )


_PATTERNS = tuple((template, _pattern(template)) for template in TEMPLATES)


def own_message(message: str) -> tuple[str, dict[str, str]] | None:
    """The message id and ``str.format`` arguments of ``message`` when it is one
    of progress_ui's own texts ("Retrying (attempt 2 of 4)…" gives
    ``(RETRYING, {"attempt": "2", "attempts": "4"})``); None for any other text."""
    if message in TRANSLATED:
        return message, {}
    for template, pattern in _PATTERNS:
        found = pattern.fullmatch(message)
        if found is not None:
            return template, found.groupdict()
    return None
