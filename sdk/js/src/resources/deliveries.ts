import type { RequestOptions } from "../core/http.js";
import type { PagePromise } from "../pagination.js";
import type {
  Delivery,
  DeliveryListParams,
  DeliveryWithAttempts,
  DlqListParams,
  ReplayParams,
  ReplayResult,
  RequeueParams,
  RequeueResult,
} from "../types.js";
import { APIResource, segment } from "./resource.js";

/** Deliveries (one event for one subscription) and their attempts (`/v1/deliveries`). */
export class Deliveries extends APIResource {
  /** Deliveries filtered by event, endpoint and status. */
  list(params: DeliveryListParams = {}, options?: RequestOptions): PagePromise<Delivery> {
    return this.paginate("/v1/deliveries", { ...params }, options);
  }

  /** One delivery with every attempt. */
  get(deliveryId: string, options?: RequestOptions): Promise<DeliveryWithAttempts> {
    return this.http.request({ method: "GET", path: `/v1/deliveries/${segment(deliveryId)}` }, options);
  }
}

/** The dead-letter queue (`/v1/dlq`). */
export class Dlq extends APIResource {
  /** Dead deliveries, optionally of one endpoint. */
  list(params: DlqListParams = {}, options?: RequestOptions): PagePromise<Delivery> {
    return this.paginate("/v1/dlq", { ...params }, options);
  }

  /** Puts dead deliveries (by id, or all of an endpoint) back in the queue with a fresh schedule. */
  requeue(params: RequeueParams, options?: RequestOptions): Promise<RequeueResult> {
    return this.http.request({ method: "POST", path: "/v1/dlq/requeue", json: params }, options);
  }
}

/** Delivering stored events again, as new deliveries (`/v1/replay`). */
export class Replay extends APIResource {
  /** Replays one event or a time range to the subscriptions that match now. */
  create(params: ReplayParams, options?: RequestOptions): Promise<ReplayResult> {
    const json = Object.fromEntries(
      Object.entries(params).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v]),
    );
    return this.http.request({ method: "POST", path: "/v1/replay", json }, options);
  }
}
