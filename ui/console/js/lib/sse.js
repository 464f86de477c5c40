// The tenant stream (GET /v1/stream, docs/streaming.md) read with fetch: EventSource
// cannot send an Authorization header, and the token must never go into the URL.
//
// Resumes like EventSource does: after a dropped connection it reconnects after the
// server's `retry:` delay with `Last-Event-ID` set to the last cursor seen, so nothing
// is missed or repeated. Pausing closes the connection and keeps the cursor; resuming
// reconnects from it and receives what was committed meanwhile (within the server's
// backfill limits; a `gatepulse.reset` frame says when they were passed).

import { authHeaders, ApiError, isAbort } from "./api.js";
import { endSession } from "./session.js";

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

export class Stream {
  /**
   * `topic`: a pattern, "deliveries.status", or empty for everything.
   * `fromCursor`: history to start after (null: live only).
   * `onItem({cursor, topic, data})`, `onState({state, detail})`, `onNotice({kind, data})`.
   */
  constructor({ topic = "", fromCursor = null, onItem, onState = () => {}, onNotice = () => {} }) {
    this.topic = topic;
    // Live only: start "after the head". Asking for a cursor beyond it makes the server
    // answer a reset frame whose id is the head (docs/streaming.md), so the stream has
    // a cursor to resume from even before its first item arrives.
    this.seeding = fromCursor === null || fromCursor === undefined;
    this.lastId = this.seeding ? String(Number.MAX_SAFE_INTEGER) : String(fromCursor);
    this.onItem = onItem;
    this.onState = onState;
    this.onNotice = onNotice;
    this.retryMs = 2000;
    this.failures = 0;
    this.stopped = true;
    this.ctrl = null;
    this.connections = 0;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.ctrl = new AbortController();
    this.run(this.ctrl.signal);
  }

  /** Closes the connection, keeping the cursor. */
  pause() {
    this.stop("paused");
  }

  close() {
    this.stop("closed");
  }

  stop(state) {
    if (this.stopped) return;
    this.stopped = true;
    this.ctrl?.abort();
    this.onState({ state, cursor: this.lastId });
  }

  async run(signal) {
    while (!signal.aborted) {
      try {
        await this.connect(signal);
        this.failures = 0;
        if (signal.aborted) return;
        this.onState({ state: "reconnecting", detail: "the server closed the stream", cursor: this.lastId });
      } catch (e) {
        if (signal.aborted || isAbort(e)) return;
        if (e instanceof ApiError && [400, 403, 404, 422].includes(e.status)) {
          this.stopped = true;
          this.onState({ state: "error", detail: e.detail, error: e });
          return;
        }
        if (e instanceof ApiError && e.status === 401) {
          this.stopped = true;
          endSession(`Signed out: ${e.detail}`);
          return;
        }
        this.failures += 1;
        this.onState({ state: "reconnecting", detail: e.detail || e.message, cursor: this.lastId });
      }
      const backoff = Math.min(30000, this.retryMs * 2 ** Math.min(this.failures, 4));
      await sleep(this.failures ? backoff : this.retryMs, signal);
    }
  }

  async connect(signal) {
    const headers = { ...authHeaders(), Accept: "text/event-stream" };
    const q = new URLSearchParams();
    if (this.topic && this.topic !== "#") q.set("topic", this.topic);
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    this.onState({ state: "connecting", cursor: this.lastId });
    const resp = await fetch(`/v1/stream${q.toString() ? `?${q}` : ""}`, {
      headers, signal, cache: "no-store", credentials: "omit",
    });
    if (!resp.ok) {
      let problem = null;
      try {
        problem = await resp.json();
      } catch {
        /* not a problem document */
      }
      const err = new ApiError(resp.status, problem, resp.headers.get("x-request-id"));
      const retryAfter = Number(resp.headers.get("retry-after"));
      if (retryAfter > 0) this.retryMs = retryAfter * 1000;
      throw err;
    }
    this.connections += 1;
    this.onState({ state: "open", cursor: this.lastId, connections: this.connections });
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let frame = { id: null, event: "", data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf[nl] === "\r" && buf[nl + 1] === "\n" ? 2 : 1));
        if (line === "") {
          this.dispatch(frame);
          frame = { id: null, event: "", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "id") frame.id = val;
        else if (field === "event") frame.event = val;
        else if (field === "data") frame.data.push(val);
        else if (field === "retry" && /^\d+$/.test(val)) this.retryMs = Number(val);
      }
    }
  }

  dispatch(frame) {
    if (frame.id !== null && frame.id !== "") this.lastId = frame.id;
    if (!frame.data.length) return;
    let data;
    try {
      data = JSON.parse(frame.data.join("\n"));
    } catch {
      data = frame.data.join("\n");
    }
    if (frame.event === "gatepulse.reset" && this.seeding) {
      this.seeding = false;
      if (data && data.reason === "cursor_ahead") {
        this.onState({ state: "open", cursor: this.lastId, connections: this.connections });
        return;
      }
    }
    if (frame.event === "gatepulse.reset" || frame.event === "gatepulse.disconnect") {
      this.onNotice({ kind: frame.event, data, cursor: this.lastId });
      return;
    }
    this.onItem({ cursor: frame.id, topic: frame.event || "message", data });
  }
}
