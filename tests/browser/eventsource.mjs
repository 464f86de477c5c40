// A standard WHATWG EventSource client (the `eventsource` package) reading
// GET /v1/stream, the way a subscriber's Node service would. It never reconnects by
// itself: when the connection drops (the server restarts, is killed), the library
// reconnects after the server's `retry:` delay and sends `Last-Event-ID`, as any
// EventSource does. The only thing added to a plain EventSource is the bearer token
// (through the library's `fetch` option) and, for a client process that was itself
// restarted, the last id it had seen as the initial `Last-Event-ID`.
//
// Run by tests/tests/eventsource.rs. Environment:
//   BASE           the server, e.g. http://127.0.0.1:8080
//   TOKEN          an API key with events:read
//   TOPIC          the topic pattern to stream; also the event name listened to
//   EXPECT         exit 0 after this many messages
//   FROM_CURSOR    optional: ?from_cursor= of the first request
//   LAST_EVENT_ID  optional: Last-Event-ID until the library has an id of its own
//   TIMEOUT_MS     optional: give up after this long (default 60000)
//
// stdout: one JSON line per message, {"id": "<cursor>", "event": "<name>", "n": payload.n}
// (`gatepulse.reset` frames are printed and counted too, with n null).
// stderr: the connection's open/error events with timestamps (diagnostics only).
// Exits 0 after EXPECT messages; 2 on timeout, with the messages so far already printed.

import { EventSource } from "eventsource";

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === "") throw new Error(`set ${name}`);
  return v;
};

const base = env("BASE").replace(/\/$/, "");
const token = env("TOKEN");
const topic = env("TOPIC");
const expect = Number(env("EXPECT"));
const timeoutMs = Number(env("TIMEOUT_MS", "60000"));
const fromCursor = process.env.FROM_CURSOR || "";
const initialLastEventId = process.env.LAST_EVENT_ID || "";

const url = new URL(`${base}/v1/stream`);
url.searchParams.set("topic", topic);
if (fromCursor !== "") url.searchParams.set("from_cursor", fromCursor);

const started = Date.now();
const log = (what) => process.stderr.write(`[eventsource.mjs +${Date.now() - started} ms] ${what}\n`);

// The library's own request, plus the token and (until it has its own) the id to
// resume after. Everything else, Last-Event-ID on reconnects included, is the library's.
const authFetch = (input, init) => {
  const headers = new Headers(init?.headers);
  headers.set("Authorization", `Bearer ${token}`);
  if (initialLastEventId !== "" && !headers.has("Last-Event-ID")) {
    headers.set("Last-Event-ID", initialLastEventId);
  }
  log(`request ${input} Last-Event-ID=${headers.get("Last-Event-ID") ?? "(none)"}`);
  return fetch(input, { ...init, headers });
};

const es = new EventSource(url, { fetch: authFetch });
let received = 0;
let finished = false;

const finish = (code, why) => {
  if (finished) return;
  finished = true;
  es.close();
  log(`${why}: ${received} of ${expect} messages`);
  // Exit only once everything printed has been written out.
  process.stdout.write("", () => process.exit(code));
};

const onMessage = (e) => {
  if (finished) return;
  let n = null;
  try {
    const data = JSON.parse(e.data);
    n = data?.payload?.n ?? null;
  } catch {
    log(`undecodable data on ${e.type}: ${e.data}`);
  }
  received += 1;
  process.stdout.write(JSON.stringify({ id: e.lastEventId, event: e.type, n }) + "\n");
  if (received >= expect) finish(0, "done");
};

es.addEventListener(topic, onMessage);
es.addEventListener("gatepulse.reset", onMessage);
es.addEventListener("gatepulse.disconnect", (e) => log(`gatepulse.disconnect ${e.data}`));
es.addEventListener("open", () => log("open"));
es.addEventListener("error", (e) => {
  const state = ["CONNECTING", "OPEN", "CLOSED"][es.readyState];
  log(`error (${e.code ?? "-"}: ${e.message ?? "-"}), readyState ${state}`);
  // CLOSED: the library gave up (a non-200 answer); it will not reconnect.
  if (es.readyState === EventSource.CLOSED) finish(3, "the EventSource closed for good");
});

setTimeout(() => finish(2, `timeout after ${timeoutMs} ms`), timeoutMs);
