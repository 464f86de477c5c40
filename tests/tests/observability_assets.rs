//! The dashboards in `grafana/` and the alert rules in `prometheus/` use only metrics
//! the server exports (SPEC OBS-1): every `gatepulse_*` name in a rule, a rule test's
//! input series or a dashboard query is listed in `ALL_METRICS` of
//! `router/src/telemetry.rs`, the one place metric names are defined; a histogram is
//! queried only through its `_bucket`, `_sum` and `_count` series. Also: the dashboard
//! JSON holds together as a Grafana model, and every alert has a promtool test case
//! where it fires and one where it does not (`prometheus/check.sh` runs promtool).
//!
//! `telemetry.rs` is read as text, not linked: the end-to-end tests reach GatePulse
//! only through the binary, HTTP and the SDKs (ARCHITECTURE.md), and its `pub const`
//! names, `ALL_METRICS` and `histogram!` calls are plain enough to read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use gatepulse_e2e::{workspace_file as read, workspace_root};

/// The metric names telemetry.rs exports, and which of them are histograms.
struct Exported {
    names: BTreeSet<String>,
    histograms: BTreeSet<String>,
}

/// `NAME → "gatepulse_…"` for every `pub const NAME: &str = "…";` of telemetry.rs.
fn string_consts(src: &str) -> BTreeMap<String, String> {
    let mut consts = BTreeMap::new();
    for chunk in src.split("pub const ").skip(1) {
        let Some((name, rest)) = chunk.split_once(':') else {
            continue;
        };
        let declaration = rest.split(';').next().unwrap_or_default();
        if !declaration.trim_start().starts_with("&str") {
            continue;
        }
        if let Some(value) = declaration.split('"').nth(1) {
            consts.insert(name.trim().to_owned(), value.to_owned());
        }
    }
    consts
}

/// A metric named in telemetry.rs source: a const's name or a string literal.
fn resolve(consts: &BTreeMap<String, String>, token: &str) -> Option<String> {
    let token = token.trim();
    if let Some(literal) = token.strip_prefix('"') {
        return literal.strip_suffix('"').map(str::to_owned);
    }
    consts.get(token).cloned()
}

/// The first argument of every `<mac>(` call in `src` (`describe_histogram!(` counts
/// as `histogram!(`), resolved to a metric name.
fn macro_metrics(src: &str, consts: &BTreeMap<String, String>, mac: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for chunk in src.split(mac).skip(1) {
        let arg = chunk.split([',', ')']).next().unwrap_or_default().trim();
        let name = resolve(consts, arg).unwrap_or_else(|| {
            panic!(
                "router/src/telemetry.rs: `{mac}{arg}`: the metric should be a `pub const …: &str` \
                 of telemetry.rs (or a string literal) so that this test can read it"
            )
        });
        out.insert(name);
    }
    out
}

fn exported() -> Exported {
    let src = read("router/src/telemetry.rs");
    let consts = string_consts(&src);
    let start = src
        .find("pub const ALL_METRICS")
        .expect("router/src/telemetry.rs defines `pub const ALL_METRICS`");
    let list = &src[start..];
    let open = list.find("= &[").expect("ALL_METRICS is `= &[ … ];`") + 4;
    let close = open + list[open..].find("];").expect("ALL_METRICS ends with `];`");
    let mut names = BTreeSet::new();
    for line in list[open..close].lines() {
        let line = line.split("//").next().unwrap_or_default();
        for item in line.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let name = resolve(&consts, item).unwrap_or_else(|| {
                panic!(
                    "ALL_METRICS lists `{item}`, which is not a `pub const …: &str` of telemetry.rs"
                )
            });
            names.insert(name);
        }
    }
    assert!(
        !names.is_empty(),
        "read no names from ALL_METRICS in telemetry.rs"
    );
    let histograms = macro_metrics(&src, &consts, "histogram!(");
    assert!(
        !histograms.is_empty(),
        "found no histogram!( calls in telemetry.rs"
    );
    Exported { names, histograms }
}

/// Every `gatepulse_[a-z0-9_]+` token of `text` that starts a word.
fn metric_tokens(text: &str) -> Vec<String> {
    const PREFIX: &str = "gatepulse_";
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(PREFIX) {
        let start = from + found;
        let mut end = start + PREFIX.len();
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        let starts_word = start == 0 || {
            let before = bytes[start - 1];
            !(before.is_ascii_alphanumeric() || before == b'_' || before == b':')
        };
        if starts_word {
            out.push(text[start..end].to_owned());
        }
        from = end;
    }
    out
}

