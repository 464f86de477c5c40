/**
 * The tenant stream (`GET /v1/stream`, Server-Sent Events) as an async iterator that
 * never loses its place: every frame's `id:` is the stream cursor, and after any
 * disconnect (server restart, network error, slow-client notice, silence) it
 * reconnects with `Last-Event-ID` set to the last cursor it saw, so items arrive
 * once, in order, across reconnects.
 *
 * @module
 */

import { APIConnectionError, RateLimitError, ServerError } from "../core/errors.js";
import { type HttpClient, isAborted, sleep } from "../core/http.js";
import { type RetryPolicy, retryDelay } from "../core/retry.js";
import { topicMatches } from "../topics.js";
import type { StreamResetInfo } from "../types.js";
import { type SseMessage, SseParser } from "./sse.js";

/** Options of {@link Stream.subscribe}. */
export interface SubscribeOptions {
  /**
   * Topic patterns (`orders.#`, `deliveries.status`). One pattern is filtered by the
   * server; several are matched here against the full stream. Default: everything.
   */
  topics?: string | string[] | undefined;
  /**
   * Resume after this cursor (`0`: from the oldest history kept). Absent: live
   * items only, from the moment of connecting.
   */
  cursor?: string | number | null | undefined;
  /** Ends the iteration. */
  signal?: AbortSignal | undefined;
  /**
   * Reconnect when nothing arrives for this long, not even the keepalive the server
   * sends every 15 s. Default 45 000.
   */
  idleTimeoutMs?: number | undefined;
}

/** An event or a `deliveries.status` update, with its cursor. */
export interface StreamEvent<T = unknown> {
  type: "event";
  /** Position in the stream; store it and pass it back as `cursor` to resume. */
  cursor: string;
  /** The SSE `event:` field: the event's topic, or `deliveries.status`. */
  topic: string;
  /** The parsed `data:`: an event (`id`, `topic`, `cursor`, `payload`, …) or a `DeliveryStatusUpdate`. */
  data: T;
}

/** The server could not resume where asked (history past its limits): what was skipped. */
export interface StreamReset {
  type: "reset";
  /** Where the stream resumed. */
  cursor: string;
  data: StreamResetInfo;
}

export type StreamItem<T = unknown> = StreamEvent<T> | StreamReset;

/** How reconnects back off: forever, at most 30 s apart, any `Retry-After` honoured. */
const RECONNECT: RetryPolicy = {
  maxRetries: Number.POSITIVE_INFINITY,
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  jitter: 0.5,
  maxRetryAfterMs: Number.POSITIVE_INFINITY,
};

/** Delay before reconnecting after a stream that ended cleanly, until the server says (`retry:`). */
const DEFAULT_RETRY_MS = 2000;

/** The stream resource (`gp.stream`). */
export class Stream {
  /** @internal */
  constructor(private readonly http: HttpClient) {}

  /**
   * Follows the tenant stream. `for await (const item of gp.stream.subscribe({ topics: ["orders.#"], cursor }))`;
   * `subscription.cursor` is the last cursor seen, to store and resume from later.
   */
  subscribe(options: SubscribeOptions = {}): StreamSubscription {
    return new StreamSubscription(this.http, options);
  }
}

/** One subscription: async-iterable once; `break` (or the signal, or `close()`) ends it. */
export class StreamSubscription implements AsyncIterable<StreamItem> {
  readonly #http: HttpClient;
  readonly #topics: string[];
  readonly #idleTimeoutMs: number;
  readonly #controller = new AbortController();
  #cursor: string | undefined;
  #retryMs = DEFAULT_RETRY_MS;
  #started = false;

  /** @internal */
  constructor(http: HttpClient, options: SubscribeOptions) {
    this.#http = http;
    this.#topics = typeof options.topics === "string" ? [options.topics] : [...(options.topics ?? [])];
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
    this.#cursor = options.cursor === undefined || options.cursor === null ? undefined : String(options.cursor);
    const signal = options.signal;
    if (signal?.aborted) this.close();
    signal?.addEventListener(
      "abort",
      () => {
        this.close();
      },
      { once: true },
    );
  }

