//! `hostile-bad-json` (test plugin): writes `{"unterminated": ` (not JSON) as its
//! output and returns EMIT. The host must fail the delivery (output is not JSON)
//! rather than send it.

use gatepulse_plugin_sdk::abi;

const NOT_JSON: &[u8] = br#"{"unterminated": "#;

fn entry() -> i32 {
    match abi::output_write(NOT_JSON) {
        Ok(()) => abi::EMIT,
        Err(_) => abi::ERROR,
    }
}

gatepulse_plugin_sdk::export_raw_transform!(entry, name = "hostile-bad-json");

#[cfg(test)]
mod tests {
    use super::*;
    use gatepulse_plugin_sdk::serde_json::json;
    use gatepulse_plugin_sdk::testing;

    #[test]
    fn it_emits_bytes_that_are_not_json() {
        let run = testing::run_raw(entry, &testing::event("t", json!({})), "{}");
        assert_eq!((run.code, run.output.as_slice()), (abi::EMIT, NOT_JSON));
        let err = run.outcome().unwrap_err();
        assert!(err.message().starts_with("output is not JSON"), "{err}");
    }
}
