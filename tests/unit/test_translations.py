"""The German, French and Spanish catalogs in ``progress_ui/locale``: the
component and standalone bars render translated in every state, every message
is translated, the compiled ``.mo`` files match the ``.po`` sources, and the
catalogs list exactly the messages the code and templates mark."""

from __future__ import annotations

import ast
import gettext
import html
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from django.urls import include, path
from django.utils import translation

from progress_ui import ProgressSession
from progress_ui.conf import ProgressSettings
from progress_ui.core import messages
from progress_ui.core.snapshot import SessionSnapshot, TaskSnapshot
from progress_ui.engine.work import INTERRUPTED_MESSAGE
from progress_ui.render import display
from progress_ui.render.components import render_bar, render_session
from progress_ui.render.display import own_text

urlpatterns = [path("progress/", include("progress_ui.urls"))]
pytestmark = pytest.mark.urls(__name__)

ROOT = Path(__file__).resolve().parents[2]
LOCALE_DIR = ROOT / "progress_ui" / "locale"
#: The languages with rendering checks below; every catalog gets the catalog checks.
LANGUAGES = ["de", "fr", "es"]
CATALOGS = sorted(p.parent.parent.name for p in LOCALE_DIR.glob("*/LC_MESSAGES/django.po"))
#: What makemessages scans: the package and the templates the wheel ships.
SOURCES = ["progress_ui"]

SID = "A" * 31 + "b"


def task(**kw: object) -> TaskSnapshot:
    base = TaskSnapshot(
        name="Import",
        status="running",
        percent=40,
        message="",
        current=None,
        total=None,
        simulated=False,
    )
    return {**base, **kw}  # type: ignore[typeddict-item]


def snapshot(
    status: str = "running", expired: bool = False, **tasks: TaskSnapshot
) -> SessionSnapshot:
    tasks = tasks or {"one": task()}
    return SessionSnapshot(
        session_id=SID,
        status=status,
        overall_percent=sum(t["percent"] for t in tasks.values()) // len(tasks),
        tasks=dict(tasks),
        expired=expired,
    )


ATTR_RE = re.compile(r'\b(?:aria-valuetext|aria-label)="([^"]*)"')
TAG_RE = re.compile(r"<[^>]*>")


def shown_text(markup: object) -> str:
    """What a user sees or hears: text content plus the ARIA labels and values."""
    source = str(markup)
    parts = [*ATTR_RE.findall(source), TAG_RE.sub(" ", source)]
    # Only ASCII whitespace collapses: French keeps its no-break space before ":".
    return re.sub(r"[ \t\r\n]+", " ", html.unescape(" ".join(parts)))


#: English UI words that must not survive in a translated render (matched as
#: whole words, case-sensitively; test task names and messages avoid them).
ENGLISH = [
    "Waiting",
    "In progress",
    "Complete",
    "Failed",
    "failed",
    "Cancelled",
    "Cancel",
    "Expired",
    "percent",
    "of",
    "task",
    "tasks",
    "Refresh",
    "Overall progress",
    "no longer available",
]


def assert_no_english(text: str) -> None:
    found = [word for word in ENGLISH if re.search(rf"\b{re.escape(word)}\b", text)]
    assert not found, f"English left in {text!r}: {found}"


# -- expected renders, per language ------------------------------------------------


@dataclass(frozen=True)
class Expected:
    waiting: str
    running: str
    complete: str
    failed: str
    cancelled: str
    expired: str
    percent_40: str
    counts: str
    waiting_to_start: str
    finished_0_of_2: str
    finished_0_of_1: str
    done_0_of_2: str
    all_2_complete: str
    complete_one: str
    failed_single: str
    failed_named: str
    failed_1_of_2: str
    cancelled_1_of_1: str
    open_result: str
    next_page: str
    cancelled_sentence: str
    gone: str
    overall: str
    cancel: str
    refresh: str
    title: str
    value_text_running: str


