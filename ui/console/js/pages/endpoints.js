// Endpoints: the list with health and search; one endpoint with its health, secret,
// settings, subscriptions, recent deliveries and dead letters; create, edit,
// pause/resume, delete; send a test event.

import { html, useEffect, useState } from "../lib/html.js";
import { get, post, patch, del, listAll, collect } from "../lib/api.js";
import { cannot } from "../lib/session.js";
import { Link, navigate, href, setQuery } from "../lib/router.js";
import { topicMatches, sampleTopic } from "../lib/topic.js";
import {
  Badge, Confirm, Copy, Dialog, Empty, Field, Gated, Id, Loading, PageHead, Problem, Time,
  useAction, useId, useLoad, notify, parseJson,
} from "../ui.js";
import { endpointHealth } from "./overview.js";

const pct = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(x >= 0.999 || x === 0 ? 0 : 1)} %`);
const label = (ep) => ep.description || ep.url || (ep.kind === "inbox" ? "inbox" : ep.id);

async function loadStats(signal) {
  if (cannot("stats")) return new Map();
  const st = await get("/v1/stats", { signal });
  return new Map((st.endpoints || []).map((e) => [e.endpoint_id, e]));
}

export function EndpointsPage({ q }) {
  const search = q.get("q") || "";
  const health = q.get("health") || "";
  const why = cannot("endpoints:manage");
  const data = useLoad(async (signal) => {
    if (why) return null;
    const [eps, stats] = await Promise.all([listAll("/v1/endpoints", { signal }), loadStats(signal)]);
    return { eps, stats };
  }, []);
  const searchId = useId("search");
  const healthId = useId("health");
  const head = html`<${PageHead} title="Endpoints" lede="Where deliveries go, and how each is doing.">
    <${Gated} need="endpoints:manage" class="btn btn-primary" onClick=${() => navigate(href("/endpoints/new"))}>New endpoint<//>
  <//>`;
  if (why) return html`${head}<p class="why">${why}</p>`;
  if (data.loading && !data.data) return html`${head}<${Loading} />`;
  if (!data.data) return html`${head}<${Problem} error=${data.error} />`;
  const { eps, stats } = data.data;
  const needle = search.trim().toLowerCase();
  const rows = eps
    .map((ep) => ({ ep, st: stats.get(ep.id), h: endpointHealth(stats.get(ep.id), ep) }))
    .filter(({ ep }) => !needle || [ep.id, ep.url || "", ep.description || "", ep.kind].some((x) => x.toLowerCase().includes(needle)))
    .filter(({ h }) => !health || (health === "failing" ? ["failing", "half_open"].includes(h.status) : h.status === health));
  return html`${head}
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <div class="field"><label for=${searchId}>Search</label>
        <input id=${searchId} type="search" value=${search} placeholder="URL, description or id"
          onInput=${(e) => setQuery({ q: e.target.value, health })} /></div>
      <div class="field"><label for=${healthId}>Health</label>
        <select id=${healthId} value=${health} onChange=${(e) => setQuery({ q: search, health: e.target.value })}>
          <option value="">any</option><option value="failing">failing</option><option value="degraded">degraded</option><option value="healthy">healthy</option>
          <option value="paused">paused</option><option value="idle">no traffic yet</option>
        </select></div>
    </form>
    <${Problem} error=${data.error} />
    ${!eps.length
      ? html`<${Empty} title="No endpoints yet"><p>An endpoint is a URL that receives webhooks (or an inbox that captures them for inspection). Create one, then subscribe it to topics.</p>
          <p><${Gated} need="endpoints:manage" class="btn btn-primary" onClick=${() => navigate(href("/endpoints/new"))}>Create an endpoint<//></p><//>`
      : !rows.length
        ? html`<${Empty} title="No endpoint matches"><p>Nothing matches “${search}”${health ? ` with health ${health}` : ""}. <button type="button" class="btn btn-small" onClick=${() => setQuery({})}>Clear the filters</button></p><//>`
        : html`<table class="table" id="endpoints">
            <caption class="sr-only">Endpoints</caption>
            <thead><tr><th scope="col">Health</th><th scope="col">Endpoint</th><th scope="col">Kind</th><th scope="col">Success</th><th scope="col">Last status</th><th scope="col">Last attempt</th></tr></thead>
            <tbody>${rows.map(({ ep, st, h }) => html`<tr data-endpoint-id=${ep.id}>
              <td data-label="Health"><${Badge} status=${h.status}>${h.label}<//></td>
              <td data-label="Endpoint"><${Link} to=${`/endpoints/${ep.id}`}>${label(ep)}<//>
                <div class="muted small">${ep.url || "captures into the dev inbox"} · <${Id} id=${ep.id} /></div></td>
              <td data-label="Kind">${ep.kind}</td>
              <td data-label="Success">${pct(st?.success_rate)}</td>
              <td data-label="Last status">${st?.last_status_code ?? "—"}</td>
              <td data-label="Last attempt"><${Time} iso=${st?.last_attempt_at} /></td>
            </tr>`)}</tbody>
          </table>`}`;
}

// ---------- the form (create and edit) ----------

const headersToText = (h) => Object.entries(h || {}).map(([k, v]) => `${k}: ${v}`).join("\n");

function textToHeaders(text) {
  const out = {};
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line) continue;
    const c = line.indexOf(":");
    if (c <= 0) throw new Error(`line ${i + 1}: write headers as “Name: value”`);
    out[line.slice(0, c).trim()] = line.slice(c + 1).trim();
  }
  return out;
}

function numOrNull(v, name) {
  if (v === "" || v === null || v === undefined) return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number`);
  return n;
}

