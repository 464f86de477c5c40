/**
 * The request core every resource goes through: URL and headers, JSON bodies,
 * per-attempt timeouts, retries (see {@link retryDelay}) and errors. Uses only the
 * `fetch` API, so it runs on Node 20+, Bun, Deno, browsers and edge runtimes.
 *
 * @module
 */

import { APIConnectionError, APITimeoutError, GatePulseError, errorFromResponse } from "./errors.js";
import { type AttemptOutcome, type RetryPolicy, retryDelay } from "./retry.js";
import { VERSION } from "../version.js";

/** Per-call options, accepted as the last argument of every method. */
export interface RequestOptions {
  /**
   * Idempotency key of a POST. Generated when absent; the same key is sent on every
   * retry of the call, so a publish retried after a lost answer is stored once.
   */
  idempotencyKey?: string | undefined;
  /** Overrides the client's `timeoutMs` for this call (per attempt). */
  timeoutMs?: number | undefined;
  /** Overrides the client's `maxRetries` for this call. */
  maxRetries?: number | undefined;
  /** Aborts the call (and any retry wait). */
  signal?: AbortSignal | undefined;
  /** Extra request headers. */
  headers?: Record<string, string> | undefined;
}

/** The resolved client settings the core works with. */
export interface ClientConfig {
  apiKey: string;
  baseUrl: string;
  timeoutMs: number;
  retry: RetryPolicy;
  fetch: typeof fetch;
  /** `GatePulse-Tenant`: the tenant an admin token acts in. */
  tenant: string | undefined;
  headers: Record<string, string>;
}

/** Query parameters; `undefined` and `null` values are left out. */
export type Query = Record<string, string | number | boolean | null | undefined>;

/** One API call, as resources describe it. */
export interface RequestSpec {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  path: string;
  query?: Query | undefined;
  /** A JSON body. */
  json?: unknown;
  /** A non-JSON body with its content type (plugin uploads). */
  raw?: { body: Uint8Array | ArrayBuffer | Blob; contentType: string } | undefined;
  headers?: Record<string, string> | undefined;
}

/** A response whose status is known; `body` is set only when it was left unread. */
export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  body: ReadableStream<Uint8Array> | null;
}

/** A fresh idempotency key (`gp-` + a random UUID). */
export function newIdempotencyKey(): string {
  return `gp-${globalThis.crypto.randomUUID()}`;
}

/** True once `signal` has aborted (a call, so narrowing never hides a later abort). */
export function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/** Why `signal` aborted, as an Error. */
export function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new Error(typeof reason === "string" ? reason : "aborted");
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (isAborted(signal)) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A fetch failure in words: Node's `fetch failed` says why in its cause (`ECONNREFUSED`). */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause: unknown = error.cause;
  const code = typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : undefined;
  return code === undefined ? error.message : `${error.message} (${code})`;
}

/** Sends requests for one client. */
export class HttpClient {
  constructor(readonly config: ClientConfig) {}

  /** Sends `spec` with retries and returns the parsed JSON answer (`undefined` for 204). */
  async request<T>(spec: RequestSpec, options: RequestOptions = {}): Promise<T> {
    const reply = await this.send(spec, options);
    return (reply.text === "" ? undefined : JSON.parse(reply.text)) as T;
  }

  /**
   * Sends `spec`, retrying as the policy says, and resolves with the first 2xx
   * reply; any other outcome throws a {@link GatePulseError}. With `readBody`
   * false a 2xx reply's body is left unread (streams).
   */
  async send(spec: RequestSpec, options: RequestOptions = {}, readBody = true): Promise<Reply> {
    const url = this.url(spec.path, spec.query);
    const init: RequestInit = {
      method: spec.method,
      headers: this.headers(spec, options),
      body: spec.json !== undefined ? JSON.stringify(spec.json) : ((spec.raw?.body as BodyInit | undefined) ?? null),
    };
    const policy = { ...this.config.retry, maxRetries: options.maxRetries ?? this.config.retry.maxRetries };
    const timeoutMs = options.timeoutMs ?? this.config.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      let failure: GatePulseError;
      let outcome: AttemptOutcome;
      try {
        const reply = await this.attempt(url, init, timeoutMs, options.signal, readBody);
        if (reply.status >= 200 && reply.status < 300) return reply;
        failure = errorFromResponse(reply.status, reply.headers, reply.text);
        outcome = { status: reply.status, retryAfter: reply.headers.get("retry-after") };
      } catch (e) {
        if (!(e instanceof APIConnectionError)) throw e;
        failure = e;
        outcome = { error: e instanceof APITimeoutError ? "timeout" : "connection" };
      }
      const delay = retryDelay(policy, attempt, outcome);
      if (delay === null) throw failure;
      await sleep(delay, options.signal);
    }
  }

  private url(path: string, query: Query | undefined): string {
    const url = new URL(this.config.baseUrl + path);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    return url.toString();
  }

  private headers(spec: RequestSpec, options: RequestOptions): Headers {
    const headers = new Headers({
      accept: "application/json",
      authorization: `Bearer ${this.config.apiKey}`,
      "user-agent": `gatepulse-js/${VERSION}`,
    });
    if (this.config.tenant !== undefined) headers.set("gatepulse-tenant", this.config.tenant);
    if (spec.json !== undefined) headers.set("content-type", "application/json");
    if (spec.raw !== undefined) headers.set("content-type", spec.raw.contentType);
    if (spec.method === "POST") headers.set("idempotency-key", options.idempotencyKey ?? newIdempotencyKey());
    for (const extra of [this.config.headers, spec.headers, options.headers]) {
      for (const [name, value] of Object.entries(extra ?? {})) headers.set(name, value);
    }
    return headers;
  }

  /** One attempt under its own timeout; a caller's abort is rethrown as is. */
  private async attempt(
    url: string,
    init: RequestInit,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    readBody: boolean,
  ): Promise<Reply> {
    signal?.throwIfAborted();
    const controller = new AbortController();
    const onAbort = (): void => {
      controller.abort(abortReason(signal));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => {
      controller.abort();
    }, timeoutMs);
    let keepListening = false;
    try {
      const res = await this.config.fetch(url, { ...init, signal: controller.signal });
      const ok = res.status >= 200 && res.status < 300;
      if (ok && !readBody) {
        keepListening = true; // the caller's signal still cancels the body
        return { status: res.status, headers: res.headers, text: "", body: res.body };
      }
      return { status: res.status, headers: res.headers, text: await res.text(), body: null };
    } catch (e) {
      if (isAborted(signal)) throw abortReason(signal);
      const what = `${init.method ?? "GET"} ${new URL(url).pathname}`;
      // The caller did not abort, so the controller aborted on the timer.
      if (isAborted(controller.signal)) throw new APITimeoutError(`${what}: no answer within ${timeoutMs} ms`, { cause: e });
      throw new APIConnectionError(`${what}: ${describe(e)}`, { cause: e });
    } finally {
      clearTimeout(timer);
      if (!keepListening) signal?.removeEventListener("abort", onAbort);
    }
  }
}
