// Drives the dev inbox page (/dev/inbox/ui) in Debian's headless Chromium, the way a
// person would: open it with #token=…, click the inbox endpoint, click the message,
// read the headers and body shown, copy the curl replay.
//
// Run by tests/tests/inbox_ui.rs, which starts gp and captures a message first.
// Environment:
//   BASE         the server, e.g. http://127.0.0.1:8080
//   TOKEN        an API key with endpoints:manage and events:read
//   ENDPOINT_ID  the inbox endpoint
//   EVENT_ID     the published event whose captured message to open
//   TARGET_URL   optional: typed into the page's target URL field for the replay
//   CURL_OUT     optional: file to write the copied curl command to
//   SCREENSHOT   optional: PNG of the page at the end (also written on failure)
//   CHROMIUM     optional: the browser binary (default /usr/bin/chromium)
//
// Exits 0 when every check passed, 1 with a message naming the failed check otherwise.
// Any console error or uncaught page error fails the run.

import { writeFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { CheckFailed, check, env } from "./checks.mjs";

// The shell quoting the page must use: single quotes, ' written as '\''.
const shq = (s) => "'" + s.replace(/'/g, "'\\''") + "'";

async function apiMessage(base, token, endpointId, eventId) {
  const resp = await fetch(`${base}/v1/inbox/${endpointId}/messages?limit=1000`, {
    headers: { authorization: `Bearer ${token}` },
  });
  check(resp.ok, `GET inbox messages answered ${resp.status}`);
  const { data } = await resp.json();
  const m = data.find((x) => x.event_id === eventId);
  check(m, `no captured message for ${eventId} in the API listing`);
  return m;
}

async function main() {
  const base = env("BASE").replace(/\/$/, "");
  const token = env("TOKEN");
  const endpointId = env("ENDPOINT_ID");
  const eventId = env("EVENT_ID");
  const target = process.env.TARGET_URL || "";
  const expected = await apiMessage(base, token, endpointId, eventId);

  const problems = [];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  let page;
  try {
    const context = await browser.newContext();
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.on("console", (msg) => {
      if (msg.type() === "error") problems.push(`console error: ${msg.text()}`);
    });
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));

    const resp = await page.goto(`${base}/dev/inbox/ui#token=${encodeURIComponent(token)}`);
    check(resp && resp.status() === 200, `page answered ${resp && resp.status()}`);
    const headers = resp.headers();
    check(headers["content-type"] === "text/html; charset=utf-8", `content-type ${headers["content-type"]}`);
    check((headers["content-security-policy"] || "").includes("default-src 'none'"), "no strict CSP");
    check(headers["cache-control"] === "no-cache", `cache-control ${headers["cache-control"]}`);

    // The token moved from the fragment into sessionStorage.
    check(!page.url().includes("token="), `the token stayed in the address bar: ${page.url()}`);
    const stored = await page.evaluate(() => sessionStorage.getItem("gatepulse.inbox.token"));
    check(stored === token, "the token is not in sessionStorage");

    // Endpoints → the inbox endpoint → its message.
    await page.locator(`#endpoints button[data-endpoint-id="${endpointId}"]`).click();
    await page.locator(`#messages button[data-message-id="${expected.id}"]`).click();
    await page.locator("#detail").waitFor({ state: "visible" });

    const meta = await page.locator("#meta").textContent();
    check(meta.includes(eventId), `the event id is not shown: ${meta}`);
    check(meta.includes(expected.topic), `the topic is not shown: ${meta}`);

    // Every captured header, in order, exactly.
    const shown = await page.locator("#headers tr").evaluateAll((rows) =>
      rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent)),
    );
    check(
      JSON.stringify(shown) === JSON.stringify(expected.headers),
      `headers shown ${JSON.stringify(shown)} != captured ${JSON.stringify(expected.headers)}`,
    );
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type"]) {
      check(shown.some(([n]) => n === name), `header ${name} not shown`);
    }

    // The body, pretty-printed, is the same JSON as captured.
    const body = await page.locator("#body").textContent();
    check(body.includes("\n"), "the JSON body is not pretty-printed");
    check(
      JSON.stringify(JSON.parse(body)) === JSON.stringify(JSON.parse(expected.body)),
      `body shown ${body} != captured ${expected.body}`,
    );

    // The curl replay: every header as -H and the exact body, safely quoted.
    if (target) await page.locator("#target").fill(target);
    await page.locator("#copy").click();
    await page.locator("#copy-status").filter({ hasText: /\S/ }).waitFor();
    const pre = await page.locator("#curl").textContent();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    check(copied === pre, `clipboard != the command shown:\n${copied}\n---\n${pre}`);
    check(pre.startsWith(`curl ${shq(target || "http://localhost:3000/webhook")}`), `curl target:\n${pre}`);
    for (const [name, value] of expected.headers) {
      check(pre.includes(`-H ${shq(`${name}: ${value}`)}`), `curl lacks header ${name}:\n${pre}`);
    }
    check(pre.trimEnd().endsWith(`--data-raw ${shq(expected.body)}`), `curl body is not exact:\n${pre}`);
    if (process.env.CURL_OUT) writeFileSync(process.env.CURL_OUT, pre);

    // The page keeps the message list fresh without errors; give it one refresh cycle.
    await page.waitForTimeout(5_500);
    check(problems.length === 0, problems.join("\n"));
    const statusText = await page.locator("#status").textContent();
    check(statusText === "", `the page shows an error: ${statusText}`);
    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  } catch (e) {
    if (page && process.env.SCREENSHOT) {
      await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true }).catch(() => {});
    }
    if (problems.length) e.message += `\nalso seen:\n${problems.join("\n")}`;
    throw e;
  } finally {
    await browser.close();
  }
}

main().then(
  () => {
    console.log("inbox_ui: all checks passed");
  },
  (e) => {
    const kind = e instanceof CheckFailed ? "check failed" : "error";
    console.error(`inbox_ui: ${kind}: ${e.message}`);
    process.exit(1);
  },
);
