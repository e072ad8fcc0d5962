"""The staff page (``progress_ui:staff``), its permission, the admin link, and
the session index it lists, on every cache."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings

from progress_ui import ProgressSession
from progress_ui.engine import listing, store
from progress_ui.engine.store import index

IGNORED_HEADERS = {"date", "expires", "content-length"}
MISSING = "C" * 32
#: What an empty cell shows (an en dash).
NOTHING = "\u2013"
FAST = {"COMPLETING_DURATION": 0.0, "MAX_STREAM_DURATION": 5}

pytestmark = pytest.mark.django_db(transaction=True)


def use(alias: str, **extra: Any) -> Any:
    return override_settings(PROGRESS_UI={"CACHE_ALIAS": alias, **FAST, **extra})


@pytest.fixture
def any_cache(backend: str) -> Iterator[str]:
    """Each cache in turn: LocMem, file, database, Redis."""
    with use(backend):
        yield backend


def headers(response: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in response.items() if k.lower() not in IGNORED_HEADERS}


def permitted(name: str = "operator", **extra: Any) -> User:
    user = User.objects.create_user(name, password="x", **extra)
    user.user_permissions.add(Permission.objects.get(codename="manage_progress_sessions"))
    return user


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def visitors() -> dict[str, User | None]:
    return {
        "anonymous": None,
        "plain user": User.objects.create_user("plain", password="x"),
        "staff without the permission": User.objects.create_user(
            "staffer", password="x", is_staff=True
        ),
    }


# -- who sees it -----------------------------------------------------------------------


def test_strangers_get_the_404_of_a_missing_session(locmem: str) -> None:
    with use(locmem):
        foreign = ProgressSession.create({"a": "A"}, owner="user:999")
        for who, user in visitors().items():
            client = client_for(user)
            missing = client.get(f"/progress/{MISSING}/json/")
            answers = {
                "staff page": client.get("/progress/staff/"),
                "staff page, 2nd page": client.get("/progress/staff/?page=2"),
                "its live rows": client.get("/progress/staff/?live=1&page=1"),
                "a session's staff page": client.get(f"/progress/staff/{foreign.session_id}/"),
                "its json": client.get(f"/progress/{foreign.session_id}/json/"),
                "its fragment": client.get(f"/progress/{foreign.session_id}/html/"),
                "a missing session's staff page": client.get(f"/progress/staff/{MISSING}/"),
            }
            for what, answer in answers.items():
                assert answer.status_code == 404, (who, what)
                assert answer.content == missing.content, (who, what)
                assert headers(answer) == headers(missing), (who, what)
                assert foreign.session_id.encode() not in answer.content
            cancel = client.post(f"/progress/{foreign.session_id}/cancel/")
            assert cancel.status_code == 404, who
        assert foreign.to_dict()["status"] == "pending"  # nobody cancelled it


@pytest.mark.parametrize("who", ["permission", "superuser"])
def test_holders_see_every_session_and_can_open_it(who: str, locmem: str) -> None:
    with use(locmem):
        owner = User.objects.create_user("alice", password="x")
        foreign = ProgressSession.create({"a": "Import"}, owner=f"user:{owner.pk}")
        foreign.update("a", percent=30)
        if who == "superuser":
            user = User.objects.create_superuser("root", password="x")
        else:
            user = permitted()
        client = client_for(user)
        page = client.get("/progress/staff/")
        assert page.status_code == 200
        assert "private" in page["Cache-Control"] and "no-store" in page["Cache-Control"]
        html = page.content.decode()
        assert foreign.session_id in html and "alice" in html and "Import" in html
        opened = client.get(f"/progress/staff/{foreign.session_id}/")
        assert opened.status_code == 200
        assert 'class="pui-cancel"' in opened.content.decode()  # with Cancel
        # The package's own endpoints let holders read a stranger's session.
        assert client.get(f"/progress/{foreign.session_id}/json/").status_code == 200
        missing = client.get(f"/progress/staff/{MISSING}/")
        assert missing.status_code == 404
        assert headers(missing) == headers(client_for(None).get(f"/progress/staff/{MISSING}/"))


def test_a_permitted_user_cancels_through_the_cancel_endpoint_with_csrf(locmem: str) -> None:
    with use(locmem):
        session = ProgressSession.create({"a": "A"}, owner="user:999")
        session.start("a")
        client = Client(enforce_csrf_checks=True)
        client.force_login(permitted())
        # Without the token: refused, nothing cancelled.
        assert client.post(f"/progress/{session.session_id}/cancel/").status_code == 403
        assert session.to_dict()["status"] == "running"
        staff_url = f"/progress/staff/{session.session_id}/"
        opened = client.get(staff_url, headers={"HX-Request": "true"})
        body = opened.content.decode()
        assert body.lstrip().startswith("<section")  # the component alone, for htmx
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body)
        assert token is not None
        answer = client.post(
            f"/progress/{session.session_id}/cancel/",
            {"csrfmiddlewaretoken": token.group(1)},
            headers={"HX-Request": "true"},
        )
        assert answer.status_code == 200
        assert session.to_dict()["status"] == "cancelled"


async def test_async_access_lets_holders_read_any_session(locmem: str) -> None:
    """Under ASGI the stream views ask ``aget_readable_session``."""
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    with use(locmem):
        session = await ProgressSession.acreate({"a": "A"}, owner="user:999")
        await session.acomplete("a")
        user = await sync_to_async(permitted)()
        plain = await sync_to_async(User.objects.create_user)("plain", password="x")
        for who, expected in ((user, 200), (plain, 404)):
            client = AsyncClient()
            await client.aforce_login(who)
            answer = await client.get(f"/progress/{session.session_id}/events/")
            assert answer.status_code == expected
            if expected == 200:
                body = b"".join([chunk async for chunk in answer.streaming_content])
                assert b"event: done" in body


@pytest.fixture
def admin_site() -> Iterator[None]:
    apps = [*settings.INSTALLED_APPS, "django.contrib.admin", "django.contrib.messages"]
    # (django-cotton has set the loaders in OPTIONS: keep them.)
    options = settings.TEMPLATES[0]["OPTIONS"]
    processors = [
        *options["context_processors"],
        "django.contrib.messages.context_processors.messages",
    ]
    options = {**options, "context_processors": processors}
    templates = [{**settings.TEMPLATES[0], "OPTIONS": options}]
    with override_settings(
        INSTALLED_APPS=apps,
        ROOT_URLCONF="tests.support.urls_admin",
        TEMPLATES=templates,
        MIDDLEWARE=[
            *settings.MIDDLEWARE,
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
    ):
        call_command("migrate", "admin", verbosity=0)  # its index reads the admin log
        yield


def test_the_admin_index_links_to_the_staff_page_for_holders_only(
    admin_site: None, locmem: str
) -> None:
    holder = client_for(permitted("holder", is_staff=True))
    index_page = holder.get("/admin/").content.decode()
    assert "Progress sessions" in index_page
    link = "/admin/progress_ui/progresssessions/"
    assert f'href="{link}"' in index_page
    answer = holder.get(link)
    assert answer.status_code == 302 and answer["Location"] == "/progress/staff/"
    # No table behind it: adding, changing or deleting is not there.
    assert holder.get(link + "add/").status_code == 404
    assert holder.get(link + "1/change/").status_code == 404

    staffer = client_for(User.objects.create_user("staffer", password="x", is_staff=True))
    assert "Progress sessions" not in staffer.get("/admin/").content.decode()
    assert staffer.get(link).status_code == 403


# -- what it shows ----------------------------------------------------------------------


def test_rows_newest_first_with_owner_status_percent_time_left(locmem: str) -> None:
    with use(locmem):
        alice = User.objects.create_user("alice", password="x")
        failed = ProgressSession.create({"a": "Send mail"}, owner="browser:abc")
        failed.error("a", "SMTP refused")
        complete = ProgressSession.create({"a": "Report"})
        complete.complete("a")
        running = ProgressSession.create({"a": "Import", "b": "Prices"}, owner=f"user:{alice.pk}")
        running.update("a", current=100, total=1000)
        html = client_for(permitted()).get("/progress/staff/").content.decode()
    rows = re.findall(r'<tr class="pui-staff__row" data-progress-session="([^"]+)">', html)
    assert rows == [running.session_id, complete.session_id, failed.session_id]
    cells = [
        [re.sub(r"<[^>]+>", " ", cell).split() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r'<tr class="pui-staff__row".*?</tr>', html, re.S)
    ]
    assert cells[0][0] == ["alice"] and cells[0][1] == ["Import,", "Prices"]
    assert cells[0][2] == ["In", "progress"]
    assert cells[1][0] == ["Anyone", "with", "the", "link"]
    assert cells[2][0] == ["Anonymous", "visitor"]
    assert cells[2][2] == ["Failed", "SMTP", "refused"]
    assert [c[3] for c in cells] == [["5%"], ["100%"], ["0%"]]
    assert [c[4] for c in cells] == [[NOTHING]] * 3  # running: no estimate yet


def partials(html: str) -> dict[str, str]:
    """The ``<hx-partial>`` elements of an answer: id -> inner HTML."""
    found = re.findall(r'<hx-partial id="([^"]+)" hx-swap="[^"]+">(.*?)</hx-partial>', html, re.S)
    return dict(found)


def test_rows_refresh_in_place_while_a_session_runs(locmem: str) -> None:
    """The page polls its live answer (``?live=1``) while a row runs: every row's
    status, percent and time left as partials, whose ids are the page's cells;
    once every row has settled the answer empties the poller."""
    with use(locmem):
        done = ProgressSession.create({"a": "Report"})
        done.complete("a")
        running = ProgressSession.create({"a": "Import", "b": "Prices"})
        running.update("a", current=10, total=100)
        client = client_for(permitted())
        page = client.get("/progress/staff/").content.decode()
        poll = (
            '<div hx-get="/progress/staff/?live=1&amp;page=1" hx-trigger="every 5s" hx-swap="none">'
        )
        assert poll in page
        running.update("a", current=80, total=100, message="Nearly there")
        live = client.get("/progress/staff/?live=1&page=1")
        assert live.status_code == 200 and "no-store" in live["Cache-Control"]
        cells = partials(live.content.decode())
        for session in (running, done):
            for part in ("status", "percent", "left"):
                region = f"pui-staff-{session.session_id}-{part}"
                assert f'id="{region}"' in page  # the page's cell the partial replaces
                assert region in cells
        assert cells[f"pui-staff-{running.session_id}-percent"] == "40%"
        status = cells[f"pui-staff-{running.session_id}-status"]
        assert "In progress" in status and "Nearly there" in status
        assert cells[f"pui-staff-{done.session_id}-percent"] == "100%"
        assert "pui-staff-poller" not in cells  # still running: polling goes on
        running.complete("a")
        running.error("b", "Prices <b>failed</b>")
        settled = partials(client.get("/progress/staff/?live=1&page=1").content.decode())
        assert settled["pui-staff-poller"] == ""  # polling stops
        failed = settled[f"pui-staff-{running.session_id}-status"]
        assert "Failed" in failed and "Prices &lt;b&gt;failed&lt;/b&gt;" in failed
        assert "?live=1" not in client.get("/progress/staff/").content.decode()


def test_hostile_text_is_escaped_and_bounded(locmem: str) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    with use(locmem):
        session = ProgressSession.create({"a": evil * 3, "b": "B"}, owner="x:" + evil * 100)
        session.error("a", evil * 50)
        html = client_for(permitted()).get("/progress/staff/").content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html
    row = re.search(r'<tr class="pui-staff__row".*?</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(0), re.S)
    owner = cells[0].replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    assert len(owner.replace("&#x27;", "'")) <= 80
    assert len(re.sub(r"&[a-z#0-9]+;", "_", cells[2])) < 400  # status, and the message cut


def test_pages_of_fifty(locmem: str) -> None:
    with use(locmem):
        made = [ProgressSession.create({"a": "A"}).session_id for _ in range(55)]
        client = client_for(permitted())

        def ids(query: str) -> list[str]:
            html = client.get("/progress/staff/" + query).content.decode()
            return re.findall(r'data-progress-session="([^"]+)"', html)

        first, second = ids(""), ids("?page=2")
    assert first == made[::-1][:50] and second == made[::-1][50:]
    assert ids("?page=nonsense") == first and ids("?page=99") == second


def test_a_cache_outage_answers_503_without_a_traceback() -> None:
    with use("unreachable"):
        answer = client_for(permitted()).get("/progress/staff/")
    assert answer.status_code == 503
    assert b"Traceback" not in answer.content


# -- the index, on every cache ----------------------------------------------------------


def test_listing_shows_live_and_finished_sessions_newest_first(any_cache: str) -> None:
    """On LocMemCache the index lives in this process (as the sessions do): the
    listing shows what this process created, which is all there is."""
    done = ProgressSession.create({"a": "A"})
    done.complete("a")
    running = ProgressSession.create({"a": "A"})
    running.start("a")
    gone = ProgressSession.create({"a": "A"})
    gone.delete()
    child = running.child("a", {"x": "X"})
    listed = [entry.session_id for entry in listing.recent_sessions()]
    # A deleted session is skipped; a child session shows in its parent's task.
    assert listed == [running.session_id, done.session_id]
    assert child.session_id not in listed
    assert [s.status for s in listing.list_sessions()] == ["running", "complete"]


#: Lifetimes of the expiry tests (seconds): at least 2, because the database
#: cache stores expiry to the second, so a lifetime of 1 s can end at once.
SHORT = 2


def test_an_expired_session_leaves_the_listing(any_cache: str) -> None:
    with use(any_cache, TTL=SHORT, FINISHED_TTL=SHORT):
        session = ProgressSession.create({"a": "A"})
        assert [e.session_id for e in listing.recent_sessions()] == [session.session_id]
        time.sleep(SHORT + 1.1)
        assert store.indexed() != []  # its entry outlives it ...
        assert listing.recent_sessions() == []  # ... and is skipped


def test_entries_expire(any_cache: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index, "ENTRY_LIFETIME", SHORT)
    ProgressSession.create({"a": "A"})
    assert len(store.indexed()) == 1
    time.sleep(SHORT + 1.1)
    assert store.indexed() == []


def test_the_index_keeps_the_newest_within_its_size(any_cache: str) -> None:
    with use(any_cache, INDEX_SIZE=4):  # at most PROBES slots: a new one sees them all
        made = [ProgressSession.create({"a": "A"}).session_id for _ in range(10)]
        assert [e.session_id for e in store.indexed()] == made[::-1][:4]
    with use(any_cache, INDEX_SIZE=32):
        made = [ProgressSession.create({"a": "A"}).session_id for _ in range(100)]
        found = [e.session_id for e in store.indexed()]
        assert len(found) <= 32 and found[0] == made[-1]
        slots = [index.slot_key(n) for n in range(64)]
        assert len(store.backend().get_many(slots)) <= 32  # nothing beyond its slots


def test_no_index_when_its_size_is_zero(any_cache: str) -> None:
    with use(any_cache, INDEX_SIZE=0):
        ProgressSession.create({"a": "A"})
        assert store.indexed() == [] and not listing.supports_listing()
    assert store.indexed() == []  # nothing was written meanwhile


def test_concurrent_creators_lose_no_entry(shared_backend: str) -> None:
    """Threads creating sessions at once all get an entry while the index has room
    (Redis and the database cache, whose ``add`` is atomic; nearly all on the file
    cache)."""
    made: list[str] = []
    start = threading.Barrier(6)

    def create_some() -> None:
        start.wait()
        try:
            # 72 sessions, 3 keys each: below the 300 entries at which the file and
            # database caches cull (their default MAX_ENTRIES).
            for _ in range(12):
                made.append(ProgressSession.create({"a": "A"}).session_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=create_some) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 72
    listed = {e.session_id for e in store.indexed()}
    assert listed <= set(made)
    lost = set(made) - listed
    if shared_backend == "file":
        # FileBasedCache.add is has_key() then set(): two writers that pick the same
        # free slot at once may both "add" it (documented; about one run in five
        # loses one entry here).
        assert len(lost) <= 2, lost
    else:
        assert lost == set()


async def test_async_create_enters_the_index(any_cache: str) -> None:
    from asgiref.sync import sync_to_async

    session = await ProgressSession.acreate({"a": "A"})
    assert [e.session_id for e in await sync_to_async(store.indexed)()] == [session.session_id]


def test_progress_list_in_process(any_cache: str, capsys: pytest.CaptureFixture[str]) -> None:
    session = ProgressSession.create({"a": "A"}, owner="user:3")
    call_command("progress", "list")
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[0] == session.session_id and lines[1].split()[-1] == "user:3"
    assert lines[-1] == "1 session."


@pytest.mark.parametrize("language", ["de", "fr", "es"])
def test_the_staff_pages_are_translated(language: str, locmem: str) -> None:
    with use(locmem), override_settings(LANGUAGE_CODE=language):
        session = ProgressSession.create({"a": "A"})
        client = client_for(permitted())
        listed = client.get("/progress/staff/").content.decode()
        opened = client.get(f"/progress/staff/{session.session_id}/").content.decode()
    english = ["Owner", "Tasks", "Time left", "Started", "Open", "Progress sessions"]
    assert f'lang="{language}"' in listed
    assert [word for word in english if f">{word}<" in listed] == []
    assert "Anyone with the link" not in listed
    assert "All progress sessions" not in opened and "Progress session<" not in opened
