//! The native test harness (not on wasm32): runs a plugin through the same guest code
//! as the wasm build, against an emulated host that answers like the real one, with
//! the real host's default output, error and log caps. What it does not emulate are
//! the fuel, deadline and memory limits: test those against the real host.
//!
//! ```
//! use gatepulse_plugin_sdk::prelude::*;
//! use gatepulse_plugin_sdk::testing;
//!
//! fn upper(event: Event, _: NoConfig) -> Result<Output, Error> {
//!     let name = event.payload["name"].as_str().ok_or("no name")?;
//!     Ok(Output::Emit(json!({ "name": name.to_uppercase() })))
//! }
//!
//! let input = testing::event("users.created", json!({"name": "ada"}));
//! assert_eq!(testing::run(upper, &input, "{}"), Ok(Output::Emit(json!({"name": "ADA"}))));
//! let input = testing::event("users.created", json!({}));
//! assert_eq!(testing::run(upper, &input, "{}"), Err(Error::msg("no name")));
//! ```

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::abi::{self, Level, native};
use crate::{Error, Event, Output, guest};

/// The host's default output cap, in bytes; the harness refuses output past it.
pub const OUTPUT_CAP: usize = native::OUTPUT_CAP;
/// The host keeps this many bytes of an error message.
pub const ERROR_CAP: usize = native::ERROR_CAP;
/// The host keeps this many log lines per call.
pub const LOG_LINES_CAP: usize = native::LOG_LINES_CAP;
/// The host cuts log lines to this many bytes.
pub const LOG_LINE_CAP: usize = native::LOG_LINE_CAP;

/// Runs `transform` on one input document and config, as the host would, and reads
/// the result as the host does: `Ok` for emit (the body parsed back from the output
/// bytes), drop and pass; `Err` for an error, a bad input or config, or refused output.
pub fn run<C, F>(transform: F, event_json: &str, config_json: &str) -> Result<Output, Error>
where
    C: DeserializeOwned,
    F: FnOnce(Event, C) -> Result<Output, Error>,
{
    run_logged(transform, event_json, config_json).0
}

/// [`run`], also returning the log lines the host kept.
pub fn run_logged<C, F>(
    transform: F,
    event_json: &str,
    config_json: &str,
) -> (Result<Output, Error>, Vec<LogLine>)
where
    C: DeserializeOwned,
    F: FnOnce(Event, C) -> Result<Output, Error>,
{
    let raw = run_raw(|| guest::run_transform(transform), event_json, config_json);
    (raw.outcome(), raw.logs)
}

/// Runs a raw entry point (see `export_raw_transform!`) and returns everything the
/// host saw.
pub fn run_raw(entry: impl FnOnce() -> i32, event_json: &str, config_json: &str) -> RawRun {
    let (code, call) = native::call(event_json.as_bytes(), config_json.as_bytes(), entry);
    RawRun {
        code,
        output: call.output,
        output_refused: call.output_refused,
        error: call.error,
        logs: call
            .logs
            .into_iter()
            .map(|(level, message)| LogLine { level, message })
            .collect(),
    }
}

/// An input document for `topic` and `payload`, with a fixed event id and time.
pub fn event(topic: &str, payload: Value) -> String {
    json!({
        "topic": topic,
        "event_id": "evt_test",
        "created_at": "2026-01-01T00:00:00Z",
        "payload": payload,
    })
    .to_string()
}

/// One log line the host kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

/// Everything one call left with the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRun {
    /// What `gatepulse_transform` returned.
    pub code: i32,
    /// The bytes accepted by `output_write`.
    pub output: Vec<u8>,
    /// `output_write` refused bytes (output cap): the call fails.
    pub output_refused: bool,
    /// The last message given to `error`, cut to [`ERROR_CAP`] bytes.
    pub error: Option<String>,
    pub logs: Vec<LogLine>,
}

