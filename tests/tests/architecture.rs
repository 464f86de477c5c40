//! Architecture invariants (ARCHITECTURE.md), checked from `cargo metadata` and the
//! source tree so that a forbidden dependency fails the build's tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use gatepulse_e2e::workspace_root;

/// package name → its normal and build dependency names.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut map = BTreeMap::new();
    for pkg in meta["packages"].as_array().unwrap() {
        let deps = pkg["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null() || d["kind"] == "build")
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect();
        map.insert(pkg["name"].as_str().unwrap().to_owned(), deps);
    }
    map
}

#[test]
fn crates_depend_only_in_the_allowed_direction() {
    let deps = dependencies();
    let workspace: BTreeSet<&String> = deps.keys().collect();
    let forbidden_everywhere_in_cores = [
        "tokio",
        "axum",
        "hyper",
        "reqwest",
        "redb",
        "tokio-postgres",
        "sqlx",
    ];
    for (pkg, ds) in &deps {
        let internal: Vec<&String> = ds.iter().filter(|d| workspace.contains(d)).collect();
        match pkg.as_str() {
            "gatepulse-filter-dsl" => {
                assert!(
                    internal.is_empty(),
                    "filter-dsl depends on no workspace crate: {internal:?}"
                );
                for f in forbidden_everywhere_in_cores {
                    assert!(!ds.contains(f), "filter-dsl must not know {f}");
                }
            }
            "gatepulse-transform" => {
                assert!(
                    internal.iter().all(|d| *d == "gatepulse-filter-dsl"),
                    "transform may use only filter-dsl: {internal:?}"
                );
                for f in forbidden_everywhere_in_cores {
                    assert!(!ds.contains(f), "transform must not know {f}");
                }
            }
            "gatepulse-plugin-sdk" => {
                assert!(
                    !ds.contains("wasmtime"),
                    "plugin-sdk never depends on wasmtime"
                );
                assert!(
                    internal.is_empty(),
                    "plugin-sdk depends on no workspace crate"
                );
            }
            "gatepulse-plugin-host" => {
                assert!(
                    internal.is_empty(),
                    "plugin-host depends on no workspace crate: {internal:?}"
                );
                for f in forbidden_everywhere_in_cores {
                    assert!(!ds.contains(f), "plugin-host must not know {f}");
                }
            }
            "gatepulse-e2e" => {
                assert!(
                    internal.is_empty(),
                    "end-to-end tests reach GatePulse only through the binary and HTTP: {internal:?}"
                );
            }
            p if p.starts_with("gatepulse-plugin-") => {
                assert!(
                    internal.iter().all(|d| *d == "gatepulse-plugin-sdk"),
                    "plugins depend only on plugin-sdk: {p} → {internal:?}"
                );
            }
            _ => {}
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Files under `router/src` that mention `needle`, outside the allowed prefixes.
fn offenders(needle: &str, allowed: &[&str]) -> Vec<String> {
    let src = workspace_root().join("router/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter_map(|f| {
            let rel = f
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if allowed.iter().any(|a| rel.starts_with(a)) {
                return None;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            text.contains(needle).then_some(rel)
        })
        .collect()
}

#[test]
fn only_the_store_knows_redb_and_only_the_api_knows_axum() {
    assert_eq!(
        offenders("redb::", &["store/"]),
        Vec::<String>::new(),
        "redb outside store/"
    );
    assert_eq!(
        offenders("axum::", &["api/", "server.rs"]),
        Vec::<String>::new(),
        "axum outside api/ (and the server entry point)"
    );
}
