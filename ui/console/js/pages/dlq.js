// The dead-letter queue: deliveries that used every attempt. Inspect why (the last
// attempt), then requeue one, a selection, or everything dead for an endpoint.

import { html, useState } from "../lib/html.js";
import { get, post, collect, listAll } from "../lib/api.js";
import { cannot } from "../lib/session.js";
import { Link, setQuery } from "../lib/router.js";
import { Badge, Confirm, Empty, Gated, Id, Loading, PageHead, Problem, Time, useAction, useId, useLoad, notify } from "../ui.js";

function LastAttempt({ id }) {
  const d = useLoad((signal) => get(`/v1/deliveries/${id}`, { signal }), [id]);
  if (!d.data) return d.error ? html`<${Problem} error=${d.error} />` : html`<${Loading} />`;
  const a = d.data.attempts[d.data.attempts.length - 1];
  if (!a) return html`<p class="muted">No attempt recorded (dead without trying: see the delivery).</p>`;
  return html`<div class="inspect" data-inspect=${id}>
    <p><strong>Last attempt (${a.number} of ${d.data.attempt_count})</strong>: ${a.status_code ? `HTTP ${a.status_code}` : "no response"}
      · ${a.latency_ms} ms ${a.error_kind ? html`· <${Badge} status="dead">${a.error_kind}<//>` : null} · <${Time} iso=${a.started_at} /></p>
    ${a.response_excerpt ? html`<pre class="excerpt-box">${a.response_excerpt}</pre>` : null}
    <p><${Link} to=${`/deliveries/${id}`}>Every attempt and its request headers<//></p>
  </div>`;
}

const describe = (out) =>
  `Requeued ${out.requeued} deliver${out.requeued === 1 ? "y" : "ies"}${out.complete ? "" : ` — stopped (${out.stopped}): requeue again for the rest`}.`;

export function DlqPage({ q }) {
  const endpointId = q.get("endpoint_id") || "";
  const why = cannot("dlq:manage");
  const eps = useLoad((signal) => (cannot("endpoints:manage") ? [] : listAll("/v1/endpoints", { signal })), []);
  const [tick, setTick] = useState(0);
  const [pages, setPages] = useState([]);
  const [selected, setSelected] = useState(new Set());
  const [open, setOpen] = useState(new Set());
  const [confirmAll, setConfirmAll] = useState(false);
  const epSel = useId("dlq-ep");
  const first = useLoad(async (signal) => {
    setPages([]);
    setSelected(new Set());
    if (why) return null;
    return collect("/v1/dlq", { query: { endpoint_id: endpointId || undefined }, want: 100, signal });
  }, [endpointId, tick]);
  const more = useAction(async () => {
    const last = pages.length ? pages[pages.length - 1] : first.data;
    setPages([...pages, await collect("/v1/dlq", { query: { endpoint_id: endpointId || undefined }, cursor: last.next, want: 100 })]);
  });
  const requeue = useAction(async (body) => {
    const out = await post("/v1/dlq/requeue", body);
    notify(describe(out));
    setConfirmAll(false);
    setTick((t) => t + 1);
    return out;
  });
  const epMap = new Map((eps.data || []).map((e) => [e.id, e]));
  const epName = (eid) => {
    const e = epMap.get(eid);
    return e ? e.description || e.url || eid : eid;
  };
  const head = html`<${PageHead} title="Dead-letter queue" lede="Deliveries that failed every attempt. Fix the endpoint first, then requeue." />`;
  if (why) return html`${head}<p class="why">${why}</p>`;
  const all = first.data ? [first.data, ...pages].flatMap((p) => p.items) : [];
  const last = pages.length ? pages[pages.length - 1] : first.data;
  const toggle = (set, setter, id) => {
    const n = new Set(set);
    if (n.has(id)) n.delete(id);
    else n.add(id);
    setter(n);
  };
  const allSelected = all.length > 0 && all.every((d) => selected.has(d.id));
  return html`${head}
    <form class="filters" onSubmit=${(e) => e.preventDefault()}>
      <div class="field"><label for=${epSel}>Endpoint</label>
        <select id=${epSel} value=${endpointId} onChange=${(e) => setQuery({ endpoint_id: e.target.value })}>
          <option value="">every endpoint</option>
          ${(eps.data || []).map((e) => html`<option value=${e.id}>${e.description || e.url || e.id}</option>`)}
        </select></div>
    </form>
    <div class="actions bulk">
      <${Gated} need="dlq:manage" class="btn btn-primary" id="requeue-selected" disabled=${!selected.size} busy=${requeue.busy}
        onClick=${() => requeue.run({ delivery_ids: [...selected] })}>Requeue selected (${selected.size})<//>
      <${Gated} need="dlq:manage" class="btn" id="requeue-all" disabled=${!endpointId || !all.length}
        onClick=${() => { requeue.reset(); setConfirmAll(true); }}>Requeue all for this endpoint<//>
      ${!endpointId ? html`<span class="why">Choose an endpoint to requeue all its dead deliveries at once.</span>` : null}
    </div>
    <${Problem} error=${first.error || more.error || (!confirmAll && requeue.error)} />
    ${requeue.result ? html`<p class="notice notice-ok" role="status" id="requeue-result">${describe(requeue.result)}</p>` : null}
    ${first.loading && !first.data
      ? html`<${Loading} />`
      : !all.length
        ? html`<${Empty} title=${endpointId ? "Nothing dead for this endpoint" : "The DLQ is empty"}><p>Nothing to requeue. Deliveries land here after their last retry fails; the <${Link} to="/">overview<//> shows endpoints that are failing now.</p><//>`
        : html`<table class="table" id="dlq">
            <caption class="sr-only">Dead deliveries</caption>
            <thead><tr>
              <th scope="col"><input type="checkbox" aria-label="Select every delivery shown" checked=${allSelected}
                onChange=${() => setSelected(allSelected ? new Set() : new Set(all.map((d) => d.id)))} /></th>
              <th scope="col">Delivery</th><th scope="col">Endpoint</th><th scope="col">Event</th><th scope="col">Attempts</th><th scope="col">Dead since</th><th scope="col"><span class="sr-only">Actions</span></th>
            </tr></thead>
            <tbody>${all.map((d) => html`<tr data-delivery-id=${d.id}>
                <td><input type="checkbox" aria-label=${`Select delivery ${d.id}`} checked=${selected.has(d.id)} onChange=${() => toggle(selected, setSelected, d.id)} /></td>
                <td data-label="Delivery"><${Id} id=${d.id} to=${`/deliveries/${d.id}`} /></td>
                <td data-label="Endpoint"><${Link} to=${`/endpoints/${d.endpoint_id}`}>${epName(d.endpoint_id)}<//></td>
                <td data-label="Event"><${Id} id=${d.event_id} to=${`/events/${d.event_id}`} /></td>
                <td data-label="Attempts">${d.attempt_count}</td>
                <td data-label="Dead since"><${Time} iso=${d.updated_at} /></td>
                <td><div class="row-actions">
                  <button type="button" class="btn btn-small" aria-expanded=${open.has(d.id) ? "true" : "false"} onClick=${() => toggle(open, setOpen, d.id)}>Inspect</button>
                  <${Gated} need="dlq:manage" class="btn btn-small" busy=${requeue.busy} onClick=${() => requeue.run({ delivery_ids: [d.id] })} aria-label=${`Requeue delivery ${d.id}`}>Requeue<//>
                </div></td>
              </tr>
              ${open.has(d.id) ? html`<tr class="detail-row"><td colspan="7"><${LastAttempt} id=${d.id} /></td></tr>` : null}`)}</tbody>
          </table>
          ${last && last.next ? html`<button type="button" class="btn" onClick=${() => more.run()} disabled=${more.busy}>Load more</button>` : null}`}
    <${Confirm} open=${confirmAll} title="Requeue every dead delivery of this endpoint?" confirmLabel="Requeue all" busy=${requeue.busy} error=${requeue.error}
      onConfirm=${() => requeue.run({ endpoint_id: endpointId })} onClose=${() => setConfirmAll(false)}>
      <p>All dead deliveries of <strong>${epName(endpointId)}</strong> (${all.length}${last && last.next ? "+" : ""} shown) go back to the queue with a fresh retry schedule. If the endpoint still fails they come back here.</p>
    <//>`;
}
