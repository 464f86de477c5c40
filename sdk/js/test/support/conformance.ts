/** Reads the shared vectors in sdk/conformance (tests run from sdk/js). */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export function conformance<T>(name: string): T {
  return JSON.parse(readFileSync(join(process.cwd(), "..", "conformance", name), "utf8")) as T;
}

export interface SignatureCase {
  name: string;
  secret: string;
  body: string;
  headers: Record<string, string>;
  now: number;
  signing: { secrets: string[]; id: string; timestamp: number; body: string } | null;
  expect: "valid" | "invalid";
  error: string | null;
}

/** A `webhook-signatures-v1a.json` case: the receiver holds `receiver` (whpk_ and/or whsec_). */
export interface V1aSignatureCase {
  name: string;
  receiver: string[];
  body: string;
  headers: Record<string, string>;
  now: number;
  signing: { secrets: string[]; signing_keys: string[]; id: string; timestamp: number; body: string } | null;
  expect: "valid" | "invalid";
  error: string | null;
}

export interface RetryCase {
  name: string;
  attempt: number;
  max_retries: number;
  outcome: { status?: number; retry_after?: string; now?: string; error?: "connection" | "timeout" };
  expect: { retry: boolean; min_delay_ms?: number; max_delay_ms?: number };
}
