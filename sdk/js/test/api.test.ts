/** Every resource against the real server (GP_BIN). */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  AuthenticationError,
  GatePulse,
  NotFoundError,
  PermissionDeniedError,
  ValidationError,
  Webhook,
  type Delivery,
  type Endpoint,
} from "../src/index.js";
import { ADMIN_TOKEN, GpServer, eventually } from "./support/server.js";
import { type TestServer, receiver } from "./support/http.js";

let server: GpServer;
let gp: GatePulse;
let hooks: TestServer;
let status = 204;

before(async () => {
  server = await GpServer.start();
  gp = new GatePulse({ apiKey: server.apiKey, baseUrl: server.baseUrl });
  hooks = await receiver(() => status);
});
after(async () => {
  await hooks?.close();
  await server?.stop();
});

async function endpointWithSubscription(topics: string[], extra: Partial<Endpoint> = {}): Promise<Endpoint> {
  const endpoint = await gp.endpoints.create({ url: `${hooks.url}/hook`, ...extra } as never);
  await gp.subscriptions.create({ endpoint_id: endpoint.id, topics });
  return endpoint;
}

describe("events", () => {
  it("publishes, dedupes by idempotency key, reads back and lists", async () => {
    const a = await gp.events.publish({ topic: "ev.created", payload: { n: 1 } }, { idempotencyKey: "ev-1" });
    const again = await gp.events.publish({ topic: "ev.created", payload: { n: 1 } }, { idempotencyKey: "ev-1" });
    assert.equal(a.deduped, false);
    assert.deepEqual(again, { ...a, deduped: true });
    const event = await gp.events.get(a.id);
    assert.equal(event.topic, "ev.created");
    assert.deepEqual(event.payload, { n: 1 });
    assert.equal(event.idempotency_key, "ev-1");
    assert.deepEqual(event.deliveries, []);
    const b = await gp.events.publish({ topic: "ev.updated", payload: { n: 2 }, idempotency_key: "ev-2" });
    const listed = [];
    for await (const e of gp.events.list({ topic: "ev.#", limit: 1 })) listed.push(e.id);
    assert.deepEqual(listed, [a.id, b.id]);
    assert.deepEqual((await gp.events.list({ topic: "ev.#", after_cursor: a.cursor })).data.map((e) => e.id), [b.id]);
  });

  it("publishes a batch, each item answering for itself", async () => {
    const out = await gp.events.batch([
      { topic: "batch.one", payload: { i: 0 } },
      { topic: "bad..topic", payload: {} },
      { topic: "batch.two", payload: { i: 2 } },
    ]);
    assert.equal(out.data.length, 3);
    const [first, bad, last] = out.data;
    assert.ok(first && "id" in first && last && "id" in last);
    assert.ok(bad && "error" in bad);
    assert.equal(bad.error.code, "invalid_topic");
    assert.ok(last.cursor > first.cursor);
  });

  it("raises ValidationError, NotFoundError and friends with the problem's code", async () => {
    await assert.rejects(gp.events.publish({ topic: "gatepulse.x", payload: {} }), (e: unknown) => e instanceof ValidationError && e.code === "reserved_topic" && e.status === 422);
    await assert.rejects(gp.events.get("evt_doesnotexist"), (e: unknown) => e instanceof NotFoundError && e.code === "not_found");
    const bad = new GatePulse({ apiKey: "gpk_wrong", baseUrl: server.baseUrl });
    await assert.rejects(bad.stats.get(), (e: unknown) => e instanceof AuthenticationError && e.code === "invalid_token" && e.headers.get("www-authenticate") !== null);
    const writer = new GatePulse({ apiKey: (await server.createKey(["events:write"])).key, baseUrl: server.baseUrl });
    await assert.rejects(Promise.resolve(writer.endpoints.list()), (e: unknown) => e instanceof PermissionDeniedError && e.problem?.["scope"] === "endpoints:manage");
  });
});

