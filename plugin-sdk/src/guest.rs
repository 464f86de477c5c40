//! The entry point the macros export: pull the input and the config through the ABI,
//! parse them, call the plugin's function, push its answer, and turn a panic into an
//! error message before the trap. The same code runs natively under `testing`.

use serde::de::DeserializeOwned;

use crate::{Error, Event, Output, abi};

/// Compile-time check that `transform` has the shape `export_transform!` needs; also
/// a use of it on targets where the entry point is not generated.
pub const fn check_transform<C, F>(_transform: &F)
where
    C: DeserializeOwned,
    F: FnOnce(Event, C) -> Result<Output, Error>,
{
}

/// One call of a typed plugin; returns the ABI return code.
pub fn run_transform<C, F>(transform: F) -> i32
where
    C: DeserializeOwned,
    F: FnOnce(Event, C) -> Result<Output, Error>,
{
    install_panic_hook();
    match call(transform).and_then(push) {
        Ok(code) => code,
        Err(error) => {
            abi::set_error(error.message());
            abi::ERROR
        }
    }
}

/// One call of a raw plugin (`export_raw_transform!`).
pub fn run_raw(entry: fn() -> i32) -> i32 {
    install_panic_hook();
    entry()
}

fn call<C, F>(transform: F) -> Result<Output, Error>
where
    C: DeserializeOwned,
    F: FnOnce(Event, C) -> Result<Output, Error>,
{
    // Each buffer is dropped once parsed: memory is capped and the input may be large.
    let event: Event = serde_json::from_slice(&abi::input()?)
        .map_err(|e| Error::msg(format!("the input document is not a GatePulse event: {e}")))?;
    let config: C = serde_json::from_slice(&abi::config()?)
        .map_err(|e| Error::msg(format!("invalid plugin config: {e}")))?;
    transform(event, config)
}

fn push(output: Output) -> Result<i32, Error> {
    match output {
        Output::Emit(body) => {
            let bytes = serde_json::to_vec(&body)?;
            drop(body);
            abi::output_write(&bytes)?;
            Ok(abi::EMIT)
        }
        Output::Drop => Ok(abi::DROP),
        Output::Pass => Ok(abi::PASS),
    }
}

/// On wasm32 a panic aborts (there is no unwinding), which traps. The hook runs just
/// before, and hands the host the message so the trap says why.
#[cfg(target_arch = "wasm32")]
fn install_panic_hook() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info.location().map(|l| (l.file(), l.line(), l.column()));
            abi::set_error(&describe_panic(info.payload_as_str(), location));
        }));
    });
}

/// Natively a panic unwinds into the test that ran the plugin, as any panic does.
#[cfg(not(target_arch = "wasm32"))]
fn install_panic_hook() {}

/// The error message for a panic.
#[cfg(any(target_arch = "wasm32", test))]
fn describe_panic(message: Option<&str>, location: Option<(&str, u32, u32)>) -> String {
    let message = message.unwrap_or("(a panic payload that is not text)");
    match location {
        Some((file, line, column)) => {
            format!("plugin panicked at {file}:{line}:{column}: {message}")
        }
        None => format!("plugin panicked: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_name_the_place() {
        assert_eq!(
            describe_panic(Some("boom"), Some(("src/lib.rs", 3, 9))),
            "plugin panicked at src/lib.rs:3:9: boom"
        );
        assert_eq!(
            describe_panic(None, None),
            "plugin panicked: (a panic payload that is not text)"
        );
    }
}
