"""The pure core: statuses, text rules, the easing curve, the estimate, and the
records and snapshots a session is made of. No cache, no templates, no clock
(time is passed in).

Internal: these modules may change between releases. The public API is what
``progress_ui`` exports (``ProgressSession``, ``TaskProgress``, ...),
``progress_ui.mixins``, ``progress_ui.views``, the template tags and components,
``progress_ui.signals`` and ``progress_ui.contrib.*`` (see the docs' reference)."""
