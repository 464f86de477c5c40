"""The API's request and response shapes, field for field as the server sends them
(as in docs/openapi.json). Responses are plain dicts typed with these TypedDicts.
Times are RFC 3339 strings in UTC."""

# Optional/Union (not `X | None`) so the hints also evaluate at run time on Python 3.9.
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from typing_extensions import NotRequired, TypedDict

JsonObject = dict[str, Any]

# ---- events


class PublishParams(TypedDict):
    """One event to publish (an item of ``events.batch``)."""

    topic: str
    payload: JsonObject
    idempotency_key: NotRequired[str]


class PublishResult(TypedDict):
    id: str
    cursor: int
    """Position in the tenant's stream."""
    deduped: bool
    """True when an earlier publish with the same idempotency key answered."""


class BatchError(TypedDict):
    error: dict[str, Any]
    """The problem document that refused this item."""


BatchItem = Union[PublishResult, BatchError]


class BatchResult(TypedDict):
    data: list[BatchItem]


class Event(TypedDict):
    id: str
    topic: str
    cursor: int
    payload: JsonObject
    idempotency_key: Optional[str]
    created_at: str


class EventWithDeliveries(Event):
    deliveries: list[Delivery]


# ---- endpoints

EndpointKind = Literal["http", "inbox"]
SignatureScheme = Literal["v1", "v1a"]
"""``v1``: HMAC-SHA256 with the ``whsec_`` secret; ``v1a``: Ed25519, verified with the
``whpk_`` public key."""


class EndpointCreateParams(TypedDict, total=False):
    url: str
    """http or https; required for ``http`` endpoints."""
    kind: EndpointKind
    description: str
    secret: str
    """A ``whsec_`` secret; generated when absent."""
    signature_schemes: list[SignatureScheme]
    """``["v1"]`` (default), ``["v1", "v1a"]`` or ``["v1a"]``: enabling ``v1a`` generates
    the endpoint's Ed25519 key pair."""
    headers: dict[str, str]
    timeout_ms: int
    rate_limit_per_sec: int
    max_in_flight: int
    retry_schedule_secs: list[int]
    enabled: bool


class EndpointUpdateParams(TypedDict, total=False):
    """Fields to change; absent fields stay, None clears an optional setting."""

    url: str
    description: str
    headers: dict[str, str]
    signature_schemes: list[SignatureScheme]
    timeout_ms: Optional[int]
    rate_limit_per_sec: Optional[int]
    max_in_flight: Optional[int]
    retry_schedule_secs: Optional[list[int]]
    enabled: bool


class Endpoint(TypedDict):
    id: str
    kind: EndpointKind
    url: Optional[str]
    description: str
    headers: dict[str, str]
    signature_schemes: list[SignatureScheme]
    public_key: Optional[str]
    """The current ``whpk_`` public key; None until ``v1a`` is enabled."""
    timeout_ms: Optional[int]
    rate_limit_per_sec: Optional[int]
    max_in_flight: Optional[int]
    retry_schedule_secs: Optional[list[int]]
    enabled: bool
    disabled_reason: Optional[str]
    created_at: str
    updated_at: str


class EndpointPublicKey(TypedDict):
    public_key: str
    created_at: str
    expires_at: Optional[str]
    """When a rotated-out key stops signing; None for the current key."""


class EndpointPublicKeys(TypedDict):
    """An endpoint's ``v1a`` public keys: the current one, then rotated-out ones still
    signing."""

    public_key: str
    keys: list[EndpointPublicKey]


class EndpointHealth(TypedDict):
    endpoint_id: str
    enabled: bool
    disabled_reason: Optional[str]
    circuit: str
    """``closed``, ``open`` or ``half_open``."""
    consecutive_failures: int
    success_rate: Optional[float]
    recent_attempts: int
    in_flight: int
    last_status_code: Optional[int]
    last_error: Optional[str]
    last_attempt_at: Optional[str]


# ---- subscriptions


class SubscriptionCreateParams(TypedDict):
    endpoint_id: str
    topics: list[str]
    """``orders.created``, ``orders.*`` (one segment), ``orders.#`` (any number)."""
    filter: NotRequired[str]
    transform: NotRequired[dict[str, Any]]
    enabled: NotRequired[bool]


class SubscriptionUpdateParams(TypedDict, total=False):
    """Fields to change; None removes the filter or the transform."""

    endpoint_id: str
    topics: list[str]
    filter: Optional[str]
    transform: Optional[dict[str, Any]]
    enabled: bool


