// Overview: is anything wrong right now? Queue, retry backlog and DLQ from /v1/stats,
// ingest and delivery rates and the success rate of the last five minutes from the
// stream, and the endpoints that are failing, each one click from its fix.

import { html, useEffect, useRef, useState } from "../lib/html.js";
import { get, listAll } from "../lib/api.js";
import { cannot, chooseTenant } from "../lib/session.js";
import { Link } from "../lib/router.js";
import { Stream } from "../lib/sse.js";
import { eventCursorAt } from "../lib/seek.js";
import { Badge, Empty, Loading, PageHead, Problem, Time, useLoad, Id } from "../ui.js";

const WINDOW_MS = 5 * 60 * 1000;
const pct = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(x >= 0.999 || x === 0 ? 0 : 1)} %`);

/** How an endpoint is doing, from its stats row. */
export function endpointHealth(st, ep) {
  if (ep && !ep.enabled) return { status: "paused", label: ep.disabled_reason ? `paused: ${ep.disabled_reason}` : "paused" };
  if (!st || st.success_rate === null || st.success_rate === undefined) return { status: "idle", label: "no traffic yet" };
  if (st.circuit === "open") return { status: "failing", label: "failing · circuit open" };
  if (st.consecutive_failures > 0) return { status: "failing", label: `failing · ${st.consecutive_failures} in a row` };
  if (st.circuit === "half_open") return { status: "half_open", label: "recovering" };
  if (st.success_rate < 0.95) return { status: "degraded", label: `degraded · ${pct(st.success_rate)} of recent attempts ok` };
  return { status: "healthy", label: "healthy" };
}

function Stat({ label, value, hint, to, tone }) {
  const body = html`<span class="stat-value">${value}</span><span class="stat-label">${label}</span>${hint ? html`<span class="stat-hint">${hint}</span>` : null}`;
  return to
    ? html`<${Link} to=${to} class=${`stat stat-link ${tone ? `stat-${tone}` : ""}`}>${body}<//>`
    : html`<div class=${`stat ${tone ? `stat-${tone}` : ""}`}>${body}</div>`;
}

/** Rates over the last five minutes, counted from the stream (history, then live). */
function useRates(enabled) {
  const [rates, setRates] = useState({ state: "starting", events: [], attempts: [], since: null, error: null });
  const acc = useRef({ events: [], attempts: [], since: null, truncated: false });
  useEffect(() => {
    if (!enabled) return undefined;
    const ctrl = new AbortController();
    let stream = null;
    let timer = null;
    let pending = null;
    const publish = (state, error = null) => {
      const cut = Date.now() - WINDOW_MS;
      const a = acc.current;
      a.events = a.events.filter((t) => t >= cut);
      a.attempts = a.attempts.filter((x) => x.t >= cut);
      setRates({ state, events: a.events, attempts: a.attempts, since: Math.max(cut, a.since ?? Date.now()), error });
    };
    (async () => {
      const from = await eventCursorAt(new Date(Date.now() - WINDOW_MS), { signal: ctrl.signal });
      if (ctrl.signal.aborted) return;
      acc.current.since = Date.now() - WINDOW_MS;
      stream = new Stream({
        fromCursor: from,
        onItem: ({ topic, data }) => {
          const a = acc.current;
          const t = new Date(topic === "deliveries.status" ? data.at : data.created_at).getTime();
          if (Number.isNaN(t)) return;
          // After a reset (history cut by the server's backfill limits) the window
          // starts at the first item that did arrive.
          if (a.truncated && a.since === null) a.since = t;
          if (topic === "deliveries.status") a.attempts.push({ t, ok: data.status === "succeeded" });
          else a.events.push(t);
          pending ??= setTimeout(() => {
            pending = null;
            publish("open");
          }, 250);
        },
        onNotice: ({ kind }) => {
          if (kind === "gatepulse.reset") {
            acc.current.truncated = true;
            acc.current.since = null;
          }
        },
        onState: ({ state, detail }) => {
          // Give the history a moment to arrive before showing numbers for the window.
          if (state === "open") setTimeout(() => publish("open"), 600);
          else publish(state, state === "error" ? detail : null);
        },
      });
      stream.start();
      timer = setInterval(() => publish("open"), 2000);
    })().catch((e) => !ctrl.signal.aborted && setRates((r) => ({ ...r, state: "error", error: e.detail || e.message })));
    return () => {
      ctrl.abort();
      stream?.close();
      clearInterval(timer);
      clearTimeout(pending);
    };
  }, [enabled]);
  return rates;
}

