// The audit log (GET /v1/audit, admin or audit:read), shown once the server has it:
// the navigation lists it only when the route answers. Records come oldest first, as
// the server orders them; each shows when, who, what and on which resource.

import { html, useState } from "../lib/html.js";
import { collect } from "../lib/api.js";
import { cannot } from "../lib/session.js";
import { Empty, Json, Loading, PageHead, Problem, Time, useAction, useLoad } from "../ui.js";

const TIME_KEYS = ["at", "created_at", "time", "timestamp"];

export function AuditPage() {
  const why = cannot("audit:read");
  const [pages, setPages] = useState([]);
  const first = useLoad((signal) => (why ? null : collect("/v1/audit", { want: 100, signal })), []);
  const more = useAction(async () => {
    const last = pages.length ? pages[pages.length - 1] : first.data;
    setPages([...pages, await collect("/v1/audit", { cursor: last.next, want: 100 })]);
  });
  const head = html`<${PageHead} title="Audit log" lede="Who changed what, as the server recorded it." />`;
  if (why) return html`${head}<p class="why">${why}</p>`;
  if (!first.data) return first.error ? html`${head}<${Problem} error=${first.error} />` : html`${head}<${Loading} />`;
  const all = [first.data, ...pages].flatMap((p) => p.items);
  const last = pages.length ? pages[pages.length - 1] : first.data;
  if (!all.length) return html`${head}<${Empty} title="Nothing recorded yet"><p>Changes to endpoints, subscriptions and keys appear here.</p><//>`;
  return html`${head}
    <ol class="feed" id="audit">${all.map((r, i) => {
      const t = TIME_KEYS.map((k) => r[k]).find(Boolean);
      const { [TIME_KEYS.find((k) => r[k])]: _omit, ...rest } = r;
      return html`<li class="feed-item" key=${r.id || i}>${t ? html`<${Time} iso=${t} />` : null}
        <strong>${r.action || r.kind || r.event || ""}</strong>
        ${r.resource ? html` <span class="wrap">${r.resource.kind} ${r.resource.id}</span>` : null}
        ${r.actor ? html` <span class="muted">by ${r.actor.key_id || r.actor.kind}</span>` : null}
        <details><summary>details</summary><${Json} value=${rest} label="Audit record" /></details></li>`;
    })}</ol>
    ${last.next ? html`<button type="button" class="btn" onClick=${() => more.run()} disabled=${more.busy}>Load more</button>` : null}`;
}
