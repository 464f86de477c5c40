// API keys of a tenant (admin token only): list, create with scopes (the secret is
// shown once), revoke. Also creates tenants, so a fresh server can be set up here.

import { html, useState } from "../lib/html.js";
import { get, post, del, listAll } from "../lib/api.js";
import { cannot, chooseTenant, setTenants, SCOPES } from "../lib/session.js";
import { Badge, Confirm, Copy, Empty, Field, Gated, Loading, PageHead, Problem, Time, useAction, useId, useLoad, notify } from "../ui.js";

const SCOPE_HELP = {
  "events:write": "publish events",
  "events:read": "read events, deliveries and the stream",
  "endpoints:manage": "endpoints, secrets, subscriptions, plugins",
  "replay:write": "replay events",
  "dlq:manage": "inspect and requeue the DLQ",
  "stats:read": "read /v1/stats only",
  "audit:read": "the audit log",
};

function NewTenant() {
  const [name, setName] = useState("");
  const id = useId("tn");
  const create = useAction(async () => {
    const t = await post("/v1/tenants", { name: name.trim() });
    const page = await get("/v1/tenants", { query: { limit: 1000 } });
    setTenants(page.data);
    chooseTenant(t.id);
    notify(`Tenant ${t.name} created`);
    return t;
  });
  return html`<form class="form card" onSubmit=${(e) => { e.preventDefault(); create.run(); }} aria-label="New tenant">
    <h2>New tenant</h2>
    <${Field} id=${id} label="Name"><input id=${id} value=${name} onInput=${(e) => setName(e.target.value)} required /><//>
    <${Problem} error=${create.error} title="Not created" />
    <div class="actions"><button type="submit" class="btn" disabled=${create.busy}>Create tenant</button></div>
  </form>`;
}

function NewKey({ tenant, onCreated }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState(new Set(["events:write", "events:read"]));
  const [expires, setExpires] = useState("");
  const id = useId("kn");
  const create = useAction(async () => {
    const body = { name: name.trim(), scopes: [...scopes] };
    // datetime-local is the viewer's local time; the API takes RFC 3339.
    if (expires) body.expires_at = new Date(expires).toISOString();
    const out = await post(`/v1/tenants/${tenant}/keys`, body);
    onCreated(out);
    setName("");
    setExpires("");
    return out;
  });
  const toggle = (s) => {
    const n = new Set(scopes);
    if (n.has(s)) n.delete(s);
    else n.add(s);
    setScopes(n);
  };
  return html`<form class="form card" onSubmit=${(e) => { e.preventDefault(); create.run(); }} id="key-form" aria-label="New API key">
    <h2>New API key</h2>
    <${Field} id=${id} label="Name" hint="Who or what uses it, e.g. checkout-service or on-call.">
      <input id=${id} value=${name} onInput=${(e) => setName(e.target.value)} required />
    <//>
    <${Field} id=${`${id}-exp`} label="Expires (optional)" hint="In your time zone. Empty: the key works until it is revoked. Give keys for people and temporary tools an end.">
      <input id=${`${id}-exp`} type="datetime-local" value=${expires} onInput=${(e) => setExpires(e.target.value)} />
    <//>
    <fieldset class="scopes"><legend>Scopes</legend>
      ${SCOPES.map((s) => html`<div class="check"><input type="checkbox" id=${`${id}-${s}`} checked=${scopes.has(s)} onChange=${() => toggle(s)} value=${s} />
        <label for=${`${id}-${s}`}><code>${s}</code> <span class="muted">${SCOPE_HELP[s]}</span></label></div>`)}
    </fieldset>
    <${Problem} error=${create.error} title="Not created" />
    <div class="actions"><button type="submit" class="btn btn-primary" disabled=${create.busy || !scopes.size}>Create key</button></div>
  </form>`;
}

/** Revoked, expired (the server answers 401 key_expired) or active. */
function keyState(k) {
  if (k.revoked_at) return html`<${Badge} status="revoked">revoked <${Time} iso=${k.revoked_at} /><//>`;
  if (k.expires_at && new Date(k.expires_at).getTime() <= Date.now()) {
    return html`<${Badge} status="expired">expired<//>`;
  }
  return html`<${Badge} status="active">active<//>`;
}

