// Finding a point in time in listings that have no time parameter.
//
// Events: a tenant's events carry stream cursors 1, 2, 3, … in commit order
// (docs/api-guide.md, "Cursor"), and `GET /v1/events?after_cursor=N&limit=1` answers
// the first event after N. Since acceptance time grows with the cursor, a binary
// search over N finds where a time starts in O(log n) one-row requests.
//
// Deliveries: the listing is in id order, and delivery ids start with their event's
// creation time (48-bit milliseconds, Crockford base 32: router/src/ids.rs). The
// console builds the smallest id of a millisecond and resumes the listing after it.
// This is the one place where the console relies on the shape of a cursor the API
// calls opaque; if the server ever changes it, only deliveryCursorAt() changes.

import { get } from "./api.js";

const ms = (iso) => new Date(iso).getTime();

/**
 * The `after_cursor` from which `GET /v1/events` starts at the first event accepted at
 * or after `time` (a Date). 0 when that is the first event.
 */
export async function eventCursorAt(time, { signal } = {}) {
  const target = time.getTime();
  const first = async (after) => {
    const page = await get("/v1/events", { query: { after_cursor: after, limit: 1 }, signal });
    return page.data[0] || null;
  };
  // Invariant: every event with cursor <= lo is older than `time`; every event with
  // cursor > hi is at or after it.
  let e = await first(0);
  if (!e || ms(e.created_at) >= target) return 0;
  let lo = e.cursor;
  let hi = null;
  let probe = Math.max(1, lo * 2);
  while (hi === null) {
    e = await first(probe);
    if (!e || ms(e.created_at) >= target) hi = probe;
    else {
      lo = e.cursor;
      probe = lo * 2;
    }
  }
  while (hi > lo) {
    const mid = Math.floor((lo + hi) / 2);
    e = await first(mid);
    if (!e || ms(e.created_at) >= target) hi = mid;
    else lo = e.cursor;
  }
  return lo;
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** A delivery-listing cursor before every delivery of events created at or after `time`. */
export function deliveryCursorAt(time) {
  // 26 characters of 5 bits = 130 bits: the first character carries the top 3 bits of
  // the 128-bit value (48 bits of time, then 80 bits of randomness).
  let value = BigInt(Math.max(0, time.getTime() - 1)) << 80n;
  value |= (1n << 80n) - 1n; // the last id of the millisecond before: resume after it
  let s = "";
  for (let i = 25; i >= 0; i--) s += CROCKFORD[Number((value >> BigInt(i * 5)) & 31n)];
  return `dlv_${s}\u007f`;
}

/** When the event of a delivery was created, read from the delivery id (see above). */
export function deliveryEventTime(id) {
  const body = id.startsWith("dlv_") ? id.slice(4) : id;
  let v = 0n;
  for (const ch of body.slice(0, 26)) {
    const d = CROCKFORD.indexOf(ch);
    if (d < 0) return null;
    v = (v << 5n) | BigInt(d);
  }
  return new Date(Number(v >> 80n));
}
