"""Child process for liveness tests: runs one task of an existing session and
holds it, reporting nothing, until killed (or for SECONDS, then completes).

Usage: python -m tests.support.hold_task SESSION_ID TASK_ID [SECONDS]
(SESSION_ID "new": the child creates the session and prints "created <id>", so
a short TTL does not race the child's start-up)
(settings from DJANGO_SETTINGS_MODULE, PROGRESS_TEST_CACHE, PROGRESS_TEST_UI).
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.settings")


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from progress_ui import ProgressSession

    session_id, task_id = argv[0], argv[1]
    seconds = float(argv[2]) if len(argv) > 2 else 3600.0
    if session_id == "new":
        session = ProgressSession.create({task_id: task_id})
        print(f"created {session.session_id}", flush=True)
    else:
        session = ProgressSession.get(session_id)
    if session is None:
        print(f"session {session_id} not found", flush=True)
        return 3

    def hold() -> None:
        session.update(task_id, message=f"held by pid {os.getpid()}")
        print("holding", flush=True)
        time.sleep(seconds)

    session.add_sequential(task_id, hold)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
