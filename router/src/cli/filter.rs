//! `gp filter check|eval`: the filter language, run locally with the default limits.
//!
//! Owns only argument handling and printing; compiling and evaluating belong to
//! `gatepulse-filter-dsl`. Needs no server, no configuration and no network.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use gatepulse_filter_dsl::{Event, Filter, FilterError, Limits};
use serde::Deserialize;

#[derive(Debug, Subcommand)]
pub enum FilterCmd {
    /// Compile an expression; print `ok` and its canonical form, or the error.
    Check {
        /// The filter expression, e.g. 'payload.amount > 100'.
        expr: String,
    },
    /// Evaluate an expression against an event file; print `true` or `false`.
    Eval {
        /// The filter expression.
        expr: String,
        /// A JSON file `{"topic": "...", "payload": {...}}`.
        #[arg(long)]
        event: PathBuf,
    },
}

/// The event file of `gp filter eval`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    topic: String,
    payload: serde_json::Value,
}

/// Runs one filter command; returns the exit code (0 ok, 1 bad expression or file).
pub fn run(cmd: FilterCmd) -> i32 {
    match cmd {
        FilterCmd::Check { expr } => match check(&expr) {
            Ok(out) => {
                println!("{out}");
                0
            }
            Err(out) => {
                eprintln!("{out}");
                1
            }
        },
        FilterCmd::Eval { expr, event } => match eval(&expr, &event) {
            Ok(result) => {
                println!("{result}");
                0
            }
            Err(out) => {
                eprintln!("{out}");
                1
            }
        },
    }
}

/// `ok` and the canonical form, or the printed error.
pub fn check(expr: &str) -> Result<String, String> {
    let filter = compile(expr)?;
    Ok(format!("ok\n{filter}"))
}

/// Whether the event in `file` passes `expr`.
pub fn eval(expr: &str, file: &Path) -> Result<bool, String> {
    let filter = compile(expr)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("gp filter eval: cannot read {}: {e}", file.display()))?;
    let event: EventFile = serde_json::from_str(&text).map_err(|e| {
        format!(
            "gp filter eval: {} is not an event file ({{\"topic\": \"...\", \"payload\": {{...}}}}): {e}",
            file.display()
        )
    })?;
    Ok(filter.matches(&Event::new(&event.topic, &event.payload)))
}

fn compile(expr: &str) -> Result<Filter, String> {
    Filter::compile(expr, &Limits::default()).map_err(|e| render_error(&e))
}

/// `error[code] at line L, column C: message` and the caret excerpt.
pub fn render_error(e: &FilterError) -> String {
    let pos = e.position();
    format!(
        "error[{}] at line {}, column {}: {}\n{}",
        e.code(),
        pos.line,
        pos.column,
        e.message(),
        e.caret_excerpt()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_prints_ok_and_the_canonical_form() {
        assert_eq!(
            check("payload.amount>100&&topic==\"a\"").unwrap(),
            "ok\npayload.amount > 100 && topic == \"a\""
        );
    }

    #[test]
    fn check_prints_code_position_and_caret() {
        let err = check("payload.amount 100").unwrap_err();
        assert!(
            err.starts_with("error[syntax_error] at line 1, column 16: "),
            "{err}"
        );
        assert!(
            err.ends_with("payload.amount 100\n               ^"),
            "{err}"
        );
    }

    #[test]
    fn eval_reads_an_event_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(
            &path,
            r#"{"topic": "orders.created", "payload": {"amount": 250}}"#,
        )
        .unwrap();
        assert!(eval("payload.amount > 100", &path).unwrap());
        assert!(!eval("payload.amount > 1000", &path).unwrap());
        assert!(
            eval("payload.amount >", &path)
                .unwrap_err()
                .contains("syntax_error")
        );
        std::fs::write(&path, r#"{"payload": {}}"#).unwrap();
        assert!(
            eval("payload.amount > 1", &path)
                .unwrap_err()
                .contains("not an event file")
        );
        assert!(eval("payload.amount > 1", &dir.path().join("nope.json")).is_err());
    }
}
