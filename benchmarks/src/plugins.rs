//! The example plugins of `plugins/`, built from source for wasm32-unknown-unknown the
//! first time a scenario needs one: the e2e harness's builder (`tests/src/plugins.rs`),
//! so tests and benchmarks build them the same way, into the same place.

pub use gatepulse_e2e::plugins::wasm;
