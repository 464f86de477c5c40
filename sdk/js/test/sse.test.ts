import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SseParser } from "../src/stream/sse.js";

describe("SseParser", () => {
  it("parses frames split anywhere, with any line ending", () => {
    const text = "\uFEFFretry: 2417\r\n: comment\r\n\r\nid: 41\r\nevent: orders.created\r\ndata: {\"a\":1}\r\n\r\nid: 42\nevent: x\ndata: a\ndata: b\n\nid: 43\rdata: c\r\r\n";
    for (const size of [1, 2, 3, 7, text.length]) {
      const parser = new SseParser();
      const messages = [];
      for (let i = 0; i < text.length; i += size) messages.push(...parser.feed(text.slice(i, i + size)));
      assert.deepEqual(messages, [
        { id: "41", event: "orders.created", data: '{"a":1}' },
        { id: "42", event: "x", data: "a\nb" },
        { id: "43", event: "message", data: "c" },
      ], `chunk size ${size}`);
      assert.equal(parser.retryMs, 2417);
    }
  });

  it("keeps the last id for later frames and ignores unknown fields and bad retries", () => {
    const parser = new SseParser();
    const messages = parser.feed("id: 7\ndata: a\n\nfoo: bar\nretry: soon\nid\ndata\n\nid: bad\0id\ndata: b\n\n");
    assert.deepEqual(messages, [
      { id: "7", event: "message", data: "a" },
      { id: "", event: "message", data: "" },
      { id: "", event: "message", data: "b" },
    ]);
    assert.equal(parser.retryMs, undefined);
  });

  it("dispatches nothing for a frame without data", () => {
    assert.deepEqual(new SseParser().feed("id: 1\nevent: x\n\n"), []);
  });
});
