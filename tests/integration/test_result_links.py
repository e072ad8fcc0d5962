"""A completed task can hand the page a link (a report to download): stored with
its ending, in the snapshot every transport serialises, shown by the component,
from the session, from the work (TaskProgress) and from async code alike."""

from __future__ import annotations

import time
from concurrent.futures import Future

import pytest

from progress_ui import ProgressSession, TaskProgress, run_task
from progress_ui.render.components import render_session

TASKS = {"build": "Build the report", "send": "Send it"}


def finished(session: ProgressSession) -> dict[str, object]:
    return dict(session.to_dict()["tasks"]["build"])


def test_complete_stores_the_link_and_the_page_shows_it(backend: str) -> None:
    session = ProgressSession.create(TASKS)
    session.complete("build", result_url="/reports/42.csv", result_label="Download <CSV>")
    task = finished(session)
    assert task["result_url"] == "/reports/42.csv"
    assert task["result_label"] == "Download <CSV>"
    assert "result_url" not in session.to_dict()["tasks"]["send"]
    session.complete("send")
    # Shown once the session has settled (both bars eased to 100 %).
    settled = session.read(now=time.time() + 60)
    assert settled is not None and settled["status"] == "complete"
    html = render_session(settled)
    assert 'href="/reports/42.csv"' in html
    assert "Download &lt;CSV&gt;" in html and "Download <CSV>" not in html


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "java\tscript:alert(1)", "data:text/html,x", "http:x", "", "/" * 3000],
)
def test_a_link_a_page_must_not_follow_is_refused_and_nothing_is_stored(
    locmem: str, url: str
) -> None:
    session = ProgressSession.create(TASKS)
    with pytest.raises(ValueError, match=r"result_url .* cannot be shown: .*http"):
        session.complete("build", result_url=url)
    assert finished(session)["status"] == "pending"


def test_completing_twice_keeps_the_first_ending(locmem: str) -> None:
    session = ProgressSession.create(TASKS)
    session.complete("build", result_url="https://files.example.com/r.csv", result_label="R")
    session.complete("build", result_url="/other.csv")
    assert finished(session)["result_url"] == "https://files.example.com/r.csv"


def report_job(progress: TaskProgress) -> None:
    progress.update(current=1, total=1)
    progress.complete(result_url="/reports/7.csv", result_label="Report 7")


def test_the_work_hands_its_link_before_the_runner_completes_the_task(locmem: str) -> None:
    session = ProgressSession.create({"build": "Build the report"})
    run_task(session.session_id, "build", report_job)
    task = finished(session)
    assert task["status"] in ("running", "complete")  # COMPLETING reads as running
    assert (task["result_url"], task["result_label"]) == ("/reports/7.csv", "Report 7")


async def test_acomplete_stores_the_link(backend: str) -> None:
    session = await ProgressSession.acreate(TASKS)
    await session.acomplete("build", result_url="/r.csv", result_label="R")
    snap = await session.ato_dict()
    assert snap["tasks"]["build"]["result_url"] == "/r.csv"


def test_future_is_not_a_link(locmem: str) -> None:
    session = ProgressSession.create(TASKS)
    with pytest.raises(ValueError, match="not a string"):
        session.complete("build", result_url=Future())  # type: ignore[arg-type]
