// Shared pieces of every page: errors with their problem detail, times in the viewer's
// zone with UTC on hover, empty states, badges, dialogs, gated buttons, data loading.

import { html, useEffect, useRef, useState, useCallback } from "./lib/html.js";
import { isAbort } from "./lib/api.js";
import { cannot, session } from "./lib/session.js";
import { localTime, utcTime, ago } from "./lib/time.js";
import { Link } from "./lib/router.js";

let nextId = 0;
/** A stable id for label/aria wiring. */
export function useId(prefix = "f") {
  const ref = useRef(null);
  if (ref.current === null) ref.current = `${prefix}-${++nextId}`;
  return ref.current;
}

/** A timestamp: local time shown, UTC (and how long ago) on hover and to screen readers. */
export function Time({ iso, relative = false }) {
  if (!iso) return html`<span class="muted">—</span>`;
  const title = `${utcTime(iso)} (${ago(iso)})`;
  return html`<time datetime=${iso} title=${title} class="time">${relative ? ago(iso) : localTime(iso)}</time>`;
}

/** An API error, as the problem document says it: detail first, then the particulars. */
export function Problem({ error, title }) {
  if (!error) return null;
  const p = error.problem || {};
  const pos = p.position;
  return html`<div class="problem" role="alert">
    <p class="problem-title">${title || p.title || "Error"}${error.status ? html` <span class="muted">(${error.status}${p.code ? ` ${p.code}` : ""})</span>` : null}</p>
    <p class="problem-detail">${error.detail || error.message}</p>
    ${p.field || pos || p.scope || error.requestId
      ? html`<dl class="problem-extra">
          ${p.field ? html`<dt>field</dt><dd><code>${p.field}</code></dd>` : null}
          ${pos ? html`<dt>position</dt><dd>line ${pos.line}, column ${pos.column}</dd>` : null}
          ${p.scope ? html`<dt>scope</dt><dd><code>${p.scope}</code></dd>` : null}
          ${error.requestId ? html`<dt>request id</dt><dd><code>${error.requestId}</code></dd>` : null}
        </dl>`
      : null}
    ${p.excerpt ? html`<pre class="caret">${p.excerpt}</pre>` : null}
  </div>`;
}

/** What to show when a list is empty: what it means and what to do next. */
export function Empty({ title, children }) {
  return html`<div class="empty"><p class="empty-title">${title}</p>${children ? html`<div class="empty-next">${children}</div>` : null}</div>`;
}

export function Loading({ label = "Loading…" }) {
  return html`<p class="loading" role="status">${label}</p>`;
}

const STATUS_KIND = {
  succeeded: "ok", delivered: "ok", healthy: "ok", closed: "ok", enabled: "ok", active: "ok",
  pending: "info", in_flight: "info", retrying: "warn", half_open: "warn", degraded: "warn", paused: "muted",
  dead: "bad", failing: "bad", open: "bad", cancelled: "muted", revoked: "muted", expired: "warn", idle: "muted",
};

export function Badge({ status, children }) {
  const kind = STATUS_KIND[status] || "muted";
  return html`<span class=${`badge badge-${kind}`}>${children || status.replace("_", " ")}</span>`;
}

/**
 * A button that needs a scope: disabled, with the reason written next to it, when the
 * signed-in key lacks it. `need` is a scope (see session.cannot).
 */
export function Gated({ need, children, class: cls = "btn", type = "button", onClick, disabled, busy, ...rest }) {
  const reason = need ? cannot(need, session()) : null;
  const id = useId("why");
  const label = busy ? html`<span aria-hidden="true" class="spinner"></span> ${children}` : children;
  if (reason) {
    return html`<span class="gated">
      <button type=${type} class=${cls} disabled aria-describedby=${id} ...${rest}>${children}</button>
      <span id=${id} class="why">${reason}</span>
    </span>`;
  }
  return html`<button type=${type} class=${cls} onClick=${onClick} disabled=${disabled || busy} aria-busy=${busy ? "true" : undefined} ...${rest}>${label}</button>`;
}

/** A labelled form control; `children` is the control, which gets `id`. */
export function Field({ label, hint, error, children, id, class: cls = "" }) {
  return html`<div class=${`field ${cls}`}>
    <label for=${id}>${label}</label>
    ${children}
    ${hint ? html`<p class="hint" id=${`${id}-hint`}>${hint}</p>` : null}
    ${error ? html`<p class="field-error" id=${`${id}-error`} role="alert">${error}</p>` : null}
  </div>`;
}

export function Json({ value, label }) {
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  return html`<pre class="json" tabindex="0" aria-label=${label || "JSON"}>${text}</pre>`;
}

/** A modal dialog on the native <dialog> (focus is kept inside, Escape closes). */
export function Dialog({ open, title, onClose, children, wide = false }) {
  const ref = useRef(null);
  const id = useId("dlg");
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return html`<dialog ref=${ref} class=${wide ? "wide" : ""} aria-labelledby=${id} onClose=${() => open && onClose()}>
    ${open
      ? html`<div class="dialog-head"><h2 id=${id}>${title}</h2>
          <button type="button" class="btn btn-ghost" onClick=${onClose} aria-label="Close dialog">✕</button></div>
          <div class="dialog-body">${children}</div>`
      : null}
  </dialog>`;
}

