"""Wire formats, pure: how a snapshot or a rendered region is framed for a
transport (SSE events, NDJSON lines). No I/O.

Internal: these modules may change between releases. The public API is what
``progress_ui`` exports (``ProgressSession``, ``TaskProgress``, ...),
``progress_ui.mixins``, ``progress_ui.views``, the template tags and components,
``progress_ui.signals`` and ``progress_ui.contrib.*`` (see the docs' reference)."""
