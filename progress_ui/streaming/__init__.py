"""Live delivery: the hub that shares one poller per session among viewers,
push from Redis, the stream pipelines, stream limits and the WSGI loop.

Internal: these modules may change between releases. The public API is what
``progress_ui`` exports (``ProgressSession``, ``TaskProgress``, ...),
``progress_ui.mixins``, ``progress_ui.views``, the template tags and components,
``progress_ui.signals`` and ``progress_ui.contrib.*`` (see the docs' reference)."""
