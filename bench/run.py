"""Runs every benchmark in bench/ in turn (see each file's docstring)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPTS = (
    "engine.py",
    "writes.py",
    "streaming_reads.py",
    "streaming_latency.py",
    "fanout.py",
    "workers.py",
    "eta.py",
    "payload.py",
    "stream_memory.py",
)

for script in SCRIPTS:
    print(f"\n## {script}\n", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
