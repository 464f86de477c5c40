"""The stream against the real server: history, filters, resets, live items, and
resuming across a server restart."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from itertools import islice
from typing import Any, cast

from gpserver import GpServer, eventually

from gatepulse import GatePulse, StreamEvent, StreamItem, StreamReset


def take(items: Iterable[StreamItem], n: int) -> list[StreamItem]:
    return list(islice(items, n))


def ns(items: list[StreamItem]) -> list[Any]:
    return [cast(StreamEvent, item).data["payload"]["n"] for item in items]


def test_history_one_topic_and_resume(gp: GatePulse) -> None:
    for topic, n in [("sorders.created", 1), ("sbilling.paid", 2), ("sorders.updated", 3), ("sorders.created", 4)]:
        gp.events.publish(topic, {"n": n})
    start = gp.events.list(topic="sorders.#", limit=1).data[0]["cursor"] - 1
    sub = gp.stream.subscribe(topics="sorders.#", cursor=start)
    first = take(sub, 2)
    assert ns(first) == [1, 3]
    assert [i.topic for i in first if isinstance(i, StreamEvent)] == ["sorders.created", "sorders.updated"]
    assert sub.cursor == first[1].cursor
    rest = take(gp.stream.subscribe(topics=["sorders.#"], cursor=sub.cursor), 1)
    assert ns(rest) == [4]
    several = take(gp.stream.subscribe(topics=["sbilling.#", "sorders.updated"], cursor=start), 2)
    assert ns(several) == [2, 3]


def test_reset_when_the_cursor_is_out_of_reach(gp: GatePulse) -> None:
    (reset,) = take(gp.stream.subscribe(cursor=1_000_000), 1)
    assert isinstance(reset, StreamReset)
    assert reset.data["reason"] == "cursor_ahead"


def test_live_items_without_a_cursor(gp: GatePulse) -> None:
    sub = gp.stream.subscribe(topics="slive.#")
    stop = threading.Event()

    def publish() -> None:  # live only: publish until one arrives
        n = 0
        while not stop.wait(0.1) and n < 200:
            n += 1
            gp.events.publish("slive.tick", {"n": n})

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        (item,) = take(sub, 1)
        assert isinstance(item, StreamEvent)
        assert item.topic == "slive.tick"
    finally:
        stop.set()
        publisher.join()
        sub.close()


def test_resumes_exactly_after_a_server_restart(server: GpServer) -> None:
    with GatePulse(server.api_key, base_url=server.base_url) as gp:
        start = gp.events.publish("sseq.start", {"n": 0})
        sub = gp.stream.subscribe(topics="sseq.n", cursor=start["cursor"], idle_timeout=5)
        seen: list[StreamItem] = []

        def read() -> None:
            for item in sub:
                seen.append(item)
                if len(seen) == 4:
                    return

        reader = threading.Thread(target=read)
        reader.start()
        gp.events.publish("sseq.n", {"n": 1})
        gp.events.publish("sseq.n", {"n": 2})
        eventually(lambda: len(seen) == 2 or None, what="two items before the restart")
        server.terminate()
        server.spawn()
        gp.events.publish("sseq.n", {"n": 3})
        gp.events.publish("sseq.n", {"n": 4})
        reader.join(60)
        assert not reader.is_alive()
        assert ns(seen) == [1, 2, 3, 4]
        assert all(int(b.cursor) > int(a.cursor) for a, b in zip(seen, seen[1:]))
