"""The resources of `AsyncGatePulse`. Thin typed facades: each method builds its call
with `gatepulse._operations` and sends it through the client.

This file is the source of `resources.py` (the blocking resources of `GatePulse`),
which ``scripts/unasync.py`` derives from it; edit this one, then run the script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from typing_extensions import Unpack

from . import _operations as ops
from ._pagination import AsyncPaginator
from ._stream import AsyncStreamSubscription, _Session
from .types import (
    ApiKey,
    ApiKeyCreated,
    BatchResult,
    Delivery,
    DeliveryState,
    DeliveryWithAttempts,
    Endpoint,
    EndpointCreateParams,
    EndpointHealth,
    EndpointPublicKeys,
    EndpointUpdateParams,
    Event,
    EventWithDeliveries,
    InboxMessage,
    Plugin,
    PreviewEvent,
    PreviewResult,
    PreviewSubscription,
    PublishParams,
    PublishResult,
    ReplayResult,
    RequeueResult,
    Scope,
    Subscription,
    SubscriptionCreateParams,
    SubscriptionUpdateParams,
    Tenant,
    TenantUpdateParams,
)
from .types import Stats as StatsOut

if TYPE_CHECKING:
    from ._client import AsyncGatePulse


class _Resource:
    def __init__(self, client: AsyncGatePulse) -> None:
        self._client = client


class Events(_Resource):
    """Publishing and reading events (``/v1/events``)."""

    async def publish(
        self, topic: str, payload: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> PublishResult:
        """Publishes one event; returns once it and its deliveries are on disk. The
        idempotency key (given, else generated) is the same on every retry."""
        return cast(PublishResult, await self._client._request(ops.publish_event(topic, payload, idempotency_key)))

    async def batch(self, events: Sequence[PublishParams], *, idempotency_key: str | None = None) -> BatchResult:
        """Publishes several events in one durable commit; each item of the answer is an
        outcome or a problem (``{"error": …}``), in input order. Items without an
        ``idempotency_key`` get ``<request key>:<index>``, so a retried batch is stored once."""
        return cast(BatchResult, await self._client._request(ops.publish_batch(events, idempotency_key)))

    async def get(self, event_id: str) -> EventWithDeliveries:
        """One event with a summary of its deliveries."""
        return cast(EventWithDeliveries, await self._client._request(ops.get_event(event_id)))

    def list(
        self, *, topic: str | None = None, after_cursor: int | None = None, limit: int | None = None
    ) -> AsyncPaginator[Event]:
        """Events in stream order, optionally of a topic pattern and after a stream cursor."""
        return self._client._list(ops.list_events(topic, after_cursor, limit))


class Endpoints(_Resource):
    """Delivery destinations, their signing secrets and health (``/v1/endpoints``)."""

    async def create(self, **params: Unpack[EndpointCreateParams]) -> Endpoint:
        """Creates an endpoint; its ``whsec_`` secret is generated unless given."""
        return cast(Endpoint, await self._client._request(ops.create_endpoint(params)))

    def list(self, *, limit: int | None = None) -> AsyncPaginator[Endpoint]:
        """All endpoints of the tenant."""
        return self._client._list(ops.list_endpoints(limit))

    async def get(self, endpoint_id: str) -> Endpoint:
        return cast(Endpoint, await self._client._request(ops.get_endpoint(endpoint_id)))

    async def update(self, endpoint_id: str, **params: Unpack[EndpointUpdateParams]) -> Endpoint:
        """Changes the given fields; None clears an optional setting."""
        return cast(Endpoint, await self._client._request(ops.update_endpoint(endpoint_id, params)))

    async def delete(self, endpoint_id: str) -> None:
        """Deletes the endpoint and its subscriptions."""
        await self._client._request(ops.delete_endpoint(endpoint_id))

    async def reveal_secret(self, endpoint_id: str) -> str:
        """The current ``whsec_`` signing secret."""
        out = await self._client._request(ops.get_endpoint_secret(endpoint_id))
        return str(out["secret"])

    async def rotate_secret(self, endpoint_id: str, secret: str | None = None) -> str:
        """Installs a new secret (``secret``, or a generated one) and returns it; the
        previous one keeps signing alongside for the server's grace period."""
        out = await self._client._request(ops.rotate_endpoint_secret(endpoint_id, secret))
        return str(out["secret"])

    async def public_keys(self, endpoint_id: str) -> EndpointPublicKeys:
        """The ``whpk_`` public keys ``v1a`` signatures verify with (the endpoint must
        have ``v1a`` enabled)."""
        return cast(EndpointPublicKeys, await self._client._request(ops.get_endpoint_public_keys(endpoint_id)))

    async def rotate_public_key(self, endpoint_id: str) -> EndpointPublicKeys:
        """Installs a new Ed25519 key pair; the previous key keeps signing for the
        server's grace period."""
        return cast(EndpointPublicKeys, await self._client._request(ops.rotate_endpoint_public_key(endpoint_id)))

    async def health(self, endpoint_id: str) -> EndpointHealth:
        """Success rate, last status and circuit state."""
        return cast(EndpointHealth, await self._client._request(ops.get_endpoint_health(endpoint_id)))