/// Why `name` is not a series the server exports, if it is not.
fn not_exported(name: &str, exported: &Exported) -> Option<String> {
    if exported.histograms.contains(name) {
        return Some(format!(
            "`{name}` is a histogram: query `{name}_bucket`, `{name}_sum` or `{name}_count`"
        ));
    }
    if exported.names.contains(name) {
        return None;
    }
    let histogram_series = ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|base| exported.histograms.contains(base) && exported.names.contains(base))
    });
    if histogram_series {
        return None;
    }
    Some(format!(
        "`{name}` is not exported: it is not in ALL_METRICS of router/src/telemetry.rs \
         (add it there, or fix the name)"
    ))
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// `key: value` of a YAML line, a list item's first key (`- key: value`) included.
fn yaml_key<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let trimmed = line.trim_start();
    let item = trimmed.strip_prefix("- ").unwrap_or(trimmed);
    item.strip_prefix(key)?.strip_prefix(':').map(str::trim)
}

/// The values of every `key:` in a YAML file: inline (quotes removed), or a `|` / `>`
/// block (the lines indented deeper than the key). Enough for the files of
/// `prometheus/`, which is all it reads.
fn yaml_values(text: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let Some(value) = yaml_key(line, key) else {
            continue;
        };
        if value.starts_with('|') || value.starts_with('>') {
            let mut block = Vec::new();
            while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > indent(line))
            {
                block.push(lines[i].trim());
                i += 1;
            }
            out.push(block.join("\n").trim().to_owned());
        } else {
            out.push(value.trim_matches(|c| c == '"' || c == '\'').to_owned());
        }
    }
    out
}

fn assert_all_exported(sources: &[(String, String)], exported: &Exported) {
    let mut problems = Vec::new();
    for (place, text) in sources {
        for name in metric_tokens(text) {
            if let Some(why) = not_exported(&name, exported) {
                problems.push(format!("{place}: {why}"));
            }
        }
    }
    problems.dedup();
    assert!(
        problems.is_empty(),
        "metric names that the server does not export:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn alert_rules_use_only_exported_metrics() {
    let exported = exported();
    let rules = read("prometheus/alerts.yml");
    let exprs = yaml_values(&rules, "expr");
    let alerts = yaml_values(&rules, "alert");
    let records = yaml_values(&rules, "record");
    assert!(!exprs.is_empty(), "prometheus/alerts.yml: no `expr:` found");
    assert_eq!(
        exprs.len(),
        alerts.len() + records.len(),
        "prometheus/alerts.yml: every rule has one `expr:` (found {} exprs for {} alerts and {} records)",
        exprs.len(),
        alerts.len(),
        records.len()
    );
    let mut sources = Vec::new();
    for (i, expr) in exprs.iter().enumerate() {
        assert!(
            !metric_tokens(expr).is_empty() || expr.contains("up{"),
            "prometheus/alerts.yml: rule {i} names no GatePulse metric: {expr}"
        );
        let rule = alerts.get(i).map_or("a recording rule", String::as_str);
        sources.push((format!("prometheus/alerts.yml ({rule})"), expr.clone()));
    }
    assert_all_exported(&sources, &exported);
}

#[test]
fn alert_rule_tests_feed_only_exported_series() {
    let exported = exported();
    let tests = read("prometheus/alerts_test.yml");
    let series = yaml_values(&tests, "series");
    assert!(
        !series.is_empty(),
        "prometheus/alerts_test.yml: no `series:` found"
    );
    let sources: Vec<(String, String)> = series
        .into_iter()
        .map(|s| ("prometheus/alerts_test.yml".to_owned(), s))
        .collect();
    assert_all_exported(&sources, &exported);
}

/// (alert name, fires) for every `alert_rule_test` case: `exp_alerts: []` (or none)
/// is a case where the alert must not fire.
fn alert_test_cases(text: &str) -> Vec<(String, bool)> {
    let case_keys = ["eval_time", "alertname", "exp_alerts"];
    let mut cases: Vec<Vec<&str>> = Vec::new();
    let mut in_rule_tests = false;
    let mut list_indent = 0;
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if yaml_key(line, "alert_rule_test").is_some() {
            in_rule_tests = true;
            list_indent = indent(line);
            continue;
        }
        if !in_rule_tests {
            continue;
        }
        // A line back at the key's level (or a new test) ends the list.
        let level = indent(line);
        if level < list_indent || (level == list_indent && !line.trim_start().starts_with("- ")) {
            in_rule_tests = false;
            continue;
        }
        let starts_case = line.trim_start().starts_with("- ")
            && case_keys.iter().any(|k| yaml_key(line, k).is_some());
        if starts_case {
            cases.push(Vec::new());
        }
        if let Some(case) = cases.last_mut() {
            case.push(line);
        }
    }
    cases
        .into_iter()
        .filter_map(|lines| {
            let name = lines.iter().find_map(|l| yaml_key(l, "alertname"))?;
            let fires = lines
                .iter()
                .find_map(|l| yaml_key(l, "exp_alerts"))
                .is_some_and(|v| v != "[]" && lines.iter().any(|l| l.contains("exp_labels")));
            Some((
                name.trim_matches(|c| c == '"' || c == '\'').to_owned(),
                fires,
            ))
        })
        .collect()
}

