"""The progress engine: sessions and their tasks in the cache, the work that
drives them, liveness of the processes that run it, and the store below.

Internal: these modules may change between releases. The public API is what
``progress_ui`` exports (``ProgressSession``, ``TaskProgress``, ...),
``progress_ui.mixins``, ``progress_ui.views``, the template tags and components,
``progress_ui.signals`` and ``progress_ui.contrib.*`` (see the docs' reference)."""
