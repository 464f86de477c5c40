// Events: the tenant's stream filtered by topic pattern and time, one event with its
// payload and deliveries, publishing a test event, replaying one event.

import { html, useState } from "../lib/html.js";
import { get, post, collect, listAll } from "../lib/api.js";
import { cannot } from "../lib/session.js";
import { Link, setQuery } from "../lib/router.js";
import { eventCursorAt } from "../lib/seek.js";
import { toLocalInput, fromLocalInput, zoneName } from "../lib/time.js";
import {
  Dialog, Empty, Field, Gated, Id, Json, Loading, PageHead, Problem, Time,
  useAction, useId, useLoad, notify, parseJson,
} from "../ui.js";
import { DeliveryTable } from "./endpoints.js";

export const PRESETS = [
  ["15 min", 15 * 60e3], ["1 hour", 3600e3], ["24 hours", 86400e3], ["7 days", 7 * 86400e3],
];

/** From/to inputs in the viewer's zone, stored in the query string as UTC. */
export function TimeRange({ from, to, onChange, legend = "Time" }) {
  const fid = useId("from");
  const tid = useId("to");
  return html`<fieldset class="time-range"><legend>${legend} <span class="muted small">(${zoneName()})</span></legend>
    <div class="field"><label for=${fid}>From</label>
      <input id=${fid} type="datetime-local" step="1" value=${toLocalInput(from)} onChange=${(e) => onChange({ from: fromLocalInput(e.target.value), to })} /></div>
    <div class="field"><label for=${tid}>To</label>
      <input id=${tid} type="datetime-local" step="1" value=${toLocalInput(to)} onChange=${(e) => onChange({ from, to: fromLocalInput(e.target.value) })} /></div>
    <div class="presets" role="group" aria-label="Quick ranges">
      ${PRESETS.map(([label, ms]) => html`<button type="button" class="btn btn-small" onClick=${() => onChange({ from: new Date(Date.now() - ms), to: null })}>Last ${label}</button>`)}
      <button type="button" class="btn btn-small" onClick=${() => onChange({ from: null, to: null })}>All</button>
    </div>
  </fieldset>`;
}

const isoOrNull = (d) => (d ? d.toISOString() : undefined);
export const dateParam = (q, name) => {
  const v = q.get(name);
  if (!v) return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
};

export function PublishDialog({ open, onClose, initialTopic = "orders.created" }) {
  const [topic, setTopic] = useState(initialTopic);
  const [payload, setPayload] = useState(JSON.stringify({ id: "ord_1", amount: 42, currency: "EUR" }, null, 2));
  const [idem, setIdem] = useState("");
  const ids = { t: useId("pt"), p: useId("pp"), i: useId("pi") };
  const send = useAction(async () => {
    const parsed = parseJson(payload);
    if (parsed.error) throw Object.assign(new Error(parsed.error), { detail: parsed.error });
    const body = { topic: topic.trim(), payload: parsed.value };
    if (idem.trim()) body.idempotency_key = idem.trim();
    const out = await post("/v1/events", body);
    notify(out.deduped ? `Deduplicated: ${out.id} was published before with this key` : `Published ${out.id}`);
    return out;
  });
  return html`<${Dialog} open=${open} title="Publish an event" onClose=${onClose} wide>
    <${Field} id=${ids.t} label="Topic" hint="Dot-separated, e.g. orders.created. deliveries.status and gatepulse.* are reserved.">
      <input id=${ids.t} value=${topic} onInput=${(e) => setTopic(e.target.value)} spellcheck=${false} />
    <//>
    <${Field} id=${ids.p} label="Payload (JSON object)">
      <textarea id=${ids.p} rows="7" class="code" value=${payload} onInput=${(e) => setPayload(e.target.value)} spellcheck=${false}></textarea>
    <//>
    <${Field} id=${ids.i} label="Idempotency key (optional)" hint="A repeat with the same key within the window answers with the first event.">
      <input id=${ids.i} value=${idem} onInput=${(e) => setIdem(e.target.value)} spellcheck=${false} />
    <//>
    <${Problem} error=${send.error} title="Not published" />
    ${send.result
      ? html`<p class="notice notice-ok" role="status" id="publish-result">Published <${Id} id=${send.result.id} to=${`/events/${send.result.id}`} /> at cursor ${send.result.cursor}${send.result.deduped ? " (deduplicated)" : ""}.</p>`
      : null}
    <div class="actions">
      <${Gated} need="events:write" class="btn btn-primary" onClick=${() => send.run()} busy=${send.busy} id="publish-send">Publish<//>
      <button type="button" class="btn" onClick=${onClose}>Close</button>
    </div>
  <//>`;
}

