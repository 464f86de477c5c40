// Who is signed in: the token (an API key or the admin token), what it may do, and the
// tenant an admin acts in. Kept in sessionStorage only (gone when the tab closes, never
// in the URL, never in localStorage or a cookie).
//
// The API has no "who am I" route, so what a key may do is found by asking: one cheap
// request per scope at sign-in (see probe()). Each answers 403 `missing_scope` when
// the key lacks it; none of them changes anything.

const STORE = "gatepulse.console.session";

export const SCOPES = [
  "events:write", "events:read", "endpoints:manage", "replay:write", "dlq:manage",
  "stats:read", "audit:read",
];

const empty = () => ({ token: null, admin: false, tenant: null, tenants: [], scopes: [], tenantName: null, message: null });

function load() {
  try {
    const raw = sessionStorage.getItem(STORE);
    if (raw) return { ...empty(), ...JSON.parse(raw), message: null };
  } catch {
    /* unreadable: start signed out */
  }
  return empty();
}

let current = load();
const listeners = new Set();

export const session = () => current;

export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function set(next) {
  current = next;
  if (next.token) {
    const { message, ...keep } = next;
    sessionStorage.setItem(STORE, JSON.stringify(keep));
  } else {
    sessionStorage.removeItem(STORE);
  }
  for (const fn of listeners) fn(current);
}

export function startSession(s) {
  set({ ...empty(), ...s });
}

/** Signs out; `message` is shown on the login page (e.g. why the session ended). */
export function endSession(message = null) {
  if (!current.token && !message) return;
  set({ ...empty(), message });
}

export function chooseTenant(tenant) {
  set({ ...current, tenant: tenant || null });
}

export function setTenants(tenants) {
  set({ ...current, tenants });
}

/**
 * Why the signed-in caller cannot do something needing `scope`, or null when it can.
 * `scope` is an API scope, or "admin" (tenants and keys), or "stats" (stats:read or
 * endpoints:manage), or "tenant" (anything inside a tenant).
 */
export function cannot(scope, s = current) {
  if (!s.token) return "Sign in first.";
  if (scope === "admin") return s.admin ? null : "Only the admin token manages tenants and API keys.";
  if (s.admin) {
    if (scope === "stats" || scope === "audit:read") return null;
    return s.tenant ? null : "Choose a tenant first: the admin token acts inside one tenant at a time.";
  }
  if (scope === "tenant") return null;
  if (scope === "stats") {
    return s.scopes.includes("stats:read") || s.scopes.includes("endpoints:manage")
      ? null
      : "This key has neither the stats:read nor the endpoints:manage scope.";
  }
  return s.scopes.includes(scope) ? null : `This key lacks the ${scope} scope.`;
}

/**
 * Finds out what `token` may do. Resolves to the session to start, or rejects with the
 * API's error (a 401 for a wrong or revoked token).
 */
export async function probe(token, apiCall) {
  const call = (method, path, body) =>
    apiCall(method, path, { token, body, keepSession: true }).then(
      (data) => ({ status: 200, data }),
      (e) => {
        if (e.status === 401 || !e.status) throw e;
        return { status: e.status, code: e.code, problem: e.problem };
      },
    );
  // The server says what the token is and may do (GET /v1/whoami), instead of the
  // console guessing from a probe per scope.
  const me = await call("GET", "/v1/whoami");
  if (me.status !== 200) throw Object.assign(new Error(me.problem?.detail || `whoami: ${me.status}`), me);
  if (me.data.kind === "admin") {
    const tenants = await call("GET", "/v1/tenants?limit=1000");
    if (tenants.status !== 200) throw Object.assign(new Error(tenants.problem?.detail || `tenants: ${tenants.status}`), tenants);
    return { token, admin: true, tenants: tenants.data.data, tenant: null, scopes: SCOPES.slice() };
  }
  return {
    token,
    admin: false,
    tenant: me.data.tenant_id,
    scopes: me.data.scopes,
  };
}
