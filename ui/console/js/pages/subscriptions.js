// Subscriptions: which topics reach which endpoint, with an optional filter, mapping and
// plugins. The editor checks everything live against a sample event through
// POST /v1/subscriptions/preview (nothing stored or sent) and shows each error at its
// position.

import { html, useEffect, useRef, useState } from "../lib/html.js";
import { get, post, patch, del, listAll, collect, isAbort } from "../lib/api.js";
import { cannot } from "../lib/session.js";
import { Link, navigate, href, setQuery } from "../lib/router.js";
import { eventCursorAt } from "../lib/seek.js";
import { sampleTopic } from "../lib/topic.js";
import {
  Badge, Confirm, Empty, Field, Gated, Json, Loading, PageHead, Problem, Time,
  useAction, useId, useLoad, notify, parseJson, caretAt,
} from "../ui.js";

const epLabel = (ep) => (ep ? ep.description || ep.url || `inbox ${ep.id.slice(-6)}` : "unknown endpoint");

function transformSummary(t) {
  if (!t) return html`<span class="muted">none</span>`;
  const parts = [];
  if (t.mapping) parts.push(`mapping (${(t.mapping.ops || []).length} ops)`);
  for (const p of t.plugins || []) parts.push(`${p.name}@${p.version}`);
  return parts.length ? parts.join(" → ") : html`<span class="muted">none</span>`;
}

