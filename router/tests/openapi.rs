//! The committed OpenAPI document (`docs/openapi.json`) must match the code.
//! Regenerate with `GP_UPDATE_OPENAPI=1 cargo test -p gatepulse --test openapi`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[test]
fn committed_openapi_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let generated = format!("{}\n", gatepulse::api::openapi::document_json());
    if std::env::var_os("GP_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date; regenerate it with \
         GP_UPDATE_OPENAPI=1 cargo test -p gatepulse --test openapi"
    );
}
