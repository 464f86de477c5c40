// The console's only way to the server: the public HTTP API (docs/api-guide.md), with
// the signed-in token from the session. Every failure becomes an ApiError that carries
// the problem document (RFC 9457) so pages can show its `detail`; a 401 ends the
// session and returns to the login page.

import { session, endSession } from "./session.js";

/** An API answer that was not 2xx, with its problem document. */
export class ApiError extends Error {
  constructor(status, problem, requestId) {
    const p = problem && typeof problem === "object" ? problem : {};
    super(p.detail || p.title || `HTTP ${status}`);
    this.status = status;
    this.problem = p;
    this.code = p.code || null;
    this.detail = p.detail || p.title || `the server answered HTTP ${status}`;
    this.requestId = requestId || null;
  }
}

/** A failure to reach the server at all (network down, server stopped). */
export class NetworkError extends Error {
  constructor(cause) {
    super(`cannot reach the server: ${cause && cause.message ? cause.message : cause}`);
    this.detail = this.message;
    this.status = 0;
    this.problem = {};
  }
}

export const isAbort = (e) => e && (e.name === "AbortError" || e.name === "TimeoutError");

/** Headers every API call sends: the bearer token, and the tenant an admin acts in. */
export function authHeaders(s = session()) {
  const h = {};
  if (s.token) h.Authorization = `Bearer ${s.token}`;
  if (s.admin && s.tenant) h["GatePulse-Tenant"] = s.tenant;
  return h;
}

function withQuery(path, query) {
  if (!query) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}${path.includes("?") ? "&" : "?"}${s}` : path;
}

/**
 * Calls the API. `body` is sent as JSON unless it is a Blob/ArrayBuffer (`contentType`
 * then names it). Resolves to the parsed JSON (or null for 204); rejects with ApiError.
 * `token` overrides the session (used while signing in); `keepSession` stops a 401
 * from ending the session.
 */
export async function api(method, path, opts = {}) {
  const { body, query, signal, contentType, token, tenant, keepSession } = opts;
  const s = session();
  const headers = {
    Accept: "application/json, application/problem+json",
    ...(token !== undefined
      ? { Authorization: `Bearer ${token}`, ...(tenant ? { "GatePulse-Tenant": tenant } : {}) }
      : authHeaders(s)),
  };
  let payload;
  if (body !== undefined) {
    if (body instanceof Blob || body instanceof ArrayBuffer) {
      payload = body;
      headers["Content-Type"] = contentType || "application/octet-stream";
    } else {
      payload = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
  }
  let resp;
  try {
    resp = await fetch(withQuery(path, query), {
      method,
      headers,
      body: payload,
      signal,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch (e) {
    if (isAbort(e)) throw e;
    throw new NetworkError(e);
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = resp.ok ? text : { title: resp.statusText, detail: text.slice(0, 500) };
    }
  }
  if (!resp.ok) {
    const err = new ApiError(resp.status, data, resp.headers.get("x-request-id"));
    if (resp.status === 401 && !keepSession && token === undefined) {
      endSession(`Signed out: ${err.detail}`);
    }
    throw err;
  }
  return data;
}

export const get = (path, opts) => api("GET", path, opts);
export const post = (path, body, opts) => api("POST", path, { ...opts, body });
export const patch = (path, body, opts) => api("PATCH", path, { ...opts, body });
export const del = (path, opts) => api("DELETE", path, opts);

/**
 * Follows `next_cursor` until `want` items were collected, the listing ended, or
 * `maxRequests` pages were read (filtered listings may answer short or empty pages
 * with a cursor: API guide, "Lists"). Each page asks for exactly what is still
 * wanted, so a page is never cut and its `next_cursor` is where to continue.
 * `stop(item)` ends the walk at the first item it accepts (that item is left out).
 * Returns { items, next }: `next` is the cursor to continue from, null at the end.
 */
export async function collect(path, { query = {}, want = 50, maxRequests = 20, signal, cursor = null, stop } = {}) {
  const items = [];
  let next = cursor;
  for (let i = 0; i < maxRequests; i++) {
    const limit = Math.min(1000, Math.max(1, want - items.length));
    const page = await get(path, { query: { ...query, limit, cursor: next }, signal });
    for (const it of page.data) {
      if (stop && stop(it)) return { items, next: null, stopped: true };
      items.push(it);
    }
    next = page.next_cursor;
    if (!next || items.length >= want) return { items, next };
  }
  return { items, next };
}

/** Every item of a listing (bounded by `max`), for small collections such as endpoints. */
export async function listAll(path, { query = {}, max = 5000, signal } = {}) {
  const out = [];
  let cursor = null;
  for (;;) {
    const page = await get(path, { query: { ...query, limit: 1000, cursor }, signal });
    out.push(...page.data);
    cursor = page.next_cursor;
    if (!cursor || out.length >= max) return out;
  }
}