function Rates({ s }) {
  const why = cannot("events:read", s);
  const r = useRates(!why);
  if (why) return html`<p class="muted">Rates come from the event stream: ${why}</p>`;
  const minutes = Math.max(1 / 60, (Date.now() - (r.since ?? Date.now() - WINDOW_MS)) / 60000);
  const ok = r.attempts.filter((a) => a.ok).length;
  const ready = r.state === "open" || r.state === "reconnecting";
  const rate = (n) => (ready ? (n / minutes).toFixed(n / minutes >= 10 ? 0 : 1) : "…");
  return html`<div class="stats" aria-label="Rates over the last five minutes" id="rates" data-ready=${ready ? "true" : "false"}
    data-events=${r.events.length} data-attempts=${r.attempts.length} data-succeeded=${ok}>
    <${Stat} label="events / min" value=${rate(r.events.length)} hint=${`${r.events.length} in 5 min`} to="/events" />
    <${Stat} label="delivery attempts / min" value=${rate(r.attempts.length)} hint=${`${r.attempts.length} in 5 min`} to="/deliveries" />
    <${Stat} label="attempt success rate" value=${r.attempts.length ? pct(ok / r.attempts.length) : "—"}
      hint=${r.attempts.length ? `${ok} of ${r.attempts.length} succeeded` : "no attempts in 5 min"}
      tone=${r.attempts.length && ok / r.attempts.length < 0.95 ? "bad" : undefined} to="/live" />
    ${r.error ? html`<p class="why">Rates unavailable: ${r.error}</p>` : null}
  </div>`;
}

