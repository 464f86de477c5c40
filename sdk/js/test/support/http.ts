/**
 * Small real HTTP servers for tests: a scripted API double (answers a fixed sequence,
 * for retries against 429/503) and a webhook receiver that records what it gets.
 */
import { EventEmitter, once } from "node:events";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

export interface Scripted {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Never answer (to test timeouts). */
  hang?: boolean;
}

/** A server that records requests and answers from `respond`. */
export class TestServer {
  readonly requests: Recorded[] = [];
  readonly #events = new EventEmitter();
  readonly #server: Server;
  url = "";

  constructor(private readonly respond: (req: Recorded, res: ServerResponse) => void) {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const recorded = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks) };
        this.requests.push(recorded);
        this.respond(recorded, res);
        this.#events.emit("request");
      });
    });
  }

  async start(): Promise<this> {
    this.#server.listen(0, "127.0.0.1");
    await once(this.#server, "listening");
    const address = this.#server.address();
    if (address === null || typeof address === "string") throw new Error("no address");
    this.url = `http://127.0.0.1:${address.port}`;
    return this;
  }

  /** Resolves once `n` requests have arrived (rejects after `ms`). */
  async waitFor(n: number, ms = 20_000): Promise<Recorded[]> {
    const deadline = setTimeout(() => this.#events.emit("timeout"), ms);
    try {
      while (this.requests.length < n) {
        const [what] = await Promise.race([once(this.#events, "request").then(() => ["request"]), once(this.#events, "timeout").then(() => ["timeout"])]);
        if (what === "timeout") throw new Error(`timed out after ${ms} ms: ${this.requests.length} of ${n} requests`);
      }
      return this.requests.slice(0, n);
    } finally {
      clearTimeout(deadline);
    }
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((r) => this.#server.close(r));
  }
}

/** Answers the scripted responses in order, then repeats the last one. */
export function scripted(responses: Scripted[]): Promise<TestServer> {
  let i = 0;
  return new TestServer((_req, res) => {
    const r = responses[Math.min(i++, responses.length - 1)];
    if (r === undefined || r.hang) return;
    res.writeHead(r.status, { "content-type": "application/json", ...r.headers });
    res.end(r.body ?? "");
  }).start();
}

/** A webhook receiver answering `status` (204 by default). */
export function receiver(status: (req: Recorded) => number = () => 204): Promise<TestServer> {
  return new TestServer((req, res) => {
    res.writeHead(status(req));
    res.end();
  }).start();
}

/** A problem+json body. */
export function problem(status: number, code: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ type: `https://gatepulse.dev/problems/${code}`, title: "x", status, detail: `${code} detail`, code, ...extra });
}
