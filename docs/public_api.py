"""A Sphinx extension: the reference must name every public method.

For each class and module listed in ``PUBLIC``, every public member (a name not
starting with ``_``: methods, properties, functions, classes) must be a
documented Python object once the build has read every page; a missing one is a
warning, and ``sphinx-build -W`` turns it into a failed build. Adding a public
method to ``ProgressSession`` without documenting it therefore fails ``make docs``.
"""

from __future__ import annotations

import inspect
import re
from importlib import import_module
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: Documented name -> where it is defined. Classes: each public member;
#: modules: each public function and class defined in the module itself.
PUBLIC = {
    "progress_ui.ProgressSession": "progress_ui.engine.session:ProgressSession",
    "progress_ui.TaskProgress": "progress_ui.engine.work:TaskProgress",
    "progress_ui.SequentialTask": "progress_ui.engine.handles:SequentialTask",
    "progress_ui.ParallelTask": "progress_ui.engine.handles:ParallelTask",
    "progress_ui.ProgressStatus": "progress_ui.core.status:ProgressStatus",
    "progress_ui.ReportedStatus": "progress_ui.core.status:ReportedStatus",
    "progress_ui.mixins.StartProgressMixin": "progress_ui.mixins:StartProgressMixin",
    "progress_ui.mixins.ProgressSessionMixin": "progress_ui.mixins:ProgressSessionMixin",
    "progress_ui.mixins.SessionLookupMixin": "progress_ui.mixins:SessionLookupMixin",
    "progress_ui.contrib.django_tasks.ProgressTask": (
        "progress_ui.contrib.django_tasks:ProgressTask"
    ),
    "progress_ui.contrib.celery.ProgressTask": "progress_ui.contrib.celery:ProgressTask",
    "progress_ui.contrib.rq.ProgressTask": "progress_ui.contrib.rq:ProgressTask",
    "progress_ui.contrib.dramatiq.ProgressActor": "progress_ui.contrib.dramatiq:ProgressActor",
    "progress_ui.templatetags.progress_ui": "progress_ui.templatetags.progress_ui",
    "progress_ui.tuning": "progress_ui.tuning",
}


def _public_members(target: Any) -> list[str]:
    if inspect.ismodule(target):
        return sorted(
            name
            for name, value in vars(target).items()
            if not name.startswith("_")
            and (inspect.isfunction(value) or inspect.isclass(value))
            and getattr(value, "__module__", None) == target.__name__
        )
    # The class's own members and those of its private bases (``_ProgressRenderMixin``
    # gives ``StartProgressMixin`` public methods that are documented on it).
    owners = [
        cls
        for cls in target.__mro__
        if cls is target
        or (cls.__name__.startswith("_") and cls.__module__.startswith("progress_ui"))
    ]
    return sorted(
        {
            name
            for owner in owners
            for name, value in vars(owner).items()
            if not name.startswith("_")
            and (
                inspect.isfunction(value)
                or isinstance(value, (classmethod, staticmethod, property))
            )
        }
    )


def _load(spec: str) -> Any:
    module, _, attribute = spec.partition(":")
    target: Any = import_module(module)
    for part in filter(None, attribute.split(".")):
        target = getattr(target, part)
    return target


def check_public_api(app: Sphinx, env: BuildEnvironment) -> None:
    documented = set(env.get_domain("py").objects)  # type: ignore[attr-defined]
    for name, spec in PUBLIC.items():
        if name not in documented:
            logger.warning("public_api: %s is not documented in the reference", name)
            continue
        missing = [m for m in _public_members(_load(spec)) if f"{name}.{m}" not in documented]
        if missing:
            logger.warning(
                "public_api: the reference does not name %s of %s (document them with "
                "autodoc :members:, or make them private)",
                ", ".join(missing),
                name,
            )


CHECK_ID = re.compile(r'id="(progress_ui\.[EW]\d{3})"')


def check_system_check_ids(app: Sphinx, env: BuildEnvironment) -> None:
    """Every id that ``progress_ui/checks.py`` can report has a line in the checks page."""
    source = Path(import_module("progress_ui.checks").__file__ or "").read_text(encoding="utf-8")
    page = Path(app.srcdir, "reference", "checks.rst").read_text(encoding="utf-8")
    missing = sorted(
        set(CHECK_ID.findall(source)) - set(re.findall(r"progress_ui\.[EW]\d{3}", page))
    )
    if missing:
        logger.warning("public_api: reference/checks.rst does not explain %s", ", ".join(missing))


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-check-consistency", check_public_api)
    app.connect("env-check-consistency", check_system_check_ids)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