EXPECTED = {
    "de": Expected(
        waiting="Wartet",
        running="In Bearbeitung",
        complete="Abgeschlossen",
        failed="Fehlgeschlagen",
        cancelled="Abgebrochen",
        expired="Abgelaufen",
        percent_40="40 Prozent",
        counts="120 von 300",
        waiting_to_start="Wartet auf den Start.",
        finished_0_of_2="0 von 2 Aufgaben beendet.",
        finished_0_of_1="0 von 1 Aufgabe beendet.",
        done_0_of_2="0 von 2 Aufgaben erledigt",
        all_2_complete="Alle 2 Aufgaben abgeschlossen.",
        complete_one="Abgeschlossen.",
        failed_single="Fehlgeschlagen.",
        failed_named="Import fehlgeschlagen.",
        failed_1_of_2="1 von 2 Aufgaben fehlgeschlagen",
        cancelled_1_of_1="1 von 1 Aufgabe abgebrochen",
        open_result="Ergebnis öffnen",
        next_page="Weiter",
        cancelled_sentence="Abgebrochen.",
        gone="Dieser Fortschritt ist nicht mehr verfügbar.",
        overall="Gesamtfortschritt",
        cancel="Abbrechen",
        refresh="Neu laden, um den aktuellen Fortschritt zu sehen",
        title="Fortschritt",
        value_text_running="40 Prozent, 120 von 300, In Bearbeitung",
    ),
    "fr": Expected(
        waiting="En attente",
        running="En cours",
        complete="Terminé",
        failed="Échec",
        cancelled="Annulé",
        expired="Expiré",
        percent_40="40 pour cent",
        counts="120 sur 300",
        waiting_to_start="En attente de démarrage.",
        finished_0_of_2="0 sur 2 tâches terminées.",
        finished_0_of_1="0 sur 1 tâche terminée.",
        done_0_of_2="0 sur 2 tâches effectuées",
        all_2_complete="Les 2 tâches sont terminées.",
        complete_one="Terminé.",
        failed_single="Échec.",
        failed_named="Échec de Import.",
        failed_1_of_2="1 sur 2 tâches en échec",
        cancelled_1_of_1="1 sur 1 tâche annulée",
        open_result="Ouvrir le résultat",
        next_page="Continuer",
        cancelled_sentence="Annulé.",
        gone="Cette progression n\u2019est plus disponible.",
        overall="Progression globale",
        cancel="Annuler",
        refresh="Actualiser pour voir la progression actuelle",
        title="Progression",
        value_text_running="40 pour cent, 120 sur 300, En cours",
    ),
    "es": Expected(
        waiting="En espera",
        running="En curso",
        complete="Completado",
        failed="Fallido",
        cancelled="Cancelado",
        expired="Caducado",
        percent_40="40 por ciento",
        counts="120 de 300",
        waiting_to_start="Esperando para empezar.",
        finished_0_of_2="0 de 2 tareas finalizadas.",
        finished_0_of_1="0 de 1 tarea finalizada.",
        done_0_of_2="0 de 2 tareas completadas",
        all_2_complete="Se han completado las 2 tareas.",
        complete_one="Completado.",
        failed_single="Ha fallado.",
        failed_named="Import ha fallado.",
        failed_1_of_2="1 de 2 tareas han fallado",
        cancelled_1_of_1="1 de 1 tarea cancelada",
        open_result="Abrir el resultado",
        next_page="Continuar",
        cancelled_sentence="Cancelado.",
        gone="Este progreso ya no está disponible.",
        overall="Progreso general",
        cancel="Cancelar",
        refresh="Actualizar para ver el progreso más reciente",
        title="Progreso",
        value_text_running="40 por ciento, 120 de 300, En curso",
    ),
}


def render_in(lang: str, snap: SessionSnapshot, **kw: object) -> str:
    with translation.override(lang):
        return shown_text(render_session(snap, **kw))  # type: ignore[arg-type]


def bar_in(lang: str, **kw: object) -> str:
    with translation.override(lang):
        return shown_text(render_bar(name="Import", **kw))  # type: ignore[arg-type]


