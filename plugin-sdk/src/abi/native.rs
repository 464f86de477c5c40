//! The emulated host behind the ABI functions off wasm32, driven by `crate::testing`.
//! It answers exactly as the real host's `gatepulse_v1` functions do (README.md), with
//! the real host's default caps. Outside a harness run it is idle: empty input, `{}`
//! config, and error and log lines go to stderr.

use std::cell::RefCell;

use super::{Level, abi_len};

/// The host's default output cap, in bytes.
pub(crate) const OUTPUT_CAP: usize = 1 << 20;
/// The host keeps this many bytes of the error message.
pub(crate) const ERROR_CAP: usize = 1024;
/// The host keeps this many log lines per call.
pub(crate) const LOG_LINES_CAP: usize = 16;
/// The host cuts log lines to this many bytes.
pub(crate) const LOG_LINE_CAP: usize = 512;

/// One call's host-side state.
#[derive(Debug, Default)]
pub(crate) struct Call {
    pub input: Vec<u8>,
    pub config: Vec<u8>,
    pub output: Vec<u8>,
    /// `output_write` refused bytes: the call has failed whatever the guest returns.
    pub output_refused: bool,
    pub error: Option<String>,
    pub logs: Vec<(Level, String)>,
}

thread_local! {
    /// The call in progress on this thread, if a harness started one.
    static CALL: RefCell<Option<Call>> = const { RefCell::new(None) };
}

/// Runs `entry` as the host would call `gatepulse_transform`: with `input` and
/// `config` available to the imports; returns its code and the call's state.
pub(crate) fn call(input: &[u8], config: &[u8], entry: impl FnOnce() -> i32) -> (i32, Call) {
    let fresh = Call {
        input: input.to_vec(),
        config: config.to_vec(),
        ..Call::default()
    };
    // Put back whatever was there before, also when `entry` panics (a test may
    // expect that), so one harness call never leaks into the next.
    struct Restore(Option<Call>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CALL.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CALL.with(|c| c.borrow_mut().replace(fresh)));
    let code = entry();
    let state = CALL.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (code, state)
}

fn with_call<R>(idle: R, f: impl FnOnce(&mut Call) -> R) -> R {
    CALL.with(|c| c.borrow_mut().as_mut().map(f))
        .unwrap_or(idle)
}

fn copy_out(src: &[u8], buf: &mut [u8]) -> i32 {
    let n = buf.len().min(src.len());
    buf[..n].copy_from_slice(&src[..n]);
    abi_len(n)
}

pub(super) fn input_len() -> i32 {
    with_call(0, |c| abi_len(c.input.len()))
}

pub(super) fn input_read(buf: &mut [u8]) -> i32 {
    with_call(0, |c| copy_out(&c.input, buf))
}

pub(super) fn config_len() -> i32 {
    with_call(2, |c| abi_len(c.config.len()))
}

pub(super) fn config_read(buf: &mut [u8]) -> i32 {
    let config = with_call(b"{}".to_vec(), |c| c.config.clone());
    copy_out(&config, buf)
}

pub(super) fn output_write(bytes: &[u8]) -> i32 {
    with_call(0, |c| {
        if c.output_refused || c.output.len() + bytes.len() > OUTPUT_CAP {
            c.output_refused = true;
            return -1;
        }
        c.output.extend_from_slice(bytes);
        0
    })
}

pub(super) fn error(message: &str) {
    let cut = &message.as_bytes()[..message.len().min(ERROR_CAP)];
    let message = String::from_utf8_lossy(cut).into_owned();
    eprintln!("[plugin error] {message}");
    with_call((), |c| c.error = Some(message));
}

pub(super) fn log(level: i32, message: &str) {
    let level = Level::from_code(level);
    eprintln!("[plugin {level:?}] {message}");
    with_call((), |c| {
        if c.logs.len() < LOG_LINES_CAP {
            let cut = &message.as_bytes()[..message.len().min(LOG_LINE_CAP)];
            c.logs
                .push((level, String::from_utf8_lossy(cut).into_owned()));
        }
    });
}
