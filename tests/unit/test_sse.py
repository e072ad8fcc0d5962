"""SSE wire format (byte for byte) and the SSE stream of a session, as an ASGI
server iterates it and as a WSGI view does (on the hub loop)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from progress_ui import ProgressSession
from progress_ui.core.snapshot import SessionSnapshot
from progress_ui.streaming.sse_stream import sse_stream
from progress_ui.wire import sse
from tests.support.streams import sync_sse

#: Far above any millisecond clock: makes ids deterministic.
BIG_ID = "99999999999999"
HOSTILE = 'evil\r\n\r\ndata: <script>alert("x")</script>\rid: 1\n\nevent: done\r\n: ping'


def render(snapshot: SessionSnapshot) -> str:
    """A compact payload so whole streams can be compared byte for byte."""
    flag = " expired" if snapshot["expired"] else ""
    return f"{snapshot['status']} {snapshot['overall_percent']}{flag}"


@pytest.fixture
def fast(locmem: str) -> Iterator[str]:
    """locmem, completing instantly, heartbeats every 50 ms."""
    with override_settings(
        PROGRESS_UI={
            "CACHE_ALIAS": locmem,
            "COMPLETING_DURATION": 0,
            "HEARTBEAT_INTERVAL": 0.05,
            "SSE_RETRY_MS": 1500,
            "MAX_STREAM_DURATION": 60,
        }
    ):
        yield locmem


def messages(text: str) -> list[str]:
    """Split a stream into its messages (each without the blank terminator)."""
    assert text.endswith("\n\n")
    return text[:-2].split("\n\n")


def assert_well_formed(text: str) -> None:
    assert "\r" not in text
    for message in messages(text):
        for line in message.split("\n"):
            assert line.startswith(("id: ", "retry: ", "data: ", "event: ", ": ")), line


# -- pure wire format ----------------------------------------------------------


def test_format_message_exact_bytes() -> None:
    text = sse.format_message("<p>a</p>\n<p>b</p>", event_id=7, retry=2000)
    assert text == "id: 7\nretry: 2000\ndata: <p>a</p>\ndata: <p>b</p>\n\n"
    assert sse.format_message("x", event_id=8) == "id: 8\ndata: x\n\n"


def test_crlf_and_cr_become_separate_data_lines() -> None:
    text = sse.format_message("a\r\nb\rc\n\nd", event_id=1)
    assert text == "id: 1\ndata: a\ndata: b\ndata: c\ndata: \ndata: d\n\n"
    assert "\r" not in text


def test_empty_payload_still_has_a_data_line() -> None:
    assert sse.format_message("", event_id=3) == "id: 3\ndata: \n\n"


def test_done_and_error_events_exact_bytes() -> None:
    assert sse.format_done(event_id=9) == "event: done\nid: 9\ndata: done\n\n"
    assert sse.format_error("Oops.", event_id=10) == (
        "event: progress-error\nid: 10\ndata: Oops.\n\n"
    )
    assert sse.HEARTBEAT == ": ping\n\n"


def test_event_names_cannot_hold_line_breaks() -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        sse.format_message("x", event_id=1, event="a\nb")


@pytest.mark.parametrize(
    "value",
    [None, "", "abc", "-1", "+5", " 12", "12 ", "1e5", "1.5", "\u0661\u0662", "9" * 20, "0x10"],
)
def test_garbage_last_event_id_is_ignored(value: str | None) -> None:
    assert sse.parse_last_event_id(value) is None
    assert sse.first_event_id(value, now=1000.0) == 1_000_000


def test_ids_continue_after_last_event_id_and_never_go_back() -> None:
    assert sse.parse_last_event_id("42") == 42
    assert sse.first_event_id("42", now=1000.0) == 1_000_000  # clock is ahead
    assert sse.first_event_id("5000000", now=1000.0) == 5_000_001  # client is ahead


def test_formatter_sends_retry_on_the_first_message_only(fast: str) -> None:
    writer = sse.SSEFormatter(lambda s: "x", last_event_id="100", now=0.0)
    snap: Any = {"status": "running"}
    assert writer.snapshot(snap) == "id: 101\nretry: 1500\ndata: x\n\n"
    assert writer.heartbeat() == ": ping\n\n"
    assert writer.snapshot(snap) == "id: 102\ndata: x\n\n"
    assert writer.done() == "event: done\nid: 103\ndata: done\n\n"


# -- sync streams (WSGI) ------------------------------------------------------------


def test_finished_session_streams_final_state_then_done(fast: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.complete("a")
    text = "".join(sync_sse(session, last_event_id=BIG_ID, poll_interval=0.01))
    text_rendered = "".join(
        sync_sse(session, last_event_id=BIG_ID, poll_interval=0.01, render=render)
    )
    assert text_rendered == (
        "id: 100000000000000\nretry: 1500\ndata: complete 100\n\n"
        "event: done\nid: 100000000000001\ndata: done\n\n"
    )
    # The default payload is the front-end's fragments, split into data lines.
    assert_well_formed(text)
    assert text.endswith("event: done\nid: 100000000000001\ndata: done\n\n")
    assert "<hx-partial" in text


def test_hostile_names_and_messages_cannot_break_the_framing(fast: str) -> None:
    session = ProgressSession.create({"a": HOSTILE})
    session.error("a", HOSTILE)
    text = "".join(sync_sse(session, poll_interval=0.01))
    assert_well_formed(text)
    # Exactly one progress message and one done: injected "event:"/"id:" text stayed data.
    parts = messages(text)
    assert len(parts) == 2
    assert parts[1].startswith("event: done\n")
    assert all(line.startswith(("id: ", "retry: ", "data: ")) for line in parts[0].split("\n"))
    assert "<script>" not in text
    assert "&lt;script&gt;" in text


def _later(delay: float, action: Any) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_emits_only_changes_with_heartbeats_between(fast: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=10)
    stream = sync_sse(session, last_event_id=BIG_ID, poll_interval=0.01, render=render)
    assert next(stream) == "id: 100000000000000\nretry: 1500\ndata: running 10\n\n"
    thread = _later(0.4, lambda: session.update("a", percent=50))
    rest = []
    for chunk in stream:
        rest.append(chunk)
        if "running 50" in chunk:
            break
    thread.join()
    # Dozens of unchanged polls produced heartbeats only, no repeated snapshot.
    assert rest[-1] == "id: 100000000000001\ndata: running 50\n\n"
    assert set(rest[:-1]) == {": ping\n\n"}
    assert len(rest) >= 3
    session.complete("a")
    assert list(stream) == [
        "id: 100000000000002\ndata: complete 100\n\n",
        "event: done\nid: 100000000000003\ndata: done\n\n",
    ]


def test_error_ends_with_final_state_and_done(fast: str) -> None:
    session = ProgressSession.create({"a": "A", "b": "B"})
    session.start("a")
    session.update("b", percent=40)
    session.error("a", "disk full")
    session.error("b", "stopped")
    text = "".join(sync_sse(session, last_event_id=BIG_ID, render=render))
    assert text == (
        "id: 100000000000000\nretry: 1500\ndata: error 20\n\n"
        "event: done\nid: 100000000000001\ndata: done\n\n"
    )


def test_error_waits_for_tasks_still_running(fast: str) -> None:
    """A failed task does not freeze the other bars: the stream goes on until
    nothing runs any more."""
    session = ProgressSession.create({"a": "A", "b": "B"})
    session.start("a")
    session.update("b", percent=40)
    session.error("a", "disk full")
    stream = sync_sse(session, last_event_id=BIG_ID, poll_interval=0.01, render=render)
    assert next(stream) == "id: 100000000000000\nretry: 1500\ndata: error 20\n\n"
    assert next(stream) == sse.HEARTBEAT  # still open while b runs
    session.complete("b")
    tail = [chunk for chunk in stream if chunk != sse.HEARTBEAT]
    assert tail == [
        "id: 100000000000001\ndata: error 50\n\n",
        "event: done\nid: 100000000000002\ndata: done\n\n",
    ]


def test_vanished_session_ends_with_expired_state_and_done(fast: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=30)
    stream = sync_sse(session, last_event_id=BIG_ID, poll_interval=0.01, render=render)
    assert "running 30" in next(stream)
    session.delete()
    tail = [chunk for chunk in stream if chunk != sse.HEARTBEAT]
    assert tail == [
        "id: 100000000000001\ndata: error 0 expired\n\n",
        "event: done\nid: 100000000000002\ndata: done\n\n",
    ]


def test_max_duration_ends_without_done_so_the_client_reconnects(fast: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=30)
    started = time.monotonic()
    chunks = list(sync_sse(session, poll_interval=0.01, max_duration=0.3, render=render))
    assert time.monotonic() - started < 10
    assert "running 30" in chunks[0]
    assert not any("event: done" in c for c in chunks)


def test_exception_in_stream_is_logged_and_client_gets_safe_error(
    fast: str, caplog: pytest.LogCaptureFixture
) -> None:
    session = ProgressSession.create({"a": "A"})

    def broken(snapshot: SessionSnapshot) -> str:
        raise RuntimeError("secret: /srv/app/settings.py password=hunter2")

    with caplog.at_level(logging.ERROR, logger="progress_ui"):
        text = "".join(sync_sse(session, last_event_id=BIG_ID, render=broken))
    assert text == (
        "event: progress-error\nid: 100000000000000\nretry: 1500\ndata: Something went wrong.\n\n"
        "event: done\nid: 100000000000001\ndata: done\n\n"
    )
    assert "hunter2" not in text
    record = next(r for r in caplog.records if r.name == "progress_ui")
    assert record.exc_info is not None
    assert "hunter2" in str(record.exc_info[1])


# -- async streams -------------------------------------------------------------


async def collect(stream: AsyncIterator[str], timeout: float = 20) -> list[str]:
    async def run() -> list[str]:
        return [chunk async for chunk in stream]

    return await asyncio.wait_for(run(), timeout)


async def test_async_finished_session_exact_bytes(fast: str) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.complete)("a")
    stream = sse_stream(session, last_event_id=BIG_ID, render=render)
    assert "".join(await collect(stream)) == (
        "id: 100000000000000\nretry: 1500\ndata: complete 100\n\n"
        "event: done\nid: 100000000000001\ndata: done\n\n"
    )


async def test_async_change_only_then_complete(fast: str) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=10)
    stream = sse_stream(session, last_event_id=BIG_ID, poll_interval=0.01, render=render)
    seen: list[str] = []

    async def drive() -> None:
        async for chunk in stream:
            seen.append(chunk)
            if "running 10" in chunk:
                await asyncio.sleep(0.3)  # several unchanged polls
                await sync_to_async(session.update)("a", percent=60)
            elif "running 60" in chunk:
                await sync_to_async(session.complete)("a")

    await asyncio.wait_for(drive(), 20)
    progress = [c for c in seen if c != sse.HEARTBEAT]
    assert progress == [
        "id: 100000000000000\nretry: 1500\ndata: running 10\n\n",
        "id: 100000000000001\ndata: running 60\n\n",
        "id: 100000000000002\ndata: complete 100\n\n",
        "event: done\nid: 100000000000003\ndata: done\n\n",
    ]


async def test_async_vanished_session_ends(fast: str) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=30)
    stream = sse_stream(session, poll_interval=0.01)
    first = await asyncio.wait_for(anext(stream), 10)
    assert first.startswith("id: ") and "retry: 1500" in first
    await sync_to_async(session.delete)()
    # Still looked for during MISSING_GRACE, then said to be gone.
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": fast, "MISSING_GRACE": 0.2}):
        rest = await collect(stream)
    assert rest[-1].startswith("event: done\n")
    assert "no longer available" in rest[-2]


async def test_async_exception_is_logged_and_safe(
    fast: str, caplog: pytest.LogCaptureFixture
) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "A"})

    def broken(snapshot: SessionSnapshot) -> str:
        raise ValueError("internal detail")

    with caplog.at_level(logging.ERROR, logger="progress_ui"):
        text = "".join(await collect(sse_stream(session, render=broken)))
    assert "event: progress-error\n" in text
    assert "data: Something went wrong.\n" in text
    assert text.endswith("data: done\n\n")
    assert "internal detail" not in text
    assert any(r.exc_info for r in caplog.records if r.name == "progress_ui")
