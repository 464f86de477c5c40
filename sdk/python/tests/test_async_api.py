"""The async client against the real server: every async resource method."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from gpserver import ADMIN_TOKEN, GpServer, Receiver

from gatepulse import AsyncGatePulse, NotFoundError, StreamEvent, ValidationError


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


async def until(check: Any, timeout: float = 20.0) -> Any:
    """Awaits ``check()`` every 25 ms until it is not None."""

    async def poll() -> Any:
        while (value := await check()) is None:
            await asyncio.sleep(0.025)
        return value

    return await asyncio.wait_for(poll(), timeout)


async def test_events(agp: AsyncGatePulse) -> None:
    a = await agp.events.publish("aev.created", {"n": 1}, idempotency_key="aev-1")
    assert (await agp.events.publish("aev.created", {"n": 1}, idempotency_key="aev-1"))["deduped"]
    assert (await agp.events.get(a["id"]))["payload"] == {"n": 1}
    out = await agp.events.batch([{"topic": "aev.two", "payload": {}}])
    assert "id" in out["data"][0]
    assert [e["topic"] async for e in agp.events.list(topic="aev.#", limit=1)] == ["aev.created", "aev.two"]


async def test_endpoints_and_subscriptions(agp: AsyncGatePulse, hooks: Receiver) -> None:
    ep = await agp.endpoints.create(url=f"{hooks.url}/async", retry_schedule_secs=[1])
    assert (await agp.endpoints.get(ep["id"]))["retry_schedule_secs"] == [1]
    assert (await agp.endpoints.update(ep["id"], retry_schedule_secs=None))["retry_schedule_secs"] is None
    assert ep["id"] in [e["id"] async for e in agp.endpoints.list()]
    old = await agp.endpoints.reveal_secret(ep["id"])
    assert await agp.endpoints.rotate_secret(ep["id"]) != old
    assert (await agp.endpoints.health(ep["id"]))["circuit"] == "closed"
    sub = await agp.subscriptions.create(endpoint_id=ep["id"], topics=["async.#"])
    assert (await agp.subscriptions.get(sub["id"]))["topics"] == ["async.#"]
    assert (await agp.subscriptions.update(sub["id"], enabled=False))["enabled"] is False
    assert [s["id"] async for s in agp.subscriptions.list(endpoint_id=ep["id"])] == [sub["id"]]
    preview = await agp.subscriptions.preview({"topics": ["async.#"]}, {"topic": "async.x", "payload": {"a": 1}})
    assert preview["matched"]
    await agp.subscriptions.delete(sub["id"])
    await agp.endpoints.delete(ep["id"])
    with pytest.raises(NotFoundError):
        await agp.endpoints.get(ep["id"])


async def test_deliveries_dlq_replay(agp: AsyncGatePulse, hooks: Receiver) -> None:
    ep = await agp.endpoints.create(url=f"{hooks.url}/async-dlq")
    await agp.subscriptions.create(endpoint_id=ep["id"], topics=["adlq.#"])
    hooks.then = [410]
    published = await agp.events.publish("adlq.x", {"n": 1})

    async def dead() -> Any:
        return next(iter((await agp.dlq.list(endpoint_id=ep["id"])).data), None)

    delivery = await until(dead)
    assert (await agp.deliveries.get(delivery["id"]))["attempts"][0]["status_code"] == 410
    assert [d["id"] async for d in agp.deliveries.list(event_id=published["id"])] == [delivery["id"]]
    await agp.endpoints.update(ep["id"], enabled=True)
    assert await agp.dlq.requeue(endpoint_id=ep["id"]) == {"requeued": 1, "complete": True}
    assert (await agp.replay.create(event_id=published["id"]))["deliveries"] == 1
    now = datetime.now(timezone.utc)
    assert (await agp.replay.create(from_=now - timedelta(minutes=1), to=now, topic="adlq.#"))["events"] == 1


async def test_inbox_stats_plugins_and_stream(agp: AsyncGatePulse) -> None:
    inbox = await agp.endpoints.create(kind="inbox")
    await agp.subscriptions.create(endpoint_id=inbox["id"], topics=["ainbox.#"])
    published = await agp.events.publish("ainbox.x", {"n": 7})

    async def message() -> Any:
        return next(iter((await agp.inbox.list(inbox["id"])).data), None)

    assert (await until(message))["event_id"] == published["id"]
    assert (await agp.stats.get())["scope"] == "tenant"
    assert (await agp.plugins.list()).data == []
    with pytest.raises(ValidationError):
        await agp.plugins.upload("nope", "1.0.0", b"\x00")
    with pytest.raises(NotFoundError):
        await agp.plugins.delete("nope", "1.0.0")

    sub = agp.stream.subscribe(topics=["ainbox.#", "nothing.else"], cursor=published["cursor"] - 1)
    async for item in sub:
        assert isinstance(item, StreamEvent)
        assert (item.topic, item.data["payload"]) == ("ainbox.x", {"n": 7})
        break
    assert sub.cursor == str(published["cursor"])
    with pytest.raises(RuntimeError, match="once"):
        async for _ in sub:
            pass


async def test_tenants_and_keys(server: GpServer) -> None:
    async with AsyncGatePulse(ADMIN_TOKEN, base_url=server.base_url) as admin:
        tenant = await admin.tenants.create("async-second")
        assert (await admin.tenants.get(tenant["id"]))["name"] == "async-second"
        assert (await admin.tenants.update(tenant["id"], name="x"))["name"] == "x"
        assert tenant["id"] in [t["id"] async for t in admin.tenants.list()]
        key = await admin.tenants.create_key(tenant["id"], "ci", ["events:read"])
        assert [k["id"] async for k in admin.tenants.list_keys(tenant["id"])] == [key["id"]]
        await admin.tenants.revoke_key(tenant["id"], key["id"])
