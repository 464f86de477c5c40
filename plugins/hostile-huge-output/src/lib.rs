//! `hostile-huge-output` (test plugin): writes 100 MB of output in 64 KiB chunks,
//! ignoring `output_write`'s refusals, then returns EMIT. The bytes are the start of
//! one long JSON string, so only the size is wrong. The host's output cap must stop
//! it (the default host traps the call at the first write past the cap).

use gatepulse_plugin_sdk::abi;

const TOTAL: usize = 100_000_000;
const CHUNK: usize = 64 << 10;

fn entry() -> i32 {
    let chunk = vec![b'x'; CHUNK];
    // Deliberately ignores `Err(OutputCapExceeded)`: a plugin must not be trusted to stop.
    let _ = abi::output_write(b"\"");
    for _ in 0..TOTAL / CHUNK {
        let _ = abi::output_write(&chunk);
    }
    let _ = abi::output_write(b"\"");
    abi::EMIT
}

gatepulse_plugin_sdk::export_raw_transform!(entry, name = "hostile-huge-output");

#[cfg(test)]
mod tests {
    use super::*;
    use gatepulse_plugin_sdk::serde_json::json;
    use gatepulse_plugin_sdk::testing;

    #[test]
    fn the_output_cap_refuses_it() {
        let run = testing::run_raw(entry, &testing::event("t", json!({})), "{}");
        assert!(run.output_refused);
        assert!(run.output.len() <= testing::OUTPUT_CAP);
        assert!(run.outcome().is_err());
    }
}