export function SubscriptionsPage({ q }) {
  const endpointId = q.get("endpoint_id") || "";
  const why = cannot("endpoints:manage");
  const data = useLoad(async (signal) => {
    if (why) return null;
    const [subs, eps] = await Promise.all([listAll("/v1/subscriptions", { signal }), listAll("/v1/endpoints", { signal })]);
    return { subs, eps: new Map(eps.map((e) => [e.id, e])), epList: eps };
  }, []);
  const fid = useId("sub-ep");
  const head = html`<${PageHead} title="Subscriptions" lede="Topic patterns, filters and transforms that route events to endpoints.">
    <${Gated} need="endpoints:manage" class="btn btn-primary" onClick=${() => navigate(href("/subscriptions/new", { endpoint_id: endpointId }))}>New subscription<//>
  <//>`;
  if (why) return html`${head}<p class="why">${why}</p>`;
  if (!data.data) return data.error ? html`${head}<${Problem} error=${data.error} />` : html`${head}<${Loading} />`;
  const { subs, eps, epList } = data.data;
  const rows = subs.filter((s) => !endpointId || s.endpoint_id === endpointId);
  return html`${head}
    <form class="filters" onSubmit=${(e) => e.preventDefault()}>
      <div class="field"><label for=${fid}>Endpoint</label>
        <select id=${fid} value=${endpointId} onChange=${(e) => setQuery({ endpoint_id: e.target.value })}>
          <option value="">every endpoint</option>
          ${epList.map((ep) => html`<option value=${ep.id}>${epLabel(ep)}</option>`)}
        </select></div>
    </form>
    ${!subs.length
      ? html`<${Empty} title="No subscriptions yet"><p>${epList.length ? "Subscribe an endpoint to topic patterns such as orders.* so events reach it." : "Create an endpoint first, then subscribe it to topics."}</p>
          <p>${epList.length
            ? html`<${Link} to="/subscriptions/new" class="btn btn-primary">Create a subscription<//>`
            : html`<${Link} to="/endpoints/new" class="btn btn-primary">Create an endpoint<//>`}</p><//>`
      : !rows.length
        ? html`<${Empty} title="This endpoint has no subscriptions"><p><${Link} to="/subscriptions/new" query=${{ endpoint_id: endpointId }}>Subscribe it to topics<//></p><//>`
        : html`<table class="table" id="subscriptions">
            <caption class="sr-only">Subscriptions</caption>
            <thead><tr><th scope="col">Topics</th><th scope="col">Endpoint</th><th scope="col">Filter</th><th scope="col">Transform</th><th scope="col">State</th><th scope="col">Updated</th></tr></thead>
            <tbody>${rows.map((s) => html`<tr data-subscription-id=${s.id}>
              <td data-label="Topics"><${Link} to=${`/subscriptions/${s.id}`}>${s.topics.join(", ")}<//></td>
              <td data-label="Endpoint"><${Link} to=${`/endpoints/${s.endpoint_id}`}>${epLabel(eps.get(s.endpoint_id))}<//></td>
              <td data-label="Filter">${s.filter ? html`<code class="wrap">${s.filter}</code>` : html`<span class="muted">every event</span>`}</td>
              <td data-label="Transform">${transformSummary(s.transform)}</td>
              <td data-label="State"><${Badge} status=${s.enabled ? "enabled" : "paused"}>${s.enabled ? "enabled" : "disabled"}<//></td>
              <td data-label="Updated"><${Time} iso=${s.updated_at} /></td>
            </tr>`)}</tbody>
          </table>`}`;
}

// ---------- the editor ----------

const splitTopics = (text) => text.split(/[\n,]+/).map((t) => t.trim()).filter(Boolean);

/** Resolves a JSON pointer (`/ops/3/expr`) inside `doc`. */
function atPointer(doc, pointer) {
  let cur = doc;
  for (const raw of pointer.split("/").slice(1)) {
    const k = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (cur === null || typeof cur !== "object") return undefined;
    cur = cur[k];
  }
  return cur;
}

/** Where a preview/save error belongs in the form, and the caret text to show there. */
function placeError(err, form) {
  if (!err || !err.problem) return { where: "general" };
  const p = err.problem;
  const field = p.field || "";
  const pos = p.position;
  if (field === "filter") {
    return { where: "filter", excerpt: p.excerpt || (pos ? caretAt(form.filter, pos.line, pos.column) : null) };
  }
  if (field.startsWith("transform/mapping")) {
    const pointer = field.slice("transform/mapping".length);
    const parsed = parseJson(form.mapping).value;
    const src = parsed !== undefined && pointer ? atPointer(parsed, pointer) : undefined;
    const excerpt = pos && typeof src === "string" ? caretAt(src, pos.line, pos.column) : null;
    return { where: "mapping", pointer: pointer || "/", op: p.op, excerpt };
  }
  const plugin = /^transform\/plugins\/(\d+)/.exec(field);
  if (plugin) return { where: `plugin-${plugin[1]}` };
  if (field === "transform") return { where: "mapping" };
  if (field.startsWith("topics")) return { where: "topics" };
  if (field.startsWith("event")) return { where: "sample" };
  if (field === "endpoint_id") return { where: "endpoint" };
  return { where: "general" };
}

function Stages({ result }) {
  if (!result) return null;
  return html`<div id="preview-result" class=${`preview ${result.matched ? "preview-ok" : "preview-no"}`} role="status">
    <p class="preview-verdict">${result.matched ? "✓ Would be delivered" : "✗ Would not be delivered"}</p>
    <ol class="stages">${result.stages.map((st) => html`<li class=${st.matched ? "ok" : "no"}>
      <strong>${st.stage}</strong> ${st.matched ? "passed" : st.error ? "failed" : "did not match"} <span class="muted">${st.took_us} µs</span>
      ${st.stage === "topic" && st.explain ? html`<div class="small">${st.explain.matched_pattern ? html`topic <code>${st.explain.topic}</code> matches <code>${st.explain.matched_pattern}</code>` : html`topic <code>${st.explain.topic}</code> matches none of the patterns`}</div>` : null}
      ${st.stage === "filter" && st.explain && st.explain.terms ? html`<ul class="terms">${st.explain.terms.map((t) => html`<li class=${t.matched ? "ok" : "no"}><code>${t.term}</code> ${t.matched === undefined ? "" : t.matched ? "true" : "false"}</li>`)}</ul>` : null}
      ${st.error ? html`<div class="field-error">${st.error}</div>` : null}
    </li>`)}</ol>
    ${result.body !== null && result.body !== undefined ? html`<p class="small">Body that would be sent:</p><${Json} value=${result.body} label="Body that would be sent" />` : null}
  </div>`;
}

function PluginRow({ i, p, plugins, onChange, onRemove, onMove, error }) {
  const sel = useId("pl");
  const cfg = useId("plc");
  const versions = plugins.filter((x) => x.name === p.name);
  const cfgErr = p.config.trim() ? parseJson(p.config).error : null;
  return html`<fieldset class="plugin-row" data-plugin-index=${i}>
    <legend>Plugin ${i + 1}</legend>
    <div class="grid-2">
      <div class="field"><label for=${sel}>Plugin and version</label>
        <select id=${sel} value=${p.name && p.version ? `${p.name}@${p.version}` : ""} onChange=${(e) => {
          const [name, version] = e.target.value.split("@");
          onChange({ ...p, name, version });
        }}>
          <option value="">choose an uploaded plugin</option>
          ${plugins.map((x) => html`<option value=${`${x.name}@${x.version}`}>${x.name} ${x.version}</option>`)}
        </select>
        ${p.name && !versions.length ? html`<p class="field-error">${p.name}@${p.version} is not uploaded to this tenant.</p>` : null}
      </div>
      <div class="field"><label for=${cfg}>Config (JSON, optional)</label>
        <textarea id=${cfg} rows="2" class="code" value=${p.config} onInput=${(e) => onChange({ ...p, config: e.target.value })} spellcheck=${false} placeholder='{"fields": ["customer.email"]}'></textarea>
        ${cfgErr ? html`<p class="field-error">${cfgErr}</p>` : null}
      </div>
    </div>
    ${error ? html`<p class="field-error" role="alert">${error}</p>` : null}
    <div class="actions">
      <button type="button" class="btn btn-small" onClick=${() => onMove(-1)} disabled=${i === 0}>Move up</button>
      <button type="button" class="btn btn-small" onClick=${onRemove}>Remove plugin</button>
    </div>
  </fieldset>`;
}

function formFrom(sub, endpointId) {
  const t = sub?.transform || null;
  return {
    endpoint_id: sub?.endpoint_id || endpointId || "",
    topics: (sub?.topics || []).join("\n"),
    filter: sub?.filter || "",
    mapping: t?.mapping ? JSON.stringify(t.mapping, null, 2) : "",
    plugins: (t?.plugins || []).map((p) => ({ name: p.name, version: p.version, config: p.config === undefined ? "" : JSON.stringify(p.config) })),
    on_error: t?.on_error || "fail",
    enabled: sub ? sub.enabled : true,
  };
}

/** The subscription body from the form, or { error } for what the form itself can tell. */
function buildSubscription(f) {
  const topics = splitTopics(f.topics);
  const out = { topics };
  if (f.endpoint_id) out.endpoint_id = f.endpoint_id;
  out.filter = f.filter.trim() ? f.filter : null;
  let transform = null;
  if (f.mapping.trim()) {
    const m = parseJson(f.mapping);
    if (m.error) return { error: { where: "mapping", text: `Mapping: ${m.error}` } };
    transform = { mapping: m.value };
  }
  const plugins = [];
  for (const [i, p] of f.plugins.entries()) {
    if (!p.name) return { error: { where: `plugin-${i}`, text: `Plugin ${i + 1}: choose a plugin or remove the row.` } };
    const entry = { name: p.name, version: p.version };
    if (p.config.trim()) {
      const c = parseJson(p.config);
      if (c.error) return { error: { where: `plugin-${i}`, text: `Plugin ${i + 1} config: ${c.error}` } };
      entry.config = c.value;
    }
    plugins.push(entry);
  }
  if (plugins.length) transform = { ...(transform || {}), plugins };
  if (transform && f.on_error !== "fail") transform.on_error = f.on_error;
  out.transform = transform;
  out.enabled = f.enabled;
  return { body: out };
}

export function SubscriptionEdit({ id, q }) {
  const why = cannot("endpoints:manage");
  const base = useLoad(async (signal) => {
    if (why) return null;
    const [eps, plugins, sub] = await Promise.all([
      listAll("/v1/endpoints", { signal }),
      get("/v1/plugins", { signal }).then((p) => p.data),
      id ? get(`/v1/subscriptions/${id}`, { signal }) : null,
    ]);
    return { eps, plugins, sub };
  }, [id]);
  const head = html`<${PageHead} title=${id ? "Edit subscription" : "New subscription"} lede="Checked live against the sample event on the right: nothing is stored or sent until you save." />`;
  if (why) return html`${head}<p class="why">${why}</p>`;
  if (!base.data) return base.error ? html`${head}<${Problem} error=${base.error} />` : html`${head}<${Loading} />`;
  return html`${head}<${Editor} id=${id} q=${q} base=${base.data} />`;
}

function Editor({ id, q, base }) {
  const { eps, plugins, sub } = base;
  const [f, setF] = useState(() => formFrom(sub, q.get("endpoint_id")));
  const [sample, setSample] = useState(() => {
    const first = splitTopics(formFrom(sub, null).topics)[0];
    return { topic: sampleTopic(first || "orders.created"), payload: JSON.stringify({ id: "ord_1", amount: 42, currency: "EUR", customer: { email: "ada@example.com" } }, null, 2) };
  });
  const [preview, setPreview] = useState({ result: null, error: null, busy: false, local: null });
  const [deleting, setDeleting] = useState(false);
  const save = useAction(async (body) => (id ? patch(`/v1/subscriptions/${id}`, body) : post("/v1/subscriptions", body)));
  const remove = useAction(async () => {
    await del(`/v1/subscriptions/${id}`);
    notify("Subscription deleted");
    navigate(href("/subscriptions"));
  });
  const ids = Object.fromEntries(["ep", "topics", "filter", "mapping", "onerr", "enabled", "stopic", "spayload"].map((k) => [k, useId(`sub-${k}`)]));
  const set = (k) => (e) => setF({ ...f, [k]: e.target.type === "checkbox" ? e.target.checked : e.target.value });

  // Live check: debounce, cancel the previous request.
  const seq = useRef(0);
  useEffect(() => {
    const n = ++seq.current;
    const built = buildSubscription(f);
    const payload = parseJson(sample.payload);
    if (!splitTopics(f.topics).length) {
      setPreview({ result: null, error: null, busy: false, local: { where: "none", text: "Add a topic pattern (one per line, e.g. orders.* or orders.#) to see the preview." } });
      return undefined;
    }
    if (built.error) {
      setPreview({ result: null, error: null, busy: false, local: built.error });
      return undefined;
    }
    if (payload.error) {
      setPreview({ result: null, error: null, busy: false, local: { where: "sample", text: `Sample payload: ${payload.error}` } });
      return undefined;
    }
    const ctrl = new AbortController();
    const t = setTimeout(async () => {
      setPreview((p) => ({ ...p, busy: true }));
      const { enabled, ...subscription } = built.body;
      if (subscription.filter === null) delete subscription.filter;
      if (subscription.transform === null) delete subscription.transform;
      try {
        const result = await post("/v1/subscriptions/preview", { subscription, event: { topic: sample.topic.trim(), payload: payload.value } }, { signal: ctrl.signal });
        if (n === seq.current) setPreview({ result, error: null, busy: false, local: null });
      } catch (error) {
        if (!isAbort(error) && n === seq.current) setPreview({ result: null, error, busy: false, local: null });
      }
    }, 350);
    return () => {
      clearTimeout(t);
      ctrl.abort();
    };
  }, [f, sample]);

  const placed = preview.error ? placeError(preview.error, f) : save.error ? placeError(save.error, f) : { where: null };
  const activeError = preview.error || save.error;
  const errAt = (where) => {
    if (preview.local && preview.local.where === where) return html`<p class="field-error" role="alert">${preview.local.text}</p>`;
    if (placed.where !== where || !activeError) return null;
    return html`<div class="field-error" role="alert" data-error-for=${where}>
      <p>${activeError.detail}${activeError.code ? html` <span class="muted">(${activeError.code})</span>` : null}</p>
      ${placed.pointer ? html`<p class="small">at <code>${placed.pointer}</code>${placed.op !== undefined ? ` (op ${placed.op})` : ""}</p>` : null}
      ${activeError.problem?.position ? html`<p class="small">line ${activeError.problem.position.line}, column ${activeError.problem.position.column}</p>` : null}
      ${placed.excerpt ? html`<pre class="caret">${placed.excerpt}</pre>` : null}
    </div>`;
  };

  const useRecent = useAction(async () => {
    const pattern = splitTopics(f.topics)[0];
    const from = await eventCursorAt(new Date(Date.now() - 7 * 86400000));
    const page = await collect("/v1/events", { query: { topic: pattern, after_cursor: from }, want: 1000, maxRequests: 10 });
    const ev = page.items[page.items.length - 1];
    if (!ev) throw Object.assign(new Error("none"), { detail: `No event matching ${pattern} in the last 7 days.` });
    setSample({ topic: ev.topic, payload: JSON.stringify(ev.payload, null, 2) });
    return ev;
  });

  const submit = async (e) => {
    e.preventDefault();
    const built = buildSubscription(f);
    if (built.error) return;
    const body = { ...built.body };
    if (!id) {
      if (body.filter === null) delete body.filter;
      if (body.transform === null) delete body.transform;
    }
    const saved = await save.run(body);
    if (saved) {
      notify(id ? "Subscription saved" : `Subscription ${saved.id} created`);
      navigate(href("/subscriptions", { endpoint_id: saved.endpoint_id }));
    }
  };

  const setPlugin = (i, p) => setF({ ...f, plugins: f.plugins.map((x, j) => (j === i ? p : x)) });
  const movePlugin = (i, d) => {
    const ps = f.plugins.slice();
    [ps[i + d], ps[i]] = [ps[i], ps[i + d]];
    setF({ ...f, plugins: ps });
  };
  const pluginError = (i) => {
    const at = errAt(`plugin-${i}`);
    return at ? at : null;
  };

  return html`<div class="editor">
    <form class="form card" onSubmit=${submit} id="subscription-form" aria-label="Subscription">
      <${Field} id=${ids.ep} label="Endpoint" error=${null}>
        <select id=${ids.ep} value=${f.endpoint_id} onChange=${set("endpoint_id")} required>
          <option value="">choose an endpoint</option>
          ${eps.map((ep) => html`<option value=${ep.id}>${epLabel(ep)}</option>`)}
        </select>
      <//>
      ${!eps.length ? html`<p class="why">No endpoints yet: <${Link} to="/endpoints/new">create one<//> first.</p>` : null}
      ${errAt("endpoint")}
      <${Field} id=${ids.topics} label="Topic patterns" hint="One per line. * is one segment, # any number (orders.*, orders.#, #).">
        <textarea id=${ids.topics} name="topics" rows="2" class="code" value=${f.topics} onInput=${set("topics")} spellcheck=${false} required></textarea>
      <//>
      ${errAt("topics")}
      <${Field} id=${ids.filter} label="Filter (optional)" hint=${html`An expression over the event, e.g. <code>payload.amount > 100 && topic == "orders.created"</code> (docs/filter-dsl.md).`}>
        <textarea id=${ids.filter} name="filter" rows="2" class="code" value=${f.filter} onInput=${set("filter")} spellcheck=${false}></textarea>
      <//>
      ${errAt("filter")}
      <${Field} id=${ids.mapping} label="Mapping (optional, JSON)" hint=${html`Reshapes the payload: <code>{"version": 1, "ops": [{"op": "set", "path": "payload.x", "expr": "…"}]}</code> (docs/mapping.md).`}>
        <textarea id=${ids.mapping} name="mapping" rows="5" class="code" value=${f.mapping} onInput=${set("mapping")} spellcheck=${false}></textarea>
      <//>
      ${errAt("mapping")}
      <fieldset class="plugins"><legend>Plugins (run after the mapping, in order)</legend>
        ${f.plugins.map((p, i) => html`<${PluginRow} key=${i} i=${i} p=${p} plugins=${plugins} onChange=${(np) => setPlugin(i, np)}
          onRemove=${() => setF({ ...f, plugins: f.plugins.filter((_, j) => j !== i) })} onMove=${(d) => movePlugin(i, d)} error=${pluginError(i)} />`)}
        ${plugins.length
          ? html`<button type="button" class="btn btn-small" onClick=${() => setF({ ...f, plugins: [...f.plugins, { name: "", version: "", config: "" }] })}>Add a plugin</button>`
          : html`<p class="muted">No plugins uploaded to this tenant. <${Link} to="/plugins">Plugins<//> explains how to upload one.</p>`}
        ${f.plugins.length || f.mapping.trim()
          ? html`<div class="field"><label for=${ids.onerr}>When a transform fails</label>
              <select id=${ids.onerr} value=${f.on_error} onChange=${set("on_error")}>
                <option value="fail">fail the delivery (to the DLQ)</option>
                <option value="deliver_original">deliver the original payload</option>
              </select></div>`
          : null}
      </fieldset>
      <div class="check"><input id=${ids.enabled} type="checkbox" checked=${f.enabled} onChange=${set("enabled")} /><label for=${ids.enabled}>Enabled</label></div>
      ${placed.where === "general" && activeError ? html`<${Problem} error=${activeError} />` : null}
      ${save.error && placed.where !== "general" ? html`<p class="field-error" role="alert">Not saved: ${save.error.detail}</p>` : null}
      <div class="actions">
        <button type="submit" class="btn btn-primary" disabled=${save.busy}>${id ? "Save subscription" : "Create subscription"}</button>
        <${Link} to="/subscriptions" class="btn">Cancel<//>
        ${id ? html`<button type="button" class="btn btn-danger" onClick=${() => { remove.reset(); setDeleting(true); }}>Delete</button>` : null}
      </div>
    </form>
    <aside class="card sample" aria-labelledby="h-sample">
      <h2 id="h-sample">Sample event</h2>
      <${Field} id=${ids.stopic} label="Topic">
        <input id=${ids.stopic} value=${sample.topic} onInput=${(e) => setSample({ ...sample, topic: e.target.value })} spellcheck=${false} />
      <//>
      <${Field} id=${ids.spayload} label="Payload (JSON object)">
        <textarea id=${ids.spayload} rows="8" class="code" value=${sample.payload} onInput=${(e) => setSample({ ...sample, payload: e.target.value })} spellcheck=${false}></textarea>
      <//>
      ${errAt("sample")}
      <div class="actions"><${Gated} need="events:read" class="btn btn-small" onClick=${() => useRecent.run()} busy=${useRecent.busy}>Use the latest matching event<//></div>
      <${Problem} error=${useRecent.error} />
      <h3>Preview ${preview.busy ? html`<span class="muted small">checking…</span>` : null}</h3>
      ${preview.result
        ? html`<${Stages} result=${preview.result} />`
        : preview.local && preview.local.where === "none"
          ? html`<p class="muted" id="preview-result">${preview.local.text}</p>`
          : preview.error || preview.local
            ? html`<p class="why" id="preview-result">Fix the error shown in the form to see the preview.</p>`
            : html`<p class="muted">…</p>`}
    </aside>
    <${Confirm} open=${deleting} title="Delete this subscription?" danger confirmLabel="Delete subscription" busy=${remove.busy} error=${remove.error}
      onConfirm=${() => remove.run()} onClose=${() => setDeleting(false)}>
      <p>Events stop reaching this endpoint through it. Its queued deliveries are cancelled.</p>
    <//>
  </div>`;
}
