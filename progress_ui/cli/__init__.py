"""The terminal watcher behind ``manage.py progress watch|list`` (internal).

The command (``progress_ui.management.commands.progress``) parses the options
and calls :func:`progress_ui.cli.watch.watch` or
:func:`progress_ui.cli.session_list.list_sessions`. The pieces, in the order
data flows through them:

- ``cache_source``, or ``http_source`` over ``http_body`` (the response read by
  a thread, so ``--timeout`` is a deadline whatever arrives): where snapshots
  come from;
- ``snapshots``: every snapshot, from either source, is checked and made
  terminal-safe (through ``sanitize``, the one sanitiser), with a cap on the
  tasks tracked, before anything else sees it;
- ``lines`` (the plain text) and ``displays`` (plain lines, or live bars with
  ``rich``, writing through ``output``);
- ``arguments`` (options and the command line), ``deadlines``, ``exits`` (the
  exit statuses), ``session_list`` (the ``list`` table).

Nothing here is public API: the command, its options and exit statuses are.
"""
