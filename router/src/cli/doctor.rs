//! `gp doctor`: finds the usual setup problems and says how to fix each.
//!
//! It reads the configuration the way `gp serve` would (same file, same
//! `GATEPULSE_*` variables), looks at what the server needs on this machine (data
//! directory, free disk, the store's version, PostgreSQL, the master keys, the listen
//! port), then asks the server (`--server`, `GATEPULSE_URL` or the client profile, else
//! the configured listen address) whether it is healthy and ready, how far its clock
//! is from ours, what the token (`GATEPULSE_TOKEN` or the profile's) can do, and what
//! its own numbers warn about. It writes nothing anywhere.
//!
//! Exit codes: 0 no problem (warnings allowed), 1 a check failed, 2 usage.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::output::{self, Output};
use crate::config::{CliOverrides, Config};
use crate::store::Inspection;

/// Warn below this much free space in the data directory; fail below a tenth of it.
const LOW_DISK_BYTES: u64 = 1 << 30;
/// Clock skew with the server worth a warning; above `SKEW_FAIL` signatures fail
/// (Standard Webhooks receivers allow 5 minutes).
const SKEW_WARN_SECS: i64 = 5;
const SKEW_FAIL_SECS: i64 = 240;
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The server's TOML configuration file (also GATEPULSE_CONFIG).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The server's data directory, if not the configured one.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

/// One finding: what was checked, how it went, and what to do about it.
#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    status: Status,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

#[derive(Debug, Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, check: &'static str, status: Status, message: impl Into<String>) {
        self.checks.push(Check {
            check,
            status,
            message: message.into(),
            fix: None,
        });
    }

    fn problem(
        &mut self,
        check: &'static str,
        status: Status,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.checks.push(Check {
            check,
            status,
            message: message.into(),
            fix: Some(fix.into()),
        });
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

pub fn run(args: DoctorArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gp doctor: {e}");
            return 1;
        }
    };
    let report = runtime.block_on(examine(&args));
    match output::chosen(Output::Text) {
        Output::Json => {
            let doc = serde_json::json!({
                "ok": report.count(Status::Fail) == 0,
                "problems": report.count(Status::Fail),
                "warnings": report.count(Status::Warn),
                "checks": report.checks,
            });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Output::Text => print!("{}", render(&report)),
    }
    i32::from(report.count(Status::Fail) > 0)
}

/// The report for people: one line per check, its fix indented under it.
fn render(report: &Report) -> String {
    let mut out = String::new();
    for c in &report.checks {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        out.push_str(&format!("{tag}  {:<11} {}\n", c.check, c.message));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("      {:<11} fix: {fix}\n", ""));
        }
    }
    let (fail, warn) = (report.count(Status::Fail), report.count(Status::Warn));
    out.push_str(&match (fail, warn) {
        (0, 0) => "gp doctor: no problems found\n".to_owned(),
        (0, w) => format!("gp doctor: no problems, {w} warning(s)\n"),
        (f, w) => format!("gp doctor: {f} problem(s), {w} warning(s)\n"),
    });
    out
}

