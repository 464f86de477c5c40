// WASM transform plugins of the tenant: every version with its hash, size, ABI and SDK,
// the subscriptions using it, a health check (a dry run through the preview
// endpoint, which runs the module in the sandbox exactly as a delivery would), upload
// and delete.

import { html, useState } from "../lib/html.js";
import { api, get, post, del, listAll } from "../lib/api.js";
import { cannot } from "../lib/session.js";
import { Link } from "../lib/router.js";
import { Badge, Confirm, Copy, Empty, Field, Gated, Loading, PageHead, Problem, Time, useAction, useId, useLoad, notify, parseJson } from "../ui.js";

const kb = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`);

function HealthCheck({ p }) {
  const [config, setConfig] = useState("");
  const cid = useId("hc");
  const check = useAction(async () => {
    const plugin = { name: p.name, version: p.version };
    if (config.trim()) {
      const c = parseJson(config);
      if (c.error) throw Object.assign(new Error(c.error), { detail: c.error });
      plugin.config = c.value;
    }
    return post("/v1/subscriptions/preview", {
      subscription: { topics: ["#"], transform: { plugins: [plugin] } },
      event: { topic: "console.plugin_check", payload: { id: "check_1", amount: 42, customer: { email: "ada@example.com" } } },
    });
  });
  const stage = check.result?.stages.find((s) => s.stage !== "topic" && s.stage !== "filter");
  return html`<div class="health-check">
    <div class="field"><label for=${cid}>Config for the check (JSON, optional)</label>
      <input id=${cid} class="code" value=${config} onInput=${(e) => setConfig(e.target.value)} spellcheck=${false} /></div>
    <${Gated} need="endpoints:manage" class="btn btn-small" onClick=${() => check.run()} busy=${check.busy}>Check health<//>
    <${Problem} error=${check.error} />
    ${check.result
      ? html`<p role="status" class="small" data-health=${stage && !stage.error ? "ok" : "failed"}>
          ${stage && !stage.error
            ? html`<${Badge} status="healthy">healthy<//> ran in ${stage.took_us} µs`
            : html`<${Badge} status="failing">failing<//> ${stage ? stage.error : "did not run"}`}
        </p>`
      : null}
  </div>`;
}

function Upload({ onDone }) {
  const [name, setName] = useState("");
  const [version, setVersion] = useState("");
  const [file, setFile] = useState(null);
  const ids = { n: useId("up-n"), v: useId("up-v"), f: useId("up-f") };
  const up = useAction(async () => {
    if (!file) throw Object.assign(new Error("no file"), { detail: "Choose a .wasm file." });
    const out = await api("POST", "/v1/plugins", { query: { name: name.trim(), version: version.trim() }, body: file, contentType: "application/wasm" });
    notify(`Uploaded ${out.name}@${out.version}`);
    onDone();
    return out;
  });
  return html`<form class="form card" onSubmit=${(e) => { e.preventDefault(); up.run(); }} id="plugin-upload" aria-label="Upload a plugin">
    <h2>Upload a version</h2>
    <div class="grid-3">
      <${Field} id=${ids.n} label="Name" hint="lowercase letters, digits, - and _">
        <input id=${ids.n} value=${name} onInput=${(e) => setName(e.target.value)} required spellcheck=${false} />
      <//>
      <${Field} id=${ids.v} label="Version" hint="semantic, e.g. 1.0.0 (immutable)">
        <input id=${ids.v} value=${version} onInput=${(e) => setVersion(e.target.value)} required spellcheck=${false} />
      <//>
      <${Field} id=${ids.f} label="Module (.wasm)">
        <input id=${ids.f} type="file" accept=".wasm,application/wasm" onChange=${(e) => setFile(e.target.files[0] || null)} required />
      <//>
    </div>
    <${Problem} error=${up.error} title="Not uploaded" />
    <div class="actions"><${Gated} need="endpoints:manage" type="submit" class="btn btn-primary" busy=${up.busy}>Upload<//></div>
  </form>`;
}

export function PluginsPage() {
  const why = cannot("endpoints:manage");
  const data = useLoad(async (signal) => {
    if (why) return null;
    const [plugins, subs] = await Promise.all([get("/v1/plugins", { signal }).then((p) => p.data), listAll("/v1/subscriptions", { signal })]);
    return { plugins, subs };
  }, []);
  const [deleting, setDeleting] = useState(null);
  const remove = useAction(async (p) => {
    await del(`/v1/plugins/${encodeURIComponent(p.name)}/${encodeURIComponent(p.version)}`);
    notify(`Deleted ${p.name}@${p.version}`);
    setDeleting(null);
    data.reload();
  });
  const head = html`<${PageHead} title="Plugins" lede="WASM transforms a subscription can run after its mapping. Versions are immutable." />`;
  if (why) return html`${head}<p class="why">${why}</p>`;
  if (!data.data) return data.error ? html`${head}<${Problem} error=${data.error} />` : html`${head}<${Loading} />`;
  const { plugins, subs } = data.data;
  const users = (p) => subs.filter((s) => (s.transform?.plugins || []).some((x) => x.name === p.name && x.version === p.version));
  const names = [...new Set(plugins.map((p) => p.name))];
  return html`${head}
    ${!plugins.length
      ? html`<${Empty} title="No plugins uploaded"><p>Build one with the plugin SDK (docs/plugins.md), then upload the .wasm below or with <code>gp plugins upload</code>. Subscriptions then choose it from this list.</p><//>`
      : names.map((name) => html`<section class="card" aria-labelledby=${`pl-${name}`} data-plugin=${name}>
          <h2 id=${`pl-${name}`}>${name}</h2>
          <table class="table">
            <caption class="sr-only">Versions of ${name}</caption>
            <thead><tr><th scope="col">Version</th><th scope="col">SHA-256</th><th scope="col">Size</th><th scope="col">ABI / SDK</th><th scope="col">Uploaded</th><th scope="col">Used by</th><th scope="col">Health</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>${plugins.filter((p) => p.name === name).map((p) => html`<tr data-version=${p.version}>
              <td data-label="Version"><strong>${p.version}</strong></td>
              <td data-label="SHA-256"><code title=${p.sha256}>${p.sha256.slice(0, 12)}…</code> <${Copy} text=${p.sha256} /></td>
              <td data-label="Size">${kb(p.size)}</td>
              <td data-label="ABI / SDK">${p.abi} / ${p.sdk || "—"}</td>
              <td data-label="Uploaded"><${Time} iso=${p.created_at} /></td>
              <td data-label="Used by">${users(p).length
                ? html`<ul class="plain">${users(p).map((s) => html`<li><${Link} to=${`/subscriptions/${s.id}`}>${s.topics.join(", ")}<//></li>`)}</ul>`
                : html`<span class="muted">no subscription</span>`}</td>
              <td data-label="Health"><${HealthCheck} p=${p} /></td>
              <td><${Gated} need="endpoints:manage" class="btn btn-small btn-danger" onClick=${() => { remove.reset(); setDeleting(p); }}>Delete<//></td>
            </tr>`)}</tbody>
          </table>
        </section>`)}
    <${Upload} onDone=${() => data.reload()} />
    <${Confirm} open=${Boolean(deleting)} title=${deleting ? `Delete ${deleting.name}@${deleting.version}?` : ""} danger confirmLabel="Delete version"
      busy=${remove.busy} error=${remove.error} onConfirm=${() => remove.run(deleting)} onClose=${() => setDeleting(null)}>
      <p>The server refuses while a subscription still uses it (point them at another version first).</p>
    <//>`;
}