function AllTenants({ stats }) {
  return html`<section aria-labelledby="t-all">
    <h2 id="t-all">Every tenant</h2>
    <div class="stats">
      <${Stat} label="queue depth" value=${stats.queue_depth} />
      <${Stat} label="in flight" value=${stats.in_flight} />
      <${Stat} label="retry backlog" value=${stats.retry_backlog} />
      <${Stat} label="DLQ depth" value=${stats.dlq_size} tone=${stats.dlq_size ? "bad" : undefined} />
    </div>
    ${stats.tenants.length
      ? html`<table class="table">
          <caption class="sr-only">Queues per tenant</caption>
          <thead><tr><th scope="col">Tenant</th><th scope="col">Queue</th><th scope="col">In flight</th><th scope="col">Retrying</th><th scope="col">DLQ</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>${stats.tenants.map((t) => html`<tr>
            <td data-label="Tenant"><code>${t.tenant_id}</code></td>
            <td data-label="Queue">${t.queue_depth}</td><td data-label="In flight">${t.in_flight}</td>
            <td data-label="Retrying">${t.retry_backlog}</td><td data-label="DLQ">${t.dlq_size}</td>
            <td><button type="button" class="btn btn-small" onClick=${() => chooseTenant(t.tenant_id)}>Open tenant</button></td>
          </tr>`)}</tbody>
        </table>`
      : html`<${Empty} title="No tenants yet">Create one with <code>POST /v1/tenants</code> (or <code>gp serve --dev</code> makes a default tenant).<//>`}
  </section>`;
}

export function Overview({ s }) {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => document.visibilityState === "visible" && setTick((x) => x + 1), 5000);
    return () => clearInterval(t);
  }, []);
  const whyStats = cannot("stats", s);
  const stats = useLoad((signal) => (whyStats ? null : get("/v1/stats", { signal })), [tick]);
  const canEndpoints = !cannot("endpoints:manage", s);
  const endpoints = useLoad((signal) => (canEndpoints ? listAll("/v1/endpoints", { signal }) : null), [tick]);
  const data = stats.data;
  const head = html`<${PageHead} title="Overview" lede=${s.admin && !s.tenant ? "Queues of every tenant. Pick a tenant to see its endpoints and rates." : "What is failing now, and what is waiting."}>
    <${Link} to="/endpoints/new" class="btn">New endpoint<//>
    <${Link} to="/live" class="btn">Live view<//>
  <//>`;
  if (whyStats) return html`${head}<p class="why">Statistics: ${whyStats}</p>${s.tenant || !s.admin ? html`<${Rates} s=${s} />` : null}`;
  if (!data && stats.loading) return html`${head}<${Loading} />`;
  if (!data) return html`${head}<${Problem} error=${stats.error} />`;
  if (data.scope === "all") return html`${head}<${Problem} error=${stats.error} /><${AllTenants} stats=${data} />`;

  const byId = new Map((endpoints.data || []).map((e) => [e.id, e]));
  const rows = (data.endpoints || []).map((st) => ({ st, ep: byId.get(st.endpoint_id), h: endpointHealth(st, byId.get(st.endpoint_id)) }));
  const isFailing = (r) => ["failing", "half_open"].includes(r.h.status) || Boolean(r.ep && !r.ep.enabled && r.ep.disabled_reason);
  const failing = rows.filter(isFailing);
  const degraded = rows.filter((r) => r.h.status === "degraded");
  const attention = [...failing, ...degraded];
  const rated = rows.filter((r) => r.st.success_rate !== null);
  return html`${head}
    <${Problem} error=${stats.error} />
    <section aria-labelledby="h-queues">
      <h2 id="h-queues">Queues</h2>
      <div class="stats">
        <${Stat} label="queue depth" value=${data.queue_depth} hint="waiting for a first attempt" to="/deliveries?status=pending" />
        <${Stat} label="in flight" value=${data.in_flight} to="/deliveries?status=in_flight" />
        <${Stat} label="retry backlog" value=${data.retry_backlog} to="/deliveries?status=retrying" tone=${data.retry_backlog ? "warn" : undefined} />
        <${Stat} label="DLQ depth" value=${data.dlq_size} to="/dlq" tone=${data.dlq_size ? "bad" : undefined} hint=${data.dlq_size ? "dead deliveries to requeue" : "nothing dead"} />
        <${Stat} label="endpoints failing" value=${`${failing.length} / ${rows.length}`} to="/endpoints?health=failing" tone=${failing.length ? "bad" : undefined}
          hint=${`${degraded.length ? `${degraded.length} degraded · ` : ""}${rated.length ? `mean success ${pct(rated.reduce((a, r) => a + r.st.success_rate, 0) / rated.length)} (last 100 attempts each)` : "no attempts yet"}`} />
      </div>
    </section>
    <section aria-labelledby="h-rates">
      <h2 id="h-rates">Last five minutes</h2>
      <${Rates} s=${s} />
    </section>
    <section aria-labelledby="h-failing">
      <h2 id="h-failing">Failing or degraded endpoints</h2>
      ${!rows.length
        ? html`<${Empty} title="No endpoints yet"><p>Create an endpoint, subscribe it to topics, then publish an event.</p><p><${Link} to="/endpoints/new" class="btn btn-primary">Create an endpoint<//></p><//>`
        : !attention.length
          ? html`<${Empty} title="Every endpoint is healthy"><p>Nothing is failing. The <${Link} to="/live">live view<//> shows attempts as they happen.</p><//>`
          : html`<table class="table" id="failing-endpoints">
              <caption class="sr-only">Failing endpoints</caption>
              <thead><tr><th scope="col">Health</th><th scope="col">Endpoint</th><th scope="col">Last status</th><th scope="col">Success</th><th scope="col">Last attempt</th><th scope="col">Next step</th></tr></thead>
              <tbody>${attention.map(({ st, ep, h }) => html`<tr data-endpoint-id=${st.endpoint_id} data-health=${h.status}>
                <td data-label="Health"><${Badge} status=${h.status}>${h.label}<//></td>
                <td data-label="Endpoint"><${Link} to=${`/endpoints/${st.endpoint_id}`}>${ep ? ep.description || ep.url || st.endpoint_id : st.endpoint_id}<//>
                  ${ep && ep.url ? html`<div class="muted small">${ep.url}</div>` : null}</td>
                <td data-label="Last status">${st.last_status_code ?? "no response"}</td>
                <td data-label="Success">${pct(st.success_rate)}</td>
                <td data-label="Last attempt"><${Time} iso=${st.last_attempt_at} /></td>
                <td data-label="Next step"><div class="row-actions">
                  <${Link} to="/deliveries" query=${{ endpoint_id: st.endpoint_id }}>Deliveries<//>
                  <${Link} to="/dlq" query=${{ endpoint_id: st.endpoint_id }}>DLQ<//>
                  <${Link} to=${`/endpoints/${st.endpoint_id}`}>Fix<//>
                </div></td>
              </tr>`)}</tbody>
            </table>`}
    </section>
    ${rows.length && canEndpoints
      ? html`<section aria-labelledby="h-all"><h2 id="h-all">All endpoints</h2>
          <ul class="chips">${rows.map(({ st, ep, h }) => html`<li><${Link} to=${`/endpoints/${st.endpoint_id}`}><${Badge} status=${h.status}>${h.status}<//> ${ep ? ep.description || ep.url || "inbox" : html`<${Id} id=${st.endpoint_id} />`}<//></li>`)}</ul>
        </section>`
      : null}`;
}