  /** The cursor of the last frame received (`undefined` before any): resume from it. */
  get cursor(): string | undefined {
    return this.#cursor;
  }

  /** Ends the iteration and the connection. */
  close(): void {
    this.#controller.abort();
  }

  [Symbol.asyncIterator](): AsyncGenerator<StreamItem, void, undefined> {
    if (this.#started) throw new Error("a stream subscription can be iterated once; call subscribe() again");
    this.#started = true;
    return this.#run();
  }

  async *#run(): AsyncGenerator<StreamItem, void, undefined> {
    const signal = this.#controller.signal;
    let failures = 0;
    try {
      while (!isAborted(signal)) {
        let delay: number;
        try {
          const reply = await this.#http.send(this.#request(), { maxRetries: 0, timeoutMs: this.#idleTimeoutMs, signal }, false);
          failures = 0;
          const ended = reply.body === null ? "ended" : yield* this.#read(reply.body);
          delay = ended === "disconnect" ? 0 : this.#retryMs;
        } catch (e) {
          if (isAborted(signal)) return;
          failures += 1;
          delay = reconnectDelay(e, failures);
        }
        await sleep(delay, signal);
      }
    } catch (e) {
      if (!isAborted(signal)) throw e;
    } finally {
      this.close();
    }
  }

  #request(): Parameters<HttpClient["send"]>[0] {
    const serverTopic = this.#topics.length === 1 ? this.#topics[0] : undefined;
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (this.#cursor !== undefined) headers["last-event-id"] = this.#cursor;
    return { method: "GET", path: "/v1/stream", query: { topic: serverTopic }, headers };
  }

  /** Yields the items of one connection; says how it ended. */
  async *#read(body: ReadableStream<Uint8Array>): AsyncGenerator<StreamItem, "ended" | "disconnect" | "idle", undefined> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser();
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array> | "idle";
        try {
          chunk = await readWithin(reader, this.#idleTimeoutMs);
        } catch {
          return "ended"; // the connection broke mid-stream: reconnect
        }
        if (chunk === "idle") return "idle";
        if (chunk.done) return "ended";
        const messages = parser.feed(decoder.decode(chunk.value, { stream: true }));
        if (parser.retryMs !== undefined) this.#retryMs = parser.retryMs;
        for (const message of messages) {
          if (message.id !== undefined) this.#cursor = message.id;
          if (message.event === "gatepulse.disconnect") return "disconnect";
          const item = this.#item(message);
          if (item !== undefined) yield item;
        }
      }
    } finally {
      reader.cancel().catch(() => undefined);
    }
  }

  #item(message: SseMessage): StreamItem | undefined {
    const cursor = message.id ?? "";
    const data = parseData(message.data);
    if (message.event === "gatepulse.reset") return { type: "reset", cursor, data: data as StreamResetInfo };
    if (this.#topics.length > 1 && !this.#topics.some((p) => topicMatches(p, message.event))) return undefined;
    return { type: "event", cursor, topic: message.event, data };
  }
}

function parseData(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

/** Reconnect delay after a failed connect; rethrows failures a reconnect cannot mend (401, 403, 400…). */
function reconnectDelay(error: unknown, failures: number): number {
  if (error instanceof APIConnectionError) return retryDelay(RECONNECT, failures, { error: "connection" }) ?? 0;
  if (error instanceof RateLimitError || error instanceof ServerError) {
    const outcome = { status: error.status ?? 503, retryAfter: error.headers.get("retry-after") };
    return retryDelay(RECONNECT, failures, outcome) ?? 0;
  }
  throw error;
}

/** The next chunk, or `"idle"` when none arrives within `ms`. */
async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  ms: number,
): Promise<ReadableStreamReadResult<Uint8Array> | "idle"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const idle = new Promise<"idle">((resolve) => {
    timer = setTimeout(() => {
      resolve("idle");
    }, ms);
  });
  try {
    return await Promise.race([reader.read(), idle]);
  } finally {
    clearTimeout(timer);
  }
}
