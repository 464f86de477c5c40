import { type RequestOptions, newIdempotencyKey } from "../core/http.js";
import type { PagePromise } from "../pagination.js";
import type {
  BatchResult,
  Event,
  EventListParams,
  EventWithDeliveries,
  PublishParams,
  PublishResult,
} from "../types.js";
import { APIResource, segment } from "./resource.js";

/** Publishing and reading events (`/v1/events`). */
export class Events extends APIResource {
  /**
   * Publishes one event; resolves once it and its deliveries are on disk. The
   * idempotency key is `params.idempotency_key`, else `options.idempotencyKey`, else
   * a generated one, and is the same on every retry.
   */
  publish(params: PublishParams, options: RequestOptions = {}): Promise<PublishResult> {
    const idempotencyKey = options.idempotencyKey ?? params.idempotency_key;
    return this.http.request({ method: "POST", path: "/v1/events", json: params }, { ...options, idempotencyKey });
  }

  /**
   * Publishes several events in one durable commit; each item of the answer is an
   * outcome or a problem, in input order. Items without an `idempotency_key` get
   * `<request key>:<index>`, so a retried batch is stored once.
   */
  batch(events: PublishParams[], options: RequestOptions = {}): Promise<BatchResult> {
    const key = options.idempotencyKey ?? newIdempotencyKey();
    const keyed = events.map((e, i) => (e.idempotency_key === undefined ? { ...e, idempotency_key: `${key}:${i}` } : e));
    return this.http.request(
      { method: "POST", path: "/v1/events/batch", json: { events: keyed } },
      { ...options, idempotencyKey: key },
    );
  }

  /** One event with a summary of its deliveries. */
  get(eventId: string, options?: RequestOptions): Promise<EventWithDeliveries> {
    return this.http.request({ method: "GET", path: `/v1/events/${segment(eventId)}` }, options);
  }

  /** Events in stream order, optionally of a topic pattern and after a cursor. */
  list(params: EventListParams = {}, options?: RequestOptions): PagePromise<Event> {
    return this.paginate("/v1/events", { ...params }, options);
  }
}