function scheduleOrNull(v) {
  if (!v.trim()) return null;
  const parts = v.split(/[\s,]+/).filter(Boolean).map(Number);
  if (parts.some((n) => !Number.isInteger(n) || n < 0)) throw new Error("retry schedule: seconds, separated by commas (e.g. 5, 30, 300)");
  return parts;
}

function EndpointForm({ initial, onSaved, onCancel }) {
  const editing = Boolean(initial);
  const [f, setF] = useState(() => ({
    url: initial?.url || "",
    kind: initial?.kind || "http",
    description: initial?.description || "",
    secret: "",
    headers: headersToText(initial?.headers),
    timeout_ms: initial?.timeout_ms ?? "",
    rate_limit_per_sec: initial?.rate_limit_per_sec ?? "",
    max_in_flight: initial?.max_in_flight ?? "",
    retry_schedule_secs: (initial?.retry_schedule_secs || []).join(", "),
    enabled: initial ? initial.enabled : true,
  }));
  const [localError, setLocalError] = useState(null);
  const save = useAction(async (body) => (editing ? patch(`/v1/endpoints/${initial.id}`, body) : post("/v1/endpoints", body)));
  const set = (k) => (e) => setF({ ...f, [k]: e.target.type === "checkbox" ? e.target.checked : e.target.value });
  const ids = Object.fromEntries(["url", "kind", "description", "secret", "headers", "timeout", "rate", "inflight", "schedule", "enabled"].map((k) => [k, useId(`ep-${k}`)]));
  const fieldErr = (name) => (save.error?.problem?.field || "").split("/")[0] === name ? save.error.detail : null;

  const submit = async (e) => {
    e.preventDefault();
    setLocalError(null);
    let body;
    try {
      body = {
        description: f.description,
        headers: textToHeaders(f.headers),
        timeout_ms: numOrNull(f.timeout_ms, "timeout"),
        rate_limit_per_sec: numOrNull(f.rate_limit_per_sec, "rate limit"),
        max_in_flight: numOrNull(f.max_in_flight, "max in flight"),
        retry_schedule_secs: scheduleOrNull(f.retry_schedule_secs),
      };
    } catch (err) {
      setLocalError(err.message);
      return;
    }
    if (f.kind === "http" || f.url) body.url = f.url.trim();
    if (!editing) {
      body.kind = f.kind;
      body.enabled = f.enabled;
      if (f.secret.trim()) body.secret = f.secret.trim();
      // Absent means "server default" on create.
      for (const k of ["timeout_ms", "rate_limit_per_sec", "max_in_flight", "retry_schedule_secs"]) if (body[k] === null) delete body[k];
      if (!body.url) delete body.url;
    } else if (initial.kind === "inbox" && !body.url) {
      delete body.url;
    }
    const saved = await save.run(body);
    if (saved) onSaved(saved);
  };

  return html`<form class="form card" onSubmit=${submit} aria-label=${editing ? "Endpoint settings" : "New endpoint"} id="endpoint-form">
    ${!editing
      ? html`<fieldset class="radios"><legend>Kind</legend>
          <label><input type="radio" name="kind" value="http" checked=${f.kind === "http"} onChange=${set("kind")} /> HTTP: deliver to a URL</label>
          <label><input type="radio" name="kind" value="inbox" checked=${f.kind === "inbox"} onChange=${set("kind")} /> Inbox: capture for inspection (dev)</label>
        </fieldset>`
      : null}
    <${Field} id=${ids.url} label=${f.kind === "inbox" ? "URL (optional)" : "URL"} hint="http or https; no credentials in the URL." error=${fieldErr("url")}>
      <input id=${ids.url} name="url" type="url" value=${f.url} onInput=${set("url")} required=${f.kind === "http"} placeholder="https://example.com/webhooks" aria-invalid=${fieldErr("url") ? "true" : undefined} />
    <//>
    <${Field} id=${ids.description} label="Description" error=${fieldErr("description")}>
      <input id=${ids.description} name="description" value=${f.description} onInput=${set("description")} placeholder="Orders service, production" />
    <//>
    ${!editing
      ? html`<${Field} id=${ids.secret} label="Signing secret (optional)" hint="whsec_… ; generated when left empty. You can reveal and rotate it later." error=${fieldErr("secret")}>
          <input id=${ids.secret} name="secret" value=${f.secret} onInput=${set("secret")} autocomplete="off" spellcheck=${false} />
        <//>`
      : null}
    <${Field} id=${ids.headers} label="Custom headers" hint="One per line, “Name: value”. webhook-*, gatepulse-*, content-type, host and hop-by-hop headers are reserved." error=${fieldErr("headers")}>
      <textarea id=${ids.headers} name="headers" rows="3" value=${f.headers} onInput=${set("headers")} spellcheck=${false}></textarea>
    <//>
    <div class="grid-3">
      <${Field} id=${ids.timeout} label="Timeout (ms)" hint="1–120000; empty: server default" error=${fieldErr("timeout_ms")}>
        <input id=${ids.timeout} name="timeout_ms" inputmode="numeric" value=${f.timeout_ms} onInput=${set("timeout_ms")} />
      <//>
      <${Field} id=${ids.rate} label="Rate limit (per s)" hint="empty: unlimited" error=${fieldErr("rate_limit_per_sec")}>
        <input id=${ids.rate} name="rate_limit_per_sec" inputmode="numeric" value=${f.rate_limit_per_sec} onInput=${set("rate_limit_per_sec")} />
      <//>
      <${Field} id=${ids.inflight} label="Max in flight" hint="empty: server default" error=${fieldErr("max_in_flight")}>
        <input id=${ids.inflight} name="max_in_flight" inputmode="numeric" value=${f.max_in_flight} onInput=${set("max_in_flight")} />
      <//>
    </div>
    <${Field} id=${ids.schedule} label="Retry schedule (seconds)" hint="Delays before each retry, e.g. 5, 30, 300. Empty: the server's default schedule." error=${fieldErr("retry_schedule_secs")}>
      <input id=${ids.schedule} name="retry_schedule_secs" value=${f.retry_schedule_secs} onInput=${set("retry_schedule_secs")} placeholder="5, 30, 300, 1800" />
    <//>
    ${!editing
      ? html`<div class="check"><input id=${ids.enabled} type="checkbox" checked=${f.enabled} onChange=${set("enabled")} /><label for=${ids.enabled}>Enabled (deliver at once)</label></div>`
      : null}
    ${localError ? html`<p class="field-error" role="alert">${localError}</p>` : null}
    <${Problem} error=${save.error} title=${editing ? "Not saved" : "Not created"} />
    <div class="actions">
      <button type="submit" class="btn btn-primary" disabled=${save.busy}>${editing ? "Save changes" : "Create endpoint"}</button>
      ${onCancel ? html`<button type="button" class="btn" onClick=${onCancel}>Cancel</button>` : null}
    </div>
  </form>`;
}

export function EndpointNew() {
  const why = cannot("endpoints:manage");
  return html`<${PageHead} title="New endpoint" lede="A destination for webhooks. Subscribe it to topics next." />
    ${why
      ? html`<p class="why">${why}</p>`
      : html`<${EndpointForm} onSaved=${(ep) => {
          notify(`Endpoint ${ep.id} created`);
          navigate(href(`/endpoints/${ep.id}`, { created: 1 }));
        }} onCancel=${() => navigate(href("/endpoints"))} />`}`;
}

// ---------- one endpoint ----------

function HealthPanel({ id, tick }) {
  const h = useLoad((signal) => get(`/v1/endpoints/${id}/health`, { signal }), [id, tick]);
  if (!h.data) return h.error ? html`<${Problem} error=${h.error} />` : html`<${Loading} />`;
  const d = h.data;
  return html`<dl class="facts" id="endpoint-health">
    <dt>Circuit</dt><dd><${Badge} status=${d.circuit}>${d.circuit.replace("_", " ")}<//></dd>
    <dt>Success (last ${d.recent_attempts})</dt><dd>${pct(d.success_rate)}</dd>
    <dt>Failures in a row</dt><dd>${d.consecutive_failures}</dd>
    <dt>Last status</dt><dd>${d.last_status_code ?? "—"}</dd>
    <dt>Last error</dt><dd>${d.last_error ? html`<code class="wrap">${d.last_error}</code>` : "—"}</dd>
    <dt>In flight</dt><dd>${d.in_flight}</dd>
    <dt>Last attempt</dt><dd><${Time} iso=${d.last_attempt_at} /></dd>
  </dl>`;
}

function SecretPanel({ id }) {
  const [secret, setSecret] = useState(null);
  const [rotating, setRotating] = useState(false);
  const reveal = useAction(async () => setSecret((await get(`/v1/endpoints/${id}/secret`)).secret));
  const rotate = useAction(async () => {
    const out = await post(`/v1/endpoints/${id}/secret/rotate`, {});
    setSecret(out.secret);
    setRotating(false);
    notify("Secret rotated; the previous one keeps signing during the grace period");
    return out;
  });
  return html`<div id="secret-panel">
    <p class="muted">Receivers verify the <code>webhook-signature</code> header with this secret (Standard Webhooks).</p>
    ${secret
      ? html`<div class="secret-box"><code id="secret-value" class="wrap">${secret}</code> <${Copy} text=${secret} />
          <button type="button" class="btn btn-small" onClick=${() => setSecret(null)}>Hide</button></div>`
      : null}
    <div class="actions">
      ${!secret ? html`<${Gated} need="endpoints:manage" onClick=${() => reveal.run()} busy=${reveal.busy}>Reveal secret<//>` : null}
      <${Gated} need="endpoints:manage" onClick=${() => { rotate.reset(); setRotating(true); }}>Rotate secret<//>
    </div>
    <${Problem} error=${reveal.error} />
    <${Confirm} open=${rotating} title="Rotate the signing secret?" confirmLabel="Rotate" busy=${rotate.busy} error=${rotate.error}
      onConfirm=${() => rotate.run()} onClose=${() => setRotating(false)}>
      <p>A new secret signs every delivery from now on. The current one keeps signing alongside it for the grace period (<code>delivery.secret_rotation_grace_secs</code>), so update the receiver before that ends.</p>
    <//>
  </div>`;
}

/** Deliveries of this endpoint, newest first: the nearest window that has any. */
function RecentDeliveries({ id, tick }) {
  const d = useLoad(async (signal) => {
    for (const [mins, label] of [[15, "15 minutes"], [24 * 60, "24 hours"], [7 * 24 * 60, "7 days"]]) {
      const since = new Date(Date.now() - mins * 60000).toISOString();
      const page = await collect("/v1/deliveries", { query: { endpoint_id: id, since }, want: 1000, maxRequests: 5, signal });
      if (page.items.length) return { items: page.items.slice(-10).reverse(), label, more: Boolean(page.next) || page.items.length > 10 };
    }
    return { items: [], label: "7 days" };
  }, [id, tick]);
  if (!d.data) return d.error ? html`<${Problem} error=${d.error} />` : html`<${Loading} />`;
  const { items, label: window, more } = d.data;
  if (!items.length) {
    return html`<${Empty} title="No deliveries in the last 7 days"><p>Subscribe this endpoint to a topic, then send a test event.</p><//>`;
  }
  return html`<p class="muted">Newest first, from the last ${window}${more ? " (the 10 most recent)" : ""}.</p>
    <${DeliveryTable} items=${items} showEndpoint=${false} id="endpoint-deliveries" />
    <p><${Link} to="/deliveries" query=${{ endpoint_id: id }}>All deliveries of this endpoint<//></p>`;
}

