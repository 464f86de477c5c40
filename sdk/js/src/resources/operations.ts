import type { RequestOptions } from "../core/http.js";
import type { PagePromise } from "../pagination.js";
import type {
  ApiKey,
  ApiKeyCreated,
  InboxMessage,
  ListParams,
  Plugin,
  PluginUploadParams,
  Scope,
  Stats,
  Tenant,
  TenantUpdateParams,
} from "../types.js";
import { APIResource, segment } from "./resource.js";

/** Queue depth, in flight, retry backlog, DLQ size and per-endpoint health (`/v1/stats`). */
export class StatsResource extends APIResource {
  get(options?: RequestOptions): Promise<Stats> {
    return this.http.request({ method: "GET", path: "/v1/stats" }, options);
  }
}

/** WASM transform plugins (`/v1/plugins`). */
export class Plugins extends APIResource {
  /** Uploads a module; it is validated (ABI, imports) before it is accepted. */
  upload(params: PluginUploadParams, options?: RequestOptions): Promise<Plugin> {
    return this.http.request(
      {
        method: "POST",
        path: "/v1/plugins",
        query: { name: params.name, version: params.version },
        raw: { body: params.module, contentType: "application/wasm" },
      },
      options,
    );
  }

  list(options?: RequestOptions): PagePromise<Plugin> {
    return this.paginate("/v1/plugins", {}, options);
  }

  /** Deletes one version; refused (`ConflictError`, `plugin_in_use`) while a subscription uses it. */
  async delete(name: string, version: string, options?: RequestOptions): Promise<void> {
    await this.http.request({ method: "DELETE", path: `/v1/plugins/${segment(name)}/${segment(version)}` }, options);
  }
}

/** Messages captured by `inbox` endpoints (`/v1/inbox`). */
export class Inbox extends APIResource {
  /** The captured requests of one inbox endpoint, oldest first. */
  list(endpointId: string, params: ListParams = {}, options?: RequestOptions): PagePromise<InboxMessage> {
    return this.paginate(`/v1/inbox/${segment(endpointId)}/messages`, { ...params }, options);
  }
}

/** Tenants and their API keys; needs the admin token (`/v1/tenants`). */
export class Tenants extends APIResource {
  create(params: { name: string }, options?: RequestOptions): Promise<Tenant> {
    return this.http.request({ method: "POST", path: "/v1/tenants", json: params }, options);
  }

  list(params: ListParams = {}, options?: RequestOptions): PagePromise<Tenant> {
    return this.paginate("/v1/tenants", { ...params }, options);
  }

  get(tenantId: string, options?: RequestOptions): Promise<Tenant> {
    return this.http.request({ method: "GET", path: `/v1/tenants/${segment(tenantId)}` }, options);
  }

  update(tenantId: string, params: TenantUpdateParams, options?: RequestOptions): Promise<Tenant> {
    return this.http.request({ method: "PATCH", path: `/v1/tenants/${segment(tenantId)}`, json: params }, options);
  }

  /** Creates an API key; its secret `key` is in this answer only. */
  createKey(tenantId: string, params: { name: string; scopes: Scope[] }, options?: RequestOptions): Promise<ApiKeyCreated> {
    return this.http.request({ method: "POST", path: keysPath(tenantId), json: params }, options);
  }

  listKeys(tenantId: string, params: ListParams = {}, options?: RequestOptions): PagePromise<ApiKey> {
    return this.paginate(keysPath(tenantId), { ...params }, options);
  }

  /** Revokes a key at once. */
  async revokeKey(tenantId: string, keyId: string, options?: RequestOptions): Promise<void> {
    await this.http.request({ method: "DELETE", path: `${keysPath(tenantId)}/${segment(keyId)}` }, options);
  }
}

function keysPath(tenantId: string): string {
  return `/v1/tenants/${segment(tenantId)}/keys`;
}