describe("endpoints", () => {
  it("creates, reads, updates, lists and deletes", async () => {
    const ep = await gp.endpoints.create({ url: `${hooks.url}/crud`, description: "crud", timeout_ms: 5000, headers: { "x-team": "a" } });
    assert.equal(ep.kind, "http");
    assert.equal((await gp.endpoints.get(ep.id)).description, "crud");
    const updated = await gp.endpoints.update(ep.id, { timeout_ms: null, description: "changed" });
    assert.equal(updated.timeout_ms, null);
    assert.equal(updated.description, "changed");
    const ids: string[] = [];
    for await (const e of gp.endpoints.list({ limit: 1 })) ids.push(e.id);
    assert.ok(ids.includes(ep.id));
    await gp.endpoints.delete(ep.id);
    await assert.rejects(gp.endpoints.get(ep.id), NotFoundError);
  });

  it("reveals and rotates the signing secret", async () => {
    const ep = await gp.endpoints.create({ url: `${hooks.url}/secret` });
    const secret = await gp.endpoints.revealSecret(ep.id);
    assert.match(secret, /^whsec_/);
    assert.doesNotThrow(() => new Webhook(secret));
    const given = "whsec_" + Buffer.alloc(32, 9).toString("base64");
    assert.equal(await gp.endpoints.rotateSecret(ep.id, { secret: given }), given);
    assert.equal(await gp.endpoints.revealSecret(ep.id), given);
    const generated = await gp.endpoints.rotateSecret(ep.id);
    assert.notEqual(generated, given);
    await assert.rejects(gp.endpoints.rotateSecret(ep.id, { secret: "nope" }), (e: unknown) => e instanceof ValidationError && e.problem?.["field"] === "secret");
  });

  it("reports health", async () => {
    const ep = await gp.endpoints.create({ url: `${hooks.url}/health` });
    const health = await gp.endpoints.health(ep.id);
    assert.equal(health.endpoint_id, ep.id);
    assert.equal(health.circuit, "closed");
    assert.equal(health.enabled, true);
  });
});

describe("subscriptions", () => {
  it("creates, reads, updates, lists, previews and deletes", async () => {
    const ep = await gp.endpoints.create({ url: `${hooks.url}/subs` });
    const sub = await gp.subscriptions.create({ endpoint_id: ep.id, topics: ["orders.*"], filter: "payload.amount > 100" });
    assert.equal((await gp.subscriptions.get(sub.id)).filter, "payload.amount > 100");
    assert.equal((await gp.subscriptions.update(sub.id, { filter: null })).filter, null);
    assert.deepEqual((await gp.subscriptions.list({ endpoint_id: ep.id })).data.map((s) => s.id), [sub.id]);
    const hit = await gp.subscriptions.preview({
      subscription: { topics: ["orders.*"], filter: "payload.amount > 100" },
      event: { topic: "orders.created", payload: { amount: 250 } },
    });
    assert.equal(hit.matched, true);
    assert.deepEqual(hit.body, { amount: 250 });
    assert.deepEqual(hit.stages.map((s) => s.stage), ["topic", "filter"]);
    const miss = await gp.subscriptions.preview({ subscription: { topics: ["billing.#"] }, event: { topic: "orders.created", payload: {} } });
    assert.equal(miss.matched, false);
    await gp.subscriptions.delete(sub.id);
    await assert.rejects(gp.subscriptions.get(sub.id), NotFoundError);
  });

  it("refuses an invalid filter with its position", async () => {
    const ep = await gp.endpoints.create({ url: `${hooks.url}/bad` });
    await assert.rejects(gp.subscriptions.create({ endpoint_id: ep.id, topics: ["a"], filter: "payload.amount >" }), (e: unknown) => {
      assert.ok(e instanceof ValidationError);
      assert.equal(e.status, 400);
      assert.equal(e.problem?.["field"], "filter");
      assert.ok(typeof (e.problem?.["position"] as { column: number }).column === "number");
      return true;
    });
  });
});

