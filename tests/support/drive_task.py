"""Child process for cross-process tests: drives one task of an existing session.

Usage: python -m tests.support.drive_task SESSION_ID TASK_ID COUNT [fail]
(settings from DJANGO_SETTINGS_MODULE, cache alias from PROGRESS_TEST_CACHE).
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.settings")


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from progress_ui import ProgressError, ProgressSession

    session_id, task_id, count = argv[0], argv[1], int(argv[2])
    session = ProgressSession.get(session_id)
    if session is None:
        print(f"session {session_id} not found", file=sys.stderr)
        return 3

    def work() -> int:
        for _ in session.iterate(task_id, range(count), complete=False):
            session.update(task_id, message=f"working in pid {os.getpid()}")
            time.sleep(0.01)
        if len(argv) > 3 and argv[3] == "fail":
            raise ProgressError(f"child {os.getpid()} failed on purpose")
        return count

    session.add_sequential(task_id, work)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
