// The console's shell: sign-in, the header (tenant switcher, sign out), the navigation
// and the page for the current route.

import { html, render, useEffect, useRef, useState } from "./lib/html.js";
import { api, get } from "./lib/api.js";
import { session, onSession, startSession, endSession, chooseTenant, setTenants, probe, cannot } from "./lib/session.js";
import { useRoute, Link, navigate, href } from "./lib/router.js";
import { Problem, Notices, useId, Empty } from "./ui.js";
import { Overview } from "./pages/overview.js";
import { EndpointsPage, EndpointPage, EndpointNew } from "./pages/endpoints.js";
import { SubscriptionsPage, SubscriptionEdit } from "./pages/subscriptions.js";
import { EventsPage, EventPage } from "./pages/events.js";
import { DeliveriesPage, DeliveryPage } from "./pages/deliveries.js";
import { DlqPage } from "./pages/dlq.js";
import { ReplayPage } from "./pages/replay.js";
import { LivePage } from "./pages/live.js";
import { PluginsPage } from "./pages/plugins.js";
import { KeysPage } from "./pages/keys.js";
import { AuditPage } from "./pages/audit.js";

/** The navigation: every task is one click from here, at most two more inside. */
const NAV = [
  { to: "/", label: "Overview", match: "" },
  { to: "/endpoints", label: "Endpoints", match: "endpoints" },
  { to: "/subscriptions", label: "Subscriptions", match: "subscriptions" },
  { to: "/events", label: "Events", match: "events" },
  { to: "/deliveries", label: "Deliveries", match: "deliveries" },
  { to: "/dlq", label: "DLQ", match: "dlq" },
  { to: "/replay", label: "Replay", match: "replay" },
  { to: "/live", label: "Live", match: "live" },
  { to: "/plugins", label: "Plugins", match: "plugins" },
  { to: "/keys", label: "API keys", match: "keys" },
  { to: "/audit", label: "Audit log", match: "audit" },
];

function useSession() {
  const [s, setS] = useState(session);
  useEffect(() => onSession(setS), []);
  return s;
}

