"""``progress_ui.render.components``: the component and the SSE partials carry the
same regions, escape everything, and carry the right htmx 2 / htmx 4 markup."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory, override_settings
from django.urls import include, path

from progress_ui import ProgressSession
from progress_ui.core.snapshot import SessionSnapshot, TaskSnapshot
from progress_ui.render.components import render_bar, render_partials, render_session
from progress_ui.render.display import (
    STATUS_REGION,
    SUMMARY_REGION,
    region_id,
    session_display,
    task_region,
)

urlpatterns = [path("progress/", include("progress_ui.urls"))]
pytestmark = pytest.mark.urls(__name__)

SID = "A" * 31 + "b"
EVIL = '<script>alert("x")</script>'


def task(**kw: object) -> TaskSnapshot:
    base = TaskSnapshot(
        name="Task",
        status="running",
        percent=40,
        message="",
        current=None,
        total=None,
        simulated=False,
    )
    return {**base, **kw}  # type: ignore[typeddict-item]


def snapshot(status: str = "running", **tasks: TaskSnapshot) -> SessionSnapshot:
    tasks = tasks or {"one": task()}
    return SessionSnapshot(
        session_id=SID,
        status=status,
        overall_percent=sum(t["percent"] for t in tasks.values()) // len(tasks),
        tasks=dict(tasks),
        expired=False,
    )


PARTIAL_RE = re.compile(r'<hx-partial id="([^"]+)" hx-swap="innerMorph">(.*?)</hx-partial>', re.S)


def partials(html: str) -> dict[str, str]:
    return dict(PARTIAL_RE.findall(html))


@pytest.fixture
def session(locmem: str) -> Iterator[ProgressSession]:
    s = ProgressSession.create({"a": f"Alpha {EVIL}", "b": "Beta"})
    yield s
    s.delete()


def test_task_ids_named_like_regions_do_not_collide() -> None:
    # Tasks called "summary" and "status" must not reuse the session's own
    # summary and status region ids, in the component or in the SSE partials.
    snap = snapshot()
    snap["tasks"] = {"summary": task(), "status": task()}
    for html in (str(render_session(snap)), str(render_partials(snap))):
        ids = re.findall(r' id="([^"]+)"', html)
        assert len(ids) >= 4, html
        assert len(set(ids)) == len(ids), ids
    display = session_display(snap)
    dom_ids = [display.summary_id, display.status_id] + [bar.dom_id for _, bar in display.tasks]
    assert len(set(dom_ids)) == 4


def test_one_partial_per_region() -> None:
    found = partials(render_partials(snapshot(a=task(), b=task())))
    assert set(found) == {
        region_id(SID, "summary"),
        region_id(SID, "status"),
        region_id(SID, "task:a"),
        region_id(SID, "task:b"),
        region_id(SID, "outcome"),
    }


@pytest.mark.parametrize("status", ["pending", "running", "complete", "error"])
def test_partials_equal_the_initial_render_of_each_region(status: str) -> None:
    snap = snapshot(
        status,
        a=task(status=status, message=EVIL, current=3, total=10),
        b=task(status=status, simulated=True, percent=12),
    )
    page = render_session(snap, title="T")
    found = partials(render_partials(snap))
    assert found
    for rid, inner in found.items():
        pattern = re.escape(f'id="{rid}"') + r"[^>]*>" + re.escape(inner) + r"</(div|li|p)>"
        assert re.search(pattern, page), rid


def test_partials_carry_no_carriage_returns() -> None:
    # SSE fields end at CR or LF; the stream splits on LF only.
    html = render_partials(snapshot(one=task(message="line\r\nnext\rlast")))
    assert "\r" not in html


def test_user_strings_are_escaped_everywhere(session: ProgressSession) -> None:
    session.update("a", current=1, total=2, message=EVIL)
    for html in (render_session(session), render_partials(session.to_dict())):
        assert "<script>" not in html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_title_is_escaped() -> None:
    html = render_session(snapshot(), title=EVIL)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_htmx2_markup() -> None:
    with override_settings(PROGRESS_UI={"HTMX_VERSION": 2}):
        html = render_session(snapshot())
    url = f"/progress/{SID}/events/"
    assert (
        f'hx-ext="sse" sse-connect="{url}" sse-swap="message" hx-swap="none" sse-close="done"'
        in html
    )
    assert "hx-sse:connect" not in html


def test_htmx4_markup() -> None:
    with override_settings(PROGRESS_UI={"HTMX_VERSION": 4}):
        html = render_session(snapshot())
    url = f"/progress/{SID}/events/"
    assert f'hx-sse:connect="{url}" hx-swap="none" hx-sse:close="done"' in html
    assert "sse-connect" not in html.replace("hx-sse:connect", "")


def test_explicit_version_wins_over_setting() -> None:
    assert "hx-sse:connect" in render_session(snapshot(), htmx=4)


def test_invalid_htmx_version_is_explained() -> None:
    with (
        override_settings(PROGRESS_UI={"HTMX_VERSION": 3}),
        pytest.raises(ImproperlyConfigured, match=r"HTMX_VERSION.*2 or 4"),
    ):
        render_session(snapshot())


@pytest.mark.parametrize("status", ["complete", "error"])
def test_finished_session_opens_no_connection_and_no_refresh(status: str) -> None:
    html = render_session(snapshot(status, one=task(status=status)))
    assert "sse-connect" not in html
    assert "hx-sse" not in html
    assert "<noscript>" not in html


def test_expired_session_says_so() -> None:
    snap = snapshot("error", one=task(status="error", percent=0))
    snap["expired"] = True
    html = render_session(snap)
    assert "no longer available" in html
    assert "Expired" in html
    assert "sse-connect" not in html


def test_noscript_refresh_points_at_the_page_for_get() -> None:
    request = RequestFactory().get("/jobs/?x=1")
    html = render_session(snapshot(), request=request)
    assert '<meta http-equiv="refresh" content="2;url=/jobs/?x=1">' in html
    assert '<a href="/jobs/?x=1">' in html


def test_noscript_refresh_falls_back_to_fragment_endpoint_after_post() -> None:
    request = RequestFactory().post("/start/")
    html = render_session(snapshot(), request=request)
    assert f"url=/progress/{SID}/html/" in html


def test_explicit_refresh_url() -> None:
    html = render_session(snapshot(), refresh_url="/somewhere/")
    assert "url=/somewhere/" in html


def test_htmx_inserted_component_has_no_meta_refresh() -> None:
    # htmx parses responses with scripting off: a noscript meta refresh would fire.
    request = RequestFactory().post("/start/", headers={"HX-Request": "true"})
    html = render_session(snapshot(), request=request, refresh_url="/x/")
    assert "http-equiv" not in html
    assert "sse-connect" in html


def test_progressbar_accessibility_attributes() -> None:
    html = render_session(snapshot(one=task(percent=42, current=42, total=100)))
    assert 'role="progressbar"' in html
    assert 'aria-valuemin="0" aria-valuemax="100" aria-valuenow="42"' in html
    assert 'aria-valuetext="42 percent, 42 of 100, In progress"' in html
    assert 'aria-labelledby="progress-' in html
    assert 'role="status" aria-live="polite"' in html


def test_percent_is_clamped_and_width_class_follows() -> None:
    html = render_session(snapshot(one=task(percent=140)))
    assert 'aria-valuenow="100"' in html
    assert "pui-w-100" in html


def test_simulated_running_bar_gets_indeterminate_look() -> None:
    html = render_session(snapshot(one=task(simulated=True)))
    assert "pui-bar--simulated" in html
    finished = render_session(snapshot("complete", one=task(status="complete", simulated=True)))
    assert "pui-bar--simulated" not in finished


def test_error_look_and_message() -> None:
    html = render_session(
        snapshot("error", one=task(status="error", message="Disk full"), two=task())
    )
    assert "pui-bar--error" in html
    assert 'pui-bar__message pui-bar__message--error">Disk full<' in html
    # Said once: under the bar, not again in the status sentence.
    assert html.count("Disk full") == 1
    assert "Task failed." in html


@pytest.mark.parametrize(
    ("statuses", "summary", "sentence"),
    [
        (("error", "complete"), "1 of 2 tasks failed", "Task failed."),
        (("error", "error"), "2 of 2 tasks failed", "2 tasks failed."),
        (("error",), "1 of 1 task failed", "Failed."),
        (("cancelled", "complete"), "1 of 2 tasks cancelled", "Cancelled."),
        (("complete", "complete"), "2 of 2 tasks done", "All 2 tasks complete."),
    ],
)
def test_a_settled_session_says_what_happened(
    statuses: tuple[str, ...], summary: str, sentence: str
) -> None:
    session_status = statuses[0]
    tasks = {f"t{n}": task(status=s, percent=50, message="Why") for n, s in enumerate(statuses)}
    html = str(render_session(snapshot(session_status, **tasks)))
    assert f'<span class="pui-summary__count">{summary}</span>' in html
    assert f">{sentence}\n</p>" in html


def test_status_sentence_counts_finished_tasks() -> None:
    html = render_session(
        snapshot(a=task(status="complete", percent=100), b=task(), c=task(status="pending"))
    )
    assert "1 of 3 tasks finished." in html


def test_render_session_accepts_a_live_session(session: ProgressSession) -> None:
    session.update("b", current=5, total=20)
    html = render_session(session)
    assert "5 of 20" in html
    assert f'data-progress-session="{session.session_id}"' in html


def test_several_sessions_on_one_page_share_no_ids(locmem: str) -> None:
    one = ProgressSession.create({"a": "A"})
    two = ProgressSession.create({"a": "A"})
    ids = re.findall(r'\bid="([^"]+)"', render_session(one) + render_session(two))
    assert len(ids) == len(set(ids))


def test_standalone_bar_has_no_ids_and_escapes() -> None:
    html = render_bar(name=EVIL, percent=30, status="complete", message="ok")
    assert " id=" not in html
    assert "&lt;script&gt;" in html
    assert 'aria-label="&lt;script&gt;' in html
    assert 'aria-valuenow="30"' in html
    assert "pui-bar--complete" in html


def test_sub_steps_and_weighted_shares_are_shown() -> None:
    snap = snapshot(
        small=task(weight=1.0, name="Validate"),
        big=task(weight=3.0, name="Import", step=3, steps=12, step_name="invoices.csv"),
    )
    html = str(render_session(snap))
    assert "Step 3 of 12: invoices.csv" in html
    assert "25% of the job" in html and "75% of the job" in html
    equal = str(render_session(snapshot(a=task(), b=task())))
    assert "of the job" not in equal


def test_timing_in_words() -> None:
    from progress_ui.render.display import duration_text, timing_text

    assert duration_text(40) == "40 seconds"
    assert duration_text(1) == "1 second"
    assert duration_text(185) == "3 minutes"
    assert duration_text(3900) == "1 hour 5 minutes"
    running = timing_text(status="running", rate=120.0, eta=90.0, started_at=0.0, now=200.0)
    assert running == "about 2 minutes left · 120/s · 3 minutes elapsed"
    assert timing_text(status="running", stalled=True, rate=5.0, started_at=0.0, now=30.0) == (
        "stalled"
    )
    assert timing_text(status="complete", started_at=0.0, finished_at=42.0) == "took 42 seconds"
    assert timing_text(status="pending") == ""


def test_changes_alone_carry_the_changed_bars_summary_and_status() -> None:
    names = {f"t{i}": task(name="A long task name " * 8, percent=10) for i in range(100)}
    before = snapshot(**names)
    after = snapshot(**{**names, "t7": task(name="A long task name " * 8, percent=60)})
    whole = render_partials(after)
    changes = render_partials(after, before)
    ids = list(partials(changes))
    assert ids == [
        region_id(SID, SUMMARY_REGION),
        task_region(SID, "t7"),
        region_id(SID, STATUS_REGION),
        region_id(SID, "outcome"),
    ]
    # Each region sent is exactly what a whole message carries for it.
    for region, html in partials(changes).items():
        assert partials(whole)[region] == html
    assert len(changes) * 20 < len(whole), (len(changes), len(whole))


def test_changes_against_an_unchanged_snapshot_keep_summary_status_and_outcome() -> None:
    same = snapshot(one=task(), two=task(name="Two"))
    assert list(partials(render_partials(same, same))) == [
        region_id(SID, SUMMARY_REGION),
        region_id(SID, STATUS_REGION),
        region_id(SID, "outcome"),
    ]


def test_changes_of_another_session_are_not_trusted() -> None:
    # ``previous`` of another session (a caller's mistake) gets a whole message.
    other = {**snapshot(), "session_id": "B" * 32}
    current = snapshot(one=task(percent=50))
    assert render_partials(current, other) == render_partials(current)


def test_kept_bars_follow_the_clock_the_language_and_the_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Bars are kept between displays (a change rebuilds one bar of a hundred): one
    # must not outlive what it shows.
    from django.utils import translation

    from progress_ui.render import display as display_module

    started = 1_700_000_000.0

    def bar_at(seconds: float, **changes: object) -> str:
        monkeypatch.setattr(display_module, "store_now", lambda: started + seconds)
        fields = {"started_at": started, "current": 1200, "total": 5000, **changes}
        bar = session_display(snapshot(one=task(**fields))).tasks[0][1]
        return f"{bar.timing_text} | {bar.count_text}"

    assert bar_at(30) == " | 1,200 of 5,000"
    assert bar_at(59) == bar_at(30)
    assert bar_at(150) == "2 minutes elapsed | 1,200 of 5,000"
    assert bar_at(150, current=1300) == "2 minutes elapsed | 1,300 of 5,000"
    with translation.override("fr"):
        assert bar_at(150).startswith("2 minutes écoulées")
    assert bar_at(181) == "3 minutes elapsed | 1,200 of 5,000"


# -- what a settled session hands the page ------------------------------------------------

OUTCOME_RE = re.compile(r'data-pui-outcome="([^"]*)"')


def outcome_detail(html: str) -> dict[str, object] | None:
    import html as html_module
    import json

    match = OUTCOME_RE.search(html)
    return json.loads(html_module.unescape(match.group(1))) if match else None


@pytest.mark.parametrize(
    "url", ["/reports/1.csv", "report.csv?a=1&b=2", "https://files.example/r", "HTTP://x.example"]
)
def test_links_a_page_may_follow_are_kept(url: str) -> None:
    from progress_ui.render.outcome import safe_url

    assert safe_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>x</script>",
        "vbscript:x",
        "http:no-host",
        "   ",
        "/" + "a" * 2048,
        None,
        42,
    ],
)
def test_links_a_page_must_not_follow_are_dropped(url: object) -> None:
    from progress_ui.render.outcome import safe_url

    assert safe_url(url) == ""


def test_a_running_session_has_only_its_title_text_as_outcome() -> None:
    snap = snapshot("running", one=task(result_url="/r.csv", percent=42))
    html = str(render_session(snap))
    marker = '<span hidden data-pui-title="42%"></span>'
    assert 'class="pui-outcome" id="progress-' + SID + '-outcome">' + marker + "</div>" in html
    assert outcome_detail(html) is None
    assert partials(str(render_partials(snap)))[region_id(SID, "outcome")] == marker


def test_a_completed_session_carries_its_detail_and_result_links() -> None:
    snap = snapshot(
        "complete",
        report=task(status="complete", percent=100, result_url="/r.csv", result_label=EVIL),
        other=task(status="complete", percent=100, result_url="javascript:alert(1)"),
        plain=task(status="complete", percent=100),
    )
    html = str(render_session(snap))
    assert outcome_detail(html) == {
        "sessionId": SID,
        "status": "complete",
        "percent": 100,
        "expired": False,
        "tasks": {
            "report": {"status": "complete", "percent": 100},
            "other": {"status": "complete", "percent": 100},
            "plain": {"status": "complete", "percent": 100},
        },
        "result": {"task": "report", "url": "/r.csv", "label": EVIL},
        "results": [{"task": "report", "url": "/r.csv", "label": EVIL}],
    }
    assert EVIL not in html and "javascript:" not in html
    assert '<a class="pui-result__link" href="/r.csv" data-task="report">&lt;script&gt;' in html
    # The stream carries the same region.
    streamed = partials(str(render_partials(snap)))[region_id(SID, "outcome")]
    assert streamed in html


def test_a_result_shows_only_once_its_task_is_complete() -> None:
    running = snapshot("running", one=task(result_url="/r.csv", result_label="Report"))
    assert "pui-result" not in str(render_session(running))
    failed = snapshot("error", one=task(status="error", result_url="/r.csv"))
    assert outcome_detail(str(render_session(failed)))["result"] is None  # type: ignore[index]


def test_a_result_without_a_label_gets_one() -> None:
    snap = snapshot("complete", one=task(status="complete", percent=100, result_url="/r.csv"))
    assert ">Open the result</a>" in str(render_session(snap))


def test_error_cancelled_and_expired_sessions_carry_their_detail() -> None:
    failed = outcome_detail(str(render_session(snapshot("error", one=task(status="error")))))
    assert failed is not None and (failed["status"], failed["expired"]) == ("error", False)
    cancelled = snapshot("cancelled", one=task(status="cancelled"))
    assert outcome_detail(str(render_session(cancelled)))["status"] == "cancelled"  # type: ignore[index]
    expired = {**snapshot("error", one=task(status="error")), "expired": True}
    detail = outcome_detail(str(render_session(expired)))  # type: ignore[arg-type]
    assert detail is not None and detail["expired"] is True


def test_success_url_is_named_on_the_component_and_linked_once_complete() -> None:
    request = RequestFactory().get("/page/")
    running = str(render_session(snapshot(), request=request, success_url="/done/"))
    assert 'data-progress-success-url="/done/"' in running
    assert "pui-next" not in running
    done = snapshot("complete", one=task(status="complete", percent=100))
    assert 'href="/done/">Continue</a>' in str(
        render_session(done, request=request, success_url="/done/")
    )
    same_host = "http://testserver/done/"
    assert same_host in str(render_session(done, request=request, success_url=same_host))
    for foreign in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        assert "success-url" not in str(render_session(done, request=request, success_url=foreign))


# -- the page's title and a notification (opt-in) ----------------------------------------------

TITLE_RE = re.compile(r'<span hidden data-pui-title="([^"]*)"(?: data-pui-text="([^"]*)")?')


def title_marker(html: str) -> tuple[str, str]:
    found = TITLE_RE.search(html)
    assert found, html
    return found[1], found[2] or ""


@pytest.mark.parametrize(
    ("snap", "title", "text"),
    [
        (snapshot("pending", one=task(status="pending", percent=0)), "Waiting", ""),
        (snapshot("running", one=task(percent=42)), "42%", ""),
        (snapshot("running", a=task(percent=10), b=task(percent=31)), "20%", ""),
        (snapshot("running", one=task(percent=37, simulated=True)), "37%", ""),
        # Nothing measured: the state, not a number.
        (snapshot("running", one=task(current=12, simulated=True)), "In progress", ""),
        (snapshot("complete", one=task(status="complete", percent=100)), "Complete", "Complete."),
        (
            snapshot("error", a=task(status="error", name=EVIL), b=task(status="complete")),
            "Failed",
            "",
        ),
        (snapshot("cancelled", one=task(status="cancelled")), "Cancelled", "Cancelled."),
        (
            {**snapshot("error", one=task(status="error")), "expired": True},
            "Expired",
            "This progress is no longer available.",
        ),
    ],
)
def test_the_outcome_region_names_the_title_text_and_once_settled_the_status(
    snap: SessionSnapshot, title: str, text: str
) -> None:
    html = str(render_session(snap))
    found_title, found_text = title_marker(html)
    assert found_title == title
    if snap["status"] == "error" and not snap["expired"]:
        # The status sentence, escaped: it names what failed.
        assert found_text == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; failed."
    else:
        assert found_text == text
    assert title_marker(str(render_partials(snap))) == (found_title, found_text)


@pytest.mark.parametrize("htmx", [2, 4])
def test_tab_title_and_notify_are_opt_in(htmx: int) -> None:
    plain = str(render_session(snapshot(), htmx=htmx))
    assert "data-progress-tab-title" not in plain and "data-progress-notify" not in plain
    assert "hx-config" not in plain
    both = str(render_session(snapshot(), htmx=htmx, tab_title=True, notify=True))
    assert " data-progress-tab-title" in both
    assert ' data-progress-notify="Notify me when done"' in both
    # htmx 4 pauses a stream while its tab is hidden: not the one the title follows.
    background = 'hx-config="{&quot;sse&quot;: {&quot;pauseOnBackground&quot;: false}}"'
    assert (background in both) == (htmx == 4)
    for option in ("tab_title", "notify"):
        alone = str(render_session(snapshot(), htmx=htmx, **{option: True}))
        assert (background in alone) == (htmx == 4)


def test_a_group_passes_tab_title_and_notify_to_its_components_and_connection() -> None:
    from progress_ui.render.components import render_group

    html = str(render_group([snapshot()], htmx=4, tab_title=True, notify=True))
    group, component = html.split('<section class="pui-session"', 1)
    assert "hx-sse:connect" in group and "pauseOnBackground" in group
    assert "data-progress-tab-title" in component and "data-progress-notify" in component
    assert "pauseOnBackground" not in str(render_group([snapshot()], htmx=4))
