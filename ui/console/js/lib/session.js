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

const empty = () => ({ token: null, admin: false, tenant: null, tenants: [], scopes: [], tenantName: null, audit: "unknown", message: null });

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
  if (scope === "audit:read" && s.audit === "absent") return "This server has no audit log yet.";
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
  const tenants = await call("GET", "/v1/tenants?limit=1000", undefined);
  if (tenants.status === 200) {
    const audit = await call("GET", "/v1/audit?limit=1");
    return {
      token, admin: true, tenants: tenants.data.data, tenant: null, scopes: SCOPES.slice(),
      audit: audit.status === 404 && audit.code === "route_not_found" ? "absent" : "present",
    };
  }
  // An API key: one harmless request per scope.
  const [read, manage, dlq, stats, write, replay, audit] = await Promise.all([
    call("GET", "/v1/events?limit=1"),
    call("GET", "/v1/endpoints?limit=1"),
    call("GET", "/v1/dlq?limit=1"),
    call("GET", "/v1/stats"),
    // A reserved topic: refused (422 reserved_topic) after the scope check, never stored.
    call("POST", "/v1/events", { topic: "gatepulse.console-scope-check", payload: {} }),
    // No selection: refused (422) after the scope check, nothing replayed.
    call("POST", "/v1/replay", {}),
    call("GET", "/v1/audit?limit=1"),
  ]);
  const scopes = [];
  if (read.status === 200) scopes.push("events:read");
  if (manage.status === 200) scopes.push("endpoints:manage");
  if (dlq.status === 200) scopes.push("dlq:manage");
  if (stats.status === 200 && manage.status !== 200) scopes.push("stats:read");
  if (write.status !== 403) scopes.push("events:write");
  if (replay.status !== 403) scopes.push("replay:write");
  // The audit log is listed once the server has the route (a 404 route_not_found means
  // it does not yet).
  const auditState = audit.status === 404 && audit.code === "route_not_found" ? "absent" : "present";
  if (audit.status === 200) scopes.push("audit:read");
  return {
    token,
    admin: false,
    tenant: stats.status === 200 ? stats.data.tenant_id : null,
    scopes,
    audit: auditState,
  };
}
