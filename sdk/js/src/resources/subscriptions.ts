import type { RequestOptions } from "../core/http.js";
import type { PagePromise } from "../pagination.js";
import type {
  PreviewParams,
  PreviewResult,
  Subscription,
  SubscriptionCreateParams,
  SubscriptionListParams,
  SubscriptionUpdateParams,
} from "../types.js";
import { APIResource, segment } from "./resource.js";

/** Which events go to which endpoint (`/v1/subscriptions`). */
export class Subscriptions extends APIResource {
  /** Creates a subscription; an invalid filter or mapping is a `ValidationError` with `position`. */
  create(params: SubscriptionCreateParams, options?: RequestOptions): Promise<Subscription> {
    return this.http.request({ method: "POST", path: "/v1/subscriptions", json: params }, options);
  }

  /** All subscriptions, or those of one endpoint. */
  list(params: SubscriptionListParams = {}, options?: RequestOptions): PagePromise<Subscription> {
    return this.paginate("/v1/subscriptions", { ...params }, options);
  }

  get(subscriptionId: string, options?: RequestOptions): Promise<Subscription> {
    return this.http.request({ method: "GET", path: path(subscriptionId) }, options);
  }

  /** Changes the given fields; `null` removes the filter or transform. */
  update(subscriptionId: string, params: SubscriptionUpdateParams, options?: RequestOptions): Promise<Subscription> {
    return this.http.request({ method: "PATCH", path: path(subscriptionId), json: params }, options);
  }

  async delete(subscriptionId: string, options?: RequestOptions): Promise<void> {
    await this.http.request({ method: "DELETE", path: path(subscriptionId) }, options);
  }

  /** A dry run of topic match, filter and transform for one event; nothing is stored or sent. */
  preview(params: PreviewParams, options?: RequestOptions): Promise<PreviewResult> {
    return this.http.request({ method: "POST", path: "/v1/subscriptions/preview", json: params }, options);
  }
}

function path(subscriptionId: string): string {
  return `/v1/subscriptions/${segment(subscriptionId)}`;
}
