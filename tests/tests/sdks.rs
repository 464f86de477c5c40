//! The SDKs and the examples (`sdk/run-tests.sh`) against this build's `gp`: lint,
//! types, unit and integration tests with their coverage gates, the packages built,
//! and every example run from the packed artifacts. Needs Node.js 20+, python3 with
//! venv, and the npm registry and PyPI; it fails, never skips, without them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn sdks_and_examples_pass_against_the_real_binary() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let gp = gatepulse_e2e::gp_binary().unwrap();
    let status = std::process::Command::new("bash")
        .arg(root.join("sdk/run-tests.sh"))
        .env("GP_BIN", &gp)
        .current_dir(root)
        .status()
        .expect("running sdk/run-tests.sh");
    assert!(status.success(), "sdk/run-tests.sh failed ({status})");
}
