/**
 * Verifying the deliveries GatePulse sends (Standard Webhooks signatures), with
 * WebCrypto only, so it runs unchanged on Node 20+, Bun, Deno, browsers and edge
 * runtimes.
 *
 * ```ts
 * const wh = new Webhook(process.env.GATEPULSE_WEBHOOK_SECRET);
 * const payload = await wh.verify(rawBody, request.headers); // throws WebhookVerificationError
 * ```
 *
 * The signed content is `{webhook-id}.{webhook-timestamp}.{raw body}`;
 * `webhook-signature` holds space-separated entries (several during a rotation), any
 * of which may match:
 * - `v1,<base64>`: HMAC-SHA256 keyed with the base64 part of the endpoint's `whsec_`
 *   secret;
 * - `v1a,<base64>`: an Ed25519 signature, verified with the endpoint's `whpk_` public
 *   key (`GET /v1/endpoints/{id}/public-key`), which cannot sign: a receiver holding it
 *   holds nothing worth stealing.
 *
 * ```ts
 * const wh = new Webhook(process.env.GATEPULSE_WEBHOOK_PUBLIC_KEY); // "whpk_…"
 * ```
 *
 * The timestamp must be within the tolerance (5 minutes) of now, both ways, so a
 * captured request cannot be replayed later.
 *
 * @module
 */

const PREFIX = "whsec_";
const PUBLIC_PREFIX = "whpk_";
const encoder = new TextEncoder();

/** Why a verification failed. */
export type WebhookErrorCode =
  | "missing_headers"
  | "invalid_timestamp"
  | "timestamp_too_old"
  | "timestamp_too_new"
  | "invalid_signature"
  | "invalid_body";

/** A delivery did not verify: answer it with 400 and do not act on it. */
export class WebhookVerificationError extends Error {
  override readonly name: string = "WebhookVerificationError";

