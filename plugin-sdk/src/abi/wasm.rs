//! The `gatepulse_v1` imports, declared for wasm32, each behind a safe function over
//! a slice. This is the SDK's only `unsafe`: calling an import is an FFI call, and the
//! host reads or writes guest memory at the pointer we pass. Each call passes a
//! pointer and length taken from one live slice, which is all the host relies on.
// The crate denies `unsafe_code`; these FFI calls cannot be written without it.
#![allow(unsafe_code)]

use super::abi_len;

mod imports {
    #[link(wasm_import_module = "gatepulse_v1")]
    unsafe extern "C" {
        pub safe fn input_len() -> i32;
        pub fn input_read(ptr: *mut u8, len: i32) -> i32;
        pub safe fn config_len() -> i32;
        pub fn config_read(ptr: *mut u8, len: i32) -> i32;
        pub fn output_write(ptr: *const u8, len: i32) -> i32;
        pub fn error(ptr: *const u8, len: i32);
        pub fn log(level: i32, ptr: *const u8, len: i32);
    }
}

pub(super) fn input_len() -> i32 {
    imports::input_len()
}

pub(super) fn input_read(buf: &mut [u8]) -> i32 {
    // SAFETY: the host writes at most `len` bytes at `ptr`, inside `buf`, which we
    // hold exclusively for the call.
    unsafe { imports::input_read(buf.as_mut_ptr(), abi_len(buf.len())) }
}

pub(super) fn config_len() -> i32 {
    imports::config_len()
}

pub(super) fn config_read(buf: &mut [u8]) -> i32 {
    // SAFETY: as in `input_read`.
    unsafe { imports::config_read(buf.as_mut_ptr(), abi_len(buf.len())) }
}

pub(super) fn output_write(bytes: &[u8]) -> i32 {
    // SAFETY: the host only reads `[ptr, ptr+len)`, which is `bytes`.
    unsafe { imports::output_write(bytes.as_ptr(), abi_len(bytes.len())) }
}

pub(super) fn error(message: &str) {
    // SAFETY: the host only reads `[ptr, ptr+len)`, which is `message`.
    unsafe { imports::error(message.as_ptr(), abi_len(message.len())) }
}

pub(super) fn log(level: i32, message: &str) {
    // SAFETY: the host only reads `[ptr, ptr+len)`, which is `message`.
    unsafe { imports::log(level, message.as_ptr(), abi_len(message.len())) }
}