export function KeysPage({ s }) {
  const whyAdmin = cannot("admin", s);
  const tenant = s.tenant;
  const [tick, setTick] = useState(0);
  const [created, setCreated] = useState(null);
  const [revoking, setRevoking] = useState(null);
  const keys = useLoad((signal) => (whyAdmin || !tenant ? null : listAll(`/v1/tenants/${tenant}/keys`, { signal })), [tenant, tick]);
  const revoke = useAction(async (k) => {
    await del(`/v1/tenants/${tenant}/keys/${k.id}`);
    notify(`Key ${k.name} revoked: it stops working at once`);
    setRevoking(null);
    setTick((t) => t + 1);
  });
  const head = html`<${PageHead} title="API keys" lede="Keys act inside one tenant with the scopes they were given. The secret is shown once." />`;
  if (whyAdmin) {
    return html`${head}<p class="why" id="keys-why">${whyAdmin} This key has: ${s.scopes.map((x) => html`<code>${x}</code> `)}</p>`;
  }
  if (!tenant) {
    return html`${head}<${Empty} title="Choose a tenant"><p>Pick the tenant whose keys to manage with the <strong>Tenant</strong> switcher at the top, or create one.</p><//><${NewTenant} />`;
  }
  const name = (s.tenants.find((t) => t.id === tenant) || {}).name || tenant;
  return html`${head}
    <p>Tenant <strong>${name}</strong> <code>${tenant}</code></p>
    ${created
      ? html`<div class="card secret-once" role="alert" id="new-key">
          <h2>Copy the key now</h2>
          <p>This is the only time <strong>${created.name}</strong>'s secret is shown; the server keeps only its hash.</p>
          <p><code class="wrap" id="new-key-value">${created.key}</code> <${Copy} text=${created.key} /></p>
          <p class="small">Scopes: ${created.scopes.map((x) => html`<code>${x}</code> `)}</p>
          <p class="small">${created.expires_at ? html`Expires <${Time} iso=${created.expires_at} />` : "Does not expire."}</p>
          <button type="button" class="btn" onClick=${() => setCreated(null)}>I have stored it</button>
        </div>`
      : null}
    <${Problem} error=${keys.error} />
    ${!keys.data
      ? keys.loading ? html`<${Loading} />` : null
      : !keys.data.length
        ? html`<${Empty} title="No keys in this tenant"><p>Create one below for a publisher or an operator.</p><//>`
        : html`<table class="table" id="keys">
            <caption class="sr-only">API keys</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">Scopes</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">State</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>${keys.data.map((k) => html`<tr data-key-id=${k.id} data-key-name=${k.name}>
              <td data-label="Name"><div>${k.name}<div class="muted small"><code>${k.id}</code></div></div></td>
              <td data-label="Scopes"><div>${k.scopes.map((x) => html`<code class="scope">${x}</code> `)}</div></td>
              <td data-label="Created"><${Time} iso=${k.created_at} /></td>
              <td data-label="Expires" class="key-expires">${k.expires_at ? html`<${Time} iso=${k.expires_at} />` : html`<span class="muted">never</span>`}</td>
              <td data-label="State">${keyState(k)}</td>
              <td>${k.revoked_at ? null : html`<${Gated} need="admin" class="btn btn-small btn-danger" onClick=${() => { revoke.reset(); setRevoking(k); }} aria-label=${`Revoke key ${k.name}`}>Revoke<//>`}</td>
            </tr>`)}</tbody>
          </table>`}
    <${NewKey} tenant=${tenant} onCreated=${(k) => { setCreated(k); setTick((t) => t + 1); }} />
    <${NewTenant} />
    <${Confirm} open=${Boolean(revoking)} title=${revoking ? `Revoke ${revoking.name}?` : ""} danger confirmLabel="Revoke key"
      busy=${revoke.busy} error=${revoke.error} onConfirm=${() => revoke.run(revoking)} onClose=${() => setRevoking(null)}>
      <p>Every request with this key is refused from now on (401). This cannot be undone; create a new key instead.</p>
    <//>`;
}