async fn examine(args: &DoctorArgs) -> Report {
    let mut report = Report::default();
    let file = args
        .config
        .clone()
        .or_else(|| std::env::var_os("GATEPULSE_CONFIG").map(PathBuf::from));
    let overrides = CliOverrides {
        listen: None,
        data_dir: args.data_dir.clone(),
    };
    let where_ = file.as_ref().map_or(
        "configuration (defaults, GATEPULSE_* variables)".to_owned(),
        |f| format!("configuration {}", f.display()),
    );
    let config = match Config::load(file.as_deref(), &overrides, false) {
        Ok(config) => {
            let backend = if config.postgres_url().is_some() {
                "postgres"
            } else {
                "redb"
            };
            report.add(
                "config",
                Status::Ok,
                format!("{where_}: valid (store: {backend})"),
            );
            for d in &config.deprecations {
                report.problem(
                    "config",
                    Status::Warn,
                    d.clone(),
                    "rename it; the old name keeps working until it is removed (docs/releases/README.md)",
                );
            }
            Some(config)
        }
        Err(e) => {
            report.problem(
                "config",
                Status::Fail,
                format!("{where_}: {}", one_line(&e.to_string())),
                "correct that setting (every key: docs/configuration.md); the server \
                 refuses to start until then",
            );
            None
        }
    };
    if let Some(config) = &config {
        check_store(&mut report, config).await;
        check_master_key(&mut report, config);
    }
    let client = match super::profile::resolve() {
        Ok(client) => {
            if let Some(name) = &client.profile {
                let file = super::profile::path().map(|p| p.display().to_string());
                report.add(
                    "profile",
                    Status::Ok,
                    format!("client profile {name:?} ({})", file.unwrap_or_default()),
                );
            }
            client
        }
        Err(e) => {
            report.problem(
                "profile",
                Status::Fail,
                e,
                "correct the client configuration (gp init --force rewrites it), or pick \
                 another with --profile",
            );
            super::profile::Resolved {
                url: None,
                token: None,
                tenant: None,
                profile: None,
            }
        }
    };
    let url = client
        .url
        .clone()
        .or_else(|| config.as_ref().map(|c| super::profile::local_url(c.listen)))
        .unwrap_or_else(|| super::profile::DEFAULT_URL.to_owned());
    check_server(&mut report, config.as_ref(), &url, &client).await;
    report
}

/// Errors from figment can span lines; a report line is one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn check_store(report: &mut Report, config: &Config) {
    let postgres = config.postgres_url().is_some();
    let what = if postgres { "schema" } else { "store" };
    if !postgres {
        check_data_dir(report, &config.data_dir);
    }
    let path = config.data_dir.join(crate::store::REDB_FILE);
    match crate::store::inspect(config).await {
        Ok(Inspection::Missing) => report.add(
            "store",
            Status::Ok,
            format!(
                "no store yet at {}: the first start creates it",
                path.display()
            ),
        ),
        Ok(Inspection::InUse) => report.add(
            "store",
            Status::Ok,
            format!("{} is open in a running server", path.display()),
        ),
        Ok(Inspection::NeedsRepair) => report.problem(
            "store",
            Status::Warn,
            format!("{} was not closed cleanly", path.display()),
            "the next start repairs it before serving (it can take a while on a large store)",
        ),
        Ok(Inspection::Version {
            stored,
            current,
            server,
        }) => {
            if let Some(server) = server {
                report.add(
                    "database",
                    Status::Ok,
                    format!("PostgreSQL {server} answers"),
                );
            }
            store_version(report, stored, current, what);
        }
        Err(e) if postgres => report.problem(
            "database",
            Status::Fail,
            format!("cannot reach PostgreSQL: {e}"),
            "check that the server runs and that `store` (GATEPULSE_STORE) names the \
             right host, port, database, user and password",
        ),
        Err(e) => report.problem(
            "store",
            Status::Fail,
            format!("cannot read {}: {e}", path.display()),
            "restore the last snapshot into a new data dir (docs/production/backup.md)",
        ),
    }
}

/// The stored version against the one this build writes.
fn store_version(report: &mut Report, found: Option<u32>, current: u32, what: &'static str) {
    match found {
        None => report.add(
            "store",
            Status::Ok,
            format!("no GatePulse {what} yet: the first start creates version {current}"),
        ),
        Some(v) if v == current => {
            report.add("store", Status::Ok, format!("{what} version {v} (current)"));
        }
        Some(v) if v < current => report.problem(
            "store",
            Status::Warn,
            format!("{what} version {v}; this build migrates it to {current} at start"),
            "take a snapshot or backup first; older builds then open it read-only \
             (docs/upgrading.md)",
        ),
        Some(v) => report.problem(
            "store",
            Status::Fail,
            format!("{what} version {v} is newer than this build reads ({current})"),
            "run the gp release that wrote it, or a newer one",
        ),
    }
}

