/**
 * Topic patterns, matched exactly as the router matches them (AMQP syntax): `*` is
 * one segment, `#` zero or more. `sdk/conformance/topic-patterns.json` pins it.
 *
 * @module
 */

/** True when `topic` matches `pattern` (`orders.*`, `orders.#`, `#`, `orders.created`). */
export function topicMatches(pattern: string, topic: string): boolean {
  const parts = topic.split(".");
  // reach[j]: the pattern segments seen so far consume exactly the first j topic segments.
  let reach = parts.map(() => false).concat(false);
  reach[0] = true;
  for (const seg of pattern.split(".")) {
    const next = reach.map(() => false);
    if (seg === "#") {
      let any = false;
      reach.forEach((r, j) => {
        any ||= r;
        next[j] = any;
      });
    } else {
      parts.forEach((part, j) => {
        next[j + 1] = (reach[j] ?? false) && (seg === "*" || seg === part);
      });
    }
    reach = next;
  }
  return reach[parts.length] ?? false;
}
