"""The demo's background jobs. Each is a plain function of a ``ProgressSession``
that reports as it goes; ``JOBS`` lists them for the views.

Pace is scaled by ``settings.DEMO_SPEED`` so the browser tests can run them fast.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from progress_ui import ProgressError, ProgressSession


def pause(seconds: float) -> None:
    time.sleep(seconds / settings.DEMO_SPEED)


def import_products(session: ProgressSession) -> None:
    """Sequential steps, with real counts where the work has them."""
    # A step without counts: its bar shows the simulated (estimated) percent.
    session.add_sequential("download", pause, 1.5)

    rows = [f"row {n}" for n in range(1, 401)]
    for n, _row in enumerate(session.iterate("validate", rows), start=1):
        if n % 40 == 0:
            session.update("validate", message=f"Checked {n} rows")
        pause(0.004)

    products = [f"SKU-{n:04d}" for n in range(1, 251)]
    for sku in session.iterate("import", products, message="Writing to the database"):
        pause(0.008)
        if sku.endswith("0"):
            session.update("import", message=f"Imported {sku}")
    session.update("import", message=f"{len(products)} products imported")


def _fetch(source: str, seconds: float) -> str:
    pause(seconds)
    return f"{source}: ok"


def fetch_data(session: ProgressSession) -> None:
    """Parallel futures: each source is a task that completes when its future does."""
    sources = {
        "weather": 1.2,
        "rates": 2.4,
        "stocks": 1.8,
        "news": 3.0,
    }
    with ThreadPoolExecutor(max_workers=len(sources), thread_name_prefix="demo-fetch") as pool:
        tasks = [
            session.add_parallel(source, pool.submit(_fetch, source, seconds))
            for source, seconds in sources.items()
        ]
        for task in tasks:
            task.wait()


def failing_job(session: ProgressSession) -> None:
    """Fails half-way with a message meant for the user (``ProgressError``)."""
    for _ in session.iterate("export", range(120)):
        pause(0.01)

    def upload() -> None:
        # The browser's stream ends once this fails: by then no other task is
        # still running (the export finished above).
        for n in session.iterate("upload", range(100), complete=False):
            pause(0.02)
            if n == 62:
                raise ProgressError("The storage quota is full (2.1 GB needed, 1.4 GB free).")

    session.add_sequential("upload", upload)


def nested_job(session: ProgressSession) -> None:
    """Weighted and nested steps: a quick check, then three files as a child
    session whose progress rolls up into "files" (Step 2 of 3: Invoices)."""
    for _ in session.iterate("check", range(20)):
        pause(0.01)
    files = session.child(
        "files", {"orders": "Orders", "invoices": "Invoices", "refunds": "Refunds"}
    )
    for task_id in files.tasks:
        for _ in files.iterate(task_id, range(40)):
            pause(0.02)


def rows_job(session: ProgressSession) -> None:
    """Rows at a steady pace: the bar shows the rate and the time left."""
    for _ in session.iterate("rows", range(600)):
        pause(0.03)


def quick_job(session: ProgressSession) -> None:
    """Short counted work (used by the browser tests)."""
    for task_id in session.tasks:
        for _ in session.iterate(task_id, range(30)):
            pause(0.03 + random.random() * 0.01)


def batch_job(session: ProgressSession) -> None:
    """Counted items at a pace of its own (the demo starts eight at once)."""
    for _ in session.iterate("items", range(60)):
        pause(0.05 + random.random() * 0.03)


def report_key(session_id: str) -> str:
    return f"demo:report:{session_id}"


def report_job(session: ProgressSession) -> None:
    """Builds a CSV report; the page then sends the browser to its download
    (``ReportView.get_progress_success_url``)."""
    orders = [(f"ORD-{n:04d}", round(19.5 * n, 2)) for n in range(1, 121)]
    for _ in session.iterate("query", orders):
        pause(0.06)
    lines = ["order,amount"]
    for order, amount in session.iterate("build", orders):
        lines.append(f"{order},{amount}")
        pause(0.005)
    # Kept as long as a finished session is (the demo's cache, 10 minutes).
    cache.set(report_key(session.session_id), "\n".join(lines) + "\n", 600)


@dataclass(frozen=True)
class Job:
    title: str
    description: str
    tasks: dict[str, str]
    run: Callable[[ProgressSession], None]
    #: Shown as a button on the demo page.
    listed: bool = True
    #: Task id -> weight in the overall bar (equal when None).
    weights: dict[str, float] | None = None


JOBS: dict[str, Job] = {
    "import": Job(
        "Import products",
        "Sequential steps with real counts: download, validate 400 rows, import 250 products.",
        {
            "download": "Download catalogue",
            "validate": "Validate rows",
            "import": "Import products",
        },
        import_products,
    ),
    "fetch": Job(
        "Fetch data",
        "Four API calls running in parallel, tracked as futures.",
        {
            "weather": "Weather service",
            "rates": "Exchange rates",
            "stocks": "Stock prices",
            "news": "News feed",
        },
        fetch_data,
    ),
    "fail": Job(
        "Export & upload (fails)",
        "Exports a report, then the upload fails with a readable error.",
        {"export": "Export report", "upload": "Upload to storage"},
        failing_job,
    ),
    "nested": Job(
        "Import files (nested)",
        "A quick check, then three files that roll up into one weighted step.",
        {"check": "Check the upload", "files": "Import the files"},
        nested_job,
        weights={"files": 3},
    ),
    "rows": Job(
        "Import 600 rows",
        "Counted rows at a steady pace: the rate and the time left are estimated as it goes.",
        {"rows": "Import rows"},
        rows_job,
    ),
    "quick": Job(
        "Quick job",
        "Two short counted tasks.",
        {"one": "First batch", "two": "Second batch"},
        quick_job,
        listed=False,
    ),
    "report": Job(
        "Sales report",
        "Queries 120 orders and builds a CSV: the browser downloads it when it is ready.",
        {"query": "Query the orders", "build": "Build the CSV"},
        report_job,
        listed=False,  # it has a page of its own (/report/), linked from the index
    ),
    "batch": Job(
        "Batch",
        "Sixty items at a pace of its own.",
        {"items": "Process items"},
        batch_job,
        listed=False,
    ),
    "xss": Job(
        "Escaping check",
        "A task whose name is HTML: it must show as text.",
        {"evil": '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'},
        quick_job,
        listed=False,
    ),
}

#: What the "Run all at once" button starts.
ALL_AT_ONCE = ("import", "fetch", "fail")
#: How many batches the "one connection" button starts: more than the 6
#: connections per origin a browser opens over HTTP/1.1.
GROUP_SIZE = 8