fn check_data_dir(report: &mut Report, dir: &Path) {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            report.problem(
                "data_dir",
                Status::Fail,
                format!("{} is not a directory", dir.display()),
                "point data_dir (GATEPULSE_DATA_DIR, --data-dir) at a directory",
            );
            return;
        }
        Ok(_) => match writable(dir) {
            Ok(()) => report.add(
                "data_dir",
                Status::Ok,
                format!("{} is writable", dir.display()),
            ),
            Err(e) => report.problem(
                "data_dir",
                Status::Fail,
                format!("{} is not writable: {e}", dir.display()),
                "give the server's user write access (chown/chmod), or choose another data_dir",
            ),
        },
        Err(_) => {
            let parent = existing_ancestor(dir);
            match writable(&parent) {
                Ok(()) => report.add(
                    "data_dir",
                    Status::Ok,
                    format!(
                        "{} does not exist yet: the first start creates it",
                        dir.display()
                    ),
                ),
                Err(e) => report.problem(
                    "data_dir",
                    Status::Fail,
                    format!(
                        "{} does not exist and {} is not writable: {e}",
                        dir.display(),
                        parent.display()
                    ),
                    "create it for the server's user (mkdir -p, chown), or choose another data_dir",
                ),
            }
        }
    }
    let at = existing_ancestor(dir);
    match rustix::fs::statvfs(&at) {
        Ok(fs) => {
            let free = fs.f_bavail.saturating_mul(fs.f_frsize);
            let msg = format!("{} free at {}", human_bytes(free), at.display());
            let fix = "free space or move data_dir: a full disk stops every publish \
                       (the store refuses writes)";
            if free < LOW_DISK_BYTES / 10 {
                report.problem("disk", Status::Fail, msg, fix);
            } else if free < LOW_DISK_BYTES {
                report.problem("disk", Status::Warn, msg, fix);
            } else {
                report.add("disk", Status::Ok, msg);
            }
        }
        Err(e) => report.add(
            "disk",
            Status::Skip,
            format!("cannot read the free space at {}: {e}", at.display()),
        ),
    }
}

/// `dir` itself if it exists, else its nearest existing parent.
fn existing_ancestor(dir: &Path) -> PathBuf {
    let mut at = dir.to_path_buf();
    while !at.exists() {
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p.to_path_buf(),
            _ => return PathBuf::from("."),
        }
    }
    at
}

/// Creates and removes a file in `dir`: the only sure test of write access.
fn writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".gp-doctor-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn check_master_key(report: &mut Report, config: &Config) {
    match crate::crypto::Keyring::load(&config.master_key, config.master_key_file()) {
        Ok(keys) => {
            let versions: Vec<String> = keys.versions().iter().map(u32::to_string).collect();
            report.add(
                "master_key",
                Status::Ok,
                format!(
                    "version(s) {} configured; {} seals new secrets",
                    versions.join(", "),
                    keys.current_version()
                ),
            );
        }
        Err(e) => report.problem(
            "master_key",
            Status::Fail,
            format!("{e}"),
            "gp secrets generate-key --version 1, then set master_key (GATEPULSE_MASTER_KEY) \
             or master_key_file; keep it out of the data dir and the backups",
        ),
    }
}

