/** Real deliveries from the real server verify with Webhook, and with the official library. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Webhook as OfficialWebhook } from "standardwebhooks";
import { GatePulse, Webhook, WebhookVerificationError } from "../src/index.js";
import { GpServer } from "./support/server.js";
import { type Recorded, type TestServer, receiver } from "./support/http.js";

let server: GpServer;
let gp: GatePulse;
let hooks: TestServer;
let fail = 0;

before(async () => {
  server = await GpServer.start();
  gp = new GatePulse({ apiKey: server.apiKey, baseUrl: server.baseUrl });
  // Answers 500 to the first `fail` requests, then 204.
  hooks = await receiver(() => (fail-- > 0 ? 500 : 204));
});
after(async () => {
  await hooks?.close();
  await server?.stop();
});

function official(secret: string, req: Recorded): unknown {
  return new OfficialWebhook(secret).verify(req.body.toString(), req.headers as Record<string, string>);
}

describe("deliveries from the server", () => {
  it("carry the Standard Webhooks headers and verify on the raw body", async () => {
    const ep = await gp.endpoints.create({ url: `${hooks.url}/hook`, retry_schedule_secs: [1] });
    await gp.subscriptions.create({ endpoint_id: ep.id, topics: ["orders.#"] });
    const secret = await gp.endpoints.revealSecret(ep.id);
    const payload = { id: 1001, amount: 250, name: "Zoë 🚀", nested: { list: [1, 2.5, null] } };
    const published = await gp.events.publish({ topic: "orders.created", payload });

    const [req] = await hooks.waitFor(1);
    assert.ok(req);
    assert.equal(req.headers["content-type"], "application/json");
    assert.equal(req.headers["gatepulse-event-id"], published.id);
    assert.equal(req.headers["gatepulse-topic"], "orders.created");
    assert.equal(req.headers["gatepulse-attempt"], "1");
    assert.match(String(req.headers["webhook-id"]), /^dlv_/);
    assert.deepEqual(await new Webhook(secret).verify(req.body, req.headers), payload);
    assert.deepEqual(official(secret, req), payload);
    // The same bytes, parsed and re-serialised, no longer verify.
    await assert.rejects(new Webhook(secret).verify(JSON.stringify(JSON.parse(req.body.toString()), null, 1), req.headers), WebhookVerificationError);
  });

  it("keep the webhook-id across retries and sign each attempt", async () => {
    const ep = await gp.endpoints.create({ url: `${hooks.url}/retry`, retry_schedule_secs: [1] });
    await gp.subscriptions.create({ endpoint_id: ep.id, topics: ["retry.#"] });
    const secret = await gp.endpoints.revealSecret(ep.id);
    const before = hooks.requests.length;
    fail = 1;
    await gp.events.publish({ topic: "retry.me", payload: { n: 1 } });
    const reqs = (await hooks.waitFor(before + 2)).slice(before);
    assert.deepEqual(reqs.map((r) => r.headers["gatepulse-attempt"]), ["1", "2"]);
    assert.equal(reqs[0]?.headers["webhook-id"], reqs[1]?.headers["webhook-id"]);
    for (const r of reqs) assert.deepEqual(await new Webhook(secret).verify(r.body, r.headers), { n: 1 });
  });

  it("carry one signature per secret during a rotation: old and new both verify", async () => {
    const ep = await gp.endpoints.create({ url: `${hooks.url}/rotate` });
    await gp.subscriptions.create({ endpoint_id: ep.id, topics: ["rotate.#"] });
    const old = await gp.endpoints.revealSecret(ep.id);
    const fresh = await gp.endpoints.rotateSecret(ep.id);
    const before = hooks.requests.length;
    await gp.events.publish({ topic: "rotate.x", payload: { r: 1 } });
    const [req] = (await hooks.waitFor(before + 1)).slice(before);
    assert.ok(req);
    assert.equal(String(req.headers["webhook-signature"]).split(" ").length, 2);
    for (const secret of [old, fresh]) {
      assert.deepEqual(await new Webhook(secret).verify(req.body, req.headers), { r: 1 });
      assert.deepEqual(official(secret, req), { r: 1 });
    }
    const stranger = "whsec_" + Buffer.alloc(32, 1).toString("base64");
    await assert.rejects(new Webhook(stranger).verify(req.body, req.headers), (e: unknown) => e instanceof WebhookVerificationError && e.code === "invalid_signature");
  });

  it("carry v1a (Ed25519) signatures that verify with the endpoint's public key alone", async () => {
    const ep = await gp.endpoints.create({ url: `${hooks.url}/v1a`, signature_schemes: ["v1", "v1a"] });
    assert.deepEqual(ep.signature_schemes, ["v1", "v1a"]);
    assert.match(String(ep.public_key), /^whpk_/);
    await gp.subscriptions.create({ endpoint_id: ep.id, topics: ["v1a.#"] });
    const keys = await gp.endpoints.publicKeys(ep.id);
    assert.equal(keys.public_key, ep.public_key);
    const rotated = await gp.endpoints.rotatePublicKey(ep.id);
    assert.deepEqual(rotated.keys.map((k) => k.public_key), [rotated.public_key, keys.public_key]);
    const before = hooks.requests.length;
    await gp.events.publish({ topic: "v1a.x", payload: { a: 1 } });
    const [req] = (await hooks.waitFor(before + 1)).slice(before);
    assert.ok(req);
    // One v1 entry, then one v1a entry per key still signing.
    assert.deepEqual(String(req.headers["webhook-signature"]).split(" ").map((e) => e.split(",")[0]), ["v1", "v1a", "v1a"]);
    for (const key of [rotated.public_key, keys.public_key]) {
      assert.deepEqual(await new Webhook(key).verify(req.body, req.headers), { a: 1 });
    }
    const other = await gp.endpoints.create({ url: `${hooks.url}/other`, signature_schemes: ["v1a"] });
    await assert.rejects(new Webhook(String(other.public_key)).verify(req.body, req.headers), (e: unknown) => e instanceof WebhookVerificationError && e.code === "invalid_signature");
  });
});
