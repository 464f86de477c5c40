/** The stream against the real server: history, filters, resets, and resuming across a restart. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { GatePulse, type StreamEvent, type StreamItem } from "../src/index.js";
import { GpServer, eventually } from "./support/server.js";

let server: GpServer;
let gp: GatePulse;

before(async () => {
  server = await GpServer.start();
  gp = new GatePulse({ apiKey: server.apiKey, baseUrl: server.baseUrl });
});
after(() => server?.stop());

/** The first `n` items of a subscription. */
async function take(items: AsyncIterable<StreamItem>, n: number): Promise<StreamItem[]> {
  const out: StreamItem[] = [];
  if (n === 0) return out;
  for await (const item of items) {
    out.push(item);
    if (out.length === n) break;
  }
  return out;
}

const ns = (items: StreamItem[]): unknown[] => items.map((i) => (i as StreamEvent<{ payload: { n: number } }>).data.payload.n);

describe("stream", () => {
  it("reads history from a cursor, filtered by one topic pattern, and resumes after the last cursor", async () => {
    for (const [topic, n] of [["orders.created", 1], ["billing.paid", 2], ["orders.updated", 3], ["orders.created", 4]] as const) {
      await gp.events.publish({ topic, payload: { n } });
    }
    const sub = gp.stream.subscribe({ topics: "orders.#", cursor: 0 });
    const first = await take(sub, 2);
    assert.deepEqual(ns(first), [1, 3]);
    assert.deepEqual(first.map((i) => i.type === "event" && i.topic), ["orders.created", "orders.updated"]);
    assert.equal(sub.cursor, first[1]?.cursor);
    assert.throws(() => sub[Symbol.asyncIterator](), /iterated once/);
    const rest = await take(gp.stream.subscribe({ topics: ["orders.#"], cursor: sub.cursor }), 1);
    assert.deepEqual(ns(rest), [4]);
  });

  it("matches several patterns on the client", async () => {
    const items = await take(gp.stream.subscribe({ topics: ["billing.#", "orders.updated"], cursor: 0 }), 2);
    assert.deepEqual(ns(items), [2, 3]);
  });

  it("says when it cannot resume where asked", async () => {
    const [reset] = await take(gp.stream.subscribe({ cursor: 1_000_000 }), 1);
    assert.equal(reset?.type, "reset");
    assert.equal(reset?.type === "reset" && reset.data.reason, "cursor_ahead");
  });

  it("follows live items when given no cursor", async () => {
    const controller = new AbortController();
    const sub = gp.stream.subscribe({ topics: "live.#", signal: controller.signal });
    const got = take(sub, 1);
    // Live only: publish until the connection is up and one arrives.
    let n = 0;
    const timer = setInterval(() => void gp.events.publish({ topic: "live.tick", payload: { n: ++n } }), 100);
    try {
      const [item] = await got;
      assert.equal(item?.type === "event" && item.topic, "live.tick");
    } finally {
      clearInterval(timer);
      controller.abort();
    }
  });

  it("carries deliveries.status updates", async () => {
    const inbox = await gp.endpoints.create({ kind: "inbox" });
    await gp.subscriptions.create({ endpoint_id: inbox.id, topics: ["status.#"] });
    const published = await gp.events.publish({ topic: "status.x", payload: { n: 0 } });
    const [item] = await take(gp.stream.subscribe({ topics: "deliveries.status", cursor: published.cursor }), 1);
    assert.ok(item?.type === "event");
    const update = item.data as { event_id: string; status: string };
    assert.equal(update.event_id, published.id);
    assert.equal(update.status, "succeeded");
  });

  it("resumes exactly after a server restart: no gap, no duplicate", { timeout: 90_000 }, async () => {
    const publish = (n: number): Promise<unknown> => gp.events.publish({ topic: "seq.n", payload: { n } });
    const start = await gp.events.publish({ topic: "seq.start", payload: { n: 0 } });
    const seen: StreamItem[] = [];
    const sub = gp.stream.subscribe({ topics: "seq.n", cursor: start.cursor, idleTimeoutMs: 5000 });
    const reading = (async () => {
      for await (const item of sub) {
        seen.push(item);
        if (seen.length === 4) break;
      }
    })();
    await publish(1);
    await publish(2);
    await eventually(() => Promise.resolve(seen.length === 2 ? true : undefined), 20_000, "two items before the restart");
    await server.terminate();
    await server.spawn();
    await publish(3);
    await publish(4);
    await reading;
    assert.deepEqual(ns(seen), [1, 2, 3, 4]);
    assert.ok(seen.every((item, i) => i === 0 || Number(item.cursor) > Number(seen[i - 1]?.cursor)));
  });
});
