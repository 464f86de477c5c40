"""The SSE parser."""

from __future__ import annotations

import pytest

from gatepulse._sse import SseMessage, SseParser

TEXT = (
    '\ufeffretry: 2417\r\n: comment\r\n\r\nid: 41\r\nevent: orders.created\r\ndata: {"a":1}\r\n\r\n'
    "id: 42\nevent: x\ndata: a\ndata: b\n\nid: 43\rdata: c\r\r\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(TEXT)])
def test_parses_frames_split_anywhere_with_any_line_ending(size: int) -> None:
    parser = SseParser()
    messages = [m for i in range(0, len(TEXT), size) for m in parser.feed(TEXT[i : i + size])]
    assert messages == [
        SseMessage("41", "orders.created", '{"a":1}'),
        SseMessage("42", "x", "a\nb"),
        SseMessage("43", "message", "c"),
    ]
    assert parser.retry_ms == 2417


def test_keeps_the_last_id_and_ignores_unknown_fields() -> None:
    parser = SseParser()
    messages = parser.feed("id: 7\ndata: a\n\nfoo: bar\nretry: soon\nid\ndata\n\nid: bad\0id\ndata: b\n\n")
    assert messages == [SseMessage("7", "message", "a"), SseMessage("", "message", ""), SseMessage("", "message", "b")]
    assert parser.retry_ms is None
    assert SseParser().feed("id: 1\nevent: x\n\n") == []