# -- the component, state by state ---------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_pending_session(lang: str) -> None:
    e = EXPECTED[lang]
    text = render_in(lang, snapshot("pending", one=task(status="pending", percent=0)))
    assert e.waiting in text
    assert e.waiting_to_start in text
    assert_no_english(text)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_running_session_with_counts(lang: str) -> None:
    e = EXPECTED[lang]
    snap = snapshot(
        "running",
        a=task(current=120, total=300, percent=40),
        b=task(name="Export", status="pending", percent=0),
    )
    text = render_in(lang, snap, cancellable=True)
    for expected in (
        e.running,
        e.waiting,
        e.counts,
        e.percent_40,
        e.value_text_running,
        e.finished_0_of_2,
        e.done_0_of_2,
        e.overall,
        e.cancel,
        e.refresh,
    ):
        assert expected in text, (expected, text)
    assert_no_english(text)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_single_task_uses_the_singular(lang: str) -> None:
    e = EXPECTED[lang]
    text = render_in(lang, snapshot("running"))
    assert e.finished_0_of_1 in text
    assert_no_english(text)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_complete_session(lang: str) -> None:
    e = EXPECTED[lang]
    done = task(status="complete", percent=100)
    several = render_in(lang, snapshot("complete", a=done, b={**done, "name": "Export"}))
    assert e.complete in several
    assert e.all_2_complete in several
    assert_no_english(several)
    one = render_in(lang, snapshot("complete", a=done))
    assert e.complete_one in one
    assert_no_english(one)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_failed_session(lang: str) -> None:
    e = EXPECTED[lang]
    failed = task(status="error", percent=60, message="Disk full")
    one = render_in(lang, snapshot("error", a=failed))
    assert e.failed in one
    assert e.failed_single in one
    assert_no_english(one)
    several = render_in(
        lang, snapshot("error", a=failed, b=task(name="Export", status="complete", percent=100))
    )
    assert e.failed_named in several
    assert e.failed_1_of_2 in several
    assert several.count("Disk full") == 1  # under the bar only
    assert_no_english(several)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_cancelled_session(lang: str) -> None:
    e = EXPECTED[lang]
    text = render_in(lang, snapshot("cancelled", a=task(status="cancelled", percent=30)))
    assert e.cancelled in text
    assert e.cancelled_sentence in text
    assert e.cancelled_1_of_1 in text
    assert_no_english(text)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_result_link_and_the_next_page(lang: str) -> None:
    e = EXPECTED[lang]
    done = task(status="complete", percent=100, result_url="/r.csv")
    text = render_in(lang, snapshot("complete", a=done), success_url="/next/")
    assert e.open_result in text and e.next_page in text
    assert_no_english(text)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_expired_session(lang: str) -> None:
    e = EXPECTED[lang]
    text = render_in(lang, snapshot("complete", expired=True, a=task(status="complete")))
    assert e.expired in text
    assert e.gone in text
    assert_no_english(text)


def test_english_stays_english() -> None:
    # The catalogs add languages; they do not change the source language.
    snap = snapshot("running", a=task(current=120, total=300), b=task(status="pending"))
    text = render_in("en", snap)
    assert "In progress" in text
    assert "120 of 300" in text
    assert "0 of 2 tasks finished." in text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_page_title(lang: str) -> None:
    from django.template.loader import render_to_string

    e = EXPECTED[lang]
    with translation.override(lang):
        page = render_to_string("progress_ui/page.html", {"progress_session": snapshot()})
    assert f"<title>{e.title}</title>" in page


# -- standalone bars -----------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_standalone_bar_in_every_state(lang: str) -> None:
    e = EXPECTED[lang]
    running = bar_in(lang, percent=40, current=120, total=300)
    assert e.value_text_running in running
    assert_no_english(running)
    for status, label in (
        ("pending", e.waiting),
        ("running", e.running),
        ("complete", e.complete),
        ("error", e.failed),
        ("cancelled", e.cancelled),
    ):
        text = bar_in(lang, status=status, percent=50)
        assert label in text, (status, text)
        assert_no_english(text)


