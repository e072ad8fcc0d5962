"""Signals of progress_ui.

``task_cancelled(sender=ProgressSession, session, task_id)``: sent by
``ProgressSession.cancel()`` for each task it cancelled, in the process that
cancelled it. Task-runner integrations listen to revoke queued work (see
``progress_ui.contrib.celery``).
"""

from __future__ import annotations

from django.dispatch import Signal

task_cancelled = Signal()
