/**
 * Starts the real `gp` binary ($GP_BIN) on a free port with a temp data dir, waits for
 * `/readyz`, and creates a tenant and an all-scopes API key with the admin token.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ADMIN_TOKEN = "sdk-js-admin-token-0123456789abcdef";
/** The master key the test server seals secrets with (test-only). */
export const MASTER_KEY = "1:Z2F0ZXB1bHNlLXRlc3QtbWFzdGVyLWtleS12MS0zMmI=";
export const ALL_SCOPES = ["events:write", "events:read", "endpoints:manage", "replay:write", "dlq:manage", "audit:read", "stats:read"];
const READY_WITHIN_MS = 30_000;

export function gpBinary(): string {
  const bin = process.env["GP_BIN"];
  if (!bin) {
    throw new Error("GP_BIN is not set: point it at the gp binary (e.g. GP_BIN=target/debug/gp) to run the integration tests");
  }
  return bin;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

export class GpServer {
  readonly baseUrl: string;
  tenantId = "";
  apiKey = "";
  #child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    readonly dataDir: string,
  ) {
    this.baseUrl = `http://127.0.0.1:${port}`;
  }

  /** A running server with a tenant and an all-scopes key. */
  static async start(): Promise<GpServer> {
    const server = new GpServer(await freePort(), mkdtempSync(join(tmpdir(), "gp-sdk-js-")));
    await server.spawn();
    const tenant = await server.admin<{ id: string }>("POST", "/v1/tenants", { name: "sdk-js" });
    server.tenantId = tenant.id;
    server.apiKey = (await server.createKey(ALL_SCOPES)).key;
    return server;
  }

  /** A key of the test tenant with these scopes. */
  async createKey(scopes: string[]): Promise<{ id: string; key: string }> {
    return this.admin("POST", `/v1/tenants/${this.tenantId}/keys`, { name: "sdk-test", scopes });
  }

  async admin<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(this.baseUrl + path, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: body === undefined ? null : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  /** Starts (or restarts) the process on the same port and data dir; resolves once ready. */
  async spawn(): Promise<void> {
    const child = spawn(gpBinary(), ["serve", "--listen", `127.0.0.1:${this.port}`, "--data-dir", this.dataDir], {
      env: {
        ...process.env,
        GATEPULSE_ADMIN_TOKEN: ADMIN_TOKEN,
        GATEPULSE_MASTER_KEY: MASTER_KEY,
        GATEPULSE_DELIVERY__ALLOW_PRIVATE_DESTINATIONS: "true",
        RUST_LOG: "warn",
      },
      stdio: ["ignore", "ignore", "inherit"],
    });
    this.#child = child;
    let exited: string | undefined;
    child.once("exit", (code, signal) => {
      exited = `gp exited early (code ${code}, signal ${signal})`;
    });
    const deadline = Date.now() + READY_WITHIN_MS;
    for (;;) {
      if (exited) throw new Error(exited);
      try {
        const res = await fetch(`${this.baseUrl}/readyz`);
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`gp not ready within ${READY_WITHIN_MS} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** SIGTERM and wait for the exit (SIGKILL after 15 s). */
  async terminate(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exit = once(child, "exit");
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exit;
    clearTimeout(timer);
  }

  /** Stops the server and removes its data dir. */
  async stop(): Promise<void> {
    await this.terminate();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Polls `check` every 25 ms until it returns a value other than undefined, for at most `ms`. */
export async function eventually<T>(check: () => Promise<T | undefined>, ms = 20_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
