"""Hostile clients and odd deployments (each test pins a hole an attack run found)."""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import caches
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from progress_ui import ProgressError, ProgressSession
from progress_ui.core.validation import log_id
from progress_ui.render.components import render_partials
from tests.support.cache_counter import CacheCounter

NAMES = ["sse", "ndjson", "json", "fragment"]
IGNORED_HEADERS = {"date", "content-length"}

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast(locmem: str) -> Any:
    with override_settings(
        PROGRESS_UI={"CACHE_ALIAS": "locmem", "COMPLETING_DURATION": 0.0, "MAX_STREAM_DURATION": 5}
    ):
        yield


PATHS = {"sse": "events", "ndjson": "stream", "json": "json", "fragment": "html"}


def url(name: str, session_id: str) -> str:
    return f"/progress/{session_id}/{PATHS[name]}/"


def headers(response: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in response.items() if k.lower() not in IGNORED_HEADERS}


def finished(**create: Any) -> ProgressSession:
    session = ProgressSession.create({"a": "A"}, **create)
    session.complete("a")
    return session


# 1. existence oracle -----------------------------------------------------------------


@pytest.mark.parametrize("name", [*NAMES, "page"])
def test_a_foreign_id_answers_exactly_like_a_missing_one(name: str) -> None:
    alice = User.objects.create_user("alice", password="x")
    bob = User.objects.create_user("bob", password="x")
    foreign = finished(owner=f"user:{alice.pk}")
    as_bob = Client()
    as_bob.force_login(bob)

    def get(session_id: str) -> Any:
        if name == "page":
            return as_bob.get(f"/tests-page/{session_id}/")
        return as_bob.get(url(name, session_id))

    answers = [get(foreign.session_id), get("C" * 32), get("not-even-an-id")]
    assert [a.status_code for a in answers] == [404, 404, 404]
    assert len({a.content for a in answers}) == 1
    assert headers(answers[0]) == headers(answers[1]) == headers(answers[2])
    assert "private" in answers[0]["Cache-Control"] and answers[0]["Vary"] == "Cookie"


def test_foreign_and_missing_lookups_do_the_same_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """No timing oracle: a foreign id and a missing one cost the same database
    queries and the same cache reads (the attack run measured a 2 ms gap when
    only one path loaded the Django session). Counted, not timed: a timed
    comparison of medians failed on a busy machine whatever the code did."""
    alice = User.objects.create_user("alice", password="x")
    bob = User.objects.create_user("bob", password="x")
    foreign = finished(owner=f"user:{alice.pk}")
    as_bob = Client()
    as_bob.force_login(bob)
    counter = CacheCounter(caches["locmem"], monkeypatch.setattr)

    def work(session_id: str) -> tuple[list[str], dict[str, int]]:
        counter.reset()
        with CaptureQueriesContext(connection) as queries:
            assert as_bob.get(url("json", session_id)).status_code == 404
        # The same statements, whatever the ids and keys in them.
        shapes = [re.sub(r"'[^']*'|\b\d+\b", "?", q["sql"]) for q in queries.captured_queries]
        return shapes, dict(counter.calls)

    work(foreign.session_id)  # warm up (first-use queries)
    assert work(foreign.session_id) == work("D" * 32)


# 2, 3. numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("current", math.nan),
        ("current", math.inf),
        ("total", -math.inf),
        ("percent", math.nan),
        ("current", 10**400),
        ("percent", 10**400),
        ("total", 1e300),
        ("current", True),
    ],
)
def test_non_finite_and_huge_numbers_are_refused_and_change_nothing(field: str, value: Any) -> None:
    session = ProgressSession.create({"a": "A"})
    session.update("a", current=3, total=10)
    before = session.to_dict()
    with pytest.raises(ValueError, match=field):
        session.update("a", **{field: value})
    after = session.to_dict()
    assert after == before
    json.dumps(after, allow_nan=False)  # still valid JSON for browsers
    assert Client().get(url("json", session.session_id)).status_code == 200


# 4-6. anonymous ownership ----------------------------------------------------------------


