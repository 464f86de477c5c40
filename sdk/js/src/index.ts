/**
 * The GatePulse SDK: the API client ({@link GatePulse}) and webhook verification
 * ({@link Webhook}).
 *
 * @packageDocumentation
 */

export { GatePulse, DEFAULT_BASE_URL, type GatePulseOptions } from "./client.js";
export {
  GatePulseError,
  ValidationError,
  AuthenticationError,
  PermissionDeniedError,
  NotFoundError,
  ConflictError,
  RateLimitError,
  ServerError,
  APIConnectionError,
  APITimeoutError,
  type GatePulseErrorInit,
  type Problem,
} from "./core/errors.js";
export type { ClientConfig, Query, RequestOptions } from "./core/http.js";
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./core/retry.js";
export { Page, PagePromise, type ListEnvelope, type PageFetcher } from "./pagination.js";
export { topicMatches } from "./topics.js";
export {
  Webhook,
  WebhookVerificationError,
  type HeadersLike,
  type RawBody,
  type VerifyOptions,
  type WebhookErrorCode,
  type WebhookOptions,
} from "./webhook.js";
export type { StreamEvent, StreamItem, StreamReset, StreamSubscription, SubscribeOptions } from "./stream/stream.js";
export type * from "./types.js";
export { VERSION } from "./version.js";
export type { Events } from "./resources/events.js";
export type { Endpoints } from "./resources/endpoints.js";
export type { Subscriptions } from "./resources/subscriptions.js";
export type { Deliveries, Dlq, Replay } from "./resources/deliveries.js";
export type { Inbox, Plugins, StatsResource, Tenants } from "./resources/operations.js";
export type { Stream } from "./stream/stream.js";
