// Finding a point in time in the events listing, which has no time parameter (the
// deliveries listing has `since` and `until`).
//
// A tenant's events carry stream cursors 1, 2, 3, … in commit order
// (docs/api-guide.md, "Cursor"), and `GET /v1/events?after_cursor=N&limit=1` answers
// the first event after N. Since acceptance time grows with the cursor, a binary
// search over N finds where a time starts in O(log n) one-row requests.

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