# -- the catalogs --------------------------------------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)


def parse_po(po: Path) -> list[Entry]:
    """The active entries of a .po file (header included, obsolete ``#~`` left out)."""
    entries: list[Entry] = []
    current: Entry | None = None
    target: tuple[str, int] | None = None

    def append(value: str) -> None:
        assert current is not None and target is not None
        kind, index = target
        if kind == "msgstr":
            current.msgstr[index] = current.msgstr.get(index, "") + value
        elif kind == "msgid_plural":
            current.msgid_plural = (current.msgid_plural or "") + value
        else:
            current.msgid += value

    for line in po.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            current, target = None, None
            continue
        if line.startswith("#,"):
            if current is None:
                current = Entry()
                entries.append(current)
            current.flags |= {flag.strip() for flag in line[2:].split(",")}
            continue
        if line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if line.startswith('"'):
            append(ast.literal_eval(line))
            continue
        if current is None:
            current = Entry()
            entries.append(current)
        if keyword == "msgctxt":
            raise AssertionError(f"{po}: contexts are not expected")
        match = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
        if match:
            target = ("msgstr", int(match.group(1)))
        elif keyword == "msgstr":
            target = ("msgstr", 0)
        elif keyword in ("msgid", "msgid_plural"):
            target = (keyword, 0)
        else:
            raise AssertionError(f"{po}: unexpected line {line!r}")
        if keyword == "msgid_plural":
            current.msgid_plural = ""
        append(ast.literal_eval(rest))
    return entries


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "django.po"


def header(entries: list[Entry]) -> dict[str, str]:
    first = entries[0]
    assert first.msgid == "", "the header comes first"
    assert "fuzzy" not in first.flags, "header still marked fuzzy"
    lines = [line.partition(":") for line in first.msgstr[0].splitlines() if line]
    return {key.strip(): value.strip() for key, _, value in lines}


PLACEHOLDER_RE = re.compile(r"%\((\w+)\)s")
#: The fields of a ``python-brace-format`` message (filled with ``str.format``).
FIELD_RE = re.compile(r"\{(\w*)\}")


@pytest.mark.parametrize("lang", CATALOGS)
def test_catalog_is_complete(lang: str) -> None:
    entries = parse_po(po_path(lang))
    meta = header(entries)
    assert meta["Language"] == lang
    assert meta["Content-Type"] == "text/plain; charset=UTF-8"
    plurals = re.match(r"nplurals=(\d+);", meta["Plural-Forms"])
    assert plurals, meta["Plural-Forms"]
    nplurals = int(plurals.group(1))
    messages = entries[1:]
    assert messages
    for entry in messages:
        assert "fuzzy" not in entry.flags, entry.msgid
        expected_forms = nplurals if entry.msgid_plural is not None else 1
        assert sorted(entry.msgstr) == list(range(expected_forms)), entry.msgid
        source_names = set(PLACEHOLDER_RE.findall(entry.msgid + (entry.msgid_plural or "")))
        for index, msgstr in entry.msgstr.items():
            assert msgstr.strip(), f"{lang}: untranslated {entry.msgid!r}"
            names = set(PLACEHOLDER_RE.findall(msgstr))
            # A plural form may drop the count ("Complete." for one task); it
            # must never use a placeholder the code does not pass.
            assert names <= source_names, (entry.msgid, msgstr)
            if entry.msgid_plural is None or index == nplurals - 1:
                assert names == source_names, (entry.msgid, msgstr)
            # A stray "%" would break the "%"-formatting the code applies.
            assert "%" not in PLACEHOLDER_RE.sub("", msgstr), (entry.msgid, msgstr)
            if "python-brace-format" in entry.flags:
                fields = set(FIELD_RE.findall(msgstr))
                assert fields == set(FIELD_RE.findall(entry.msgid)), (entry.msgid, msgstr)
                # A stray brace would break the str.format the display applies.
                assert "{" not in FIELD_RE.sub("", msgstr), (entry.msgid, msgstr)
                assert "}" not in FIELD_RE.sub("", msgstr), (entry.msgid, msgstr)


