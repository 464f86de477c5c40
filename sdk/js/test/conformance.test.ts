import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Webhook as OfficialWebhook } from "standardwebhooks";
import { DEFAULT_RETRY_POLICY, retryDelay } from "../src/core/retry.js";
import { topicMatches } from "../src/topics.js";
import { Webhook, WebhookVerificationError } from "../src/webhook.js";
import { type RetryCase, type SignatureCase, type V1aSignatureCase, conformance } from "./support/conformance.js";

const signatures = conformance<{ tolerance_seconds: number; cases: SignatureCase[] }>("webhook-signatures.json");
const v1a = conformance<{ tolerance_seconds: number; cases: V1aSignatureCase[] }>("webhook-signatures-v1a.json");
const retries = conformance<{ policy: Record<string, number>; cases: RetryCase[] }>("retry-verdicts.json");
const topics = conformance<{ cases: Array<{ pattern: string; topic: string; matches: boolean }> }>("topic-patterns.json");

/** Runs `fn` with Date.now() frozen at `seconds` (the official library reads the clock itself). */
function at<T>(seconds: number, fn: () => T): T {
  const real = Date.now;
  Date.now = () => seconds * 1000;
  try {
    return fn();
  } finally {
    Date.now = real;
  }
}

describe("signature vectors", () => {
  for (const c of signatures.cases) {
    it(`${c.name}: ${c.expect}`, async () => {
      const wh = new Webhook(c.secret);
      const verdict = wh.verify(c.body, c.headers, { now: c.now * 1000 });
      if (c.expect === "valid") {
        assert.deepEqual(await verdict, JSON.parse(c.body));
      } else {
        await assert.rejects(verdict, (e: unknown) => e instanceof WebhookVerificationError && e.code === c.error);
      }
    });

    it(`${c.name}: the official standardwebhooks library agrees`, () => {
      const official = new OfficialWebhook(c.secret);
      const run = (): unknown => at(c.now, () => official.verify(c.body, c.headers));
      if (c.expect === "valid") assert.deepEqual(run(), JSON.parse(c.body));
      else assert.throws(run);
    });

    if (c.signing !== null) {
      const signing = c.signing;
      it(`${c.name}: signing reproduces the header`, async () => {
        assert.equal(await new Webhook(signing.secrets).sign(signing.id, signing.timestamp, signing.body), c.headers["webhook-signature"]);
        const official = signing.secrets.map((s) => new OfficialWebhook(s).sign(signing.id, new Date(signing.timestamp * 1000), signing.body));
        assert.equal(official.join(" "), c.headers["webhook-signature"]);
      });
    }
  }
});

describe("v1a (Ed25519) signature vectors", () => {
  for (const c of v1a.cases) {
    it(`${c.name}: ${c.expect}`, async () => {
      const verdict = new Webhook(c.receiver).verify(c.body, c.headers, { now: c.now * 1000 });
      if (c.expect === "valid") {
        assert.deepEqual(await verdict, JSON.parse(c.body));
      } else {
        await assert.rejects(verdict, (e: unknown) => e instanceof WebhookVerificationError && e.code === c.error);
      }
    });
  }

  it("a public key cannot sign", async () => {
    const key = v1a.cases[0]!.receiver[0]!;
    await assert.rejects(new Webhook(key).sign("msg_1", 1, "{}"), TypeError);
  });

  it("a malformed public key is refused at once", () => {
    assert.throws(() => new Webhook("whpk_c2hvcnQ="), TypeError);
    assert.throws(() => new Webhook("whpk_not base64!"), TypeError);
  });
});

describe("retry verdicts", () => {
  it("the policy is the one in the vectors", () => {
    assert.equal(DEFAULT_RETRY_POLICY.initialDelayMs, retries.policy["initial_delay_ms"]);
    assert.equal(DEFAULT_RETRY_POLICY.maxDelayMs, retries.policy["max_delay_ms"]);
    assert.equal(DEFAULT_RETRY_POLICY.jitter, retries.policy["jitter"]);
    assert.equal(DEFAULT_RETRY_POLICY.maxRetryAfterMs, retries.policy["max_retry_after_ms"]);
    assert.equal(DEFAULT_RETRY_POLICY.maxRetries, retries.policy["default_max_retries"]);
  });
  for (const c of retries.cases) {
    it(c.name, () => {
      const policy = { ...DEFAULT_RETRY_POLICY, maxRetries: c.max_retries };
      const outcome = c.outcome.error ? { error: c.outcome.error } : { status: c.outcome.status ?? 0, retryAfter: c.outcome.retry_after };
      const now = c.outcome.now ? Date.parse(c.outcome.now) : Date.now();
      for (const random of [0, 0.5, 1]) {
        const delay = retryDelay(policy, c.attempt, outcome, now, random);
        if (!c.expect.retry) {
          assert.equal(delay, null);
        } else {
          assert.notEqual(delay, null);
          assert.ok(delay! >= c.expect.min_delay_ms! && delay! <= c.expect.max_delay_ms!, `${delay} (random ${random})`);
        }
      }
    });
  }
});

describe("topic patterns", () => {
  for (const c of topics.cases) {
    it(`${c.pattern} ~ ${c.topic}: ${c.matches}`, () => assert.equal(topicMatches(c.pattern, c.topic), c.matches));
  }
});
