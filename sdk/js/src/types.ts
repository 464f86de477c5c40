/**
 * The API's request and response shapes, field for field as the server sends them
 * (snake_case, as in docs/openapi.json). Times are RFC 3339 strings in UTC.
 *
 * @module
 */

import type { Problem } from "./core/errors.js";

/** A JSON object. */
export type JsonObject = Record<string, unknown>;

// ---- events

/** What `events.publish` sends. */
export interface PublishParams {
  /** Dot-separated topic, e.g. `orders.created`. */
  topic: string;
  /** Any JSON object; stored and delivered byte for byte. */
  payload: JsonObject;
  /** Dedupes publishes within the server's idempotency window. */
  idempotency_key?: string;
}

/** The answer to a publish. */
export interface PublishResult {
  id: string;
  /** Position in the tenant's stream. */
  cursor: number;
  /** True when an earlier publish with the same idempotency key answered. */
  deduped: boolean;
}

/** One item of a batch answer: the outcome, or the problem that refused that item. */
export type BatchItem = PublishResult | { error: Problem };

export interface BatchResult {
  data: BatchItem[];
}

export interface Event {
  id: string;
  topic: string;
  cursor: number;
  payload: JsonObject;
  idempotency_key: string | null;
  created_at: string;
}

/** An event with a summary of its deliveries (`events.get`). */
export interface EventWithDeliveries extends Event {
  deliveries: Delivery[];
}

export interface EventListParams extends ListParams {
  /** A topic pattern (`orders.*`, `orders.#`). */
  topic?: string;
  /** Only events after this stream cursor. */
  after_cursor?: number;
}

// ---- lists

export interface ListParams {
  /** Page size, 1 to 1000 (default 50). */
  limit?: number;
  /** The `nextCursor` of the previous page. */
  cursor?: string;
}

// ---- endpoints

export type EndpointKind = "http" | "inbox";

export interface EndpointCreateParams {
  /** http or https; required for `http` endpoints. */
  url?: string;
  /** `http` (default) delivers; `inbox` captures deliveries for inspection. */
  kind?: EndpointKind;
  description?: string;
  /** A `whsec_` secret; generated when absent. */
  secret?: string;
  /** `["v1"]` (default), `["v1", "v1a"]` or `["v1a"]`: enabling `v1a` (Ed25519) generates the key pair. */
  signature_schemes?: SignatureScheme[];
  /** Extra headers sent with every delivery. */
  headers?: Record<string, string>;
  timeout_ms?: number;
  rate_limit_per_sec?: number;
  max_in_flight?: number;
  /** Delays in seconds before each retry; replaces the default schedule. */
  retry_schedule_secs?: number[];
  enabled?: boolean;
}

/** Fields to change; absent fields stay, `null` clears an optional setting. */
export interface EndpointUpdateParams {
  url?: string;
  description?: string;
  headers?: Record<string, string>;
  signature_schemes?: SignatureScheme[];
  timeout_ms?: number | null;
  rate_limit_per_sec?: number | null;
  max_in_flight?: number | null;
  retry_schedule_secs?: number[] | null;
  enabled?: boolean;
}

/** `v1`: HMAC-SHA256 with the `whsec_` secret; `v1a`: Ed25519, verified with the `whpk_` public key. */
export type SignatureScheme = "v1" | "v1a";

/** An endpoint's `v1a` public keys: the current one, then rotated-out ones still signing. */
export interface EndpointPublicKeys {
  public_key: string;
  keys: { public_key: string; created_at: string; expires_at: string | null }[];
}

export interface Endpoint {
  id: string;
  kind: EndpointKind;
  url: string | null;
  description: string;
  headers: Record<string, string>;
  signature_schemes: SignatureScheme[];
  /** The current `whpk_` public key; `null` until `v1a` is enabled. */
  public_key: string | null;
  timeout_ms: number | null;
  rate_limit_per_sec: number | null;
  max_in_flight: number | null;
  retry_schedule_secs: number[] | null;
  enabled: boolean;
  disabled_reason: string | null;
  created_at: string;
  updated_at: string;
}

