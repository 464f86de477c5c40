"""Every API call as data: method, path, query and body, built in one place and sent
by either client (`GatePulse` or `AsyncGatePulse`). Resources are thin typed facades
over these builders, so the sync and async APIs cannot drift apart."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True)
class Request:
    """One API call."""

    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    """Query parameters; None values are left out."""
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    idempotency_key: str | None = None
    """For a POST; generated when None and reused across retries."""
    headers: Mapping[str, str] = field(default_factory=dict)

    def with_params(self, **params: Any) -> Request:
        """The same call with more query parameters (the next page's cursor)."""
        return Request(
            self.method,
            self.path,
            {**self.params, **params},
            self.json,
            self.content,
            self.content_type,
            self.idempotency_key,
            self.headers,
        )


def new_idempotency_key() -> str:
    """A fresh idempotency key (``gp-`` + a random UUID)."""
    return f"gp-{uuid.uuid4()}"


def _seg(value: str) -> str:
    return quote(value, safe="")


def _query(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _time(value: str | datetime) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# ---- events


def publish_event(topic: str, payload: Mapping[str, Any], idempotency_key: str | None) -> Request:
    body: dict[str, Any] = {"topic": topic, "payload": payload}
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    return Request("POST", "/v1/events", json=body, idempotency_key=idempotency_key)


def publish_batch(events: Sequence[Mapping[str, Any]], idempotency_key: str | None) -> Request:
    """Items without an ``idempotency_key`` get ``<request key>:<index>``, so a retried
    batch is stored once."""
    key = idempotency_key or new_idempotency_key()
    keyed = [e if "idempotency_key" in e else {**e, "idempotency_key": f"{key}:{i}"} for i, e in enumerate(events)]
    return Request("POST", "/v1/events/batch", json={"events": keyed}, idempotency_key=key)


def get_event(event_id: str) -> Request:
    return Request("GET", f"/v1/events/{_seg(event_id)}")


def list_events(topic: str | None, after_cursor: int | None, limit: int | None) -> Request:
    return Request("GET", "/v1/events", _query(topic=topic, after_cursor=after_cursor, limit=limit))


# ---- endpoints


def _endpoint(endpoint_id: str) -> str:
    return f"/v1/endpoints/{_seg(endpoint_id)}"


def create_endpoint(params: Mapping[str, Any]) -> Request:
    return Request("POST", "/v1/endpoints", json=dict(params))


def list_endpoints(limit: int | None) -> Request:
    return Request("GET", "/v1/endpoints", _query(limit=limit))


def get_endpoint(endpoint_id: str) -> Request:
    return Request("GET", _endpoint(endpoint_id))


def update_endpoint(endpoint_id: str, params: Mapping[str, Any]) -> Request:
    return Request("PATCH", _endpoint(endpoint_id), json=dict(params))


def delete_endpoint(endpoint_id: str) -> Request:
    return Request("DELETE", _endpoint(endpoint_id))


def get_endpoint_secret(endpoint_id: str) -> Request:
    return Request("GET", f"{_endpoint(endpoint_id)}/secret")


def rotate_endpoint_secret(endpoint_id: str, secret: str | None) -> Request:
    return Request("POST", f"{_endpoint(endpoint_id)}/secret/rotate", json=_query(secret=secret))


def get_endpoint_public_keys(endpoint_id: str) -> Request:
    return Request("GET", f"{_endpoint(endpoint_id)}/public-key")


def rotate_endpoint_public_key(endpoint_id: str) -> Request:
    return Request("POST", f"{_endpoint(endpoint_id)}/public-key/rotate")


def get_endpoint_health(endpoint_id: str) -> Request:
    return Request("GET", f"{_endpoint(endpoint_id)}/health")


# ---- subscriptions


def _subscription(subscription_id: str) -> str:
    return f"/v1/subscriptions/{_seg(subscription_id)}"


def create_subscription(params: Mapping[str, Any]) -> Request:
    return Request("POST", "/v1/subscriptions", json=dict(params))


def list_subscriptions(endpoint_id: str | None, limit: int | None) -> Request:
    return Request("GET", "/v1/subscriptions", _query(endpoint_id=endpoint_id, limit=limit))


def get_subscription(subscription_id: str) -> Request:
    return Request("GET", _subscription(subscription_id))


def update_subscription(subscription_id: str, params: Mapping[str, Any]) -> Request:
    return Request("PATCH", _subscription(subscription_id), json=dict(params))


def delete_subscription(subscription_id: str) -> Request:
    return Request("DELETE", _subscription(subscription_id))


def preview_subscription(subscription: Mapping[str, Any], event: Mapping[str, Any]) -> Request:
    return Request("POST", "/v1/subscriptions/preview", json={"subscription": subscription, "event": event})


# ---- deliveries, DLQ, replay


def list_deliveries(event_id: str | None, endpoint_id: str | None, status: str | None, limit: int | None) -> Request:
    query = _query(event_id=event_id, endpoint_id=endpoint_id, status=status, limit=limit)
    return Request("GET", "/v1/deliveries", query)


def get_delivery(delivery_id: str) -> Request:
    return Request("GET", f"/v1/deliveries/{_seg(delivery_id)}")


def list_dlq(endpoint_id: str | None, limit: int | None) -> Request:
    return Request("GET", "/v1/dlq", _query(endpoint_id=endpoint_id, limit=limit))


def requeue_dlq(delivery_ids: Sequence[str] | None, endpoint_id: str | None) -> Request:
    if (delivery_ids is None) == (endpoint_id is None):
        raise TypeError("requeue: give exactly one of delivery_ids and endpoint_id")
    return Request("POST", "/v1/dlq/requeue", json=_query(delivery_ids=delivery_ids, endpoint_id=endpoint_id))


def create_replay(
    *,
    event_id: str | None,
    start: str | datetime | None,
    end: str | datetime | None,
    topic: str | None,
    endpoint_id: str | None,
    subscription_id: str | None,
) -> Request:
    body = _query(
        event_id=event_id,
        topic=topic,
        endpoint_id=endpoint_id,
        subscription_id=subscription_id,
        **{"from": None if start is None else _time(start), "to": None if end is None else _time(end)},
    )
    return Request("POST", "/v1/replay", json=body)


# ---- operations, plugins, inbox


def get_stats() -> Request:
    return Request("GET", "/v1/stats")


def upload_plugin(name: str, version: str, module: bytes) -> Request:
    return Request(
        "POST", "/v1/plugins", {"name": name, "version": version}, content=module, content_type="application/wasm"
    )


def list_plugins() -> Request:
    return Request("GET", "/v1/plugins")


def delete_plugin(name: str, version: str) -> Request:
    return Request("DELETE", f"/v1/plugins/{_seg(name)}/{_seg(version)}")


def list_inbox(endpoint_id: str, limit: int | None) -> Request:
    return Request("GET", f"/v1/inbox/{_seg(endpoint_id)}/messages", _query(limit=limit))


# ---- tenants and keys


def _tenant(tenant_id: str) -> str:
    return f"/v1/tenants/{_seg(tenant_id)}"


def create_tenant(name: str) -> Request:
    return Request("POST", "/v1/tenants", json={"name": name})


def list_tenants(limit: int | None) -> Request:
    return Request("GET", "/v1/tenants", _query(limit=limit))


def get_tenant(tenant_id: str) -> Request:
    return Request("GET", _tenant(tenant_id))


def update_tenant(tenant_id: str, params: Mapping[str, Any]) -> Request:
    return Request("PATCH", _tenant(tenant_id), json=dict(params))


def create_key(tenant_id: str, name: str, scopes: Sequence[str]) -> Request:
    return Request("POST", f"{_tenant(tenant_id)}/keys", json={"name": name, "scopes": list(scopes)})


def list_keys(tenant_id: str, limit: int | None) -> Request:
    return Request("GET", f"{_tenant(tenant_id)}/keys", _query(limit=limit))


def revoke_key(tenant_id: str, key_id: str) -> Request:
    return Request("DELETE", f"{_tenant(tenant_id)}/keys/{_seg(key_id)}")


# ---- stream


def open_stream(topic: str | None, cursor: str | None) -> Request:
    headers = {"accept": "text/event-stream"}
    if cursor is not None:
        headers["last-event-id"] = cursor
    return Request("GET", "/v1/stream", _query(topic=topic), headers=headers)
