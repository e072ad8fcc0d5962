"""The engine imports before Django's settings are configured: a worker module,
the flood tool and scripts import ``progress_ui`` first and call
``django.setup()`` after (Django's own ``gettext_noop`` once broke this)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The modules a worker or a script reaches before ``django.setup()``.
EARLY = [
    "progress_ui",
    "progress_ui.conf",
    "progress_ui.core.messages",
    "progress_ui.engine.session",
    "progress_ui.engine.work",
    "progress_ui.render.display",
]


def test_the_engine_imports_without_settings() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]: importlib.import_module(name)\n"
        "from progress_ui import ProgressSession, TaskProgress\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *EARLY],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