/** Asks before something that cannot be undone. */
export function Confirm({ open, title, children, confirmLabel = "Confirm", danger = false, onConfirm, onClose, busy, error }) {
  return html`<${Dialog} open=${open} title=${title} onClose=${onClose}>
    ${children}
    <${Problem} error=${error} />
    <div class="actions">
      <button type="button" class=${danger ? "btn btn-danger" : "btn btn-primary"} onClick=${onConfirm} disabled=${busy}>${confirmLabel}</button>
      <button type="button" class="btn" onClick=${onClose}>Cancel</button>
    </div>
  <//>`;
}

export function Copy({ text, label = "Copy" }) {
  const [done, setDone] = useState("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone("Copied");
    } catch {
      setDone("Select the text and copy it by hand");
    }
    setTimeout(() => setDone(""), 2500);
  };
  return html`<span class="copy"><button type="button" class="btn btn-small" onClick=${copy}>${label}</button><span class="muted" role="status">${done}</span></span>`;
}

/** Short form of an id for tables: the prefix and the last characters, full id on hover. */
export function Id({ id, to }) {
  if (!id) return html`<span class="muted">—</span>`;
  const short = id.length > 16 ? `${id.slice(0, id.indexOf("_") + 1)}…${id.slice(-8)}` : id;
  const inner = html`<code class="id" title=${id}>${short}</code>`;
  return to ? html`<${Link} to=${to} aria-label=${id}>${inner}<//>` : inner;
}

/**
 * Loads data for a view: re-runs when `deps` change, aborts what is in flight when they
 * do or the view goes away. Returns { data, error, loading, reload, setData }.
 */
export function useLoad(fn, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctrl = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    Promise.resolve()
      .then(() => fn(ctrl.signal))
      .then(
        (data) => !ctrl.signal.aborted && setState({ data, error: null, loading: false }),
        (error) => !ctrl.signal.aborted && !isAbort(error) && setState((s) => ({ ...s, error, loading: false })),
      );
    return () => ctrl.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const setData = useCallback((f) => setState((s) => ({ ...s, data: typeof f === "function" ? f(s.data) : f })), []);
  return { ...state, reload, setData };
}

/** Runs an action (a button's): busy while it runs, its error kept to show. */
export function useAction(fn) {
  const [state, setState] = useState({ busy: false, error: null, result: null });
  const run = async (...args) => {
    setState({ busy: true, error: null, result: null });
    try {
      const result = await fn(...args);
      setState({ busy: false, error: null, result });
      return result;
    } catch (error) {
      setState({ busy: false, error, result: null });
      return undefined;
    }
  };
  const reset = () => setState({ busy: false, error: null, result: null });
  return { ...state, run, reset };
}

/** Re-renders every `ms` while mounted (for "x s ago" and polling). */
export function useTicker(ms) {
  const [n, setN] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setN((x) => x + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
  return n;
}

/** A page's heading row: title, optional lede and actions. */
export function PageHead({ title, lede, children }) {
  return html`<div class="page-head">
    <div><h1 tabindex="-1" id="page-title">${title}</h1>${lede ? html`<p class="lede">${lede}</p>` : null}</div>
    ${children ? html`<div class="page-actions">${children}</div>` : null}
  </div>`;
}

const notices = new Set();
/** A short message read out by screen readers and shown at the bottom of the page. */
export function notify(text, kind = "ok") {
  for (const fn of notices) fn({ text, kind, at: Date.now() });
}

export function Notices() {
  const [items, setItems] = useState([]);
  useEffect(() => {
    const fn = (n) => {
      setItems((xs) => [...xs.slice(-1), n]);
      setTimeout(() => setItems((xs) => xs.filter((x) => x !== n)), 4000);
    };
    notices.add(fn);
    return () => notices.delete(fn);
  }, []);
  return html`<div class="notices" role="status" aria-live="polite">
    ${items.map((n) => html`<p key=${n.at} class=${`notice notice-${n.kind}`}>${n.text}</p>`)}
  </div>`;
}

/** A JSON text area that reports where its JSON is wrong (line and column). */
export function parseJson(text) {
  try {
    return { value: JSON.parse(text), error: null };
  } catch (e) {
    const m = /position (\d+)/.exec(e.message);
    let where = "";
    if (m) {
      const upto = text.slice(0, Number(m[1]));
      const line = upto.split("\n").length;
      const col = Number(m[1]) - upto.lastIndexOf("\n");
      where = ` (line ${line}, column ${col})`;
    }
    return { value: undefined, error: `Not valid JSON${where}: ${e.message}` };
  }
}

/** A caret under the offending character of `source` at a 1-based line and column. */
export function caretAt(source, line, column) {
  const lines = String(source).split("\n");
  const text = lines[line - 1] ?? "";
  return `${text}\n${" ".repeat(Math.max(0, column - 1))}^`;
}