/** An endpoint's delivery health (since the serving node started). */
export interface EndpointHealth {
  endpoint_id: string;
  enabled: boolean;
  disabled_reason: string | null;
  /** `closed`, `open` or `half_open`. */
  circuit: string;
  consecutive_failures: number;
  /** Over the last 100 attempts; `null` before any. */
  success_rate: number | null;
  /** Attempts the success rate is over (up to 100). */
  recent_attempts: number;
  in_flight: number;
  last_status_code: number | null;
  last_error: string | null;
  last_attempt_at: string | null;
}

// ---- subscriptions

export interface PluginRef {
  name: string;
  version: string;
  config?: JsonObject;
}

export interface Transform {
  mapping?: JsonObject;
  plugins?: PluginRef[];
  [member: string]: unknown;
}

export interface SubscriptionCreateParams {
  endpoint_id: string;
  /** `orders.created`, `orders.*` (one segment), `orders.#` (any number). */
  topics: string[];
  /** A filter expression, e.g. `payload.amount > 100`. */
  filter?: string;
  transform?: Transform;
  enabled?: boolean;
}

/** Fields to change; `null` removes the filter or the transform. */
export interface SubscriptionUpdateParams {
  endpoint_id?: string;
  topics?: string[];
  filter?: string | null;
  transform?: Transform | null;
  enabled?: boolean;
}

export interface Subscription {
  id: string;
  endpoint_id: string;
  topics: string[];
  filter: string | null;
  transform: Transform | null;
  enabled: boolean;
  created_at: string;
  updated_at: string;
}

export interface SubscriptionListParams extends ListParams {
  endpoint_id?: string;
}

export interface PreviewParams {
  /** The subscription as it would be created (`endpoint_id` optional). */
  subscription: Omit<SubscriptionCreateParams, "endpoint_id"> & { endpoint_id?: string };
  /** The event as it would be published. */
  event: { topic: string; payload: JsonObject };
}

export interface PreviewStage {
  /** `topic`, `filter`, then the transform stages. */
  stage: string;
  took_us: number;
  matched: boolean;
  explain?: JsonObject;
  error?: string;
}

export interface PreviewResult {
  /** Whether the event would be delivered. */
  matched: boolean;
  /** The body that would be delivered, or `null`. */
  body: JsonObject | null;
  stages: PreviewStage[];
}

// ---- deliveries, DLQ, replay

export type DeliveryState = "pending" | "in_flight" | "succeeded" | "retrying" | "dead" | "cancelled";