#[test]
fn every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() {
    let rules = read("prometheus/alerts.yml");
    let alerts: BTreeSet<String> = yaml_values(&rules, "alert").into_iter().collect();
    assert!(
        !alerts.is_empty(),
        "prometheus/alerts.yml: no `alert:` found"
    );
    let cases = alert_test_cases(&read("prometheus/alerts_test.yml"));
    let mut problems = Vec::new();
    for alert in &alerts {
        let fires = cases.iter().any(|(name, f)| name == alert && *f);
        let silent = cases.iter().any(|(name, f)| name == alert && !*f);
        if !fires {
            problems.push(format!("{alert}: no case where it fires"));
        }
        if !silent {
            problems.push(format!(
                "{alert}: no case where it does not fire (exp_alerts: [])"
            ));
        }
    }
    for (name, _) in &cases {
        if !alerts.contains(name) {
            problems.push(format!(
                "a test case names `{name}`, which alerts.yml does not define"
            ));
        }
    }
    problems.dedup();
    assert!(
        problems.is_empty(),
        "prometheus/alerts_test.yml:\n  {}",
        problems.join("\n  ")
    );
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = workspace_root().join("grafana");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboard (*.json) in grafana/");
    files
        .into_iter()
        .map(|path| {
            let name = format!("grafana/{}", path.file_name().unwrap().to_string_lossy());
            let text = std::fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            (name, json)
        })
        .collect()
}

/// Every string under an `expr` key, anywhere in the model.
fn exprs_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "expr"
                    && let Some(s) = v.as_str()
                {
                    out.push(s.to_owned());
                }
                exprs_in(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs_in(v, out)),
        _ => {}
    }
}

fn variables(dashboard: &Value) -> Vec<&Value> {
    dashboard["templating"]["list"]
        .as_array()
        .map(|l| l.iter().collect())
        .unwrap_or_default()
}

/// The queries of the dashboard's query variables (`definition`, and `query` as a
/// string or as `{"query": …}`).
fn variable_queries(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for var in variables(dashboard) {
        if var["type"] != "query" {
            continue;
        }
        for q in [&var["definition"], &var["query"], &var["query"]["query"]] {
            if let Some(s) = q.as_str() {
                out.push(s.to_owned());
            }
        }
    }
    out
}

#[test]
fn dashboards_use_only_exported_metrics() {
    let exported = exported();
    let mut sources = Vec::new();
    for (name, dashboard) in dashboards() {
        let mut exprs = Vec::new();
        exprs_in(&dashboard, &mut exprs);
        assert!(!exprs.is_empty(), "{name}: no `expr` in any panel");
        exprs.extend(variable_queries(&dashboard));
        sources.extend(exprs.into_iter().map(|e| (name.clone(), e)));
    }
    assert_all_exported(&sources, &exported);
}

/// Panels at the top level and inside (collapsed) rows.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// `$name` and `${name}` references, Grafana's own `$__…` left out.
fn variable_refs(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in expr.split('$').skip(1) {
        let chunk = chunk.strip_prefix('{').unwrap_or(chunk);
        let name: String = chunk
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !name.starts_with("__") {
            out.push(name);
        }
    }
    out
}