class Subscription(TypedDict):
    id: str
    endpoint_id: str
    topics: list[str]
    filter: Optional[str]
    transform: Optional[dict[str, Any]]
    enabled: bool
    created_at: str
    updated_at: str


class PreviewSubscription(TypedDict):
    topics: list[str]
    endpoint_id: NotRequired[str]
    filter: NotRequired[str]
    transform: NotRequired[dict[str, Any]]


class PreviewEvent(TypedDict):
    topic: str
    payload: JsonObject


class PreviewStage(TypedDict):
    stage: str
    took_us: int
    matched: bool
    explain: NotRequired[dict[str, Any]]
    error: NotRequired[str]


class PreviewResult(TypedDict):
    matched: bool
    body: Optional[JsonObject]
    stages: list[PreviewStage]


# ---- deliveries, DLQ, replay

DeliveryState = Literal["pending", "in_flight", "succeeded", "retrying", "dead", "cancelled"]


class Delivery(TypedDict):
    id: str
    event_id: str
    subscription_id: str
    endpoint_id: str
    status: DeliveryState
    attempt_count: int
    next_attempt_at: Optional[str]
    created_at: str
    updated_at: str


class Attempt(TypedDict):
    id: str
    number: int
    started_at: str
    status_code: Optional[int]
    latency_ms: int
    response_excerpt: Optional[str]
    error_kind: Optional[str]
    request_headers: Optional[list[list[str]]]
    """``[name, value]`` pairs as sent (custom header values ``[redacted]``); None when
    nothing was sent."""


class DeliveryWithAttempts(Delivery):
    attempts: list[Attempt]


class RequeueResult(TypedDict):
    requeued: int
    complete: bool
    """False when the requeue stopped before the end of its selection (see ``stopped``)."""
    stopped: NotRequired[Literal["queue_full", "max_requeue"]]


class ReplayResult(TypedDict):
    replay_id: str
    deliveries: int
    """New deliveries created."""
    events: int
    """Events selected."""
    created_at: str
    complete: bool
    """False when the replay stopped before its last event (see ``stopped``)."""
    stopped: NotRequired[Literal["queue_full"]]
    resume_from: NotRequired[str]
    """Replay again from this time (the first event not replayed) for the rest."""


# ---- operations


class EndpointStats(TypedDict):
    endpoint_id: str
    enabled: bool
    circuit: str
    consecutive_failures: int
    success_rate: Optional[float]
    in_flight: int
    last_status_code: Optional[int]
    last_attempt_at: Optional[str]


class Stats(TypedDict):
    scope: Literal["tenant", "all"]
    tenant_id: Optional[str]
    queue_depth: int
    in_flight: int
    retry_backlog: int
    dlq_size: int
    endpoints: NotRequired[list[EndpointStats]]
    tenants: NotRequired[list[dict[str, Any]]]


class Plugin(TypedDict):
    name: str
    version: str
    sha256: str
    size: int
    abi: int
    sdk: Optional[str]
    created_at: str


class InboxMessage(TypedDict):
    id: str
    endpoint_id: str
    delivery_id: str
    event_id: str
    topic: str
    received_at: str
    headers: list[tuple[str, str]]
    body: str


# ---- tenants and keys (admin token)

Scope = Literal[
    "events:write", "events:read", "endpoints:manage", "replay:write", "dlq:manage", "audit:read", "stats:read"
]


class Tenant(TypedDict):
    id: str
    name: str
    created_at: str
    retention: dict[str, Optional[int]]


class TenantUpdateParams(TypedDict, total=False):
    name: str
    retention: dict[str, Optional[int]]


class ApiKey(TypedDict):
    id: str
    name: str
    scopes: list[Scope]
    created_at: str
    revoked_at: Optional[str]


class ApiKeyCreated(TypedDict):
    id: str
    name: str
    scopes: list[Scope]
    created_at: str
    key: str
    """The secret, shown only in this answer."""


# ---- stream


class DeliveryStatusUpdate(TypedDict):
    """The data of a ``deliveries.status`` stream item: one attempt's outcome."""

    attempt_id: str
    delivery_id: str
    event_id: str
    endpoint_id: str
    subscription_id: str
    status: Literal["succeeded", "retrying", "dead", "cancelled"]
    attempt: int
    http_code: Optional[int]
    latency_ms: int
    error_kind: Optional[str]
    at: str


class StreamResetInfo(TypedDict):
    requested_cursor: int
    resumed_after: int
    oldest_available: int
    head: int
    reason: str