function Login({ message }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const id = useId("token");
  const submit = async (e) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) {
      setError({ detail: "Paste an API key (gpk_…) or the admin token." });
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const s = await probe(t, api);
      startSession(s);
      navigate(location.pathname.startsWith("/console/login") ? href("/") : location.pathname + location.search, { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="login" id="main">
    <form class="card login-card" onSubmit=${submit} aria-labelledby="login-title">
      <h1 id="login-title">GatePulse console</h1>
      <p class="lede">Sign in with an API key (one tenant) or the admin token (every tenant). It is kept in this tab only and forgotten when the tab closes.</p>
      ${message ? html`<p class="notice notice-warn" role="status">${message}</p>` : null}
      <div class="field">
        <label for=${id}>API key or admin token</label>
        <input id=${id} name="token" type="password" autocomplete="off" spellcheck=${false} value=${token}
          onInput=${(e) => setToken(e.target.value)} aria-describedby=${`${id}-hint`} required />
        <p class="hint" id=${`${id}-hint`}><code>gp serve --dev</code> prints both when it starts.</p>
      </div>
      <${Problem} error=${error} title="Sign-in failed" />
      <div class="actions"><button class="btn btn-primary" type="submit" disabled=${busy}>${busy ? "Signing in…" : "Sign in"}</button></div>
    </form>
  </main>`;
}

function TenantSwitcher({ s }) {
  const id = useId("tenant");
  const [error, setError] = useState(null);
  const refresh = async () => {
    try {
      const page = await get("/v1/tenants", { query: { limit: 1000 } });
      setTenants(page.data);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  return html`<div class="tenant-switcher">
    <label for=${id}>Tenant</label>
    <select id=${id} value=${s.tenant || ""} onChange=${(e) => chooseTenant(e.target.value)} onFocus=${refresh}>
      <option value="">All tenants (overview only)</option>
      ${s.tenants.map((t) => html`<option value=${t.id}>${t.name} · ${t.id.slice(-6)}</option>`)}
    </select>
    ${error ? html`<span class="why">${error.detail}</span>` : null}
  </div>`;
}

function Header({ s, route }) {
  const who = s.admin ? "admin token" : `API key${s.tenant ? ` · tenant ${s.tenant.slice(-6)}` : ""}`;
  const section = route.parts[0] || "";
  // On a narrow screen the navigation scrolls sideways: keep the current section in view.
  useEffect(() => {
    document.querySelector('.nav a[aria-current="page"]')?.scrollIntoView({ block: "nearest", inline: "nearest" });
  }, [section]);
  return html`<header class="top">
    <div class="top-row">
      <a class="brand" href=${href("/")} onClick=${(e) => { e.preventDefault(); navigate(href("/")); }}>GatePulse</a>
      ${s.admin ? html`<${TenantSwitcher} s=${s} />` : null}
      <span class="who" title=${s.admin ? "Signed in with the admin token" : `Scopes: ${s.scopes.join(", ")}`}>${who}</span>
      <button type="button" class="btn btn-small" onClick=${() => { endSession("Signed out."); navigate(href("/login"), { replace: true }); }}>Sign out</button>
    </div>
    <nav aria-label="Sections" class="nav">
      <ul>
        ${NAV.filter((n) => !n.when || n.when(s)).map((n) => html`<li><${Link} to=${n.to} aria-current=${section === n.match ? "page" : undefined}>${n.label}<//></li>`)}
      </ul>
    </nav>
  </header>`;
}

/** Pages inside a tenant: an admin must pick one first. */
function NeedsTenant({ s, children }) {
  if (s.admin && !s.tenant) {
    return html`<${Empty} title="Choose a tenant">
      <p>The admin token acts inside one tenant at a time. Pick one with the <strong>Tenant</strong> switcher at the top; the overview shows every tenant.</p>
    <//>`;
  }
  return children;
}

function Page({ s, route }) {
  const [a, b] = route.parts;
  const q = route.query;
  // `key` remounts a page when its subject changes (state never leaks across ids).
  switch (a || "") {
    case "":
    case "login":
      return html`<${Overview} s=${s} />`;
    case "endpoints":
      if (b === "new") return html`<${NeedsTenant} s=${s}><${EndpointNew} /><//>`;
      if (b) return html`<${NeedsTenant} s=${s}><${EndpointPage} key=${b} id=${b} s=${s} /><//>`;
      return html`<${NeedsTenant} s=${s}><${EndpointsPage} q=${q} /><//>`;
    case "subscriptions":
      if (b) return html`<${NeedsTenant} s=${s}><${SubscriptionEdit} key=${b} id=${b === "new" ? null : b} q=${q} /><//>`;
      return html`<${NeedsTenant} s=${s}><${SubscriptionsPage} q=${q} /><//>`;
    case "events":
      if (b) return html`<${NeedsTenant} s=${s}><${EventPage} key=${b} id=${b} /><//>`;
      return html`<${NeedsTenant} s=${s}><${EventsPage} q=${q} /><//>`;
    case "deliveries":
      if (b) return html`<${NeedsTenant} s=${s}><${DeliveryPage} key=${b} id=${b} /><//>`;
      return html`<${NeedsTenant} s=${s}><${DeliveriesPage} q=${q} /><//>`;
    case "dlq":
      return html`<${NeedsTenant} s=${s}><${DlqPage} q=${q} /><//>`;
    case "replay":
      return html`<${NeedsTenant} s=${s}><${ReplayPage} q=${q} /><//>`;
    case "live":
      return html`<${NeedsTenant} s=${s}><${LivePage} q=${q} /><//>`;
    case "plugins":
      return html`<${NeedsTenant} s=${s}><${PluginsPage} /><//>`;
    case "keys":
      return html`<${KeysPage} s=${s} />`;
    case "audit":
      return html`<${AuditPage} />`;
    default:
      return html`<${Empty} title="No such page"><p><${Link} to="/">Back to the overview<//></p><//>`;
  }
}

function App() {
  const s = useSession();
  const route = useRoute();
  // After an in-app navigation, move focus to the new page's heading, so keyboard and
  // screen-reader users land there (a first load starts at the top, as any page does).
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const h = document.getElementById("page-title");
    if (h && (document.activeElement === document.body || document.activeElement?.closest(".nav"))) h.focus({ preventScroll: true });
  }, [route.path]);
  if (!s.token) return html`<${Login} message=${s.message} /><${Notices} />`;
  return html`<a class="skip" href="#main">Skip to content</a>
    <${Header} s=${s} route=${route} />
    <main id="main" class="main" key=${`${s.tenant || ""}`}>
      <${Page} s=${s} route=${route} />
    </main>
    <${Notices} />`;
}

// A token handed over in the fragment (`/console/#token=…`, never sent to the server) is
// taken into the session and removed from the address bar before anything else runs.
async function boot() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    history.replaceState(null, "", location.pathname + location.search);
    try {
      startSession(await probe(decodeURIComponent(m[1]), api));
    } catch (e) {
      endSession(`Sign-in failed: ${e.detail || e.message}`);
    }
  }
  render(html`<${App} />`, document.getElementById("app"));
}

boot();

export { cannot };
