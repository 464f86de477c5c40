// The live view: delivery attempts (`deliveries.status`) and events as they commit,
// from the SSE stream. Pause closes the connection and keeps the cursor; resume
// reconnects from it, so what happened meanwhile arrives too. A dropped connection
// reconnects the same way by itself.

import { html, useEffect, useRef, useState } from "../lib/html.js";
import { listAll } from "../lib/api.js";
import { cannot } from "../lib/session.js";
import { Link, setQuery } from "../lib/router.js";
import { Stream } from "../lib/sse.js";
import { Badge, Empty, Gated, Id, PageHead, Time, useId, useLoad } from "../ui.js";
import { PublishDialog } from "./events.js";

const MAX_ITEMS = 500;

// The cursor a live-only stream starts from until the server says where the head is.
const cursorText = (c) => (c && c !== String(Number.MAX_SAFE_INTEGER) ? `cursor ${c}` : "");

const STATE_TEXT = {
  connecting: "connecting…", open: "live", paused: "paused", reconnecting: "reconnecting…", error: "stopped", closed: "closed",
};

export function LivePage({ q }) {
  const what = q.get("what") || "all";
  const pattern = q.get("topic") || "#";
  const endpointId = q.get("endpoint_id") || "";
  const topic = what === "statuses" ? "deliveries.status" : what === "events" ? pattern : "";
  const why = cannot("events:read");
  const [items, setItems] = useState([]);
  const [state, setState] = useState({ state: "connecting" });
  const [notices, setNotices] = useState([]);
  const [publishing, setPublishing] = useState(false);
  const [draft, setDraft] = useState(pattern);
  const stream = useRef(null);
  const seen = useRef(0);
  const eps = useLoad((signal) => (cannot("endpoints:manage") ? [] : listAll("/v1/endpoints", { signal })), []);
  const ids = { what: useId("lv-w"), topic: useId("lv-t"), ep: useId("lv-e") };

  useEffect(() => {
    if (why) return undefined;
    setItems([]);
    setNotices([]);
    const s = new Stream({
      topic,
      onItem: (it) => {
        seen.current += 1;
        setItems((xs) => [{ ...it, n: seen.current }, ...xs].slice(0, MAX_ITEMS));
      },
      onState: setState,
      onNotice: (n) => setNotices((xs) => [n, ...xs].slice(0, 5)),
    });
    stream.current = s;
    s.start();
    return () => s.close();
  }, [topic, why]);

  const paused = state.state === "paused";
  const stopped = paused || state.state === "error";
  const epMap = new Map((eps.data || []).map((e) => [e.id, e]));
  const epName = (id) => {
    const e = epMap.get(id);
    return e ? e.description || e.url || id : null;
  };
  const shown = items.filter((it) => !endpointId || (it.topic === "deliveries.status" && it.data.endpoint_id === endpointId));
  const head = html`<${PageHead} title="Live" lede="Events and delivery attempts as they happen, from the stream.">
    <${Gated} need="events:write" onClick=${() => setPublishing(true)} id="live-publish">Publish a test event<//>
  <//>`;
  if (why) return html`${head}<p class="why">${why}</p>`;
  return html`${head}
    <form class="filters" onSubmit=${(e) => { e.preventDefault(); setQuery({ what, topic: draft.trim(), endpoint_id: endpointId }); }}>
      <div class="field"><label for=${ids.what}>Show</label>
        <select id=${ids.what} value=${what} onChange=${(e) => setQuery({ what: e.target.value, topic: pattern, endpoint_id: endpointId })}>
          <option value="all">events and delivery attempts</option>
          <option value="statuses">delivery attempts (deliveries.status)</option>
          <option value="events">events on a topic pattern</option>
        </select></div>
      ${what === "events"
        ? html`<div class="field"><label for=${ids.topic}>Topic pattern</label>
            <input id=${ids.topic} value=${draft} onInput=${(e) => setDraft(e.target.value)} spellcheck=${false} /></div>
            <button type="submit" class="btn">Apply</button>`
        : html`<div class="field"><label for=${ids.ep}>Attempts of endpoint</label>
            <select id=${ids.ep} value=${endpointId} onChange=${(e) => setQuery({ what, topic: pattern, endpoint_id: e.target.value })}>
              <option value="">every endpoint</option>
              ${(eps.data || []).map((e) => html`<option value=${e.id}>${e.description || e.url || e.id}</option>`)}
            </select></div>`}
    </form>
    <div class="live-bar">
      <span class=${`live-state live-${state.state}`} role="status" id="live-state" data-state=${state.state}>
        <span class="dot" aria-hidden="true"></span> ${STATE_TEXT[state.state] || state.state}
        ${state.detail ? html`<span class="muted"> — ${state.detail}</span>` : null}
      </span>
      <span class="muted small" id="live-cursor">${cursorText(items[0]?.cursor || state.cursor)}${state.connections > 1 ? ` · reconnected ${state.connections - 1}×` : ""}</span>
      <button type="button" class="btn" id="live-toggle" aria-pressed=${paused ? "true" : "false"}
        onClick=${() => (stopped ? stream.current.start() : stream.current.pause())}>${paused ? "Resume" : stopped ? "Retry" : "Pause"}</button>
      <button type="button" class="btn" onClick=${() => setItems([])}>Clear</button>
    </div>
    ${paused ? html`<p class="muted">Paused at cursor ${state.cursor}. Resuming catches up on everything committed since.</p>` : null}
    ${notices.map((n) => html`<p class="notice notice-warn">${n.kind === "gatepulse.reset"
      ? `The stream skipped ahead (${n.data.reason}): items before cursor ${n.data.resumed_after} are not shown. The events page has them.`
      : `The server closed the stream (${n.data.reason}); reconnecting from cursor ${n.data.last_event_id}.`}</p>`)}
    ${!shown.length
      ? html`<${Empty} title=${paused ? "Paused" : "Waiting for activity"}><p>Nothing yet. Publish an event that a subscription matches and its delivery attempts appear here.</p><//>`
      : html`<ol class="feed" id="live-feed" aria-live="off">${shown.map((it) => it.topic === "deliveries.status"
          ? html`<li class="feed-item" key=${it.n} data-kind="status" data-status=${it.data.status} data-delivery-id=${it.data.delivery_id} data-event-id=${it.data.event_id}>
              <${Time} iso=${it.data.at} />
              <${Badge} status=${it.data.status} />
              <span>${it.data.http_code ? `HTTP ${it.data.http_code}` : "no response"} · ${it.data.latency_ms} ms · attempt ${it.data.attempt}</span>
              ${it.data.error_kind ? html`<code>${it.data.error_kind}</code>` : null}
              <span class="feed-links"><${Link} to=${`/endpoints/${it.data.endpoint_id}`}>${epName(it.data.endpoint_id) || html`<${Id} id=${it.data.endpoint_id} />`}<//>
                · <${Id} id=${it.data.delivery_id} to=${`/deliveries/${it.data.delivery_id}`} /></span>
            </li>`
          : html`<li class="feed-item" key=${it.n} data-kind="event" data-event-id=${it.data.id}>
              <${Time} iso=${it.data.created_at} />
              <span class="badge badge-info">event</span>
              <code>${it.topic}</code>
              <${Id} id=${it.data.id} to=${`/events/${it.data.id}`} />
              <code class="excerpt">${JSON.stringify(it.data.payload).slice(0, 100)}</code>
            </li>`)}</ol>`}
    ${publishing ? html`<${PublishDialog} open=${publishing} onClose=${() => setPublishing(false)} />` : null}`;
}
