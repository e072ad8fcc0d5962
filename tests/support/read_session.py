"""Child process for clock-skew tests: reads a session as a viewer would, with a
blocking and an async read, and prints both snapshots as one JSON line.

Usage: python -m tests.support.read_session SESSION_ID
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.settings")


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from progress_ui import ProgressSession

    session = ProgressSession.get(argv[0])
    if session is None:
        print(f"session {argv[0]} not found", flush=True)
        return 3
    blocking = session.to_dict()
    awaited = asyncio.run(session.ato_dict())
    print(json.dumps({"blocking": blocking, "async": awaited}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
