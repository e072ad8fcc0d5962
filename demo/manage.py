#!/usr/bin/env python
"""Demo project: ``make demo`` (or ``python demo/manage.py runserver``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Run from anywhere: the repository root holds the `demo` package and
    # `progress_ui`; it replaces demo/ itself, whose module names are generic.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
