//! ABI v1: the host functions of import module `gatepulse_v1` and the per-call state
//! they work on. The guest pulls its input and config and pushes its output; the host
//! never calls guest allocator code. The full reference is `plugin-sdk/README.md`.

use wasmtime::{Caller, Linker, Memory, ResourceLimiter};

use crate::{CallError, Limits, Outcome};

/// The import module name; the version is part of it, so a module built for another
/// ABI fails to link before any event flows.
pub const ABI_MODULE: &str = "gatepulse_v1";
pub const ABI_VERSION: u32 = 1;
/// The one export the host calls.
pub(crate) const ENTRY: &str = "gatepulse_transform";

const EMIT: i32 = 0;
const DROP: i32 = 1;
const PASS: i32 = 2;
const ERROR: i32 = 3;
/// Longest error message kept.
const MAX_ERROR_BYTES: usize = 1024;

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// 0 debug, 1 info, 2 warn, 3 error.
    pub level: u8,
    pub message: String,
}

/// Denies memory growth past the cap and remembers that it did.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_bytes: usize,
    pub(crate) denied: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes;
        self.denied |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 10_000)
    }
}

/// What one instance's host functions read and write.
#[derive(Debug)]
pub(crate) struct State {
    input: Vec<u8>,
    config: Vec<u8>,
    output: Vec<u8>,
    pub(crate) output_overflow: bool,
    pub(crate) error: Option<String>,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) memory: Option<Memory>,
    pub(crate) limiter: Limiter,
    max_output: usize,
    max_log_lines: usize,
    max_log_line_bytes: usize,
}

impl State {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            input: Vec::new(),
            config: Vec::new(),
            output: Vec::new(),
            output_overflow: false,
            error: None,
            logs: Vec::new(),
            memory: None,
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                denied: false,
            },
            max_output: limits.max_output_bytes,
            max_log_lines: limits.max_log_lines,
            max_log_line_bytes: limits.max_log_line_bytes,
        }
    }

    /// Resets the per-call fields for a new call.
    pub(crate) fn begin(&mut self, input: &[u8], config: &[u8]) {
        self.input.clear();
        self.input.extend_from_slice(input);
        self.config.clear();
        self.config.extend_from_slice(config);
        self.output.clear();
        self.output_overflow = false;
        self.error = None;
        self.logs.clear();
        self.limiter.denied = false;
    }

    /// The outcome of a call that returned `code`.
    pub(crate) fn finish(&mut self, code: i32) -> Result<Outcome, CallError> {
        if self.output_overflow {
            return Err(CallError::OutputTooLarge {
                limit: self.max_output,
            });
        }
        match code {
            EMIT => {
                let body = std::mem::take(&mut self.output);
                if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                    return Err(CallError::OutputNotJson(e.to_string()));
                }
                Ok(Outcome::Emit(body))
            }
            DROP => Ok(Outcome::Drop),
            PASS => Ok(Outcome::Pass),
            ERROR => Err(CallError::Guest(self.error.take().unwrap_or_else(|| {
                "the plugin reported an error without a message".into()
            }))),
            other => Err(CallError::BadReturn(other)),
        }
    }
}

/// Copies `src` into guest memory at `[ptr, ptr+len)`; the bytes copied, or -1.
fn copy_out(caller: &mut Caller<'_, State>, which: Which, ptr: i32, len: i32) -> i32 {
    let Some(memory) = caller.data().memory else {
        return -1;
    };
    let (Ok(ptr), Ok(len)) = (usize::try_from(ptr), usize::try_from(len)) else {
        return -1;
    };
    let (mem, state) = memory.data_and_store_mut(caller);
    let src = match which {
        Which::Input => &state.input,
        Which::Config => &state.config,
    };
    let n = len.min(src.len());
    let Some(dst) = ptr.checked_add(n).and_then(|end| mem.get_mut(ptr..end)) else {
        return -1;
    };
    dst.copy_from_slice(&src[..n]);
    i32::try_from(n).unwrap_or(-1)
}

/// The guest bytes at `[ptr, ptr+len)`, if in bounds.
fn guest_bytes(mem: &[u8], ptr: i32, len: i32) -> Option<&[u8]> {
    let ptr = usize::try_from(ptr).ok()?;
    let len = usize::try_from(len).ok()?;
    mem.get(ptr..ptr.checked_add(len)?)
}

#[derive(Clone, Copy)]
enum Which {
    Input,
    Config,
}

fn len_of(bytes: &[u8]) -> i32 {
    i32::try_from(bytes.len()).unwrap_or(i32::MAX)
}

/// Defines every `gatepulse_v1` function.
pub(crate) fn define(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.func_wrap(ABI_MODULE, "input_len", |c: Caller<'_, State>| {
        len_of(&c.data().input)
    })?;
    linker.func_wrap(
        ABI_MODULE,
        "input_read",
        |mut c: Caller<'_, State>, ptr: i32, len: i32| copy_out(&mut c, Which::Input, ptr, len),
    )?;
    linker.func_wrap(ABI_MODULE, "config_len", |c: Caller<'_, State>| {
        len_of(&c.data().config)
    })?;
    linker.func_wrap(
        ABI_MODULE,
        "config_read",
        |mut c: Caller<'_, State>, ptr: i32, len: i32| copy_out(&mut c, Which::Config, ptr, len),
    )?;
    linker.func_wrap(
        ABI_MODULE,
        "output_write",
        |mut c: Caller<'_, State>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let Some(memory) = c.data().memory else {
                return Ok(-1);
            };
            let (mem, state) = memory.data_and_store_mut(&mut c);
            let Some(bytes) = guest_bytes(mem, ptr, len) else {
                return Ok(-1);
            };
            if state.output.len() + bytes.len() > state.max_output {
                state.output_overflow = true;
                // Stop the guest at once: a plugin that ignores -1 must not spin.
                return Err(wasmtime::Error::msg("output limit exceeded"));
            }
            state.output.extend_from_slice(bytes);
            Ok(0)
        },
    )?;
    linker.func_wrap(
        ABI_MODULE,
        "error",
        |mut c: Caller<'_, State>, ptr: i32, len: i32| {
            let Some(memory) = c.data().memory else {
                return;
            };
            let (mem, state) = memory.data_and_store_mut(&mut c);
            if let Some(bytes) = guest_bytes(mem, ptr, len) {
                let cut = &bytes[..bytes.len().min(MAX_ERROR_BYTES)];
                state.error = Some(String::from_utf8_lossy(cut).into_owned());
            }
        },
    )?;
    linker.func_wrap(
        ABI_MODULE,
        "log",
        |mut c: Caller<'_, State>, level: i32, ptr: i32, len: i32| {
            let Some(memory) = c.data().memory else {
                return;
            };
            let (mem, state) = memory.data_and_store_mut(&mut c);
            if state.logs.len() >= state.max_log_lines {
                return;
            }
            if let Some(bytes) = guest_bytes(mem, ptr, len) {
                let cut = &bytes[..bytes.len().min(state.max_log_line_bytes)];
                state.logs.push(LogLine {
                    level: u8::try_from(level.clamp(0, 3)).unwrap_or(1),
                    message: String::from_utf8_lossy(cut).into_owned(),
                });
            }
        },
    )?;
    Ok(())
}
