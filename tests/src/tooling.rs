//! What some tests need beyond Rust, found or installed by the tests themselves so
//! that the README's one test command is enough: the npm packages of `tests/browser`
//! (installed from the lock file with `npm ci` the first time) and the
//! `wasm32-unknown-unknown` target (added with `rustup` the first time). Chromium
//! cannot be installed by a test: without it the browser tests fail with one line
//! saying how to get it.
//!
//! Tests run in parallel processes; a lock file makes the installs happen once.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `tests/browser`.
pub fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Runs `f` holding an exclusive lock on `path` (across processes).
fn locked<T>(path: &Path, f: impl FnOnce() -> T) -> T {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path);
    let guard = file.ok().filter(|f| f.lock().is_ok());
    let out = f();
    if let Some(f) = guard {
        let _ = f.unlock();
    }
    out
}

/// Makes sure `tests/browser/node_modules` holds the locked packages (`npm ci` once).
pub fn ensure_node_modules() {
    let dir = browser_dir();
    let ready = |d: &Path| {
        d.join("node_modules/playwright-core/package.json").exists()
            && d.join("node_modules/eventsource/package.json").exists()
    };
    if ready(&dir) {
        return;
    }
    locked(&std::env::temp_dir().join("gatepulse-npm-ci.lock"), || {
        if ready(&dir) {
            return;
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "`npm ci --prefix tests/browser` failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("npm not found ({e}): install Node.js 20+ with npm"),
        }
    });
}

/// The Chromium binary the browser tests drive (`$CHROMIUM`, else Debian's).
pub fn chromium() -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} not found: install Debian's Chromium (apt-get install -y chromium) \
         or set CHROMIUM to a Chromium binary"
    );
    chromium
}

/// Everything a browser test needs: the npm packages and Chromium.
pub fn ensure_browser() -> String {
    ensure_node_modules();
    chromium()
}

/// Makes sure the `wasm32-unknown-unknown` target is installed (`rustup target add`
/// once); without rustup, the build that needs it says what is missing.
pub fn ensure_wasm_target() {
    let installed = || {
        Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-unknown-unknown"))
    };
    if installed() != Some(false) {
        return;
    }
    locked(&std::env::temp_dir().join("gatepulse-rustup.lock"), || {
        if installed() == Some(false) {
            let _ = Command::new("rustup")
                .args(["target", "add", "wasm32-unknown-unknown"])
                .status();
        }
    });
}
