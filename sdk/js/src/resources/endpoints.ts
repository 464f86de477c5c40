import type { RequestOptions } from "../core/http.js";
import type { PagePromise } from "../pagination.js";
import type {
  Endpoint,
  EndpointCreateParams,
  EndpointHealth,
  EndpointPublicKeys,
  EndpointUpdateParams,
  ListParams,
} from "../types.js";
import { APIResource, segment } from "./resource.js";

/** Delivery destinations, their signing secrets and health (`/v1/endpoints`). */
export class Endpoints extends APIResource {
  /** Creates an endpoint; its `whsec_` secret is generated unless given. */
  create(params: EndpointCreateParams, options?: RequestOptions): Promise<Endpoint> {
    return this.http.request({ method: "POST", path: "/v1/endpoints", json: params }, options);
  }

  /** All endpoints of the tenant. */
  list(params: ListParams = {}, options?: RequestOptions): PagePromise<Endpoint> {
    return this.paginate("/v1/endpoints", { ...params }, options);
  }

  get(endpointId: string, options?: RequestOptions): Promise<Endpoint> {
    return this.http.request({ method: "GET", path: path(endpointId) }, options);
  }

  /** Changes the given fields; `null` clears an optional setting. */
  update(endpointId: string, params: EndpointUpdateParams, options?: RequestOptions): Promise<Endpoint> {
    return this.http.request({ method: "PATCH", path: path(endpointId), json: params }, options);
  }

  /** Deletes the endpoint and its subscriptions. */
  async delete(endpointId: string, options?: RequestOptions): Promise<void> {
    await this.http.request({ method: "DELETE", path: path(endpointId) }, options);
  }

  /** The current `whsec_` signing secret. */
  async revealSecret(endpointId: string, options?: RequestOptions): Promise<string> {
    const out = await this.http.request<{ secret: string }>(
      { method: "GET", path: `${path(endpointId)}/secret` },
      options,
    );
    return out.secret;
  }

  /**
   * Installs a new secret (`secret`, or a generated one) and returns it; the previous
   * one keeps signing alongside for the server's grace period.
   */
  async rotateSecret(endpointId: string, params: { secret?: string } = {}, options?: RequestOptions): Promise<string> {
    const out = await this.http.request<{ secret: string }>(
      { method: "POST", path: `${path(endpointId)}/secret/rotate`, json: params },
      options,
    );
    return out.secret;
  }

  /** The `whpk_` public keys `v1a` signatures verify with (the endpoint must have `v1a` enabled). */
  publicKeys(endpointId: string, options?: RequestOptions): Promise<EndpointPublicKeys> {
    return this.http.request({ method: "GET", path: `${path(endpointId)}/public-key` }, options);
  }

  /** Installs a new Ed25519 key pair; the previous key keeps signing for the server's grace period. */
  rotatePublicKey(endpointId: string, options?: RequestOptions): Promise<EndpointPublicKeys> {
    return this.http.request({ method: "POST", path: `${path(endpointId)}/public-key/rotate` }, options);
  }

  /** Success rate, last status and circuit state. */
  health(endpointId: string, options?: RequestOptions): Promise<EndpointHealth> {
    return this.http.request({ method: "GET", path: `${path(endpointId)}/health` }, options);
  }
}

function path(endpointId: string): string {
  return `/v1/endpoints/${segment(endpointId)}`;
}