  constructor(
    /** Machine-readable reason. */
    readonly code: WebhookErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The raw body as received: text or bytes, never parsed JSON. */
export type RawBody = string | Uint8Array | ArrayBuffer;

/**
 * Request headers in any common shape: a fetch `Headers` object (Next.js, Bun, Deno,
 * workers), or a plain object such as Node's `req.headers` (any letter case).
 */
export type HeadersLike = Headers | { get(name: string): string | null } | Record<string, string | string[] | undefined>;

export interface WebhookOptions {
  /** Largest distance between the message's timestamp and now, in seconds. Default 300. */
  toleranceSeconds?: number;
}

export interface VerifyOptions {
  /** The time to check the timestamp against (tests). Default: now. */
  now?: Date | number;
}

/** Verifies (and, for tests, signs) deliveries of one endpoint. */
export class Webhook {
  readonly #keys: Promise<CryptoKey[]>;
  readonly #publicKeys: Promise<CryptoKey[]>;
  readonly #toleranceSeconds: number;

  /**
   * @param secret The endpoint's `whsec_…` secret (the prefix is optional), or its
   *   `whpk_…` public key to verify `v1a` (Ed25519) signatures. During a rotation pass
   *   `[newKey, oldKey]`: a message signed with either verifies.
   */
  constructor(secret: string | string[], options: WebhookOptions = {}) {
    const secrets = Array.isArray(secret) ? secret : [secret];
    if (secrets.length === 0 || secrets.some((s) => typeof s !== "string" || s === "")) {
      throw new TypeError("Webhook: expected the endpoint's whsec_ secret or whpk_ public key (a non-empty string)");
    }
    const publicKeys = secrets.filter((s) => s.startsWith(PUBLIC_PREFIX)).map(decodePublicKey);
    const raw = secrets.filter((s) => !s.startsWith(PUBLIC_PREFIX)).map(decodeSecret);
    this.#keys = Promise.all(
      raw.map((bytes) => globalThis.crypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])),
    );
    this.#keys.catch(() => undefined);
    this.#publicKeys = Promise.all(
      publicKeys.map((bytes) => globalThis.crypto.subtle.importKey("raw", bytes, { name: "Ed25519" }, false, ["verify"])),
    );
    this.#publicKeys.catch(() => undefined);
    this.#toleranceSeconds = options.toleranceSeconds ?? 300;
  }

  /**
   * Checks the signature and timestamp of a delivery and returns its parsed JSON
   * payload. Throws {@link WebhookVerificationError} when it does not verify.
   *
   * @param rawBody The request body exactly as received (a string or bytes): not
   *   `JSON.parse`d, not re-serialised. Express: `express.raw({ type: "application/json" })`;
   *   fetch-style handlers (Next.js, Hono, workers): `await request.text()`.
   * @param headers The request headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
   */
  async verify<T = unknown>(rawBody: RawBody, headers: HeadersLike, options: VerifyOptions = {}): Promise<T> {
    const body = bodyBytes(rawBody);
    const id = header(headers, "webhook-id");
    const timestamp = header(headers, "webhook-timestamp");
    const signature = header(headers, "webhook-signature");
    if (!id || !timestamp || !signature) {
      const missing = [!id && "webhook-id", !timestamp && "webhook-timestamp", !signature && "webhook-signature"];
      throw new WebhookVerificationError(
        "missing_headers",
        `missing header(s): ${missing.filter(Boolean).join(", ")}; is this request from GatePulse?`,
      );
    }
    this.#checkTimestamp(timestamp, options.now);
    const content = concat(encoder.encode(`${id}.${timestamp}.`), body);
    const entries = (version: string): Uint8Array<ArrayBuffer>[] =>
      signature
        .split(" ")
        .filter((entry) => entry.startsWith(`${version},`))
        .map((entry) => decodeBase64(entry.slice(version.length + 1)))
        .filter((bytes): bytes is Uint8Array<ArrayBuffer> => bytes !== undefined);
    const expected = await Promise.all((await this.#keys).map((key) => hmac(key, content)));
    const symmetric = entries("v1").some((sig) => expected.some((mine) => constantTimeEqual(sig, mine)));
    if (!symmetric && !(await this.#verifiesV1a(entries("v1a"), content))) {
      throw new WebhookVerificationError(
        "invalid_signature",
        "no signature matches: check that the key is this endpoint's whsec_ secret (v1) or whpk_ public key " +
          "(v1a) and that the body is the raw request body, byte for byte (parsing and re-serialising JSON changes it)",
      );
    }
    const text = new TextDecoder().decode(body);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new WebhookVerificationError("invalid_body", "the signature is valid but the body is not JSON");
    }
  }

  /** The `webhook-signature` value for a message: one `v1,` entry per secret, space separated. */
  async sign(id: string, timestamp: number | Date, rawBody: RawBody): Promise<string> {
    if ((await this.#keys).length === 0) {
      throw new TypeError("Webhook.sign: needs a whsec_ secret; a whpk_ public key can only verify");
    }
    const seconds = typeof timestamp === "number" ? Math.floor(timestamp) : Math.floor(timestamp.getTime() / 1000);
    const content = concat(encoder.encode(`${id}.${seconds}.`), bodyBytes(rawBody));
    const signatures = await Promise.all((await this.#keys).map((key) => hmac(key, content)));
    return signatures.map((sig) => `v1,${encodeBase64(sig)}`).join(" ");
  }

  /**
   * Headers that make `rawBody` a validly signed delivery, to test a receiver:
   * `fetch(url, { method: "POST", body, headers: await wh.generateTestHeaders(body) })`.
   */
  async generateTestHeaders(
    rawBody: RawBody,
    options: { id?: string; timestamp?: number | Date } = {},
  ): Promise<Record<string, string>> {
    const id = options.id ?? `msg_test_${globalThis.crypto.randomUUID().replaceAll("-", "")}`;
    const timestamp = options.timestamp ?? Date.now() / 1000;
    const seconds = typeof timestamp === "number" ? Math.floor(timestamp) : Math.floor(timestamp.getTime() / 1000);
    return {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": String(seconds),
      "webhook-signature": await this.sign(id, seconds, rawBody),
    };
  }

  /** Whether any `v1a` signature verifies with any of the public keys. */
  async #verifiesV1a(signatures: Uint8Array<ArrayBuffer>[], content: Uint8Array<ArrayBuffer>): Promise<boolean> {
    const keys = await this.#publicKeys;
    for (const sig of signatures) {
      if (sig.length !== 64) continue;
      for (const key of keys) {
        if (await globalThis.crypto.subtle.verify({ name: "Ed25519" }, key, sig, content)) return true;
      }
    }
    return false;
  }

  #checkTimestamp(value: string, now: Date | number | undefined): void {
    if (!/^\d{1,15}$/.test(value.trim())) {
      throw new WebhookVerificationError("invalid_timestamp", `webhook-timestamp ${JSON.stringify(value)} is not unix seconds`);
    }
    const nowMs = now === undefined ? Date.now() : typeof now === "number" ? now : now.getTime();
    const drift = Math.floor(nowMs / 1000) - Number(value.trim());
    if (drift > this.#toleranceSeconds) {
      throw new WebhookVerificationError(
        "timestamp_too_old",
        `message timestamp is ${drift} s old (tolerance ${this.#toleranceSeconds} s): a replay, or a clock far off`,
      );
    }
    if (-drift > this.#toleranceSeconds) {
      throw new WebhookVerificationError(
        "timestamp_too_new",
        `message timestamp is ${-drift} s in the future (tolerance ${this.#toleranceSeconds} s): check this machine's clock`,
      );
    }
  }
}

function decodeSecret(secret: string): Uint8Array<ArrayBuffer> {
  const bytes = decodeBase64(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret);
  if (bytes === undefined || bytes.length === 0) {
    throw new TypeError("Webhook: the secret is not a whsec_ secret (whsec_ followed by base64)");
  }
  return bytes;
}

function decodePublicKey(key: string): Uint8Array<ArrayBuffer> {
  const bytes = decodeBase64(key.slice(PUBLIC_PREFIX.length));
  if (bytes?.length !== 32) {
    throw new TypeError("Webhook: the public key is not a whpk_ key (whpk_ followed by base64 of 32 bytes)");
  }
  return bytes;
}

/** The body as bytes; a parsed object gets a diagnostic instead of a confusing mismatch. */
function bodyBytes(raw: unknown): Uint8Array {
  if (typeof raw === "string") {
    if (raw === "[object Object]") throw parsedBodyError("a string made from an object (String(body))");
    return encoder.encode(raw);
  }
  if (raw instanceof Uint8Array) return raw;
  if (raw instanceof ArrayBuffer) return new Uint8Array(raw);
  const kind = raw === null ? "null" : Array.isArray(raw) ? "an array" : typeof raw === "object" ? "a parsed object" : typeof raw;
  throw parsedBodyError(kind);
}

function parsedBodyError(kind: string): WebhookVerificationError {
  return new WebhookVerificationError(
    "invalid_body",
    `verify() needs the raw request body (a string or bytes), but got ${kind}. The signature covers the exact ` +
      "bytes sent; JSON that was parsed and re-serialised no longer matches. Express: app.post(path, " +
      'express.raw({ type: "application/json" }), …) and pass req.body (a Buffer); Next.js / fetch handlers: ' +
      "pass await request.text(); Fastify: addContentTypeParser with parseAs: 'buffer'.",
  );
}

function header(headers: HeadersLike, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === "function") {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  for (const [key, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (key.toLowerCase() === name) return Array.isArray(value) ? value.join(" ") : value;
  }
  return undefined;
}

async function hmac(key: CryptoKey, content: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.sign("HMAC", key, content));
}

/** Equal length and content, in time independent of where they differ. */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function decodeBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}
