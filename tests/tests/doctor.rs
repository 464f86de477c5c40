//! `gp doctor` against real setups: a healthy server passes every check, and each
//! usual breakage (wrong token, server down, unknown config key, a data dir that is a
//! file, a store from a newer build) gets one failing line that says what to do, with
//! the documented exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use gatepulse_e2e::{ADMIN_TOKEN, Backend, Gp, MASTER_KEY, gp_binary};
use serde_json::Value;

/// Runs `gp doctor` with the server's environment plus `env`; `(exit code, stdout)`.
fn doctor(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = std::process::Command::new(gp_binary().unwrap());
    cmd.arg("doctor")
        .args(args)
        .env("GATEPULSE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("GATEPULSE_MASTER_KEY", MASTER_KEY)
        .env_remove("GATEPULSE_TOKEN")
        .env_remove("GATEPULSE_URL")
        .env_remove("GATEPULSE_CONFIG")
        .env_remove("GATEPULSE_PROFILE")
        // No client profile of the machine's user leaks into the checks.
        .env(
            "GATEPULSE_CLIENT_CONFIG",
            "/nonexistent/gatepulse/config.toml",
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output { status, stdout, .. } = cmd.output().unwrap();
    (status.code().unwrap(), String::from_utf8(stdout).unwrap())
}

/// The checks of a JSON report by name: (status, message, fix).
fn checks(json: &str) -> Vec<(String, String, String, String)> {
    let doc: Value = serde_json::from_str(json).unwrap();
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["message"].as_str().unwrap().to_owned(),
                c["fix"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn failing(report: &[(String, String, String, String)]) -> Vec<&str> {
    report
        .iter()
        .filter(|c| c.1 == "fail")
        .map(|c| c.0.as_str())
        .collect()
}

fn dir_env(dir: &Path) -> String {
    dir.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_setup_passes_and_each_breakage_gets_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut gp = Gp::start(dir.path(), &[]).await.unwrap();
    let data = dir_env(dir.path());
    let base = gp.base.clone();
    let env = [
        ("GATEPULSE_DATA_DIR", data.as_str()),
        ("GATEPULSE_URL", base.as_str()),
        ("GATEPULSE_TOKEN", ADMIN_TOKEN),
    ];

    let (code, out) = doctor(&["--output", "json"], &env);
    let report = checks(&out);
    assert_eq!(code, 0, "{out}");
    for name in [
        "config",
        "data_dir",
        "disk",
        "store",
        "master_key",
        "server",
        "ready",
        "clock",
        "token",
        "stats",
    ] {
        let c = report.iter().find(|c| c.0 == name).expect(name);
        assert_eq!(c.1, "ok", "{name}: {c:?}");
    }
    let store = report.iter().find(|c| c.0 == "store").unwrap();
    assert!(store.2.contains("running server"), "{store:?}");

    // A wrong token: one failing line, and what to do.
    let (code, out) = doctor(
        &["--output", "json"],
        &[env[0], env[1], ("GATEPULSE_TOKEN", "gpk_not_a_real_key")],
    );
    let report = checks(&out);
    assert_eq!(code, 1, "{out}");
    assert_eq!(failing(&report), ["token"], "{out}");
    let token = report.iter().find(|c| c.0 == "token").unwrap();
    assert!(token.2.contains("401"), "{token:?}");
    assert!(token.3.contains("GATEPULSE_TOKEN"), "{token:?}");

    // The server down: the store is read from its file now (the current version).
    gp.terminate().unwrap();
    let (code, out) = doctor(&["--output", "json"], &env);
    let report = checks(&out);
    assert_eq!(code, 1, "{out}");
    assert_eq!(failing(&report), ["server"], "{out}");
    let store = report.iter().find(|c| c.0 == "store").unwrap();
    assert!(store.2.contains("(current)"), "{store:?}");
    let server = report.iter().find(|c| c.0 == "server").unwrap();
    assert!(
        server.2.contains(&base) && server.3.contains("gp serve"),
        "{server:?}"
    );

    // For people: one FAIL line per problem, its fix under it, the summary last.
    let (code, text) = doctor(&[], &env);
    assert_eq!(code, 1);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FAIL")).count(),
        1,
        "{text}"
    );
    assert!(text.contains("fix: start it"), "{text}");
    assert!(
        text.trim_end().ends_with("1 problem(s), 0 warning(s)"),
        "{text}"
    );

    // An unknown configuration key is named, with the file it is in.
    let config = dir.path().join("gatepulse.toml");
    std::fs::write(&config, "[api]\nbogus_key = 1\n").unwrap();
    let config_path = config.display().to_string();
    let (code, out) = doctor(&["--output", "json", "--config", &config_path], &env);
    let report = checks(&out);
    assert_eq!(code, 1);
    let c = report.iter().find(|c| c.0 == "config").unwrap();
    assert_eq!(c.1, "fail", "{c:?}");
    assert!(
        c.2.contains("unknown key `api.bogus_key`") && c.2.contains("gatepulse.toml"),
        "{c:?}"
    );

    // A data dir that is a file.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let (_, out) = doctor(
        &["--output", "json", "--data-dir", &dir_env(&file)],
        &[env[1]],
    );
    let report = checks(&out);
    let c = report.iter().find(|c| c.0 == "data_dir").unwrap();
    assert_eq!(c.1, "fail", "{c:?}");
    assert!(c.2.contains("not a directory"), "{c:?}");

    // Usage errors exit 2.
    let (code, _) = doctor(&["--output", "yaml"], &[]);
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reachability_and_its_schema_version_are_checked() {
    let backend = Backend::postgres();
    let dir = tempfile::tempdir().unwrap();
    let nobody = [("GATEPULSE_URL", "http://127.0.0.1:9")];
    // Before any server used it: reachable, no GatePulse tables yet.
    let (_, out) = doctor(&["--output", "json"], &backend.env(&nobody));
    let report = checks(&out);
    let db = report.iter().find(|c| c.0 == "database").unwrap();
    assert_eq!(db.1, "ok", "{db:?}");
    assert!(db.2.starts_with("PostgreSQL "), "{db:?}");
    let store = report.iter().find(|c| c.0 == "store").unwrap();
    assert!(store.2.contains("no GatePulse schema yet"), "{store:?}");

    // Once a server made it: the schema's version, current.
    let gp = Gp::start(dir.path(), &backend.env(&[])).await.unwrap();
    let base = gp.base.clone();
    let (code, out) = doctor(
        &["--output", "json"],
        &backend.env(&[("GATEPULSE_URL", &base), ("GATEPULSE_TOKEN", ADMIN_TOKEN)]),
    );
    let report = checks(&out);
    assert_eq!(code, 0, "{out}");
    let store = report.iter().find(|c| c.0 == "store").unwrap();
    assert!(store.2.contains("(current)"), "{store:?}");
    drop(gp);

    // A database that does not answer: one failing line naming it.
    let (code, out) = doctor(
        &["--output", "json"],
        &[
            ("GATEPULSE_STORE", "postgres://postgres@127.0.0.1:9/test"),
            nobody[0],
        ],
    );
    let report = checks(&out);
    assert_eq!(code, 1);
    let db = report.iter().find(|c| c.0 == "database").unwrap();
    assert_eq!(db.1, "fail", "{db:?}");
    assert!(db.2.contains("cannot reach PostgreSQL"), "{db:?}");
    assert!(db.3.contains("GATEPULSE_STORE"), "{db:?}");
}
