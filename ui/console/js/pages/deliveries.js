// The deliveries timeline (filter by status, endpoint, event and time, cursor paging)
// and one delivery with every attempt: response code, excerpt, latency, error kind and
// the request headers it carried. Retry one.

import { html, useEffect, useState } from "../lib/html.js";
import { get, post, collect, listAll } from "../lib/api.js";
import { cannot } from "../lib/session.js";
import { Link, setQuery } from "../lib/router.js";
import {
  Badge, Empty, Gated, Id, Loading, PageHead, Problem, Time, useAction, useId, useLoad, notify,
} from "../ui.js";
import { DeliveryTable } from "./endpoints.js";
import { TimeRange, dateParam } from "./events.js";

export const STATUSES = ["pending", "in_flight", "retrying", "succeeded", "dead", "cancelled"];
const FINAL = new Set(["succeeded", "dead", "cancelled"]);

export function DeliveriesPage({ q }) {
  const status = q.get("status") || "";
  const endpointId = q.get("endpoint_id") || "";
  const eventId = q.get("event_id") || "";
  const hasFrom = q.has("from");
  const [defaultFrom] = useState(() => new Date(Date.now() - 3600e3));
  const from = hasFrom ? dateParam(q, "from") : defaultFrom;
  const to = dateParam(q, "to");
  const why = cannot("events:read");
  const [pages, setPages] = useState([]);
  const [draftEvent, setDraftEvent] = useState(eventId);
  const eps = useLoad((signal) => (cannot("endpoints:manage") ? [] : listAll("/v1/endpoints", { signal })), []);
  const ids = { st: useId("d-st"), ep: useId("d-ep"), ev: useId("d-ev") };
  // The server selects by event time (since, until); one event's deliveries need none.
  const query = {
    status: status || undefined,
    endpoint_id: endpointId || undefined,
    event_id: eventId || undefined,
    since: !eventId && from ? from.toISOString() : undefined,
    until: !eventId && to ? to.toISOString() : undefined,
  };
  const first = useLoad(async (signal) => {
    setPages([]);
    if (why) return null;
    return collect("/v1/deliveries", { query, want: 50, signal });
  }, [status, endpointId, eventId, q.get("from"), q.get("to")]);
  const more = useAction(async () => {
    const last = pages.length ? pages[pages.length - 1] : first.data;
    const page = await collect("/v1/deliveries", { query, cursor: last.next, want: 50 });
    setPages([...pages, page]);
  });
  const apply = (next) => setQuery({
    status, endpoint_id: endpointId, event_id: eventId,
    from: hasFrom ? q.get("from") : from?.toISOString(), to: q.get("to"), ...next,
  });
  const head = html`<${PageHead} title="Deliveries" lede="Every delivery of an event to an endpoint, in event time order, with its attempts." />`;
  if (why) return html`${head}<p class="why">${why}</p>`;
  const epMap = new Map((eps.data || []).map((e) => [e.id, e]));
  const all = first.data ? [first.data, ...pages].flatMap((p) => p.items) : [];
  const last = pages.length ? pages[pages.length - 1] : first.data;
  return html`${head}
    <form class="filters" onSubmit=${(e) => { e.preventDefault(); apply({ event_id: draftEvent.trim() }); }} role="search">
      <div class="field"><label for=${ids.st}>Status</label>
        <select id=${ids.st} value=${status} onChange=${(e) => apply({ status: e.target.value })}>
          <option value="">any</option>${STATUSES.map((s) => html`<option value=${s}>${s.replace("_", " ")}</option>`)}
        </select></div>
      <div class="field"><label for=${ids.ep}>Endpoint</label>
        <select id=${ids.ep} value=${endpointId} onChange=${(e) => apply({ endpoint_id: e.target.value })}>
          <option value="">any</option>
          ${(eps.data || []).map((e) => html`<option value=${e.id}>${e.description || e.url || e.id}</option>`)}
          ${endpointId && !epMap.has(endpointId) ? html`<option value=${endpointId}>${endpointId}</option>` : null}
        </select></div>
      <div class="field"><label for=${ids.ev}>Event id</label>
        <input id=${ids.ev} value=${draftEvent} onInput=${(e) => setDraftEvent(e.target.value)} placeholder="evt_…" spellcheck=${false} /></div>
      <button type="submit" class="btn">Apply</button>
      ${!eventId
        ? html`<${TimeRange} legend="Event time" from=${from} to=${to} onChange=${({ from: f, to: t }) => apply({ from: f ? f.toISOString() : "", to: t ? t.toISOString() : "" })} />`
        : html`<p class="muted">Showing every delivery of this event. <button type="button" class="btn btn-small" onClick=${() => { setDraftEvent(""); apply({ event_id: "" }); }}>Clear the event</button></p>`}
    </form>
    <${Problem} error=${first.error || more.error} />
    ${first.loading && !first.data
      ? html`<${Loading} />`
      : !all.length
        ? html`<${Empty} title="No deliveries match"><p>${status || endpointId ? "Try another status or endpoint, or " : ""}widen the time range. Deliveries appear when a published event matches a subscription.</p>
            <p><${Link} to="/events">Publish or browse events<//> · <${Link} to="/subscriptions">Subscriptions<//></p><//>`
        : html`<${DeliveryTable} items=${all} endpoints=${epMap} id="deliveries" />
          <p class="muted">${all.length} deliver${all.length === 1 ? "y" : "ies"} shown.</p>
          ${last && last.next ? html`<button type="button" class="btn" onClick=${() => more.run()} disabled=${more.busy} id="deliveries-more">Load more</button>` : html`<p class="muted">End of the range.</p>`}`}`;
}

/**
 * The headers an attempt carried: as the server recorded them (`request_headers`,
 * custom values redacted), or, for an attempt recorded before it kept them, what
 * follows from the delivery (the signature and exact timestamp are then unknown).
 */
function requestHeaders(d, a, ev, ep) {
  if (a.request_headers) return a.request_headers.map(([k, v]) => [k, v]);
  const h = [
    ["content-type", "application/json"],
    ["webhook-id", d.id],
    ["webhook-timestamp", `${Math.floor(new Date(a.started_at).getTime() / 1000)} (≈ when the attempt started)`],
    ["webhook-signature", "v1,… (HMAC-SHA256 of the body; not stored)"],
    ["gatepulse-event-id", d.event_id],
    ["gatepulse-topic", ev ? ev.topic : "…"],
    ["gatepulse-attempt", String(a.number)],
  ];
  for (const [k, v] of Object.entries((ep && ep.headers) || {})) h.push([k.toLowerCase(), `${v} (custom, as configured now)`]);
  return h;
}

export function DeliveryPage({ id }) {
  const [tick, setTick] = useState(0);
  const d = useLoad((signal) => get(`/v1/deliveries/${id}`, { signal }), [id, tick]);
  const evId = d.data?.event_id;
  const epId = d.data?.endpoint_id;
  const ev = useLoad((signal) => (evId ? get(`/v1/events/${evId}`, { signal }) : null), [evId]);
  const ep = useLoad((signal) => (epId && !cannot("endpoints:manage") ? get(`/v1/endpoints/${epId}`, { signal }) : null), [epId]);
  // Refresh while the delivery can still change.
  useEffect(() => {
    if (!d.data || FINAL.has(d.data.status)) return undefined;
    const t = setTimeout(() => setTick((x) => x + 1), 2000);
    return () => clearTimeout(t);
  }, [d.data]);
  const dead = d.data?.status === "dead";
  const retry = useAction(async () => {
    if (dead) {
      const out = await post("/v1/dlq/requeue", { delivery_ids: [id] });
      notify(out.requeued ? "Requeued: the delivery goes again with a fresh retry schedule" : "Nothing requeued (it is no longer dead)");
      setTick((x) => x + 1);
      return { kind: "requeue", ...out };
    }
    const out = await post("/v1/replay", { event_id: d.data.event_id, subscription_id: d.data.subscription_id });
    notify(`Sent again as ${out.deliveries} new deliver${out.deliveries === 1 ? "y" : "ies"}`);
    return { kind: "replay", ...out };
  });
  if (!d.data) return d.error ? html`<${PageHead} title="Delivery" /><${Problem} error=${d.error} />` : html`<${Loading} />`;
  const x = d.data;
  const attempts = x.attempts.slice().sort((a, b) => b.number - a.number);
  return html`<${PageHead} title=${html`Delivery <${Badge} status=${x.status} />`} lede=${html`<code>${x.id}</code>`}>
      <${Gated} need=${dead ? "dlq:manage" : "replay:write"} class="btn btn-primary" onClick=${() => retry.run()} busy=${retry.busy} id="retry-delivery"
        disabled=${!FINAL.has(x.status)} title=${FINAL.has(x.status) ? undefined : "It is still being delivered"}>${dead ? "Requeue from the DLQ" : "Send again"}<//>
    <//>
    <p class="muted">${dead
      ? "Dead: every attempt failed. Requeue sends it again with a fresh retry schedule, once the endpoint is fixed."
      : x.status === "succeeded" || x.status === "cancelled"
        ? "“Send again” replays its event to this subscription as a new delivery."
        : "Still being delivered; this page refreshes."}</p>
    <${Problem} error=${retry.error} title="Not retried" />
    ${retry.result
      ? html`<p class="notice notice-ok" role="status" id="retry-result">${retry.result.kind === "requeue"
          ? `Requeued ${retry.result.requeued}.`
          : html`Replay <code>${retry.result.replay_id}</code>: ${retry.result.deliveries} new deliver${retry.result.deliveries === 1 ? "y" : "ies"} — see the <${Link} to="/deliveries" query=${{ event_id: x.event_id }}>event's deliveries<//>.`}</p>`
      : null}
    <dl class="facts">
      <dt>Event</dt><dd><${Id} id=${x.event_id} to=${`/events/${x.event_id}`} /> ${ev.data ? html`<code>${ev.data.topic}</code>` : null}</dd>
      <dt>Endpoint</dt><dd><${Link} to=${`/endpoints/${x.endpoint_id}`}>${ep.data ? ep.data.description || ep.data.url : x.endpoint_id}<//></dd>
      <dt>Subscription</dt><dd><${Id} id=${x.subscription_id} to=${`/subscriptions/${x.subscription_id}`} /></dd>
      <dt>Attempts</dt><dd>${x.attempt_count}</dd>
      <dt>Next attempt</dt><dd>${x.next_attempt_at ? html`<${Time} iso=${x.next_attempt_at} />` : "—"}</dd>
      <dt>Created</dt><dd><${Time} iso=${x.created_at} /></dd>
      <dt>Updated</dt><dd><${Time} iso=${x.updated_at} /></dd>
    </dl>
    <section aria-labelledby="h-att"><h2 id="h-att">Attempts</h2>
      ${!attempts.length
        ? html`<${Empty} title="No attempt yet"><p>${x.status === "pending" ? "It is queued; the first attempt starts when the endpoint has capacity (a paused endpoint holds it)." : "None recorded."}</p><//>`
        : html`<ol class="attempts" id="attempts" reversed>${attempts.map((a) => html`<li class="card attempt" data-attempt=${a.number}>
            <div class="attempt-head">
              <strong>Attempt ${a.number}</strong>
              <span class=${`code ${a.status_code && a.status_code < 300 ? "ok" : "bad"}`} data-status-code=${a.status_code ?? ""}>${a.status_code ? `HTTP ${a.status_code}` : "no response"}</span>
              <span>${a.latency_ms} ms</span>
              ${a.error_kind ? html`<${Badge} status="dead">${a.error_kind}<//>` : null}
              <${Time} iso=${a.started_at} />
            </div>
            ${a.response_excerpt ? html`<p class="small muted">Response${a.status_code ? "" : " / error"}:</p><pre class="excerpt-box">${a.response_excerpt}</pre>` : null}
            <details><summary>Request headers</summary>
              <table class="table kv"><tbody>${requestHeaders(x, a, ev.data, ep.data).map(([k, v]) => html`<tr><th scope="row"><code>${k}</code></th><td><code class="wrap">${v}</code></td></tr>`)}</tbody></table>
              <p class="small muted">Sent headers are not stored; these follow from the delivery. The body is the event payload after the subscription's transform.</p>
            </details>
          </li>`)}</ol>`}
    </section>`;
}