@pytest.mark.parametrize("lang", CATALOGS)
def test_mo_matches_po(lang: str) -> None:
    entries = parse_po(po_path(lang))
    expected: dict[object, str] = {}
    # msgfmt leaves POT-Creation-Date out of the compiled header.
    pot_date = re.compile(r"^POT-Creation-Date:.*\n", re.M)
    for entry in entries:
        if entry.msgid_plural is None:
            expected[entry.msgid] = entry.msgstr[0]
        else:
            for index, msgstr in entry.msgstr.items():
                expected[(entry.msgid, index)] = msgstr
    with open(po_path(lang).with_suffix(".mo"), "rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    # _catalog is how GNUTranslations exposes the whole table: plain msgids
    # for singular messages, (msgid, form) for plural ones, "" for the header.
    catalog = dict(compiled._catalog)  # type: ignore[attr-defined]
    catalog[""] = pot_date.sub("", catalog[""])
    expected[""] = pot_date.sub("", expected[""])
    assert catalog == expected, "recompile: msgfmt -o django.mo django.po"


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext (xgettext)")
def test_catalog_lists_every_marked_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run makemessages over a copy of exactly what ships (so demo/ and tests/
    # cannot leak in), then compare the message ids with the shipped catalogs.
    tree = tmp_path / "src"
    for source in SOURCES:
        shutil.copytree(
            ROOT / source, tree / source, ignore=shutil.ignore_patterns("__pycache__", "locale")
        )
    out = tmp_path / "locale"
    monkeypatch.chdir(tree)
    with override_settings(LOCALE_PATHS=[out]):
        call_command("makemessages", locale=["de"], no_obsolete=True, verbosity=0)
    fresh = {(e.msgid, e.msgid_plural) for e in parse_po(out / "de" / "LC_MESSAGES" / "django.po")}
    assert set(LANGUAGES) <= set(CATALOGS)
    for lang in CATALOGS:
        shipped = {(e.msgid, e.msgid_plural) for e in parse_po(po_path(lang))}
        assert shipped == fresh, (
            f"{lang}: catalog out of date; missing {sorted(map(str, fresh - shipped))}, "
            f"stale {sorted(map(str, shipped - fresh))} (re-run makemessages, see README)"
        )


# -- progress_ui's own messages in task records --------------------------------------

#: What progress_ui writes itself into a record (in English, whatever the
#: writer's language), and how each language shows it.
OWN_MESSAGES = {
    "The worker could not start this task.": {
        "de": "Der Worker-Prozess konnte diese Aufgabe nicht starten.",
        "fr": "Le processus de traitement n\u2019a pas pu démarrer cette tâche.",
        "es": "El proceso de trabajo no pudo iniciar esta tarea.",
    },
    "The worker stopped responding.": {
        "de": "Der Worker-Prozess reagiert nicht mehr.",
        "fr": "Le processus de traitement ne répond plus.",
        "es": "El proceso de trabajo dejó de responder.",
    },
    "Interrupted.": {"de": "Unterbrochen.", "fr": "Interrompu.", "es": "Interrumpido."},
    "Cancelled.": {"de": "Abgebrochen.", "fr": "Annulé.", "es": "Cancelado."},
    "Expired.": {"de": "Abgelaufen.", "fr": "Expiré.", "es": "Caducado."},
    "Something went wrong.": {
        "de": "Etwas ist schiefgelaufen.",
        "fr": "Une erreur s\u2019est produite.",
        "es": "Algo salió mal.",
    },
    "Retrying (attempt 2 of 4)\u2026": {
        "de": "Wird wiederholt (Versuch 2 von 4)\u2026",
        "fr": "Nouvelle tentative (essai 2 sur 4)\u2026",
        "es": "Reintentando (intento 2 de 4)\u2026",
    },
    "Retrying (attempt 13)\u2026": {
        "de": "Wird wiederholt (Versuch 13)\u2026",
        "fr": "Nouvelle tentative (essai 13)\u2026",
        "es": "Reintentando (intento 13)\u2026",
    },
}


def test_own_messages_are_the_ones_progress_ui_writes() -> None:
    # The table above covers every text the package stores itself, as written.
    from progress_ui.contrib.celery import ProgressTask

    defaults = ProgressSettings()
    written = {
        messages.JOB_NOT_STARTED,
        defaults.WORKER_LOST_MESSAGE,
        defaults.CANCELLED_MESSAGE,
        defaults.GENERIC_ERROR_MESSAGE,
        INTERRUPTED_MESSAGE,
        ProgressTask.progress_revoked_message,
        ProgressTask.progress_expired_message,
        ProgressTask.progress_retry_message.format(attempt=2, attempts=4),
        ProgressTask.progress_retry_message_unlimited.format(attempt=13),
    }
    assert written == set(OWN_MESSAGES)
    assert set(messages.TRANSLATED) | set(messages.TEMPLATES) <= {
        e.msgid for e in parse_po(po_path("de"))
    }


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("stored", list(OWN_MESSAGES))
def test_progress_uis_own_messages_are_shown_translated(lang: str, stored: str) -> None:

    shown = OWN_MESSAGES[stored][lang]
    failed = task(status="error", percent=0, message=stored)
    text = render_in(lang, snapshot("error", a=failed))
    assert shown in text
    assert stored not in text
    assert shown in bar_in(lang, status="error", message=stored)
    with translation.override(lang):
        assert own_text(stored) == shown


@pytest.mark.parametrize("stored", list(OWN_MESSAGES))
def test_progress_uis_own_messages_stay_english_in_english(stored: str) -> None:
    failed = task(status="error", percent=0, message=stored)
    assert render_in("en", snapshot("error", a=failed)).count(stored) == 1
    assert stored in bar_in("en", status="error", message=stored)


#: Messages a work may store: texts a catalog knows (labels, sentences), near
#: misses of progress_ui's own texts, and a template's own fields.
USERS_MESSAGES = [
    "Disk full",
    "Complete.",
    "Expired",
    "Cancelled",
    "cancelled.",
    "Cancelled. Nothing was saved.",
    "Retrying (attempt 2 of 4)",
    "Retrying (attempt two of four)\u2026",
    "Retrying (attempt 2 of 4)\u2026 then giving up",
    "Retrying (attempt {attempt} of {attempts})\u2026",
    "Retrying (attempt \u0662)\u2026",
    "%(name)s failed.",
]


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("mine", USERS_MESSAGES)
def test_a_works_own_message_is_shown_as_written(lang: str, mine: str) -> None:
    text = render_in(lang, snapshot("error", a=task(status="error", message=mine)))
    assert mine in text
    assert mine in bar_in(lang, status="error", message=mine)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_works_message_equal_to_progress_uis_own_is_translated(lang: str) -> None:
    # Documented (howto/translations): the English text is the key, whoever wrote it.
    text = render_in(lang, snapshot("error", a=task(status="error", message="Cancelled.")))
    assert OWN_MESSAGES["Cancelled."][lang] in text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_message_set_in_the_settings_wins(lang: str) -> None:
    with override_settings(
        PROGRESS_UI={
            **settings.PROGRESS_UI,
            "GENERIC_ERROR_MESSAGE": "Our fault, sorry.",
            "CANCELLED_MESSAGE": "Stopped.",
        }
    ):
        session = ProgressSession.create({"a": "Import", "b": "Export"})
        session.fail("a", RuntimeError("secret detail"))
        session.cancel("b")
        snap = session.read()
    assert snap is not None
    text = render_in(lang, snap)
    assert "Our fault, sorry." in text and "Stopped." in text
    assert "secret detail" not in text
    for stored in ("Something went wrong.", "Cancelled."):
        assert OWN_MESSAGES[stored][lang] not in text


def test_a_catalog_with_a_broken_field_shows_the_english_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(display, "gettext", lambda msgid: "Encore ({essai})\u2026")
    assert display.own_text("Retrying (attempt 13)\u2026") == "Retrying (attempt 13)\u2026"