async fn check_server(
    report: &mut Report,
    config: Option<&Config>,
    base: &str,
    client: &super::profile::Resolved,
) {
    let http = match reqwest::Client::builder().timeout(HTTP_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            report.add("server", Status::Skip, format!("no HTTP client: {e}"));
            return;
        }
    };
    let health = match http.get(format!("{base}/healthz")).send().await {
        Ok(r) => r,
        Err(e) => {
            let reason = reqwest_reason(&e);
            match config.map(|c| (c.listen, std::net::TcpListener::bind(c.listen))) {
                Some((listen, Err(bind))) if bind.kind() == std::io::ErrorKind::AddrInUse => {
                    report.problem(
                        "server",
                        Status::Fail,
                        format!("nothing answers at {base} ({reason}), but {listen} is taken"),
                        "another program holds the listen address: stop it, or set listen \
                         (GATEPULSE_LISTEN) and the client's server (GATEPULSE_URL) to a free one",
                    );
                }
                Some(_) => report.problem(
                    "server",
                    Status::Fail,
                    format!("nothing answers at {base}: {reason}"),
                    "start it: gp serve (with this configuration); the listen address is free",
                ),
                None => report.problem(
                    "server",
                    Status::Fail,
                    format!("nothing answers at {base}: {reason}"),
                    "start it, or point --server (GATEPULSE_URL) at where it runs",
                ),
            }
            return;
        }
    };
    let skew = server_skew(&health);
    let body: Value = health.json().await.unwrap_or(Value::Null);
    report.add(
        "server",
        Status::Ok,
        format!(
            "{base} answers (GatePulse {})",
            body["version"].as_str().unwrap_or("?")
        ),
    );
    match http.get(format!("{base}/readyz")).send().await {
        Ok(r) if r.status().is_success() => report.add("ready", Status::Ok, "the server is ready"),
        Ok(r) => {
            let status = r.status();
            let problem: Value = r.json().await.unwrap_or(Value::Null);
            report.problem(
                "ready",
                Status::Fail,
                format!(
                    "not ready ({status}, {}): {}",
                    problem["code"].as_str().unwrap_or("?"),
                    problem["detail"].as_str().unwrap_or("no detail")
                ),
                "read the server's log for the reason; a read-only store needs a newer gp \
                 or a restore",
            );
        }
        Err(e) => report.add(
            "ready",
            Status::Skip,
            format!("/readyz: {}", reqwest_reason(&e)),
        ),
    }
    match skew {
        Some(s) if s.abs() > SKEW_FAIL_SECS => report.problem(
            "clock",
            Status::Fail,
            format!("this machine's clock is {s} s off the server's"),
            "synchronise both clocks (NTP): receivers refuse signatures more than 5 minutes off",
        ),
        Some(s) if s.abs() > SKEW_WARN_SECS => report.problem(
            "clock",
            Status::Warn,
            format!("this machine's clock is {s} s off the server's"),
            "synchronise both clocks (NTP)",
        ),
        Some(s) => report.add(
            "clock",
            Status::Ok,
            format!("within {} s of the server's", s.abs()),
        ),
        None => report.add("clock", Status::Skip, "the server sent no Date header"),
    }
    check_token(report, &http, base, client).await;
}

fn header_text<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Server clock minus ours, in seconds, from the response's `Date`.
fn server_skew(r: &reqwest::Response) -> Option<i64> {
    let date = header_text(r, "date")?;
    let at =
        time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc2822).ok()?;
    Some(at.unix_timestamp() - crate::clock::now_ms() / 1000)
}

/// The cause of a failed request, without the URL reqwest puts in front.
fn reqwest_reason(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_timeout() {
        format!("no answer in {} s", HTTP_TIMEOUT.as_secs())
    } else {
        cause.to_string()
    }
}

async fn check_token(
    report: &mut Report,
    http: &reqwest::Client,
    base: &str,
    client: &super::profile::Resolved,
) {
    let Some(token) = client.token.as_deref() else {
        report.problem(
            "token",
            Status::Skip,
            "no token (GATEPULSE_TOKEN or a profile's): the API checks were skipped",
            "export GATEPULSE_TOKEN=<an API key or the admin token>, or gp init, to check it too",
        );
        return;
    };
    let tenant = client.tenant.as_deref();
    let mut who = http.get(format!("{base}/v1/whoami")).bearer_auth(token);
    if let Some(tenant) = tenant {
        who = who.header("GatePulse-Tenant", tenant);
    }
    let me: Value = match who.send().await {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
        Ok(r) => {
            let status = r.status();
            let problem: Value = r.json().await.unwrap_or(Value::Null);
            report.problem(
                "token",
                Status::Fail,
                format!(
                    "the server refuses the token ({status}, {}): {}",
                    problem["code"].as_str().unwrap_or("?"),
                    problem["detail"].as_str().unwrap_or("no detail")
                ),
                "set GATEPULSE_TOKEN (or the profile's token) to a live API key (gp keys \
                 create) or the server's admin token",
            );
            return;
        }
        Err(e) => {
            report.add(
                "token",
                Status::Skip,
                format!("/v1/whoami: {}", reqwest_reason(&e)),
            );
            return;
        }
    };
    let kind = me["kind"].as_str().unwrap_or("?");
    let scopes = me["scopes"].as_array().map_or(0, Vec::len);
    let described = match kind {
        "admin" => "the admin token".to_owned(),
        _ => format!(
            "API key {} of tenant {} ({scopes} scope(s){})",
            me["key_id"].as_str().unwrap_or("?"),
            me["tenant_id"].as_str().unwrap_or("?"),
            me["expires_at"]
                .as_str()
                .map(|t| format!(", expires {t}"))
                .unwrap_or_default()
        ),
    };
    report.add("token", Status::Ok, format!("accepted: {described}"));
    check_stats(report, http, base, token, tenant).await;
}

