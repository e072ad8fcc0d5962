"""The command's stdout as a text stream, for ``rich``.

Django's ``OutputWrapper`` ends every ``write`` with a newline unless told
``ending=""``; ``rich`` writes whole frames with their own line ends and cursor
moves. :class:`CommandStream` passes them through the wrapper's public methods
(``write(..., ending="")``, ``flush``, ``isatty``), so ``call_command(stdout=...)``
and a terminal both work.
"""

from __future__ import annotations

import io

from django.core.management.base import OutputWrapper


class CommandStream(io.TextIOBase):
    def __init__(self, wrapper: OutputWrapper) -> None:
        super().__init__()
        self.wrapper = wrapper

    def write(self, text: str, /) -> int:
        self.wrapper.write(text, ending="")
        return len(text)

    def flush(self) -> None:
        self.wrapper.flush()

    def isatty(self) -> bool:
        return self.wrapper.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        # The wrapped stream's, when it says (OutputWrapper hands attribute
        # reads to the stream it wraps); rich draws ASCII bars for "ascii".
        return str(getattr(self.wrapper, "encoding", None) or "utf-8")