struct Rect {
    id: u64,
    x: u64,
    y: u64,
    w: u64,
    h: u64,
}

impl Rect {
    fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }
}

fn check_dashboard(name: &str, dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |p: String| problems.push(format!("{name}: {p}"));
    if dashboard["title"]
        .as_str()
        .is_none_or(|t| t.trim().is_empty())
    {
        problem("no `title`".into());
    }
    let uid_ok = dashboard["uid"].as_str().is_some_and(|u| {
        (1..=40).contains(&u.len())
            && u.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if !uid_ok {
        problem("`uid` must be 1 to 40 letters, digits, `-` or `_`".into());
    }
    match dashboard["schemaVersion"].as_u64() {
        Some(v) if v >= 38 => {}
        other => problem(format!(
            "`schemaVersion` must be at least 38, found {other:?}"
        )),
    }

    let vars = variables(dashboard);
    let var_names: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    let has_ds_var = vars.iter().any(|v| {
        v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource" && v["query"] == "prometheus"
    });
    if !has_ds_var {
        problem(
            "no data source variable `DS_PROMETHEUS` (type datasource, query prometheus)".into(),
        );
    }

    let panels = all_panels(dashboard);
    if panels.iter().all(|p| p["type"] == "row") {
        problem("no panels".into());
    }
    let mut ids = BTreeSet::new();
    let mut rects = Vec::new();
    let top_level: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        let Some(id) = panel["id"].as_u64() else {
            problem(format!("panel `{title}` has no numeric `id`"));
            continue;
        };
        let label = format!("panel {id} `{title}`");
        if !ids.insert(id) {
            problem(format!("{label}: id used twice"));
        }
        if panel["type"].as_str().is_none_or(str::is_empty) {
            problem(format!("{label}: no `type`"));
        }
        let grid = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_u64());
        match (x, y, w, h) {
            (Some(x), Some(y), Some(w), Some(h)) if w >= 1 && h >= 1 && x + w <= 24 => {
                if top_level.iter().any(|p| std::ptr::eq(*p, *panel)) {
                    rects.push(Rect { id, x, y, w, h });
                }
            }
            _ => problem(format!(
                "{label}: `gridPos` needs x, y, w ≥ 1, h ≥ 1 with x + w ≤ 24, found {grid}"
            )),
        }
        if panel["type"] == "row" {
            continue;
        }
        if panel["datasource"]["uid"] != "${DS_PROMETHEUS}" {
            problem(format!(
                "{label}: datasource must be {{\"uid\": \"${{DS_PROMETHEUS}}\"}}, found {}",
                panel["datasource"]
            ));
        }
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if targets.is_empty() {
            problem(format!("{label}: no `targets`"));
        }
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            match target["refId"].as_str() {
                Some(r) if !r.is_empty() => {
                    if !ref_ids.insert(r) {
                        problem(format!("{label}: refId `{r}` used twice"));
                    }
                }
                _ => problem(format!("{label}: a target has no `refId`")),
            }
            let Some(expr) = target["expr"].as_str().filter(|e| !e.trim().is_empty()) else {
                problem(format!("{label}: a target has no `expr`"));
                continue;
            };
            for var in variable_refs(expr) {
                if !var_names.contains(var.as_str()) {
                    problem(format!("{label}: `${var}` is not a dashboard variable"));
                }
            }
            let ds = &target["datasource"]["uid"];
            if !ds.is_null() && ds != "${DS_PROMETHEUS}" {
                problem(format!(
                    "{label}: a target's datasource is {ds}, not ${{DS_PROMETHEUS}}"
                ));
            }
        }
    }
    for (i, a) in rects.iter().enumerate() {
        for b in &rects[i + 1..] {
            if a.overlaps(b) {
                problem(format!("panels {} and {} overlap", a.id, b.id));
            }
        }
    }
    problems
}