/// What the server's own numbers warn about: dead letters, disabled endpoints, open
/// circuits.
async fn check_stats(
    report: &mut Report,
    http: &reqwest::Client,
    base: &str,
    token: &str,
    tenant: Option<&str>,
) {
    let mut req = http.get(format!("{base}/v1/stats")).bearer_auth(token);
    if let Some(tenant) = tenant {
        req = req.header("GatePulse-Tenant", tenant);
    }
    let stats: Value = match req.send().await {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
        Ok(r) => {
            report.add(
                "stats",
                Status::Skip,
                format!(
                    "/v1/stats answered {} (the token lacks stats:read?)",
                    r.status()
                ),
            );
            return;
        }
        Err(e) => {
            report.add(
                "stats",
                Status::Skip,
                format!("/v1/stats: {}", reqwest_reason(&e)),
            );
            return;
        }
    };
    let mut warned = false;
    let dlq = stats["dlq_size"].as_u64().unwrap_or(0);
    if dlq > 0 {
        warned = true;
        report.problem(
            "stats",
            Status::Warn,
            format!("{dlq} deliveries are in the DLQ"),
            "see why in GET /v1/dlq, fix the endpoint, then requeue (docs/delivery.md)",
        );
    }
    let endpoints = stats["endpoints"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let disabled = endpoints.iter().filter(|e| e["enabled"] == false).count();
    if disabled > 0 {
        warned = true;
        report.problem(
            "stats",
            Status::Warn,
            format!("{disabled} endpoint(s) disabled"),
            "GET /v1/endpoints shows disabled_reason; PATCH {\"enabled\": true} once fixed",
        );
    }
    let open = endpoints.iter().filter(|e| e["circuit"] == "open").count();
    if open > 0 {
        warned = true;
        report.problem(
            "stats",
            Status::Warn,
            format!("{open} endpoint(s) with an open circuit (failing now)"),
            "GET /v1/endpoints/{id}/health shows the last status; deliveries resume by themselves",
        );
    }
    if !warned {
        report.add(
            "stats",
            Status::Ok,
            format!(
                "queue {}, retrying {}, DLQ empty",
                stats["queue_depth"].as_u64().unwrap_or(0),
                stats["retry_backlog"].as_u64().unwrap_or(0)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_how_many_problems_and_shows_each_fix() {
        let mut r = Report::default();
        r.add("config", Status::Ok, "fine");
        r.problem("server", Status::Fail, "down", "start it");
        r.problem("disk", Status::Warn, "low", "free some");
        let text = render(&r);
        assert!(text.contains("FAIL  server      down\n"), "{text}");
        assert!(text.contains("fix: start it"), "{text}");
        assert!(
            text.ends_with("gp doctor: 1 problem(s), 1 warning(s)\n"),
            "{text}"
        );
        assert_eq!(r.count(Status::Fail), 1);
    }

    #[test]
    fn sizes_and_lines_read_well() {
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(one_line("a\n  b"), "a b");
    }
}
