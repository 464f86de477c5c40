#!/usr/bin/env bash
# Checks the alerting rules and runs their unit tests with promtool:
#   promtool check rules prometheus/alerts.yml
#   promtool test rules prometheus/alerts_test.yml
# and checks the example scrape configuration. Exits non-zero on any failure.
# PROMTOOL=/path/to/promtool overrides the promtool on PATH.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
promtool="${PROMTOOL:-promtool}"
if ! command -v "$promtool" >/dev/null 2>&1; then
  echo "prometheus/check.sh: promtool not found; install it with 'apt-get install prometheus' (Debian and Ubuntu ship promtool in it) or put the promtool of a Prometheus release on PATH (or set PROMTOOL)" >&2
  exit 1
fi

"$promtool" check rules prometheus/alerts.yml
"$promtool" test rules prometheus/alerts_test.yml
"$promtool" check config prometheus/prometheus.yml

# The dashboard's queries, parsed by promtool as recording rules (Grafana's variables
# replaced by sample values), so a PromQL typo in grafana/*.json fails here too.
if command -v python3 >/dev/null 2>&1; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 - "$tmp/dashboard_rules.yml" grafana/*.json <<'PY'
import json, sys

out, files = sys.argv[1], sys.argv[2:]
subs = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h",
        "$job": "gatepulse", "$instance": ".*"}
rules = []

def walk(node, where):
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            expr = node["expr"]
            for k, v in subs.items():
                expr = expr.replace(k, v)
            rules.append({"record": "dashboard:query:%d" % len(rules), "expr": expr,
                          "labels": {"source": where}})
        for v in node.values():
            walk(v, where)
    elif isinstance(node, list):
        for v in node:
            walk(v, where)

for f in files:
    walk(json.load(open(f)), f)
# JSON is YAML: promtool reads this file as a rule file.
json.dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, open(out, "w"), indent=1)
print("dashboard queries: %d from %s" % (len(rules), " ".join(files)))
PY
  "$promtool" check rules "$tmp/dashboard_rules.yml"
else
  echo "prometheus/check.sh: python3 not found; skipped parsing the dashboard queries"
fi