impl RawRun {
    /// The call's result as the host reads it.
    pub fn outcome(&self) -> Result<Output, Error> {
        if self.output_refused {
            return Err(Error::msg(format!(
                "wrote more than {OUTPUT_CAP} bytes of output"
            )));
        }
        match self.code {
            abi::EMIT => serde_json::from_slice(&self.output)
                .map(Output::Emit)
                .map_err(|e| Error::msg(format!("output is not JSON: {e}"))),
            abi::DROP => Ok(Output::Drop),
            abi::PASS => Ok(Output::Pass),
            abi::ERROR => Err(Error::msg(self.error.clone().unwrap_or_else(|| {
                "the plugin reported an error without a message".into()
            }))),
            other => Err(Error::msg(format!(
                "returned {other}, not 0 (emit), 1 (drop), 2 (pass) or 3 (error)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NoConfig, log};
    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Config {
        drop_topic: String,
        fail: bool,
    }

    fn sample(event: Event, config: Config) -> Result<Output, Error> {
        log::info(format!("saw {}", event.event_id));
        if config.fail {
            return Err(Error::msg("configured to fail"));
        }
        if event.topic == config.drop_topic {
            return Ok(Output::Drop);
        }
        match event.payload.get("n") {
            Some(n) => Ok(Output::Emit(json!({ "n": n, "topic": event.topic }))),
            None => Ok(Output::Pass),
        }
    }

    fn input(payload: Value) -> String {
        event("orders.created", payload)
    }

    #[test]
    fn each_answer_maps_to_its_outcome() {
        let cases: [(&str, &str, Result<Output, Error>); 4] = [
            (
                r#"{"n": 1}"#,
                "{}",
                Ok(Output::Emit(json!({"n": 1, "topic": "orders.created"}))),
            ),
            ("{}", "{}", Ok(Output::Pass)),
            (
                "{}",
                r#"{"drop_topic": "orders.created"}"#,
                Ok(Output::Drop),
            ),
            (
                "{}",
                r#"{"fail": true}"#,
                Err(Error::msg("configured to fail")),
            ),
        ];
        for (payload, config, want) in cases {
            let payload: Value = serde_json::from_str(payload).unwrap();
            assert_eq!(
                run(sample, &input(payload), config),
                want,
                "config {config}"
            );
        }
    }

    #[test]
    fn return_codes_are_the_abi_ones() {
        let code = |config| {
            run_raw(
                || guest::run_transform(sample),
                &input(json!({"n": 1})),
                config,
            )
            .code
        };
        assert_eq!(code("{}"), abi::EMIT);
        assert_eq!(code(r#"{"drop_topic": "orders.created"}"#), abi::DROP);
        assert_eq!(code(r#"{"fail": true}"#), abi::ERROR);
        let pass = run_raw(|| guest::run_transform(sample), &input(json!({})), "{}");
        assert_eq!((pass.code, pass.output.is_empty()), (abi::PASS, true));
    }

    #[test]
    fn bad_input_and_bad_config_are_errors_naming_which() {
        let bad_input = run(sample, r#"{"topic": "t"}"#, "{}").unwrap_err();
        assert!(
            bad_input
                .message()
                .starts_with("the input document is not a GatePulse event"),
            "{bad_input}"
        );
        let bad_config = run(sample, &input(json!({})), r#"{"dorp_topic": "x"}"#).unwrap_err();
        assert!(
            bad_config
                .message()
                .starts_with("invalid plugin config: unknown field `dorp_topic`"),
            "{bad_config}"
        );
    }

    #[test]
    fn logs_are_kept_within_the_host_caps() {
        let (out, logs) = run_logged(sample, &input(json!({})), "{}");
        assert_eq!(out, Ok(Output::Pass));
        assert_eq!(
            logs,
            vec![LogLine {
                level: Level::Info,
                message: "saw evt_test".into()
            }]
        );

        let chatty = || {
            for i in 0..100 {
                log::warn(format!("{i} {}", "x".repeat(1000)));
            }
            abi::PASS
        };
        let run = run_raw(chatty, &input(json!({})), "{}");
        assert_eq!(run.logs.len(), LOG_LINES_CAP);
        assert!(run.logs.iter().all(|l| l.message.len() == LOG_LINE_CAP));
    }

    #[test]
    fn output_past_the_cap_fails_the_call() {
        fn big(_: Event, _: NoConfig) -> Result<Output, Error> {
            Ok(Output::Emit(json!("x".repeat(OUTPUT_CAP))))
        }
        let err = run(big, &input(json!({})), "{}").unwrap_err();
        assert_eq!(
            err.message(),
            format!("wrote more than {OUTPUT_CAP} bytes of output")
        );

        let stubborn = || {
            let first = abi::output_write(&vec![b' '; OUTPUT_CAP]);
            let second = abi::output_write(b"1");
            assert_eq!((first, second), (Ok(()), Err(abi::OutputCapExceeded)));
            abi::EMIT
        };
        assert!(run_raw(stubborn, &input(json!({})), "{}").output_refused);
    }

    #[test]
    fn raw_output_is_read_as_the_host_reads_it() {
        let not_json = || {
            abi::output_write(b"{not json").unwrap();
            abi::EMIT
        };
        let err = run_raw(not_json, &input(json!({})), "{}")
            .outcome()
            .unwrap_err();
        assert!(err.message().starts_with("output is not JSON"), "{err}");

        let silent_error = || abi::ERROR;
        let err = run_raw(silent_error, &input(json!({})), "{}")
            .outcome()
            .unwrap_err();
        assert_eq!(
            err.message(),
            "the plugin reported an error without a message"
        );

        let unknown = || 7;
        let err = run_raw(unknown, &input(json!({})), "{}")
            .outcome()
            .unwrap_err();
        assert!(err.message().starts_with("returned 7"), "{err}");
    }

    #[test]
    fn errors_are_cut_to_the_host_cap() {
        let long = || {
            abi::set_error(&"é".repeat(ERROR_CAP));
            abi::ERROR
        };
        let err = run_raw(long, &input(json!({})), "{}").error.unwrap();
        assert_eq!(err.chars().count(), ERROR_CAP / 2);
    }

    #[test]
    fn raw_access_reads_the_documents_verbatim() {
        let echo = || {
            let config = crate::config_json().unwrap();
            let input = abi::input().unwrap();
            abi::output_write(
                format!(r#"{{"config": {config}, "input": {}}}"#, input.len()).as_bytes(),
            )
            .unwrap();
            abi::EMIT
        };
        let doc = input(json!({"a": 1}));
        let run = run_raw(echo, &doc, r#"{"k": [1, 2]}"#);
        assert_eq!(
            run.outcome(),
            Ok(Output::Emit(
                json!({"config": {"k": [1, 2]}, "input": doc.len()})
            ))
        );
    }

    #[test]
    fn a_panicking_plugin_panics_the_test_and_leaves_the_harness_clean() {
        fn panics(_: Event, _: NoConfig) -> Result<Output, Error> {
            panic!("deliberate")
        }
        let caught = std::panic::catch_unwind(|| run(panics, &input(json!({})), "{}"));
        assert!(caught.is_err());
        // The next run starts from a clean host.
        assert_eq!(run(sample, &input(json!({})), "{}"), Ok(Output::Pass));
        assert_eq!(crate::config_json(), Ok("{}".to_owned()));
    }
}