#[test]
fn dashboards_are_valid_grafana_models() {
    let mut problems = Vec::new();
    for (name, dashboard) in dashboards() {
        problems.extend(check_dashboard(&name, &dashboard));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn metrics_are_recorded_only_through_telemetry_rs() {
    let exported = exported();
    let src = read("router/src/telemetry.rs");
    let consts = string_consts(&src);
    let mut problems = Vec::new();
    for mac in ["counter!(", "gauge!(", "histogram!("] {
        for name in macro_metrics(&src, &consts, mac) {
            if !exported.names.contains(&name) {
                problems.push(format!(
                    "telemetry.rs records `{name}` but ALL_METRICS does not list it"
                ));
            }
        }
    }
    // Elsewhere in the server: no metric macro, and no exported name spelled out again.
    let mut files = Vec::new();
    rust_files(&workspace_root().join("router/src"), &mut files);
    for file in files {
        if file.ends_with("telemetry.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file
            .strip_prefix(workspace_root())
            .unwrap_or(&file)
            .display()
            .to_string();
        for mac in ["counter!(", "gauge!(", "histogram!("] {
            if text.contains(mac) {
                problems.push(format!(
                    "{rel} calls `{mac}`: metrics are named and recorded in telemetry.rs only"
                ));
            }
        }
        for name in &exported.names {
            if text.contains(&format!("\"{name}\"")) {
                problems.push(format!(
                    "{rel} spells out `{name}`: use the constant of telemetry.rs"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `prometheus/check.sh`: `promtool check rules` and `promtool test rules` on the alert
/// rules, `promtool check config` on the example configuration, and every dashboard
/// query parsed by promtool. Without promtool this fails with one line saying how to
/// get it (`GATEPULSE_SKIP_PROMTOOL=1` skips it on a machine that cannot have it).
#[test]
fn promtool_checks_and_rule_tests_pass() {
    let promtool = std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into());
    let found = Command::new(&promtool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var_os("GATEPULSE_SKIP_PROMTOOL").is_some() {
            eprintln!("skipped: promtool not found and GATEPULSE_SKIP_PROMTOOL is set");
            return;
        }
        panic!(
            "promtool not found: install it with `apt-get install prometheus` (Debian and Ubuntu \
             ship promtool in it) or set PROMTOOL=/path/to/promtool; GATEPULSE_SKIP_PROMTOOL=1 skips this test"
        );
    }
    let out = Command::new("bash")
        .arg(workspace_root().join("prometheus/check.sh"))
        .output()
        .expect("bash runs prometheus/check.sh");
    assert!(
        out.status.success(),
        "prometheus/check.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_name_scanner_reads_what_the_checks_rely_on() {
    assert_eq!(
        metric_tokens(
            "sum(rate(gatepulse_a_total{job=\"gatepulse\"}[5m])) / x:gatepulse_b + gatepulse_c_bucket"
        ),
        ["gatepulse_a_total", "gatepulse_c_bucket"]
    );
    let exported = Exported {
        names: ["gatepulse_h_seconds", "gatepulse_c_total"]
            .map(String::from)
            .into(),
        histograms: ["gatepulse_h_seconds"].map(String::from).into(),
    };
    assert!(not_exported("gatepulse_h_seconds_bucket", &exported).is_none());
    assert!(not_exported("gatepulse_h_seconds_count", &exported).is_none());
    assert!(not_exported("gatepulse_c_total", &exported).is_none());
    assert!(not_exported("gatepulse_h_seconds", &exported).is_some());
    assert!(not_exported("gatepulse_c_total_bucket", &exported).is_some());
    assert!(not_exported("gatepulse_nope", &exported).is_some());
    let yaml = "rules:\n  - alert: A\n    expr: |\n      up\n      == 0\n    for: 1m\n  - alert: B\n    expr: 'x > 1'\n";
    assert_eq!(yaml_values(yaml, "expr"), ["up\n== 0", "x > 1"]);
    assert_eq!(yaml_values(yaml, "alert"), ["A", "B"]);
    let tests = "tests:\n  - alert_rule_test:\n      - eval_time: 1m\n        alertname: A\n        exp_alerts: []\n      - eval_time: 2m\n        alertname: A\n        exp_alerts:\n          - exp_labels:\n              x: y\n";
    assert_eq!(
        alert_test_cases(tests),
        [("A".to_owned(), false), ("A".to_owned(), true)]
    );
    assert_eq!(
        variable_refs("x{a=~\"$job\", b=\"${instance}\"}[$__rate_interval]"),
        ["job", "instance"]
    );
}