describe("deliveries, DLQ and replay", () => {
  it("lists deliveries with their attempts, dead-letters a 410, requeues and replays", async () => {
    const ep = await endpointWithSubscription(["dlq.#"]);
    status = 410;
    const published = await gp.events.publish({ topic: "dlq.test", payload: { n: 1 } });
    const dead = await eventually(async () => (await gp.dlq.list({ endpoint_id: ep.id })).data[0], 20_000, "a dead delivery");
    assert.equal(dead.event_id, published.id);
    const detail = await gp.deliveries.get(dead.id);
    assert.equal(detail.attempts[0]?.status_code, 410);
    // The auto-disable is its own write, just after the dead outcome's.
    await eventually(async () => ((await gp.endpoints.get(ep.id)).enabled ? undefined : true), 20_000, "the endpoint disabled");
    assert.deepEqual((await gp.deliveries.list({ event_id: published.id, status: "dead" })).data.map((d: Delivery) => d.id), [dead.id]);

    status = 204;
    await gp.endpoints.update(ep.id, { enabled: true });
    assert.deepEqual(await gp.dlq.requeue({ delivery_ids: [dead.id] }), { requeued: 1, complete: true });
    await eventually(async () => ((await gp.deliveries.get(dead.id)).status === "succeeded" ? true : undefined), 20_000, "the requeued delivery");

    const replay = await gp.replay.create({ event_id: published.id, endpoint_id: ep.id });
    assert.equal(replay.deliveries, 1);
    assert.equal(replay.events, 1);
    const all = await eventually(async () => {
      const list = (await gp.deliveries.list({ event_id: published.id })).data;
      return list.length === 2 && list.every((d) => d.status === "succeeded") ? list : undefined;
    }, 20_000, "the replayed delivery");
    assert.notEqual(all[0]?.id, all[1]?.id);
    const range = await gp.replay.create({ from: new Date(Date.now() - 60_000), to: new Date(Date.now() + 1000), topic: "dlq.#" });
    assert.equal(range.events, 1);
  });
});

describe("inbox, stats, plugins", () => {
  it("captures a signed delivery in an inbox endpoint, and it verifies", async () => {
    const inbox = await gp.endpoints.create({ kind: "inbox" });
    await gp.subscriptions.create({ endpoint_id: inbox.id, topics: ["inbox.#"] });
    await gp.events.publish({ topic: "inbox.test", payload: { hello: "world" } });
    const message = await eventually(async () => (await gp.inbox.list(inbox.id)).data[0], 20_000, "an inbox message");
    const payload = await new Webhook(await gp.endpoints.revealSecret(inbox.id)).verify(message.body, new Headers(message.headers));
    assert.deepEqual(payload, { hello: "world" });
  });

  it("reads stats", async () => {
    const stats = await gp.stats.get();
    assert.equal(stats.scope, "tenant");
    assert.equal(stats.tenant_id, server.tenantId);
    assert.ok(Array.isArray(stats.endpoints));
  });

  it("lists plugins and refuses a module that is not wasm", async () => {
    assert.deepEqual((await gp.plugins.list()).data, []);
    await assert.rejects(gp.plugins.upload({ name: "nope", version: "1.0.0", module: new Uint8Array([1, 2, 3]) }), (e: unknown) => e instanceof ValidationError && e.code === "invalid_plugin");
    await assert.rejects(gp.plugins.delete("nope", "1.0.0"), NotFoundError);
  });
});

describe("tenants and keys (admin token)", () => {
  it("creates a tenant and a key, acts in it, revokes the key", async () => {
    const admin = new GatePulse({ apiKey: ADMIN_TOKEN, baseUrl: server.baseUrl });
    const tenant = await admin.tenants.create({ name: "second" });
    assert.equal((await admin.tenants.get(tenant.id)).name, "second");
    assert.equal((await admin.tenants.update(tenant.id, { name: "renamed" })).name, "renamed");
    assert.ok((await admin.tenants.list()).data.some((t) => t.id === tenant.id));
    const key = await admin.tenants.createKey(tenant.id, { name: "ci", scopes: ["events:write"] });
    assert.match(key.key, /^gpk_/);
    assert.deepEqual((await admin.tenants.listKeys(tenant.id)).data.map((k) => k.id), [key.id]);
    const user = new GatePulse({ apiKey: key.key, baseUrl: server.baseUrl });
    // The tenant's stream begins with its audit records: created, renamed, key created.
    assert.equal((await user.events.publish({ topic: "t.x", payload: {} })).cursor, 4);
    const acting = new GatePulse({ apiKey: ADMIN_TOKEN, baseUrl: server.baseUrl, tenant: tenant.id });
    assert.equal((await acting.events.list()).data.length, 1);
    await assert.rejects(Promise.resolve(admin.events.list()), (e: unknown) => e instanceof ValidationError && e.code === "tenant_required");
    await admin.tenants.revokeKey(tenant.id, key.id);
    await assert.rejects(user.events.publish({ topic: "t.x", payload: {} }), AuthenticationError);
  });
});