export function DeliveryTable({ items, showEndpoint = true, endpoints, id, selectable, selected, onToggle }) {
  const name = (eid) => {
    const ep = endpoints && endpoints.get(eid);
    return ep ? label(ep) : null;
  };
  return html`<table class="table" id=${id}>
    <caption class="sr-only">Deliveries</caption>
    <thead><tr>
      ${selectable ? html`<th scope="col"><span class="sr-only">Select</span></th>` : null}
      <th scope="col">Status</th><th scope="col">Delivery</th>${showEndpoint ? html`<th scope="col">Endpoint</th>` : null}
      <th scope="col">Event</th><th scope="col">Attempts</th><th scope="col">Updated</th><th scope="col">Next attempt</th>
    </tr></thead>
    <tbody>${items.map((d) => html`<tr data-delivery-id=${d.id} data-status=${d.status}>
      ${selectable
        ? html`<td><input type="checkbox" aria-label=${`Select delivery ${d.id}`} checked=${selected.has(d.id)} onChange=${() => onToggle(d.id)} /></td>`
        : null}
      <td data-label="Status"><${Badge} status=${d.status} /></td>
      <td data-label="Delivery"><${Id} id=${d.id} to=${`/deliveries/${d.id}`} /></td>
      ${showEndpoint ? html`<td data-label="Endpoint">${name(d.endpoint_id) ? html`<${Link} to=${`/endpoints/${d.endpoint_id}`}>${name(d.endpoint_id)}<//>` : html`<${Id} id=${d.endpoint_id} to=${`/endpoints/${d.endpoint_id}`} />`}</td>` : null}
      <td data-label="Event"><${Id} id=${d.event_id} to=${`/events/${d.event_id}`} /></td>
      <td data-label="Attempts">${d.attempt_count}</td>
      <td data-label="Updated"><${Time} iso=${d.updated_at} /></td>
      <td data-label="Next attempt">${d.next_attempt_at ? html`<${Time} iso=${d.next_attempt_at} />` : html`<span class="muted">—</span>`}</td>
    </tr>`)}</tbody>
  </table>`;
}

function DeadLetters({ id, tick }) {
  const d = useLoad(async (signal) => (cannot("dlq:manage") ? null : collect("/v1/dlq", { query: { endpoint_id: id }, want: 1000, maxRequests: 3, signal })), [id, tick]);
  const why = cannot("dlq:manage");
  if (why) return html`<p class="why">Dead letters: ${why}</p>`;
  if (!d.data) return d.error ? html`<${Problem} error=${d.error} />` : html`<${Loading} />`;
  const n = d.data.items.length;
  return html`<p id="endpoint-dlq">${n ? html`<strong>${n}${d.data.next ? "+" : ""}</strong> dead ${n === 1 ? "delivery" : "deliveries"} waiting.` : "No dead deliveries."}
    ${n ? html` <${Link} to="/dlq" query=${{ endpoint_id: id }} class="btn btn-small">Inspect and requeue<//>` : null}</p>`;
}

function TestEvent({ ep, subs, open, onClose, onSent }) {
  const first = subs[0]?.topics?.[0];
  const [topic, setTopic] = useState(sampleTopic(first));
  const [payload, setPayload] = useState(JSON.stringify({ test: true, sent_from: "GatePulse console" }, null, 2));
  const [watch, setWatch] = useState(null);
  const send = useAction(async () => {
    const parsed = parseJson(payload);
    if (parsed.error) throw Object.assign(new Error(parsed.error), { detail: parsed.error });
    const out = await post("/v1/events", { topic: topic.trim(), payload: parsed.value });
    setWatch({ event: out.id, state: "waiting", delivery: null });
    onSent?.(out);
    return out;
  });
  // Follow the delivery this endpoint got, until it is final or 60 s passed.
  useEffect(() => {
    if (!watch || !watch.event) return undefined;
    let alive = true;
    const started = Date.now();
    const poll = async () => {
      while (alive && Date.now() - started < 60000) {
        try {
          const page = await get("/v1/deliveries", { query: { event_id: watch.event, endpoint_id: ep.id } });
          const d = page.data[0];
          if (d) {
            setWatch((w) => ({ ...w, delivery: d }));
            if (["succeeded", "dead", "cancelled"].includes(d.status)) return;
          } else if (Date.now() - started > 3000) {
            setWatch((w) => ({ ...w, state: "none" }));
          }
        } catch {
          /* shown by the next poll or the timeline */
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    poll();
    return () => {
      alive = false;
    };
  }, [watch?.event]);
  const mine = subs.filter((s) => s.topics.some((p) => topicMatches(p, topic.trim())));
  const tid = useId("tt");
  const pid = useId("tp");
  return html`<${Dialog} open=${open} title="Send a test event" onClose=${onClose} wide>
    <p class="muted">Publishes an event (<code>POST /v1/events</code>). Every subscription whose topics match receives it, not only this endpoint's.</p>
    <${Field} id=${tid} label="Topic" hint=${mine.length ? `Matches ${mine.length} of this endpoint's subscriptions.` : "No subscription of this endpoint matches this topic: it will not receive it."}>
      <input id=${tid} value=${topic} onInput=${(e) => setTopic(e.target.value)} spellcheck=${false} />
    <//>
    <${Field} id=${pid} label="Payload (JSON object)">
      <textarea id=${pid} rows="6" class="code" value=${payload} onInput=${(e) => setPayload(e.target.value)} spellcheck=${false}></textarea>
    <//>
    <${Problem} error=${send.error} title="Not sent" />
    ${watch
      ? html`<div class="card" role="status" id="test-result">
          <p>Published <${Id} id=${watch.event} to=${`/events/${watch.event}`} />.</p>
          ${watch.delivery
            ? html`<p>This endpoint's delivery: <${Badge} status=${watch.delivery.status} /> after ${watch.delivery.attempt_count} attempt(s) · <${Link} to=${`/deliveries/${watch.delivery.id}`}>see attempts<//></p>`
            : watch.state === "none"
              ? html`<p class="why">This endpoint got no delivery: no subscription of it matches the topic.</p>`
              : html`<p class="muted">Waiting for the delivery…</p>`}
        </div>`
      : null}
    <div class="actions">
      <${Gated} need="events:write" class="btn btn-primary" onClick=${() => send.run()} busy=${send.busy}>Send test event<//>
      <button type="button" class="btn" onClick=${onClose}>Close</button>
    </div>
  <//>`;
}

export function EndpointPage({ id, s }) {
  const [tick, setTick] = useState(0);
  const ep = useLoad((signal) => get(`/v1/endpoints/${id}`, { signal }), [id, tick]);
  const subs = useLoad((signal) => (cannot("endpoints:manage") ? [] : listAll("/v1/subscriptions", { query: { endpoint_id: id }, signal })), [id, tick]);
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [testing, setTesting] = useState(false);
  const toggle = useAction(async (enabled) => {
    const out = await patch(`/v1/endpoints/${id}`, { enabled });
    ep.setData(out);
    notify(enabled ? "Endpoint resumed: queued deliveries go now" : "Endpoint paused: deliveries wait until it is resumed");
    return out;
  });
  const remove = useAction(async () => {
    await del(`/v1/endpoints/${id}`);
    notify(`Endpoint ${id} deleted`);
    navigate(href("/endpoints"));
  });
  useEffect(() => {
    const t = setInterval(() => document.visibilityState === "visible" && !editing && setTick((x) => x + 1), 10000);
    return () => clearInterval(t);
  }, [editing]);

  if (!ep.data) {
    return ep.error
      ? html`<${PageHead} title="Endpoint" /><${Problem} error=${ep.error} /><p><${Link} to="/endpoints">All endpoints<//></p>`
      : html`<${Loading} />`;
  }
  const e = ep.data;
  return html`<${PageHead} title=${label(e)} lede=${html`<${Badge} status=${e.enabled ? "enabled" : "paused"}>${e.enabled ? "enabled" : "paused"}<//> ${e.kind} · <code>${e.id}</code>`}>
      <${Gated} need="endpoints:manage" onClick=${() => toggle.run(!e.enabled)} busy=${toggle.busy} id="toggle-endpoint">${e.enabled ? "Pause" : "Resume"}<//>
      <${Gated} need="events:write" onClick=${() => setTesting(true)} id="send-test">Send test event<//>
      <${Gated} need="endpoints:manage" onClick=${() => setEditing(!editing)} aria-expanded=${editing ? "true" : "false"} id="edit-endpoint">${editing ? "Close editor" : "Edit"}<//>
      <${Gated} need="endpoints:manage" class="btn btn-danger" onClick=${() => { remove.reset(); setDeleting(true); }} id="delete-endpoint">Delete<//>
    <//>
    <${Problem} error=${toggle.error || ep.error} />
    ${e.disabled_reason ? html`<p class="notice notice-warn">Disabled by GatePulse: ${e.disabled_reason}</p>` : null}
    <p class="url-line">${e.url ? html`<code class="wrap">${e.url}</code>` : html`<span class="muted">Inbox: captured messages are at <a href=${`/dev/inbox/ui`}>/dev/inbox/ui</a></span>`}</p>
    ${editing
      ? html`<section aria-labelledby="h-edit"><h2 id="h-edit">Settings</h2>
          <${EndpointForm} initial=${e} onSaved=${(out) => { ep.setData(out); setEditing(false); notify("Endpoint saved"); setTick((t) => t + 1); }} onCancel=${() => setEditing(false)} /></section>`
      : null}
    <div class="cols">
      <section aria-labelledby="h-health" class="card"><h2 id="h-health">Health</h2><${HealthPanel} id=${id} tick=${tick} /></section>
      <section aria-labelledby="h-secret" class="card"><h2 id="h-secret">Signing secret</h2><${SecretPanel} id=${id} /></section>
    </div>
    ${!editing
      ? html`<section aria-labelledby="h-settings"><h2 id="h-settings">Settings</h2>
          <dl class="facts">
            <dt>Description</dt><dd>${e.description || html`<span class="muted">none</span>`}</dd>
            <dt>Custom headers</dt><dd>${Object.keys(e.headers).length ? html`<code class="pre">${headersToText(e.headers)}</code>` : html`<span class="muted">none</span>`}</dd>
            <dt>Timeout</dt><dd>${e.timeout_ms ? `${e.timeout_ms} ms` : "server default"}</dd>
            <dt>Rate limit</dt><dd>${e.rate_limit_per_sec ? `${e.rate_limit_per_sec} / s` : "none"}</dd>
            <dt>Max in flight</dt><dd>${e.max_in_flight ?? "server default"}</dd>
            <dt>Retry schedule</dt><dd>${e.retry_schedule_secs ? `${e.retry_schedule_secs.join(", ")} s` : "server default"}</dd>
            <dt>Created</dt><dd><${Time} iso=${e.created_at} /></dd>
            <dt>Updated</dt><dd><${Time} iso=${e.updated_at} /></dd>
          </dl></section>`
      : null}
    <section aria-labelledby="h-subs"><h2 id="h-subs">Subscriptions</h2>
      ${subs.data && subs.data.length
        ? html`<ul class="list" id="endpoint-subscriptions">${subs.data.map((sub) => html`<li><${Link} to=${`/subscriptions/${sub.id}`}>${sub.topics.join(", ")}<//>
            ${sub.filter ? html` <span class="muted">where</span> <code>${sub.filter}</code>` : null}
            ${sub.enabled ? null : html` <${Badge} status="paused">disabled<//>`}</li>`)}</ul>`
        : subs.data
          ? html`<${Empty} title="Not subscribed to anything"><p>This endpoint receives nothing until a subscription names topics for it.</p><//>`
          : html`<${Problem} error=${subs.error} />`}
      <p><${Link} to="/subscriptions/new" query=${{ endpoint_id: id }} class="btn">Subscribe to topics<//></p>
    </section>
    <section aria-labelledby="h-recent"><h2 id="h-recent">Recent deliveries</h2><${RecentDeliveries} id=${id} tick=${tick} /></section>
    <section aria-labelledby="h-dead"><h2 id="h-dead">Dead letters</h2><${DeadLetters} id=${id} tick=${tick} /></section>
    <${Confirm} open=${deleting} title="Delete this endpoint?" danger confirmLabel="Delete endpoint" busy=${remove.busy} error=${remove.error}
      onConfirm=${() => remove.run()} onClose=${() => setDeleting(false)}>
      <p>Deletes <strong>${label(e)}</strong> and its ${subs.data ? subs.data.length : ""} subscription(s). Its queued deliveries are cancelled. This cannot be undone.</p>
    <//>
    ${testing ? html`<${TestEvent} ep=${e} subs=${subs.data || []} open=${testing} onClose=${() => { setTesting(false); setTick((t) => t + 1); }} />` : null}`;
}
