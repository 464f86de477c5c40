/**
 * The API client: `new GatePulse({ apiKey })` and its resources.
 *
 * @module
 */

import { type ClientConfig, HttpClient } from "./core/http.js";
import { DEFAULT_RETRY_POLICY } from "./core/retry.js";
import { Deliveries, Dlq, Replay } from "./resources/deliveries.js";
import { Endpoints } from "./resources/endpoints.js";
import { Events } from "./resources/events.js";
import { Inbox, Plugins, StatsResource, Tenants } from "./resources/operations.js";
import { Subscriptions } from "./resources/subscriptions.js";
import { Stream } from "./stream/stream.js";

/** Options of {@link GatePulse}. */
export interface GatePulseOptions {
  /** An API key (`gpk_…`) or the admin token. Default: the `GATEPULSE_API_KEY` environment variable. */
  apiKey?: string | undefined;
  /** The server's URL. Default: `GATEPULSE_URL`, else `http://127.0.0.1:8080`. */
  baseUrl?: string | undefined;
  /** Time limit of each attempt, in milliseconds. Default 30 000. */
  timeoutMs?: number | undefined;
  /** Retries after the first attempt (connection errors, timeouts, 429, 5xx). Default 2. */
  maxRetries?: number | undefined;
  /** The longest `Retry-After` to wait for before retrying; longer ones are raised. Default 60 000 ms. */
  maxRetryAfterMs?: number | undefined;
  /** A `fetch` implementation. Default: the global `fetch`. */
  fetch?: typeof fetch | undefined;
  /** With the admin token: the tenant to act in (`GatePulse-Tenant`). */
  tenant?: string | undefined;
  /** Headers added to every request. */
  headers?: Record<string, string> | undefined;
}

export const DEFAULT_BASE_URL = "http://127.0.0.1:8080";

/** An environment variable where there is one (Node, Bun, Deno with env access); never throws. */
function env(name: string): string | undefined {
  try {
    const process = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
    const value = process?.env?.[name];
    return value === "" ? undefined : value;
  } catch {
    return undefined;
  }
}

/**
 * The GatePulse API client.
 *
 * ```ts
 * const gp = new GatePulse({ apiKey: process.env.GATEPULSE_API_KEY });
 * const { id } = await gp.events.publish({ topic: "orders.created", payload: { id: 1001 } });
 * ```
 */
export class GatePulse {
  readonly events: Events;
  readonly endpoints: Endpoints;
  readonly subscriptions: Subscriptions;
  readonly deliveries: Deliveries;
  readonly dlq: Dlq;
  readonly replay: Replay;
  readonly stats: StatsResource;
  readonly plugins: Plugins;
  readonly inbox: Inbox;
  readonly tenants: Tenants;
  readonly stream: Stream;
  /** The settings in force. */
  readonly config: Readonly<ClientConfig>;

  constructor(options: GatePulseOptions = {}) {
    const apiKey = options.apiKey ?? env("GATEPULSE_API_KEY");
    if (!apiKey) {
      throw new TypeError("GatePulse: no API key; pass { apiKey } or set GATEPULSE_API_KEY");
    }
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== "function") {
      throw new TypeError("GatePulse: no global fetch (Node 20+ has one); pass { fetch }");
    }
    this.config = {
      apiKey,
      baseUrl: (options.baseUrl ?? env("GATEPULSE_URL") ?? DEFAULT_BASE_URL).replace(/\/+$/, ""),
      timeoutMs: options.timeoutMs ?? 30_000,
      retry: {
        ...DEFAULT_RETRY_POLICY,
        maxRetries: options.maxRetries ?? DEFAULT_RETRY_POLICY.maxRetries,
        maxRetryAfterMs: options.maxRetryAfterMs ?? DEFAULT_RETRY_POLICY.maxRetryAfterMs,
      },
      fetch: options.fetch ?? ((input, init) => globalThis.fetch(input, init)),
      tenant: options.tenant,
      headers: { ...options.headers },
    };
    const http = new HttpClient(this.config);
    this.events = new Events(http);
    this.endpoints = new Endpoints(http);
    this.subscriptions = new Subscriptions(http);
    this.deliveries = new Deliveries(http);
    this.dlq = new Dlq(http);
    this.replay = new Replay(http);
    this.stats = new StatsResource(http);
    this.plugins = new Plugins(http);
    this.inbox = new Inbox(http);
    this.tenants = new Tenants(http);
    this.stream = new Stream(http);
  }
}
