// Replay: deliver stored events again as new deliveries, either one event or a time
// range (optionally one topic pattern, one endpoint), with a count before anything
// is sent. The API has no dry run, so the count is read from GET /v1/events.

import { html, useEffect, useState } from "../lib/html.js";
import { post, collect, listAll, isAbort } from "../lib/api.js";
import { cannot } from "../lib/session.js";
import { Link } from "../lib/router.js";
import { eventCursorAt } from "../lib/seek.js";
import { topicMatches } from "../lib/topic.js";
import { Confirm, Field, Gated, PageHead, Problem, useAction, useId, useLoad, notify } from "../ui.js";
import { TimeRange, dateParam } from "./events.js";

const COUNT_CAP = 10000;

export function ReplayPage({ q }) {
  const [mode, setMode] = useState(q.get("event_id") ? "event" : "range");
  const [eventId, setEventId] = useState(q.get("event_id") || "");
  const [range, setRange] = useState(() => ({
    from: dateParam(q, "from") || new Date(Date.now() - 3600e3),
    to: dateParam(q, "to") || new Date(),
  }));
  const [topic, setTopic] = useState(q.get("topic") || "");
  const [endpointId, setEndpointId] = useState(q.get("endpoint_id") || "");
  const [count, setCount] = useState({ state: "idle" });
  const [confirming, setConfirming] = useState(false);
  const why = cannot("replay:write");
  const data = useLoad(async (signal) => {
    if (cannot("endpoints:manage")) return { eps: [], subs: [] };
    const [eps, subs] = await Promise.all([listAll("/v1/endpoints", { signal }), listAll("/v1/subscriptions", { signal })]);
    return { eps, subs };
  }, []);
  const ids = { ev: useId("r-ev"), ep: useId("r-ep"), tp: useId("r-tp") };

  // The count preview, recomputed (debounced) when the range changes.
  useEffect(() => {
    if (mode !== "range") return undefined;
    if (!range.from || !range.to || range.from >= range.to) {
      setCount({ state: "invalid", text: "Choose a start before the end." });
      return undefined;
    }
    if (cannot("events:read")) {
      setCount({ state: "invalid", text: `No count: ${cannot("events:read")}` });
      return undefined;
    }
    const ctrl = new AbortController();
    const t = setTimeout(async () => {
      setCount({ state: "counting" });
      try {
        const after = await eventCursorAt(range.from, { signal: ctrl.signal });
        const page = await collect("/v1/events", {
          query: { topic: topic.trim() || undefined, after_cursor: after }, want: COUNT_CAP, maxRequests: 40, signal: ctrl.signal,
          stop: (e) => new Date(e.created_at) >= range.to,
        });
        const events = page.items.filter((e) => new Date(e.created_at) >= range.from);
        const subs = (data.data?.subs || []).filter((s) => s.enabled && (!endpointId || s.endpoint_id === endpointId));
        const reach = events.filter((e) => subs.some((s) => s.topics.some((p) => topicMatches(p, e.topic)))).length;
        setCount({ state: "done", events: events.length, capped: !page.stopped && Boolean(page.next), reach, subs: subs.length });
      } catch (e) {
        if (!isAbort(e)) setCount({ state: "error", error: e });
      }
    }, 300);
    return () => {
      clearTimeout(t);
      ctrl.abort();
    };
  }, [mode, range.from?.getTime(), range.to?.getTime(), topic, endpointId, data.data]);

  const run = useAction(async (body) => {
    const out = await post("/v1/replay", body);
    setConfirming(false);
    notify(`Replay ${out.replay_id}: ${out.deliveries} new deliveries from ${out.events} events`);
    return out;
  });
  const body = () => {
    if (mode === "event") {
      const b = { event_id: eventId.trim() };
      if (endpointId) b.endpoint_id = endpointId;
      return b;
    }
    const b = { from: range.from.toISOString(), to: range.to.toISOString() };
    if (topic.trim()) b.topic = topic.trim();
    if (endpointId) b.endpoint_id = endpointId;
    return b;
  };
  const epName = (id) => {
    const e = (data.data?.eps || []).find((x) => x.id === id);
    return e ? e.description || e.url || e.id : id;
  };
  const canRun = mode === "event" ? Boolean(eventId.trim()) : count.state === "done" && count.events > 0;
  return html`<${PageHead} title="Replay" lede="Send stored events again, as new deliveries (new webhook ids), matched against the current subscriptions." />
    ${why ? html`<p class="notice notice-warn" id="replay-why">${why} Replays are disabled; you can still count what a replay would select.</p>` : null}
    <form class="form card" onSubmit=${(e) => { e.preventDefault(); run.reset(); setConfirming(true); }} id="replay-form" aria-label="Replay">
      <fieldset class="radios"><legend>What to replay</legend>
        <label><input type="radio" name="mode" value="range" checked=${mode === "range"} onChange=${() => setMode("range")} /> A time range</label>
        <label><input type="radio" name="mode" value="event" checked=${mode === "event"} onChange=${() => setMode("event")} /> One event</label>
      </fieldset>
      ${mode === "event"
        ? html`<${Field} id=${ids.ev} label="Event id" hint=${html`Find it on the <${Link} to="/events">events<//> page.`}>
            <input id=${ids.ev} value=${eventId} onInput=${(e) => setEventId(e.target.value)} placeholder="evt_…" spellcheck=${false} required />
          <//>`
        : html`<${TimeRange} legend="Events accepted" from=${range.from} to=${range.to} onChange=${(r) => setRange({ from: r.from, to: r.to || new Date() })} />
          <${Field} id=${ids.tp} label="Topic pattern (optional)">
            <input id=${ids.tp} value=${topic} onInput=${(e) => setTopic(e.target.value)} placeholder="orders.#" spellcheck=${false} />
          <//>`}
      <${Field} id=${ids.ep} label="Only to endpoint (optional)">
        <select id=${ids.ep} value=${endpointId} onChange=${(e) => setEndpointId(e.target.value)}>
          <option value="">every matching subscription</option>
          ${(data.data?.eps || []).map((e) => html`<option value=${e.id}>${e.description || e.url || e.id}</option>`)}
        </select>
      <//>
      ${mode === "range"
        ? html`<div class="count" role="status" id="replay-count" data-state=${count.state} data-events=${count.events ?? ""}>
            ${count.state === "counting" ? "Counting…"
              : count.state === "done" ? html`<strong>${count.events}${count.capped ? "+" : ""}</strong> event${count.events === 1 ? "" : "s"} in the range${topic.trim() ? ` on ${topic.trim()}` : ""}${count.capped ? ` (counted up to ${COUNT_CAP})` : ""};
                  <strong>${count.reach}</strong> match the topics of ${endpointId ? `${epName(endpointId)}'s` : "the"} ${count.subs} enabled subscription(s). Filters are applied when the replay runs.`
              : count.state === "invalid" ? count.text
              : count.state === "error" ? html`<${Problem} error=${count.error} title="Cannot count" />` : ""}
          </div>`
        : null}
      <div class="actions">
        <${Gated} need="replay:write" type="submit" class="btn btn-primary" disabled=${!canRun} id="replay-submit">${mode === "range" && count.state === "done" ? `Replay ${count.events}${count.capped ? "+" : ""} events` : "Replay"}<//>
      </div>
    </form>
    ${run.result
      ? html`<div class="notice notice-ok" role="status" id="replay-done">
          <p>Replay <code>${run.result.replay_id}</code>: <strong>${run.result.deliveries}</strong> new deliveries from ${run.result.events} events.
            <${Link} to="/deliveries" query=${{ endpoint_id: endpointId || undefined, from: mode === "range" ? range.from.toISOString() : undefined }}>Watch them<//></p>
          ${!run.result.complete
            ? html`<p>Stopped early (${run.result.stopped}).${run.result.resume_from
                ? html` <button type="button" class="btn btn-small" onClick=${() => setRange({ ...range, from: new Date(run.result.resume_from) })}>Continue from ${run.result.resume_from}</button>` : null}</p>`
            : null}
        </div>`
      : null}
    <${Confirm} open=${confirming} title="Replay now?" confirmLabel="Replay" busy=${run.busy} error=${run.error}
      onConfirm=${() => run.run(body())} onClose=${() => setConfirming(false)}>
      <p>${mode === "event" ? html`Event <code>${eventId}</code>` : `${count.events ?? "the"} event(s)`} will be delivered again${endpointId ? ` to ${epName(endpointId)} only` : " to every subscription that matches them now"}. Receivers get new webhook ids: they cannot dedupe these against the first deliveries.</p>
    <//>`;
}
