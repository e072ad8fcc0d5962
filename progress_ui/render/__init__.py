"""What a session shows: display models (pure), the HTML components, and the
``<hx-partial>`` payload of SSE messages.

Internal: these modules may change between releases. The public API is what
``progress_ui`` exports (``ProgressSession``, ``TaskProgress``, ...),
``progress_ui.mixins``, ``progress_ui.views``, the template tags and components,
``progress_ui.signals`` and ``progress_ui.contrib.*`` (see the docs' reference)."""
