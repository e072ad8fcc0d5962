"""Child process for the property tests: applies a list of operations to one session.

Usage: python -m tests.support.property_driver SESSION_ID JSON_OPS
(settings from DJANGO_SETTINGS_MODULE, cache alias from PROGRESS_TEST_CACHE, extra
PROGRESS_UI settings from PROGRESS_TEST_UI).

It prints ``ready`` once Django is set up, waits for a line on stdin (the start
signal, so that every worker begins at once), applies the operations and prints
one JSON line: ``{"failures": [...], "outcomes": {...}}``. ``failures`` lists the
operations that raised something the API does not document, or that did not raise
the ``ValueError`` their bad input calls for. Exit status 0 unless it crashed.

The operations and :func:`run_ops` are shared with the in-process threads of
``tests/integration/test_properties.py``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.settings")

if TYPE_CHECKING:
    from progress_ui import ProgressSession

#: Largest count, total or percent the engine accepts (``validation.MAX_AMOUNT``),
#: restated here so the test does not trust the code it checks.
MAX_AMOUNT = 10**15


def amount_is_valid(value: Any) -> bool:
    """What the README promises: None, or a finite number from 0 to 10^15."""
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return 0 <= value <= MAX_AMOUNT


def run_ops(session: ProgressSession, ops: list[dict[str, Any]], deadline: float) -> dict[str, Any]:
    """Apply ``ops`` to ``session``; documented exceptions are expected and counted.

    Each op is ``{"op": name, "task": task_id or None, ...}``; see
    ``tests/integration/test_properties.py`` for how they are generated."""
    from progress_ui import TaskCancelled, UnknownTaskError

    failures: list[str] = []
    outcomes: Counter[str] = Counter()
    for op in ops:
        if time.monotonic() > deadline:
            failures.append("deadline passed before every operation ran")
            break
        name, task = op["op"], op.get("task")
        known = task is None or task in session.tasks
        bad_numbers = name == "update" and not all(
            amount_is_valid(op.get(k)) for k in ("current", "total", "percent")
        )
        try:
            if name == "start":
                session.start(task)
            elif name == "update":
                session.update(
                    task,
                    current=op.get("current"),
                    total=op.get("total"),
                    percent=op.get("percent"),
                    message=op.get("message"),
                )
            elif name == "iterate":
                for _ in session.iterate(
                    task, range(op["steps"]), message=op.get("message"), complete=op["complete"]
                ):
                    time.sleep(op.get("pause", 0.0))
            elif name == "complete":
                session.complete(task, op.get("message"))
            elif name == "error":
                session.error(task, op.get("message"))
            elif name == "cancel":
                session.cancel(task, op.get("message"))
            elif name == "check":
                session.check_cancelled(task)
            elif name == "sleep":
                time.sleep(op["seconds"])
            else:
                failures.append(f"unknown op {op!r}")
                continue
        except UnknownTaskError:
            outcomes["unknown"] += 1
            if known:
                failures.append(f"UnknownTaskError for a known task: {op!r}")
        except TaskCancelled:
            outcomes["cancelled"] += 1
            if bad_numbers:
                failures.append(f"TaskCancelled instead of ValueError for bad numbers: {op!r}")
            elif not known or name not in ("start", "update", "iterate", "check"):
                failures.append(f"TaskCancelled from {name}: {op!r}")
        except ValueError as exc:
            outcomes["value_error"] += 1
            # Bad numbers, or start() of a finished task.
            if not (bad_numbers or name == "start"):
                failures.append(f"ValueError {exc} from {op!r}")
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc!r} from {op!r}")
        else:
            outcomes["ok"] += 1
            if bad_numbers:
                failures.append(f"no ValueError for bad numbers: {op!r}")
            if not known:
                failures.append(f"no UnknownTaskError for an unknown task: {op!r}")
    return {"failures": failures, "outcomes": dict(outcomes)}


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from progress_ui import ProgressSession

    session_id, ops = argv[0], json.loads(argv[1])
    session = ProgressSession.get(session_id)
    if session is None:
        print(json.dumps({"failures": [f"session {session_id} not found"], "outcomes": {}}))
        return 0
    print("ready", flush=True)
    sys.stdin.readline()  # the start signal
    result = run_ops(session, ops, deadline=time.monotonic() + 60)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
