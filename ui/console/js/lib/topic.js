// Topic patterns as the server matches them (API guide, "Topics and patterns"): `*` is
// exactly one segment, `#` zero or more. Used only to preview (which subscriptions an
// event would reach); the server always decides.

export function topicMatches(pattern, topic) {
  const p = pattern.split(".");
  const t = topic.split(".");
  const memo = new Map();
  const go = (i, j) => {
    const key = i * 1000 + j;
    if (memo.has(key)) return memo.get(key);
    let r;
    if (i === p.length) r = j === t.length;
    else if (p[i] === "#") r = go(i + 1, j) || (j < t.length && go(i, j + 1));
    else if (j === t.length) r = false;
    else r = (p[i] === "*" || p[i] === t[j]) && go(i + 1, j + 1);
    memo.set(key, r);
    return r;
  };
  return go(0, 0);
}

/** A concrete topic that `pattern` matches, for sample events (`orders.*` → `orders.test`). */
export function sampleTopic(pattern) {
  if (!pattern) return "console.test";
  const segs = pattern.split(".").map((s) => (s === "*" ? "test" : s)).filter((s) => s !== "#");
  return segs.length ? segs.join(".") : "console.test";
}