class Subscriptions(_Resource):
    """Which events go to which endpoint (``/v1/subscriptions``)."""

    async def create(self, **params: Unpack[SubscriptionCreateParams]) -> Subscription:
        """Creates a subscription; an invalid filter or mapping raises `ValidationError`
        whose ``problem`` has the ``position``."""
        return cast(Subscription, await self._client._request(ops.create_subscription(params)))

    def list(self, *, endpoint_id: str | None = None, limit: int | None = None) -> AsyncPaginator[Subscription]:
        """All subscriptions, or those of one endpoint."""
        return self._client._list(ops.list_subscriptions(endpoint_id, limit))

    async def get(self, subscription_id: str) -> Subscription:
        return cast(Subscription, await self._client._request(ops.get_subscription(subscription_id)))

    async def update(self, subscription_id: str, **params: Unpack[SubscriptionUpdateParams]) -> Subscription:
        """Changes the given fields; None removes the filter or the transform."""
        return cast(Subscription, await self._client._request(ops.update_subscription(subscription_id, params)))

    async def delete(self, subscription_id: str) -> None:
        await self._client._request(ops.delete_subscription(subscription_id))

    async def preview(self, subscription: PreviewSubscription, event: PreviewEvent) -> PreviewResult:
        """A dry run of topic match, filter and transform for one event; nothing is
        stored or sent."""
        return cast(PreviewResult, await self._client._request(ops.preview_subscription(subscription, event)))


class Deliveries(_Resource):
    """Deliveries (one event for one subscription) and their attempts (``/v1/deliveries``)."""

    def list(
        self,
        *,
        event_id: str | None = None,
        endpoint_id: str | None = None,
        status: DeliveryState | None = None,
        limit: int | None = None,
    ) -> AsyncPaginator[Delivery]:
        """Deliveries filtered by event, endpoint and status."""
        return self._client._list(ops.list_deliveries(event_id, endpoint_id, status, limit))

    async def get(self, delivery_id: str) -> DeliveryWithAttempts:
        """One delivery with every attempt."""
        return cast(DeliveryWithAttempts, await self._client._request(ops.get_delivery(delivery_id)))


class Dlq(_Resource):
    """The dead-letter queue (``/v1/dlq``)."""

    def list(self, *, endpoint_id: str | None = None, limit: int | None = None) -> AsyncPaginator[Delivery]:
        """Dead deliveries, optionally of one endpoint."""
        return self._client._list(ops.list_dlq(endpoint_id, limit))

    async def requeue(
        self, *, delivery_ids: Sequence[str] | None = None, endpoint_id: str | None = None
    ) -> RequeueResult:
        """Puts dead deliveries (by id, or all of an endpoint) back in the queue with a
        fresh schedule."""
        return cast(RequeueResult, await self._client._request(ops.requeue_dlq(delivery_ids, endpoint_id)))


