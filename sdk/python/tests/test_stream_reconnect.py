"""Reconnect logic against a scripted server: 503, the disconnect notice, a clean
end, client-side filtering of several patterns, and a fatal 401. Sync and async."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable

import pytest
from gpserver import Reply, TestServer, problem

from gatepulse import AsyncGatePulse, AuthenticationError, GatePulse, StreamItem

SSE = {"content-type": "text/event-stream"}
REPLIES = [
    Reply(503, {"retry-after": "0"}, problem(503, "too_many_streams")),
    Reply(200, SSE, b'retry: 10\n\nid: 5\nevent: a.x\ndata: {"n":1}\n\nevent: gatepulse.disconnect\ndata: {}\n\n'),
    Reply(
        200,
        SSE,
        b'id: 6\nevent: c.skip\ndata: {}\n\nid: 7\nevent: b.y\ndata: {"n":2}\n\nid: 8\nevent: a.z\ndata: plain\n\n',
    ),
    Reply(401, {}, problem(401, "invalid_token")),
]


def check(server: TestServer, items: list[StreamItem]) -> None:
    assert [(i.cursor, i.data) for i in items] == [("5", {"n": 1}), ("7", {"n": 2}), ("8", "plain")]
    assert [r.headers["last-event-id"] for r in server.requests] == ["4", "4", "5", "8"]
    assert all(r.path == "/v1/stream" for r in server.requests), "several patterns: no server-side topic"


def test_reconnects_and_resumes(script: Callable[..., TestServer]) -> None:
    server = script(*REPLIES)
    items: list[StreamItem] = []
    with GatePulse("k", base_url=server.url) as gp:
        sub = gp.stream.subscribe(topics=["a.#", "b.#"], cursor=4)
        with pytest.raises(AuthenticationError):
            items.extend(sub)
    check(server, items)
    assert sub.cursor == "8"


async def test_async_reconnects_and_resumes(script: Callable[..., TestServer]) -> None:
    server = script(*REPLIES)
    items: list[StreamItem] = []
    async with AsyncGatePulse("k", base_url=server.url) as agp:
        sub = agp.stream.subscribe(topics=["a.#", "b.#"], cursor=4)
        with pytest.raises(AuthenticationError):
            await collect(sub, items)
    check(server, items)


async def collect(items: AsyncIterable[StreamItem], into: list[StreamItem]) -> None:
    async for item in items:
        into.append(item)
