import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Webhook as OfficialWebhook } from "standardwebhooks";
import { Webhook, WebhookVerificationError } from "../src/index.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY = '{"test": 2432232314}';

function rejectsWith(code: string, pattern?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof WebhookVerificationError, String(e));
    assert.equal(e.code, code);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

describe("Webhook", () => {
  it("verifies test headers it generated, and the official library accepts them", async () => {
    const wh = new Webhook(SECRET);
    const headers = await wh.generateTestHeaders(BODY);
    assert.deepEqual(await wh.verify(BODY, headers), { test: 2432232314 });
    assert.deepEqual(new OfficialWebhook(SECRET).verify(BODY, headers), { test: 2432232314 });
    assert.match(headers["webhook-id"] ?? "", /^msg_test_[0-9a-f]{32}$/);
  });

  it("accepts bytes, ArrayBuffers, fetch Headers and Node-style header objects", async () => {
    const wh = new Webhook(SECRET);
    const headers = await wh.generateTestHeaders(BODY, { id: "msg_1", timestamp: new Date() });
    const bytes = new TextEncoder().encode(BODY);
    assert.ok(await wh.verify(bytes, new Headers(headers)));
    assert.ok(await wh.verify(bytes.buffer, headers));
    assert.ok(await wh.verify(Buffer.from(BODY), { ...upper(headers), "x-other": ["a", "b"] }));
    // A repeated header (two lines) is read as one space-separated list.
    const split = { ...headers, "webhook-signature": ["v1,AAAA", headers["webhook-signature"] ?? ""] };
    assert.ok(await wh.verify(BODY, split));
  });

  it("explains a parsed body instead of reporting a bad signature", async () => {
    const wh = new Webhook(SECRET);
    const headers = await wh.generateTestHeaders(BODY);
    for (const parsed of [JSON.parse(BODY), [1], null, 42]) {
      await assert.rejects(wh.verify(parsed as never, headers), rejectsWith("invalid_body", /raw request body/));
    }
    await assert.rejects(wh.verify("[object Object]", headers), rejectsWith("invalid_body", /String\(body\)/));
  });

  it("hints at the raw body and the secret when no signature matches", async () => {
    const wh = new Webhook(SECRET);
    const headers = await wh.generateTestHeaders(BODY);
    await assert.rejects(wh.verify('{"test":2432232314}', headers), rejectsWith("invalid_signature", /byte for byte/));
  });

  it("names the missing headers", async () => {
    await assert.rejects(new Webhook(SECRET).verify(BODY, {}), rejectsWith("missing_headers", /webhook-id, webhook-timestamp, webhook-signature/));
  });

  it("checks the timestamp against its tolerance", async () => {
    const wh = new Webhook(SECRET, { toleranceSeconds: 10 });
    const headers = await wh.generateTestHeaders(BODY, { timestamp: 1_000_000 });
    assert.ok(await wh.verify(BODY, headers, { now: new Date(1_000_010_000) }));
    await assert.rejects(wh.verify(BODY, headers, { now: 1_000_011_000 }), rejectsWith("timestamp_too_old", /11 s old/));
    await assert.rejects(wh.verify(BODY, headers, { now: 999_989_000 }), rejectsWith("timestamp_too_new", /11 s in the future/));
  });

  it("verifies with any of several secrets during a rotation", async () => {
    const other = new Webhook("whsec_" + Buffer.alloc(32, 7).toString("base64"));
    const headers = await other.generateTestHeaders(BODY);
    const both = new Webhook([SECRET, "whsec_" + Buffer.alloc(32, 7).toString("base64")]);
    assert.ok(await both.verify(BODY, headers));
    await assert.rejects(new Webhook(SECRET).verify(BODY, headers), rejectsWith("invalid_signature"));
    assert.equal((await both.sign("m", 1, "{}")).split(" ").length, 2);
  });

  it("refuses a valid signature over a body that is not JSON", async () => {
    const wh = new Webhook(SECRET);
    await assert.rejects(wh.verify("not json", await wh.generateTestHeaders("not json")), rejectsWith("invalid_body", /not JSON/));
  });

  it("refuses secrets that are not whsec_ secrets", () => {
    assert.throws(() => new Webhook(""), TypeError);
    assert.throws(() => new Webhook([]), TypeError);
    assert.throws(() => new Webhook("whsec_%%%"), /not a whsec_ secret/);
    assert.throws(() => new Webhook("whsec_"), /not a whsec_ secret/);
  });
});

function upper(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
}