class Replay(_Resource):
    """Delivering stored events again, as new deliveries (``/v1/replay``)."""

    async def create(
        self,
        *,
        event_id: str | None = None,
        from_: str | datetime | None = None,
        to: str | datetime | None = None,
        topic: str | None = None,
        endpoint_id: str | None = None,
        subscription_id: str | None = None,
    ) -> ReplayResult:
        """Replays one event (``event_id``), or the events accepted in ``[from_, to)``
        (optionally of a ``topic`` pattern), to the subscriptions that match now,
        optionally only those of ``endpoint_id`` or ``subscription_id``."""
        request = ops.create_replay(
            event_id=event_id,
            start=from_,
            end=to,
            topic=topic,
            endpoint_id=endpoint_id,
            subscription_id=subscription_id,
        )
        return cast(ReplayResult, await self._client._request(request))


class Stats(_Resource):
    """Queue depth, in flight, retry backlog, DLQ size and per-endpoint health (``/v1/stats``)."""

    async def get(self) -> StatsOut:
        return cast(StatsOut, await self._client._request(ops.get_stats()))


class Plugins(_Resource):
    """WASM transform plugins (``/v1/plugins``)."""

    async def upload(self, name: str, version: str, module: bytes) -> Plugin:
        """Uploads a ``.wasm`` module; it is validated (ABI, imports) before it is accepted."""
        return cast(Plugin, await self._client._request(ops.upload_plugin(name, version, module)))

    def list(self) -> AsyncPaginator[Plugin]:
        return self._client._list(ops.list_plugins())

    async def delete(self, name: str, version: str) -> None:
        """Deletes one version; refused (`ConflictError`, ``plugin_in_use``) while a
        subscription uses it."""
        await self._client._request(ops.delete_plugin(name, version))


class Inbox(_Resource):
    """Messages captured by ``inbox`` endpoints."""

    def list(self, endpoint_id: str, *, limit: int | None = None) -> AsyncPaginator[InboxMessage]:
        """The captured requests of one inbox endpoint, oldest first."""
        return self._client._list(ops.list_inbox(endpoint_id, limit))


class Tenants(_Resource):
    """Tenants and their API keys; needs the admin token (``/v1/tenants``)."""

    async def create(self, name: str) -> Tenant:
        return cast(Tenant, await self._client._request(ops.create_tenant(name)))

    def list(self, *, limit: int | None = None) -> AsyncPaginator[Tenant]:
        return self._client._list(ops.list_tenants(limit))

    async def get(self, tenant_id: str) -> Tenant:
        return cast(Tenant, await self._client._request(ops.get_tenant(tenant_id)))

    async def update(self, tenant_id: str, **params: Unpack[TenantUpdateParams]) -> Tenant:
        return cast(Tenant, await self._client._request(ops.update_tenant(tenant_id, params)))

    async def create_key(self, tenant_id: str, name: str, scopes: Sequence[Scope]) -> ApiKeyCreated:
        """Creates an API key; its secret ``key`` is in this answer only."""
        return cast(ApiKeyCreated, await self._client._request(ops.create_key(tenant_id, name, scopes)))

    def list_keys(self, tenant_id: str, *, limit: int | None = None) -> AsyncPaginator[ApiKey]:
        return self._client._list(ops.list_keys(tenant_id, limit))

    async def revoke_key(self, tenant_id: str, key_id: str) -> None:
        """Revokes a key at once."""
        await self._client._request(ops.revoke_key(tenant_id, key_id))


class Stream(_Resource):
    """The tenant stream (``/v1/stream``)."""

    def subscribe(
        self,
        *,
        topics: str | Sequence[str] | None = None,
        cursor: str | int | None = None,
        idle_timeout: float = 45.0,
    ) -> AsyncStreamSubscription:
        """Follows the tenant stream; iterate the subscription for `StreamEvent` and
        `StreamReset` items.

        Args:
            topics: Topic patterns (``orders.#``, ``deliveries.status``). One pattern is
                filtered by the server; several are matched here. Default: everything.
            cursor: Resume after this cursor (``0``: from the oldest history kept).
                None: live items only, from the moment of connecting.
            idle_timeout: Reconnect when nothing arrives for this many seconds, not even
                the keepalive the server sends every 15 s.
        """
        return AsyncStreamSubscription(self._client, _Session(topics, cursor, idle_timeout))
