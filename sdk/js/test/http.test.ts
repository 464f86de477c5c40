import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import {
  APIConnectionError,
  APITimeoutError,
  AuthenticationError,
  ConflictError,
  GatePulse,
  GatePulseError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  ServerError,
  VERSION,
  ValidationError,
} from "../src/index.js";
import { freePort } from "./support/server.js";
import { type TestServer, problem, scripted } from "./support/http.js";

const servers: TestServer[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

async function against(...responses: Parameters<typeof scripted>[0]): Promise<{ server: TestServer; gp: GatePulse }> {
  const server = await scripted(responses);
  servers.push(server);
  return { server, gp: new GatePulse({ apiKey: "gpk_test", baseUrl: server.url + "/", timeoutMs: 2000 }) };
}

const PUBLISHED = { status: 202, body: JSON.stringify({ id: "evt_1", cursor: 1, deduped: false }) };

describe("retries", () => {
  it("waits out 429 Retry-After and 503, reusing one idempotency key", async () => {
    const { server, gp } = await against(
      { status: 429, headers: { "retry-after": "1" }, body: problem(429, "overloaded") },
      { status: 503, body: problem(503, "store_unavailable") },
      PUBLISHED,
    );
    const started = Date.now();
    const out = await gp.events.publish({ topic: "orders.created", payload: { n: 1 } });
    assert.deepEqual(out, { id: "evt_1", cursor: 1, deduped: false });
    assert.ok(Date.now() - started >= 1000, "Retry-After was waited");
    const keys = server.requests.map((r) => r.headers["idempotency-key"]);
    assert.equal(keys.length, 3);
    assert.match(keys[0] as string, /^gp-[0-9a-f-]{36}$/);
    assert.ok(keys.every((k) => k === keys[0]), `one key across retries: ${keys.join(", ")}`);
  });

  it("uses the payload's idempotency key, and the caller's over a generated one", async () => {
    const { server, gp } = await against(PUBLISHED);
    await gp.events.publish({ topic: "a", payload: {}, idempotency_key: "order-1" });
    await gp.endpoints.create({ url: "https://example.com" }, { idempotencyKey: "create-1" });
    assert.deepEqual(server.requests.map((r) => r.headers["idempotency-key"]), ["order-1", "create-1"]);
  });

  it("gives each batch item a key derived from the request's", async () => {
    const { server, gp } = await against({ status: 503 }, { status: 202, body: '{"data":[]}' });
    await gp.events.batch([{ topic: "a", payload: {} }, { topic: "b", payload: {}, idempotency_key: "mine" }], { maxRetries: 1 });
    const [first, second] = server.requests;
    assert.equal(first?.headers["idempotency-key"], second?.headers["idempotency-key"]);
    const body = JSON.parse(second?.body.toString() ?? "") as { events: { idempotency_key: string }[] };
    const key = String(second?.headers["idempotency-key"]);
    assert.deepEqual(body.events.map((e) => e.idempotency_key), [`${key}:0`, "mine"]);
    assert.deepEqual(first?.body, second?.body);
  });

  it("raises the last error when retries run out, with its Retry-After", async () => {
    const { server, gp } = await against({ status: 503, headers: { "retry-after": "0" }, body: problem(503, "not_ready") });
    await assert.rejects(gp.stats.get(), (e: unknown) => {
      assert.ok(e instanceof ServerError);
      assert.equal(e.status, 503);
      assert.equal(e.code, "not_ready");
      assert.equal(e.retryAfter, 0);
      return true;
    });
    assert.equal(server.requests.length, 3, "1 attempt + maxRetries (2)");
  });

  it("does not wait for a Retry-After past maxRetryAfterMs", async () => {
    const { server, gp } = await against({ status: 429, headers: { "retry-after": "3600" }, body: problem(429, "queue_full") });
    await assert.rejects(gp.events.publish({ topic: "a", payload: {} }), (e: unknown) => e instanceof RateLimitError && e.retryAfter === 3600);
    assert.equal(server.requests.length, 1);
  });

  it("never retries other 4xx", async () => {
    const { server, gp } = await against({ status: 422, body: problem(422, "invalid_topic", { field: "topic" }) });
    await assert.rejects(gp.events.publish({ topic: "a..b", payload: {} }), (e: unknown) => {
      assert.ok(e instanceof ValidationError);
      assert.equal(e.problem?.["field"], "topic");
      assert.equal(e.detail, "invalid_topic detail");
      assert.match(e.message, /^422 invalid_topic: invalid_topic detail$/);
      return true;
    });
    assert.equal(server.requests.length, 1);
  });

  it("retries a refused connection, then raises APIConnectionError", async () => {
    const gp = new GatePulse({ apiKey: "k", baseUrl: `http://127.0.0.1:${await freePort()}`, maxRetries: 1 });
    await assert.rejects(Promise.resolve(gp.events.list()), (e: unknown) => e instanceof APIConnectionError && !(e instanceof APITimeoutError) && e.status === undefined);
  });

  it("times out an attempt that gets no answer", async () => {
    const { server, gp } = await against({ status: 200, hang: true });
    await assert.rejects(gp.events.get("evt_1", { timeoutMs: 100, maxRetries: 1 }), (e: unknown) => e instanceof APITimeoutError && /100 ms/.test(e.message));
    assert.equal(server.requests.length, 2);
  });

  it("stops at once when the caller aborts, even while waiting to retry", async () => {
    const { gp } = await against({ status: 503, headers: { "retry-after": "30" } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("stop")), 50);
    await assert.rejects(gp.stats.get({ signal: controller.signal }), /stop/);
    await assert.rejects(gp.stats.get({ signal: AbortSignal.abort(new Error("already")) }), /already/);
  });
});

describe("requests", () => {
  it("sends auth, tenant, user agent and custom headers; GETs carry no idempotency key", async () => {
    const { server } = await against({ status: 200, body: '{"data":[],"next_cursor":null}' });
    const gp = new GatePulse({ apiKey: "gpadm_x", baseUrl: server.url, tenant: "ten_1", headers: { "x-extra": "1" } });
    await gp.deliveries.list({ status: "dead", endpoint_id: undefined, limit: 5 });
    const req = server.requests[0];
    assert.equal(req?.url, "/v1/deliveries?status=dead&limit=5");
    assert.equal(req?.headers["authorization"], "Bearer gpadm_x");
    assert.equal(req?.headers["gatepulse-tenant"], "ten_1");
    assert.equal(req?.headers["user-agent"], `gatepulse-js/${VERSION}`);
    assert.equal(req?.headers["x-extra"], "1");
    assert.equal(req?.headers["idempotency-key"], undefined);
  });

  it("encodes path segments and sends replay times as RFC 3339", async () => {
    const { server, gp } = await against({ status: 202, body: "{}" });
    await gp.plugins.delete("a/b", "1.0.0+x");
    await gp.replay.create({ from: new Date(0), to: "2026-01-01T00:00:00Z", topic: "orders.#" });
    assert.equal(server.requests[0]?.url, "/v1/plugins/a%2Fb/1.0.0%2Bx");
    assert.deepEqual(JSON.parse(server.requests[1]?.body.toString() ?? ""), {
      from: "1970-01-01T00:00:00.000Z",
      to: "2026-01-01T00:00:00Z",
      topic: "orders.#",
    });
  });

  it("maps every status to its error class, with the request id", async () => {
    const cases: Array<[number, new (...a: never[]) => GatePulseError]> = [
      [400, ValidationError], [401, AuthenticationError], [403, PermissionDeniedError], [404, NotFoundError],
      [405, GatePulseError], [409, ConflictError], [413, ValidationError], [415, ValidationError],
      [422, ValidationError], [429, RateLimitError], [500, ServerError], [503, ServerError],
    ];
    for (const [status, Class] of cases) {
      const { gp } = await against({ status, headers: { "x-request-id": `req_${status}` }, body: problem(status, `c${status}`) });
      await assert.rejects(gp.events.get("evt_1", { maxRetries: 0 }), (e: unknown) => {
        assert.ok(e instanceof Class, `${status}: ${String(e)}`);
        assert.equal(e.constructor, Class);
        assert.equal(e.requestId, `req_${status}`);
        assert.equal(e.name, Class.name);
        return true;
      });
    }
  });

  it("keeps a non-problem error body as the detail", async () => {
    const { gp } = await against({ status: 502, headers: { "content-type": "text/html", "retry-after": "Wed, 21 Oct 2015 07:28:00 GMT" }, body: "<h1>Bad gateway</h1>" });
    await assert.rejects(gp.stats.get({ maxRetries: 0 }), (e: unknown) => {
      assert.ok(e instanceof ServerError);
      assert.equal(e.code, undefined);
      assert.equal(e.detail, "<h1>Bad gateway</h1>");
      assert.equal(e.retryAfter, 0);
      return true;
    });
  });

  it("pages through a listing, following empty pages", async () => {
    const page = (data: unknown[], next: string | null): { status: number; body: string } => ({ status: 200, body: JSON.stringify({ data, next_cursor: next }) });
    const { server, gp } = await against(page([{ id: 1 }, { id: 2 }], "c1"), page([], "c2"), page([{ id: 3 }], null));
    const first = await gp.endpoints.list({ limit: 2 });
    assert.deepEqual(first.data, [{ id: 1 }, { id: 2 }]);
    assert.equal(first.hasMore, true);
    const all = [];
    for await (const item of first) all.push(item);
    assert.deepEqual(all, [{ id: 1 }, { id: 2 }, { id: 3 }]);
    assert.deepEqual(server.requests.map((r) => r.url), ["/v1/endpoints?limit=2", "/v1/endpoints?limit=2&cursor=c1", "/v1/endpoints?limit=2&cursor=c2"]);
    const last = await first.nextPage(); // the server now repeats its last page
    assert.equal(last?.hasMore, false);
    assert.equal(await last?.nextPage(), null);
    const pages = [];
    for await (const p of first.pages()) pages.push(p.data.length);
    assert.deepEqual(pages, [2, 1]);
  });

  it("iterates a list call directly, fetching the first page once", async () => {
    const { server, gp } = await against({ status: 200, body: JSON.stringify({ data: [{ id: "a" }], next_cursor: null }) });
    const list = gp.subscriptions.list({ endpoint_id: "ep_1" });
    const ids = [];
    for await (const s of list) ids.push(s.id);
    assert.deepEqual(ids, ["a"]);
    assert.equal((await list).data.length, 1);
    assert.equal(server.requests.length, 1);
  });
});

describe("client options", () => {
  it("needs an API key, from the options or GATEPULSE_API_KEY", () => {
    const saved = { key: process.env["GATEPULSE_API_KEY"], url: process.env["GATEPULSE_URL"] };
    try {
      delete process.env["GATEPULSE_API_KEY"];
      assert.throws(() => new GatePulse(), /GATEPULSE_API_KEY/);
      process.env["GATEPULSE_API_KEY"] = "gpk_env";
      process.env["GATEPULSE_URL"] = "http://gp.internal:9000/";
      const gp = new GatePulse();
      assert.equal(gp.config.apiKey, "gpk_env");
      assert.equal(gp.config.baseUrl, "http://gp.internal:9000");
      delete process.env["GATEPULSE_URL"];
      assert.equal(new GatePulse().config.baseUrl, "http://127.0.0.1:8080");
    } finally {
      for (const [name, value] of [["GATEPULSE_API_KEY", saved.key], ["GATEPULSE_URL", saved.url]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it("uses a custom fetch", async () => {
    const seen: string[] = [];
    const gp = new GatePulse({
      apiKey: "k",
      fetch: (input) => {
        seen.push(input instanceof Request ? input.url : input.toString());
        return Promise.resolve(new Response('{"scope":"tenant"}', { status: 200 }));
      },
    });
    assert.deepEqual(await gp.stats.get(), { scope: "tenant" });
    assert.deepEqual(seen, ["http://127.0.0.1:8080/v1/stats"]);
  });

  it("has the package.json version", async () => {
    const { readFileSync } = await import("node:fs");
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
    assert.equal(VERSION, pkg.version);
  });
});
