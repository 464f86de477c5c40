"""Every resource of the blocking client against the real server (GP_BIN)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import cast

import pytest
from gpserver import ADMIN_TOKEN, GpServer, Receiver, eventually

from gatepulse import (
    AuthenticationError,
    GatePulse,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    Webhook,
)
from gatepulse.types import BatchError


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def test_publish_dedupe_get_and_list(gp: GatePulse) -> None:
    a = gp.events.publish("ev.created", {"n": 1}, idempotency_key="py-ev-1")
    again = gp.events.publish("ev.created", {"n": 1}, idempotency_key="py-ev-1")
    assert not a["deduped"]
    assert again == {**a, "deduped": True}
    event = gp.events.get(a["id"])
    assert (event["topic"], event["payload"], event["idempotency_key"], event["deliveries"]) == (
        "ev.created",
        {"n": 1},
        "py-ev-1",
        [],
    )
    b = gp.events.publish("ev.updated", {"n": 2})
    assert [e["id"] for e in gp.events.list(topic="ev.#", limit=1)] == [a["id"], b["id"]]
    assert [e["id"] for e in gp.events.list(topic="ev.#", after_cursor=a["cursor"]).data] == [b["id"]]


def test_batch_items_answer_for_themselves(gp: GatePulse) -> None:
    out = gp.events.batch(
        [
            {"topic": "batch.one", "payload": {}},
            {"topic": "bad..topic", "payload": {}},
            {"topic": "batch.two", "payload": {}},
        ]
    )
    first, bad, last = out["data"]
    assert "id" in first
    assert "id" in last
    assert cast(BatchError, bad)["error"]["code"] == "invalid_topic"


def test_errors_carry_the_problem(gp: GatePulse, server: GpServer) -> None:
    with pytest.raises(ValidationError) as invalid:
        gp.events.publish("gatepulse.x", {})
    assert (invalid.value.code, invalid.value.status) == ("reserved_topic", 422)
    with pytest.raises(NotFoundError):
        gp.events.get("evt_doesnotexist")
    with GatePulse("gpk_wrong", base_url=server.base_url) as bad, pytest.raises(AuthenticationError) as auth:
        bad.stats.get()
    assert auth.value.code == "invalid_token"
    assert "www-authenticate" in auth.value.headers
    with (
        GatePulse(server.create_key(["events:write"])["key"], base_url=server.base_url) as writer,
        pytest.raises(PermissionDeniedError) as denied,
    ):
        writer.endpoints.list()
    assert denied.value.problem is not None
    assert denied.value.problem["scope"] == "endpoints:manage"


def test_endpoint_crud_secret_and_health(gp: GatePulse, hooks: Receiver) -> None:
    ep = gp.endpoints.create(url=f"{hooks.url}/crud", description="crud", timeout_ms=5000, headers={"x-team": "a"})
    assert gp.endpoints.get(ep["id"])["description"] == "crud"
    updated = gp.endpoints.update(ep["id"], timeout_ms=None, description="changed")
    assert (updated["timeout_ms"], updated["description"]) == (None, "changed")
    assert ep["id"] in [e["id"] for e in gp.endpoints.list(limit=1)]
    secret = gp.endpoints.reveal_secret(ep["id"])
    assert secret.startswith("whsec_")
    given = "whsec_" + base64.b64encode(bytes([9] * 32)).decode()
    assert gp.endpoints.rotate_secret(ep["id"], given) == given
    assert gp.endpoints.reveal_secret(ep["id"]) == given
    assert gp.endpoints.rotate_secret(ep["id"]) != given
    with pytest.raises(ValidationError) as bad:
        gp.endpoints.rotate_secret(ep["id"], "nope")
    assert bad.value.problem is not None
    assert bad.value.problem["field"] == "secret"
    health = gp.endpoints.health(ep["id"])
    assert (health["endpoint_id"], health["circuit"]) == (ep["id"], "closed")
    gp.endpoints.delete(ep["id"])
    with pytest.raises(NotFoundError):
        gp.endpoints.get(ep["id"])


def test_subscription_crud_preview_and_filter_errors(gp: GatePulse, hooks: Receiver) -> None:
    ep = gp.endpoints.create(url=f"{hooks.url}/subs")
    sub = gp.subscriptions.create(endpoint_id=ep["id"], topics=["orders.*"], filter="payload.amount > 100")
    assert gp.subscriptions.get(sub["id"])["filter"] == "payload.amount > 100"
    assert gp.subscriptions.update(sub["id"], filter=None)["filter"] is None
    assert [s["id"] for s in gp.subscriptions.list(endpoint_id=ep["id"]).data] == [sub["id"]]
    hit = gp.subscriptions.preview(
        {"topics": ["orders.*"], "filter": "payload.amount > 100"},
        {"topic": "orders.created", "payload": {"amount": 250}},
    )
    assert (hit["matched"], hit["body"], [s["stage"] for s in hit["stages"]]) == (
        True,
        {"amount": 250},
        ["topic", "filter"],
    )
    assert not gp.subscriptions.preview({"topics": ["billing.#"]}, {"topic": "orders.x", "payload": {}})["matched"]
    gp.subscriptions.delete(sub["id"])
    with pytest.raises(NotFoundError):
        gp.subscriptions.get(sub["id"])
    with pytest.raises(ValidationError) as bad:
        gp.subscriptions.create(endpoint_id=ep["id"], topics=["a"], filter="payload.amount >")
    assert bad.value.status == 400
    assert bad.value.problem is not None
    assert bad.value.problem["field"] == "filter"
    assert isinstance(bad.value.problem["position"]["column"], int)


def test_dead_letter_requeue_and_replay(gp: GatePulse, hooks: Receiver) -> None:
    ep = gp.endpoints.create(url=f"{hooks.url}/dlq")
    gp.subscriptions.create(endpoint_id=ep["id"], topics=["dlq.#"])
    hooks.status = 410
    published = gp.events.publish("dlq.test", {"n": 1})
    dead = eventually(lambda: next(iter(gp.dlq.list(endpoint_id=ep["id"]).data), None), what="a dead delivery")
    assert dead["event_id"] == published["id"]
    assert gp.deliveries.get(dead["id"])["attempts"][0]["status_code"] == 410
    # The auto-disable is its own write, just after the dead outcome's.
    eventually(lambda: None if gp.endpoints.get(ep["id"])["enabled"] else True, what="the endpoint disabled")
    assert [d["id"] for d in gp.deliveries.list(event_id=published["id"], status="dead").data] == [dead["id"]]

    hooks.status = 204
    gp.endpoints.update(ep["id"], enabled=True)
    assert gp.dlq.requeue(delivery_ids=[dead["id"]]) == {"requeued": 1, "complete": True}
    eventually(lambda: gp.deliveries.get(dead["id"])["status"] == "succeeded" or None, what="the requeued delivery")
    replay = gp.replay.create(event_id=published["id"], endpoint_id=ep["id"])
    assert (replay["deliveries"], replay["events"]) == (1, 1)
    eventually(
        lambda: (
            len([d for d in gp.deliveries.list(event_id=published["id"]) if d["status"] == "succeeded"]) == 2 or None
        ),
        what="the replayed delivery",
    )
    now = datetime.now(timezone.utc)
    assert (
        gp.replay.create(from_=now - timedelta(minutes=1), to=now + timedelta(seconds=1), topic="dlq.#")["events"] == 1
    )
    assert gp.dlq.requeue(endpoint_id=ep["id"]) == {"requeued": 0, "complete": True}


def test_inbox_stats_and_plugins(gp: GatePulse, server: GpServer) -> None:
    inbox = gp.endpoints.create(kind="inbox")
    gp.subscriptions.create(endpoint_id=inbox["id"], topics=["inbox.#"])
    gp.events.publish("inbox.test", {"hello": "world"})
    message = eventually(lambda: next(iter(gp.inbox.list(inbox["id"]).data), None), what="an inbox message")
    secret = gp.endpoints.reveal_secret(inbox["id"])
    assert Webhook(secret).verify(message["body"], [(name, value) for name, value in message["headers"]]) == {
        "hello": "world"
    }
    stats = gp.stats.get()
    assert (stats["scope"], stats["tenant_id"]) == ("tenant", server.tenant_id)
    assert gp.plugins.list().data == []
    with pytest.raises(ValidationError) as bad:
        gp.plugins.upload("nope", "1.0.0", b"\x01\x02\x03")
    assert bad.value.code == "invalid_plugin"
    with pytest.raises(NotFoundError):
        gp.plugins.delete("nope", "1.0.0")


def test_tenants_and_keys_with_the_admin_token(server: GpServer) -> None:
    with GatePulse(ADMIN_TOKEN, base_url=server.base_url) as admin:
        tenant = admin.tenants.create("second")
        assert admin.tenants.get(tenant["id"])["name"] == "second"
        assert admin.tenants.update(tenant["id"], name="renamed")["name"] == "renamed"
        assert tenant["id"] in [t["id"] for t in admin.tenants.list()]
        key = admin.tenants.create_key(tenant["id"], "ci", ["events:write"])
        assert key["key"].startswith("gpk_")
        assert [k["id"] for k in admin.tenants.list_keys(tenant["id"]).data] == [key["id"]]
        with GatePulse(key["key"], base_url=server.base_url) as user:
            # The tenant's stream begins with its audit records: created, renamed, key.
            assert user.events.publish("t.x", {})["cursor"] == 4
            with GatePulse(ADMIN_TOKEN, base_url=server.base_url, tenant=tenant["id"]) as acting:
                assert len(acting.events.list().data) == 1
            with pytest.raises(ValidationError) as required:
                admin.events.list()
            assert required.value.code == "tenant_required"
            admin.tenants.revoke_key(tenant["id"], key["id"])
            with pytest.raises(AuthenticationError):
                user.events.publish("t.x", {})