export function EventsPage({ q }) {
  const topic = q.get("topic") || "";
  const hasFrom = q.has("from");
  const [defaultFrom] = useState(() => new Date(Date.now() - 3600e3));
  const from = hasFrom ? dateParam(q, "from") : defaultFrom;
  const to = dateParam(q, "to");
  const [pages, setPages] = useState([]);
  const [publishing, setPublishing] = useState(false);
  const why = cannot("events:read");
  const topicId = useId("topic");
  const [draft, setDraft] = useState(topic);
  const key = `${topic}|${q.get("from")}|${q.get("to")}`;
  const first = useLoad(async (signal) => {
    setPages([]);
    if (why) return null;
    const after = from ? await eventCursorAt(from, { signal }) : 0;
    return collect("/v1/events", {
      query: { topic: topic || undefined, after_cursor: after }, want: 50, signal,
      stop: to ? (e) => new Date(e.created_at) >= to : undefined,
    });
  }, [key]);
  const more = useAction(async () => {
    const last = pages.length ? pages[pages.length - 1] : first.data;
    const page = await collect("/v1/events", {
      query: { topic: topic || undefined }, cursor: last.next, want: 50,
      stop: to ? (e) => new Date(e.created_at) >= to : undefined,
    });
    setPages([...pages, page]);
  });
  const apply = (next) => setQuery({
    topic: next.topic ?? topic,
    from: next.from === undefined ? (hasFrom ? q.get("from") : isoOrNull(from)) : next.from === null ? "" : next.from.toISOString(),
    to: next.to === undefined ? q.get("to") : isoOrNull(next.to),
  });
  const head = html`<${PageHead} title="Events" lede="What publishers sent, in stream order.">
    <${Gated} need="events:write" class="btn btn-primary" onClick=${() => setPublishing(true)} id="publish-open">Publish an event<//>
  <//>`;
  const dialog = publishing ? html`<${PublishDialog} open=${publishing} onClose=${() => { setPublishing(false); first.reload(); }} initialTopic=${topic && !/[*#]/.test(topic) ? topic : "orders.created"} />` : null;
  if (why) return html`${head}<p class="why">${why}</p>${dialog}`;
  const all = first.data ? [first.data, ...pages].flatMap((p) => p.items) : [];
  const last = pages.length ? pages[pages.length - 1] : first.data;
  return html`${head}
    <form class="filters" onSubmit=${(e) => { e.preventDefault(); apply({ topic: draft.trim() }); }} role="search">
      <div class="field"><label for=${topicId}>Topic pattern</label>
        <input id=${topicId} value=${draft} onInput=${(e) => setDraft(e.target.value)} placeholder="orders.* or orders.#" spellcheck=${false} /></div>
      <button type="submit" class="btn">Apply</button>
      <${TimeRange} from=${from} to=${to} onChange=${({ from: f, to: t }) => apply({ from: f, to: t })} />
    </form>
    <${Problem} error=${first.error || more.error} />
    ${first.loading && !first.data
      ? html`<${Loading} />`
      : !all.length
        ? html`<${Empty} title="No events here"><p>No event${topic ? ` matching ${topic}` : ""} ${from ? "in this time range" : "yet"}. Widen the range, clear the topic, or publish one.</p>
            <p><${Gated} need="events:write" class="btn btn-primary" onClick=${() => setPublishing(true)}>Publish an event<//></p><//>`
        : html`<table class="table" id="events">
            <caption class="sr-only">Events</caption>
            <thead><tr><th scope="col">Cursor</th><th scope="col">Accepted</th><th scope="col">Topic</th><th scope="col">Event</th><th scope="col">Payload</th></tr></thead>
            <tbody>${all.map((e) => html`<tr data-event-id=${e.id}>
              <td data-label="Cursor">${e.cursor}</td>
              <td data-label="Accepted"><${Time} iso=${e.created_at} /></td>
              <td data-label="Topic"><code>${e.topic}</code></td>
              <td data-label="Event"><${Id} id=${e.id} to=${`/events/${e.id}`} /></td>
              <td data-label="Payload" class="excerpt"><code>${JSON.stringify(e.payload).slice(0, 80)}</code></td>
            </tr>`)}</tbody>
          </table>
          <p class="muted">${all.length} event(s) shown.</p>
          ${last && last.next ? html`<button type="button" class="btn" onClick=${() => more.run()} disabled=${more.busy}>Load more</button>` : html`<p class="muted">End of the range.</p>`}`}
    ${dialog}`;
}

export function EventPage({ id }) {
  const ev = useLoad((signal) => get(`/v1/events/${id}`, { signal }), [id]);
  const eps = useLoad((signal) => (cannot("endpoints:manage") ? [] : listAll("/v1/endpoints", { signal })), []);
  const [target, setTarget] = useState("");
  const rid = useId("rep-ep");
  const replay = useAction(async () => {
    const body = { event_id: id };
    if (target) body.endpoint_id = target;
    const out = await post("/v1/replay", body);
    notify(`Replay ${out.replay_id}: ${out.deliveries} new deliveries`);
    ev.reload();
    return out;
  });
  if (!ev.data) return ev.error ? html`<${PageHead} title="Event" /><${Problem} error=${ev.error} />` : html`<${Loading} />`;
  const e = ev.data;
  const epMap = new Map((eps.data || []).map((x) => [x.id, x]));
  return html`<${PageHead} title=${e.topic} lede=${html`<code>${e.id}</code>`}>
      <${Link} to="/events" query=${{ topic: e.topic }} class="btn">Events on this topic<//>
    <//>
    <dl class="facts">
      <dt>Accepted</dt><dd><${Time} iso=${e.created_at} /></dd>
      <dt>Stream cursor</dt><dd>${e.cursor}</dd>
      <dt>Idempotency key</dt><dd>${e.idempotency_key ? html`<code>${e.idempotency_key}</code>` : html`<span class="muted">none</span>`}</dd>
    </dl>
    <section aria-labelledby="h-payload"><h2 id="h-payload">Payload</h2><${Json} value=${e.payload} label="Event payload" /></section>
    <section aria-labelledby="h-dels"><h2 id="h-dels">Deliveries</h2>
      ${e.deliveries.length
        ? html`<${DeliveryTable} items=${e.deliveries} endpoints=${epMap} id="event-deliveries" />`
        : html`<${Empty} title="No deliveries"><p>No subscription matched this event when it was published. Subscribe an endpoint to <code>${e.topic}</code>, then replay it.</p><//>`}
    </section>
    <section aria-labelledby="h-replay" class="card"><h2 id="h-replay">Replay this event</h2>
      <p class="muted">Matches it against the current subscriptions again and creates new deliveries (with new webhook ids).</p>
      <div class="field"><label for=${rid}>Only to endpoint</label>
        <select id=${rid} value=${target} onChange=${(x) => setTarget(x.target.value)}>
          <option value="">every matching subscription</option>
          ${(eps.data || []).map((x) => html`<option value=${x.id}>${x.description || x.url || x.id}</option>`)}
        </select></div>
      <div class="actions"><${Gated} need="replay:write" class="btn btn-primary" onClick=${() => replay.run()} busy=${replay.busy} id="replay-event">Replay event<//></div>
      <${Problem} error=${replay.error} title="Not replayed" />
      ${replay.result ? html`<p class="notice notice-ok" role="status" id="replay-result">Replay <code>${replay.result.replay_id}</code>: ${replay.result.deliveries} new deliveries.</p>` : null}
    </section>`;
}
