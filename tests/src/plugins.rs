//! The example and hostile plugins of `plugins/`, built from source for
//! wasm32-unknown-unknown the first time a test asks for one (cargo's own lock makes
//! parallel test processes wait for one build).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Builds `plugins/` once per process; returns the directory holding the modules.
fn build() -> Result<PathBuf> {
    let dir = BUILT.get_or_init(|| {
        crate::tooling::ensure_wasm_target();
        // Beside the workspace's own target dir (CI keeps that one as a cache).
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| repo().join("target"), PathBuf::from)
            .join("plugins");
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-unknown-unknown",
                "--manifest-path",
            ])
            .arg(repo().join("plugins").join("Cargo.toml"))
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

/// The module of plugin crate `name` (e.g. `redact`, `hostile-loop`).
pub fn wasm(name: &str) -> Result<Vec<u8>> {
    let path = build()?.join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}
