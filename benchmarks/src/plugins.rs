//! The example plugins of `plugins/`, built from source for wasm32-unknown-unknown the
//! first time a scenario needs one (as the e2e tests do: `tests/src/plugins.rs`), into
//! `plugins/` beside the workspace's target directory.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::server::workspace_root;

static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Builds `plugins/` once per process; returns the directory holding the modules.
fn build() -> Result<PathBuf> {
    let dir = BUILT.get_or_init(|| {
        let root = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), PathBuf::from)
            .join("plugins");
        eprintln!(
            "building plugins: cargo build --release --target wasm32-unknown-unknown --manifest-path plugins/Cargo.toml"
        );
        let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-unknown-unknown",
                "--manifest-path",
            ])
            .arg(root.join("plugins").join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .output()
            .map_err(|e| format!("running cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building plugins/ failed (is the wasm32-unknown-unknown target installed? \
                 `rustup target add wasm32-unknown-unknown`):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(target.join("wasm32-unknown-unknown").join("release"))
    });
    match dir {
        Ok(d) => Ok(d.clone()),
        Err(e) => bail!("{e}"),
    }
}

/// The module of plugin crate `name` (e.g. `redact`).
pub fn wasm(name: &str) -> Result<Vec<u8>> {
    let path = build()?.join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}