export interface Delivery {
  id: string;
  event_id: string;
  subscription_id: string;
  endpoint_id: string;
  status: DeliveryState;
  attempt_count: number;
  next_attempt_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface Attempt {
  id: string;
  number: number;
  started_at: string;
  status_code: number | null;
  latency_ms: number;
  response_excerpt: string | null;
  /** `http_500`, `timeout`, `connect`, … */
  error_kind: string | null;
  /** `[name, value]` pairs as sent (custom header values `[redacted]`); null when nothing was sent. */
  request_headers: [string, string][] | null;
}

export interface DeliveryWithAttempts extends Delivery {
  attempts: Attempt[];
}

export interface DeliveryListParams extends ListParams {
  event_id?: string;
  endpoint_id?: string;
  status?: DeliveryState;
}

export interface DlqListParams extends ListParams {
  endpoint_id?: string;
}

/** Either `delivery_ids` or `endpoint_id`. */
export type RequeueParams = { delivery_ids: string[] } | { endpoint_id: string };

export interface RequeueResult {
  /** How many dead deliveries went back to the queue. */
  requeued: number;
  /** False when the requeue stopped before the end of its selection (see `stopped`). */
  complete: boolean;
  /** `queue_full` (the tenant's queue limit; requeue the rest later) or `max_requeue` (call again). */
  stopped?: "queue_full" | "max_requeue";
}

/** Narrows a replay to one endpoint or one subscription. */
export type ReplayTarget = { endpoint_id?: string; subscription_id?: never } | { subscription_id?: string; endpoint_id?: never };

/** One event, or the events accepted in `[from, to)` (optionally of a topic pattern). */
export type ReplayParams = ({ event_id: string } | { from: string | Date; to: string | Date; topic?: string }) &
  ReplayTarget;

export interface ReplayResult {
  replay_id: string;
  /** New deliveries created. */
  deliveries: number;
  /** Events selected. */
  events: number;
  created_at: string;
  /** False when the replay stopped before its last event (see `stopped`). */
  complete: boolean;
  /** `queue_full`: the tenant's queue reached its limit. */
  stopped?: "queue_full";
  /** Replay again from this time (the first event not replayed) for the rest. */
  resume_from?: string;
}

// ---- operations

export interface QueueCounts {
  queue_depth: number;
  in_flight: number;
  retry_backlog: number;
  dlq_size: number;
}

export interface EndpointStats {
  endpoint_id: string;
  enabled: boolean;
  circuit: string;
  consecutive_failures: number;
  success_rate: number | null;
  in_flight: number;
  last_status_code: number | null;
  last_attempt_at: string | null;
}

export interface Stats extends QueueCounts {
  /** `tenant` for a tenant key, `all` for the bare admin token. */
  scope: "tenant" | "all";
  tenant_id: string | null;
  endpoints?: EndpointStats[];
  tenants?: (QueueCounts & { tenant_id: string })[];
}

// ---- plugins and inbox

export interface PluginUploadParams {
  name: string;
  /** A semantic version, e.g. `1.0.0`. */
  version: string;
  /** The `.wasm` module. */
  module: Uint8Array | ArrayBuffer | Blob;
}

export interface Plugin {
  name: string;
  version: string;
  sha256: string;
  size: number;
  abi: number;
  sdk: string | null;
  created_at: string;
}

export interface InboxMessage {
  id: string;
  endpoint_id: string;
  delivery_id: string;
  event_id: string;
  topic: string;
  received_at: string;
  /** Every header of the captured request, signature included, in order. */
  headers: [string, string][];
  /** The captured body, exactly as it would have been sent. */
  body: string;
}

// ---- tenants and keys (admin token)

export type Scope =
  | "events:write"
  | "events:read"
  | "endpoints:manage"
  | "replay:write"
  | "dlq:manage"
  | "audit:read"
  | "stats:read";

export interface Tenant {
  id: string;
  name: string;
  created_at: string;
  retention: { events_max_age_secs: number | null; dlq_max_age_secs: number | null };
}

export interface TenantUpdateParams {
  name?: string;
  retention?: { events_max_age_secs?: number | null; dlq_max_age_secs?: number | null };
}

export interface ApiKey {
  id: string;
  name: string;
  scopes: Scope[];
  created_at: string;
  revoked_at: string | null;
}

/** A new key: `key` (the secret) is shown only in this answer. */
export interface ApiKeyCreated {
  id: string;
  name: string;
  scopes: Scope[];
  created_at: string;
  key: string;
}

// ---- stream

/** The payload of a `deliveries.status` stream item: one delivery attempt's outcome. */
export interface DeliveryStatusUpdate {
  attempt_id: string;
  delivery_id: string;
  event_id: string;
  endpoint_id: string;
  subscription_id: string;
  /** The delivery's state after the attempt. */
  status: "succeeded" | "retrying" | "dead" | "cancelled";
  attempt: number;
  http_code: number | null;
  latency_ms: number;
  error_kind: string | null;
  at: string;
}

/** What a `gatepulse.reset` frame says: the requested cursor was out of reach. */
export interface StreamResetInfo {
  requested_cursor: number;
  resumed_after: number;
  oldest_available: number;
  head: number;
  /** `backfill_max_events`, `backfill_max_age`, `retention` or `cursor_ahead`. */
  reason: string;
}
