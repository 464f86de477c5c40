//! `hostile-wrong-abi` (test plugin): written by hand, without the SDK. It imports
//! `input_len` from `gatepulse_v0`, an ABI that does not exist, while its metadata
//! section claims ABI 1 and everything else (memory, `gatepulse_transform`) is
//! right: only the import can give it away. The host must refuse it at load time.
//!
//! Everything is wasm32-only; natively the crate is empty.

#[cfg(target_arch = "wasm32")]
mod wasm {
    // The hand-written FFI (and the custom section) are what this plugin is about.
    #![allow(unsafe_code)]

    #[link(wasm_import_module = "gatepulse_v0")]
    unsafe extern "C" {
        safe fn input_len() -> i32;
    }

    #[used]
    #[unsafe(link_section = "gatepulse.plugin")]
    static METADATA: [u8; 49] = *br#"{"name":"hostile-wrong-abi","abi":1,"sdk":"none"}"#;

    /// Returns PASS (2) when the input is not empty: never reached on a correct host.
    #[unsafe(no_mangle)]
    pub extern "C" fn gatepulse_transform() -> i32 {
        if input_len() > 0 { 2 } else { 3 }
    }
}
