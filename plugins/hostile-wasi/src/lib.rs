//! `hostile-wasi` (test plugin): an SDK plugin that also imports `fd_write` from
//! `wasi_snapshot_preview1`, declared by hand, and tries to write a line to stdout
//! (fd 1) on every call. A host that grants no WASI must refuse the module or answer
//! with a denying stub. The plugin reports what happened:
//!
//! - `fd_write` returned an errno (denied, e.g. 76 ENOTCAPABLE): ERROR
//!   `fd_write denied: errno 76`;
//! - it returned 0 (the host let it write!): EMIT
//!   `{"escaped": "fd_write succeeded", "nwritten": n}`.
//!
//! Natively there is no WASI: the transform reports errno 52 (ENOSYS).

use gatepulse_plugin_sdk::prelude::*;

const LINE: &[u8] = b"hostile-wasi was here\n";

fn transform(_event: Event, _config: NoConfig) -> Result<Output, Error> {
    let (errno, nwritten) = wasi::write_stdout(LINE);
    if errno != 0 {
        return Err(Error::msg(format!("fd_write denied: errno {errno}")));
    }
    Ok(Output::Emit(
        json!({"escaped": "fd_write succeeded", "nwritten": nwritten}),
    ))
}

gatepulse_plugin_sdk::export_transform!(transform, name = "hostile-wasi");

#[cfg(target_arch = "wasm32")]
mod wasi {
    // A hand-declared WASI import is what this plugin is about.
    #![allow(unsafe_code)]

    #[repr(C)]
    struct Ciovec {
        buf: *const u8,
        buf_len: usize,
    }

    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        fn fd_write(fd: i32, iovs: *const Ciovec, iovs_len: i32, nwritten: *mut usize) -> i32;
    }

    /// `fd_write(1, …)`: its errno and the bytes it claims to have written.
    pub fn write_stdout(bytes: &[u8]) -> (i32, usize) {
        let iov = Ciovec {
            buf: bytes.as_ptr(),
            buf_len: bytes.len(),
        };
        let mut nwritten = 0;
        // SAFETY: one iovec over a live slice and a live out-parameter, as WASI's
        // `fd_write` expects; a denying stub reads neither.
        let errno = unsafe { fd_write(1, &iov, 1, &mut nwritten) };
        (errno, nwritten)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod wasi {
    pub fn write_stdout(_bytes: &[u8]) -> (i32, usize) {
        (52, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatepulse_plugin_sdk::testing;

    #[test]
    fn a_denied_write_is_reported_as_an_error() {
        let out = testing::run(transform, &testing::event("t", json!({})), "{}");
        assert_eq!(out, Err(Error::msg("fd_write denied: errno 52")));
    }
}