def test_a_stale_anonymous_cookie_reads_nothing_after_logout() -> None:
    client = Client()
    session_id = client.post("/tests-start-owned/").content.decode()
    assert client.get(url("json", session_id)).status_code == 200
    old_cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    client.post("/tests-logout/")  # flushes the Django session
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = old_cookie
    assert replay.get(url("json", session_id)).status_code == 404


@override_settings(
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ]
)
def test_a_planted_session_cookie_does_not_reach_the_victims_progress() -> None:
    # Without the auth middleware nothing rotates the key at login: the attacker
    # plants a real session key of theirs in the victim's browser.
    planted = SessionStore()
    planted.create()
    victim, attacker = Client(), Client()
    for client in (victim, attacker):
        client.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key or ""
    session_id = victim.post("/tests-start-owned/").content.decode()
    assert victim.get(url("json", session_id)).status_code == 200
    assert victim.cookies[settings.SESSION_COOKIE_NAME].value != planted.session_key
    assert attacker.get(url("json", session_id)).status_code == 404


@override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies")
def test_signed_cookie_visitors_in_the_same_second_stay_apart() -> None:
    first, second = Client(), Client()
    ids = [c.post("/tests-start-owned/").content.decode() for c in (first, second)]
    assert first.get(url("json", ids[0])).status_code == 200
    assert second.get(url("json", ids[1])).status_code == 200
    assert first.get(url("json", ids[1])).status_code == 404
    assert second.get(url("json", ids[0])).status_code == 404


# 7. a broken ProgressError ----------------------------------------------------------------


class BrokenMessage(ProgressError):
    def __str__(self) -> str:
        raise RuntimeError("cannot format")


def test_a_progress_error_whose_str_raises_still_ends_the_task() -> None:
    session = ProgressSession.create({"a": "A"})

    def work() -> None:
        raise BrokenMessage()

    task = session.add_sequential("a", work)
    assert isinstance(task.exception, BrokenMessage)
    snapshot = session.to_dict()["tasks"]["a"]
    assert (snapshot["status"], snapshot["message"]) == ("error", "Something went wrong.")


# 8. caching headers -----------------------------------------------------------------------


def test_every_owner_dependent_answer_is_private_and_uncacheable() -> None:
    client = Client()
    session_id = client.post("/tests-start-owned/").content.decode()
    answers = [client.get(url(name, session_id)) for name in NAMES]
    answers.append(client.get(f"/tests-page/{session_id}/"))
    answers.append(client.post(f"/progress/{session_id}/cancel/"))
    answers.append(client.get(url("json", "E" * 32)))
    for answer in answers:
        cache_control = set(answer["Cache-Control"].split(", "))
        assert {"private", "no-store"} <= cache_control, (answer, cache_control)
        assert "Cookie" in answer["Vary"], answer


# 9. bounded answers -----------------------------------------------------------------------


def test_one_session_costs_a_bounded_message() -> None:
    # The worst a session can hold: most tasks, longest names and messages,
    # every character one that HTML escapes to five or six bytes.
    hostile = '<&"' * 200
    tasks = {f"t{n}": hostile for n in range(100)}
    with pytest.raises(ValueError, match="MAX_SESSION_TEXT"):
        ProgressSession.create(tasks)  # 100 x 200 characters of names: over budget
    tasks = {f"t{n}": hostile[:100] for n in range(100)}  # 10,000: the budget
    session = ProgressSession.create(tasks)
    for task_id in tasks:
        session.update(task_id, current=1, total=3, message=hostile)
    message = str(render_partials(session.to_dict())).encode()
    assert len(session.to_dict()["tasks"]["t1"]["message"]) <= 100
    assert len(message) < 250_000, len(message)  # 476 KB before the budget


# 11. logs -------------------------------------------------------------------------------


def test_session_ids_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    session = ProgressSession.create({"a": "A"})

    def work() -> None:
        raise RuntimeError("internal")

    with caplog.at_level(logging.INFO):
        session.add_sequential("a", work)
        Client().get(url("json", session.session_id + "x"))
        alice = User.objects.create_user("alice", password="x")
        foreign = finished(owner=f"user:{alice.pk}")
        Client().get(url("json", foreign.session_id))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert session.session_id not in text and foreign.session_id not in text
    assert log_id(session.session_id) in text
    assert not [r for r in caplog.records if r.name == "django.request"]
