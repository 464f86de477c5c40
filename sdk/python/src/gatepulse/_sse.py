"""An incremental Server-Sent Events parser (the WHATWG "event stream
interpretation"): feed it text as it arrives, get whole messages back. Knows no HTTP."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SseMessage:
    id: str | None
    """The ``id:`` in force for this message (the last one seen), if any."""
    event: str
    """The ``event:`` field, ``message`` when absent."""
    data: str
    """The ``data:`` lines joined with ``\\n``."""


class SseParser:
    """Parses an event stream chunk by chunk; line endings may be split across chunks."""

    def __init__(self) -> None:
        self.retry_ms: int | None = None
        """The last ``retry:`` value seen, in milliseconds."""
        self._buffer = ""
        self._started = False
        self._last_id: str | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: str) -> list[SseMessage]:
        """Parses ``chunk`` and returns the messages it completed."""
        text = self._buffer + chunk
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        out: list[SseMessage] = []
        start = 0
        for m in _NEWLINE.finditer(text):
            # A trailing \r may be the first half of \r\n: keep it for the next chunk.
            if m.group() == "\r" and m.end() == len(text):
                break
            self._line(text[start : m.start()], out)
            start = m.end()
        self._buffer = text[start:]
        return out

    def _line(self, line: str, out: list[SseMessage]) -> None:
        if not line:
            if self._data:
                out.append(SseMessage(self._last_id, self._event or "message", "\n".join(self._data)))
            self._event = ""
            self._data = []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
