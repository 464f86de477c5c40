//! ABI v1 at its lowest level: the `gatepulse_v1` imports behind safe functions, and
//! the return codes of `gatepulse_transform`. [`export_transform!`](crate::export_transform)
//! is built on these; plugins that stream output or parse input their own way use
//! them directly with [`export_raw_transform!`](crate::export_raw_transform).
//!
//! On wasm32 the functions call the host (`abi/wasm.rs`, the SDK's only `unsafe`);
//! elsewhere they act on the emulated host of [`crate::testing`] (`abi/native.rs`).
//! Nothing here allocates on the host's behalf: the host never calls guest code other
//! than the entry point, and the guest pulls its input into buffers it owns.

use std::fmt;

use crate::Error;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native;
#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(not(target_arch = "wasm32"))]
use native as sys;
#[cfg(target_arch = "wasm32")]
use wasm as sys;

/// The import module; the ABI version is part of its name.
pub const MODULE: &str = "gatepulse_v1";
/// The ABI version.
pub const VERSION: u32 = 1;
/// The exported entry point, `() -> i32`.
pub const ENTRY: &str = "gatepulse_transform";
/// The custom section holding `{"name", "abi", "sdk"}`.
pub const METADATA_SECTION: &str = "gatepulse.plugin";

/// Return code: the bytes written with [`output_write`] are the new body (JSON).
pub const EMIT: i32 = 0;
/// Return code: this delivery is not sent.
pub const DROP: i32 = 1;
/// Return code: the body is sent unchanged; any output is ignored.
pub const PASS: i32 = 2;
/// Return code: the delivery fails with the message given to [`set_error`].
pub const ERROR: i32 = 3;

/// A log line's level, as the `level` argument of the `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

impl Level {
    /// The level for an ABI code; out-of-range codes are clamped, as the host does.
    pub fn from_code(code: i32) -> Self {
        match code {
            i32::MIN..=0 => Self::Debug,
            1 => Self::Info,
            2 => Self::Warn,
            _ => Self::Error,
        }
    }
}

/// `output_write` refused the bytes: the output would exceed the host's output cap.
/// The call has failed; stop writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputCapExceeded;

impl fmt::Display for OutputCapExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the output exceeds the host's output cap")
    }
}

impl std::error::Error for OutputCapExceeded {}

impl From<OutputCapExceeded> for Error {
    fn from(e: OutputCapExceeded) -> Self {
        Error::msg(e.to_string())
    }
}

/// The whole input document (`input_len`, then `input_read` into a new buffer).
pub fn input() -> Result<Vec<u8>, Error> {
    read("input", sys::input_len(), sys::input_read)
}

/// The plugin's configuration, JSON text (`config_len`, then `config_read`).
pub fn config() -> Result<Vec<u8>, Error> {
    read("config", sys::config_len(), sys::config_read)
}

fn read(what: &str, len: i32, read: fn(&mut [u8]) -> i32) -> Result<Vec<u8>, Error> {
    let len = usize::try_from(len).map_err(|_| Error::msg(format!("{what}_len returned {len}")))?;
    let mut buf = vec![0; len];
    let copied = read(&mut buf);
    match usize::try_from(copied) {
        Ok(n) if n <= len => {
            buf.truncate(n);
            Ok(buf)
        }
        _ => Err(Error::msg(format!("{what}_read returned {copied}"))),
    }
}

/// Appends `bytes` to the output (`output_write`).
pub fn output_write(bytes: &[u8]) -> Result<(), OutputCapExceeded> {
    match sys::output_write(bytes) {
        0 => Ok(()),
        _ => Err(OutputCapExceeded),
    }
}

/// Sets the call's error message (`error`); the host keeps the first 1 KiB.
pub fn set_error(message: &str) {
    sys::error(message);
}

/// One log line (`log`); the host keeps a few lines per call and cuts long ones.
pub fn log(level: Level, message: &str) {
    sys::log(level as i32, message);
}

/// `len` as the ABI's i32 length; longer slices are cut (wasm32 memory is far smaller).
fn abi_len(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_clamp_like_the_host() {
        assert_eq!(Level::from_code(-4), Level::Debug);
        assert_eq!(Level::from_code(1), Level::Info);
        assert_eq!(Level::from_code(2), Level::Warn);
        assert_eq!(Level::from_code(99), Level::Error);
        assert_eq!(Level::Warn as i32, 2);
    }

    #[test]
    fn read_refuses_what_a_broken_host_would_answer() {
        assert!(read("input", -1, |_| 0).is_err());
        assert!(read("input", 4, |_| -1).is_err());
        assert!(read("input", 4, |_| 5).is_err());
        assert_eq!(
            read("input", 4, |b| {
                b[..2].copy_from_slice(b"ok");
                2
            }),
            Ok(b"ok".to_vec())
        );
    }
}
