/**
 * An incremental Server-Sent Events parser (the WHATWG "event stream interpretation"):
 * feed it text as it arrives, get whole messages back. Knows no HTTP.
 *
 * @module
 */

/** One dispatched SSE message. */
export interface SseMessage {
  /** The `id:` in force for this message (the last one seen), if any. */
  id: string | undefined;
  /** The `event:` field, `message` when absent. */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
}

/** Parses an event stream chunk by chunk; line endings may be split across chunks. */
export class SseParser {
  /** The last `retry:` value seen, in milliseconds. */
  retryMs: number | undefined;
  #buffer = "";
  #started = false;
  #lastId: string | undefined;
  #event = "";
  #data: string[] = [];

  /** Parses `chunk` and returns the messages it completed. */
  feed(chunk: string): SseMessage[] {
    let text = this.#buffer + chunk;
    if (!this.#started && text.length > 0) {
      this.#started = true;
      if (text.startsWith("\uFEFF")) text = text.slice(1);
    }
    const out: SseMessage[] = [];
    const newline = /\r\n|\r|\n/g;
    let start = 0;
    for (let m = newline.exec(text); m !== null; m = newline.exec(text)) {
      // A trailing \r may be the first half of \r\n: keep it for the next chunk.
      if (m[0] === "\r" && m.index + 1 === text.length) break;
      this.#line(text.slice(start, m.index), out);
      start = m.index + m[0].length;
    }
    this.#buffer = text.slice(start);
    return out;
  }

  #line(line: string, out: SseMessage[]): void {
    if (line === "") {
      if (this.#data.length > 0) {
        out.push({ id: this.#lastId, event: this.#event || "message", data: this.#data.join("\n") });
      }
      this.#event = "";
      this.#data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.#data.push(value);
        break;
      case "event":
        this.#event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.#lastId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
    }
  }
}
