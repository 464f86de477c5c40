/**
 * Errors raised by the API client: one base class, {@link GatePulseError}, with a
 * subclass per kind of failure, so callers can `catch` broadly or precisely.
 *
 * Every error answered by the server carries the RFC 9457 problem document's `code`
 * (stable, machine-readable), `detail` (human-readable), the HTTP `status`, the
 * response headers and the whole `problem`.
 *
 * @module
 */

import { parseRetryAfter } from "./retry.js";

/** An RFC 9457 problem document as GatePulse sends it (`application/problem+json`). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  /** Stable machine-readable code, e.g. `invalid_topic`, `missing_scope`. */
  code: string;
  /** Extra members: `field`, `position`, `scope`, … depending on `code`. */
  [member: string]: unknown;
}

/** What an error is built from. */
export interface GatePulseErrorInit {
  status?: number | undefined;
  code?: string | undefined;
  detail?: string | undefined;
  headers?: Headers | undefined;
  problem?: Problem | undefined;
  cause?: unknown;
}

/** Base class of every error the client raises for a failed API call. */
export class GatePulseError extends Error {
  /** HTTP status, or `undefined` when no response came (connection, timeout). */
  readonly status: number | undefined;
  /** The problem document's `code` (e.g. `invalid_topic`), when the server sent one. */
  readonly code: string | undefined;
  /** The problem document's `detail`. */
  readonly detail: string | undefined;
  /** The request id the server answered with (`x-request-id`), if any. */
  readonly requestId: string | undefined;
  /** Response headers (empty when no response came). */
  readonly headers: Headers;
  /** The whole problem document, with its extra members (`field`, `position`, …). */
  readonly problem: Problem | undefined;

  constructor(message: string, init: GatePulseErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "GatePulseError";
    this.status = init.status;
    this.code = init.code;
    this.detail = init.detail;
    this.headers = init.headers ?? new Headers();
    this.requestId = this.headers.get("x-request-id") ?? this.headers.get("request-id") ?? undefined;
    this.problem = init.problem;
  }
}

/** 400, 413, 415 or 422: the request was refused as invalid (see `code` and `problem.field`). */
export class ValidationError extends GatePulseError {
  override readonly name: string = "ValidationError";
}

/** 401: no token, or an invalid or revoked one. */
export class AuthenticationError extends GatePulseError {
  override readonly name: string = "AuthenticationError";
}

/** 403: the key lacks a scope (`problem.scope`), or the route is admin-only. */
export class PermissionDeniedError extends GatePulseError {
  override readonly name: string = "PermissionDeniedError";
}

/** 404: unknown id (also another tenant's), unknown tenant or route. */
export class NotFoundError extends GatePulseError {
  override readonly name: string = "NotFoundError";
}

/** 409: a conflict such as `limit_reached`, `already_exists` or `plugin_in_use`. */
export class ConflictError extends GatePulseError {
  override readonly name: string = "ConflictError";
}

/** `Retry-After` in whole seconds, if the response carries a valid one. */
function retryAfterSeconds(headers: Headers): number | undefined {
  const ms = parseRetryAfter(headers.get("retry-after"), Date.now());
  return ms === undefined ? undefined : Math.ceil(ms / 1000);
}

/** 429: overloaded; `retryAfter` says how many seconds to wait. */
export class RateLimitError extends GatePulseError {
  override readonly name: string = "RateLimitError";
  /** Seconds the server asked to wait (`Retry-After`), if it said. */
  readonly retryAfter: number | undefined;

  constructor(message: string, init: GatePulseErrorInit = {}) {
    super(message, init);
    this.retryAfter = retryAfterSeconds(this.headers);
  }
}

/** 5xx: the server failed or is unavailable (503 carries `retryAfter`). */
export class ServerError extends GatePulseError {
  override readonly name: string = "ServerError";
  /** Seconds the server asked to wait (`Retry-After`), if it said. */
  readonly retryAfter: number | undefined;

  constructor(message: string, init: GatePulseErrorInit = {}) {
    super(message, init);
    this.retryAfter = retryAfterSeconds(this.headers);
  }
}

/** No response: the connection failed (refused, reset, DNS, TLS). */
export class APIConnectionError extends GatePulseError {
  override readonly name: string = "APIConnectionError";
}

/** No response within `timeoutMs`. */
export class APITimeoutError extends APIConnectionError {
  override readonly name: string = "APITimeoutError";
}

type ErrorClass = new (message: string, init?: GatePulseErrorInit) => GatePulseError;

function classFor(status: number): ErrorClass {
  switch (status) {
    case 400:
    case 413:
    case 415:
    case 422:
      return ValidationError;
    case 401:
      return AuthenticationError;
    case 403:
      return PermissionDeniedError;
    case 404:
      return NotFoundError;
    case 409:
      return ConflictError;
    case 429:
      return RateLimitError;
    default:
      return status >= 500 ? ServerError : GatePulseError;
  }
}

function asProblem(body: unknown): Problem | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const p = body as Record<string, unknown>;
  return typeof p.code === "string" ? (p as Problem) : undefined;
}

/** The error for a non-2xx response, from its status, headers and body text. */
export function errorFromResponse(status: number, headers: Headers, text: string): GatePulseError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const problem = asProblem(body);
  const detail = problem?.detail ?? (text.trim().slice(0, 500) || undefined);
  const code = problem?.code;
  const message = `${status}${code ? ` ${code}` : ""}${detail ? `: ${detail}` : ""}`;
  const Class = classFor(status);
  return new Class(message, { status, code, detail, headers, problem });
}
