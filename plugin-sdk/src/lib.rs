//! GatePulse plugin SDK: a transform plugin is one Rust function.
//!
//! This crate owns the guest side of plugin ABI v1 (`README.md` in this crate is the
//! reference): the `gatepulse_v1` host imports behind safe functions ([`abi`]), the
//! entry point and the `gatepulse.plugin` metadata section that [`export_transform!`]
//! generates, the typed document a plugin sees ([`Event`], [`Output`], [`Error`]),
//! logging ([`log`]) and, off wasm32, a native harness that emulates the host so a
//! plugin is unit-tested with plain `cargo test` ([`testing`]).
//!
//! It must not depend on wasmtime nor on any other GatePulse crate: a plugin builds
//! against this crate alone, and other languages target the ABI, not this code.
//!
//! ```
//! use gatepulse_plugin_sdk::prelude::*;
//!
//! #[derive(Deserialize, Default)]
//! #[serde(default, deny_unknown_fields)]
//! struct Config {
//!     label: String,
//! }
//!
//! fn transform(event: Event, config: Config) -> Result<Output, Error> {
//!     if event.topic.starts_with("test.") {
//!         return Ok(Output::Drop);
//!     }
//!     Ok(Output::Emit(json!({ "label": config.label, "body": event.payload })))
//! }
//!
//! gatepulse_plugin_sdk::export_transform!(transform, name = "labeller");
//!
//! // Natively, the same function runs against an emulated host:
//! let input = gatepulse_plugin_sdk::testing::event("orders.created", json!({"id": 7}));
//! let out = gatepulse_plugin_sdk::testing::run(transform, &input, r#"{"label": "x"}"#);
//! assert_eq!(out, Ok(Output::Emit(json!({"label": "x", "body": {"id": 7}}))));
//! ```

pub mod abi;
mod error;
mod event;
mod guest;
pub mod log;
mod metadata;
mod output;
pub mod path;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use error::Error;
pub use event::Event;
pub use output::Output;

/// Re-exported so a plugin can name the exact versions the SDK parses with.
pub use serde;
pub use serde_json;

/// This SDK's version, written into every plugin's `gatepulse.plugin` section.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The plugin ABI this SDK speaks (the `gatepulse_v1` import module).
pub const ABI_VERSION: u32 = abi::VERSION;

/// The config type of a plugin that takes none: accepts (and ignores) any config.
pub type NoConfig = serde::de::IgnoredAny;

/// The plugin's configuration as raw JSON text (`{}` when the subscription gives
/// none), for plugins that want more than the typed config parameter.
pub fn config_json() -> Result<String, Error> {
    String::from_utf8(abi::config()?).map_err(|_| Error::msg("the plugin config is not UTF-8"))
}

/// What a plugin module needs in scope.
pub mod prelude {
    pub use crate::{Error, Event, NoConfig, Output, export_transform, log};
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::{Value, json};
}

/// Makes `transform` the plugin's entry point and names the plugin.
///
/// `transform` is a function `fn(Event, C) -> Result<Output, Error>` where `C` is any
/// `serde::de::DeserializeOwned` config type (use [`NoConfig`] for none). On wasm32
/// the macro exports `gatepulse_transform`, which reads the input document and the
/// config through the host imports, parses both, calls `transform`, and writes its
/// answer; the first call installs a panic hook that reports the panic message
/// through the `error` import. Plugins build with `panic = "abort"`, so the panic
/// then traps: the host fails the delivery as a trap and shows the message.
///
/// It also embeds the `gatepulse.plugin` custom section
/// `{"name": "<name>", "abi": 1, "sdk": "<SDK_VERSION>"}`. `name` follows the
/// server's rule for plugin names (1 to 64 lowercase ASCII letters, digits, `-` and
/// `_`, starting with a letter or digit); anything else fails to compile.
///
/// On other targets it only checks `transform`'s signature and the name, so the
/// crate builds natively and its tests call `transform` through [`testing::run`].
///
/// ```compile_fail
/// use gatepulse_plugin_sdk::prelude::*;
/// fn transform(_: Event, _: NoConfig) -> Result<Output, Error> {
///     Ok(Output::Pass)
/// }
/// // A name the metadata section could not hold without escaping: compile error.
/// gatepulse_plugin_sdk::export_transform!(transform, name = "my \"plugin\"");
/// ```
///
/// ```compile_fail
/// use gatepulse_plugin_sdk::prelude::*;
/// // Not `fn(Event, C) -> Result<Output, Error>`: compile error.
/// fn transform(_: Event) -> Output {
///     Output::Pass
/// }
/// gatepulse_plugin_sdk::export_transform!(transform, name = "x");
/// ```
#[macro_export]
macro_rules! export_transform {
    ($transform:path, name = $name:literal $(,)?) => {
        $crate::__plugin_metadata!($name);

        const _: () = $crate::__private::check_transform(&$transform);

        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn gatepulse_transform() -> i32 {
            $crate::__private::run_transform($transform)
        }
    };
}

/// Like [`export_transform!`], for a function that speaks the ABI itself through
/// [`abi`]: `fn() -> i32` reads the input with [`abi::input`], writes with
/// [`abi::output_write`] and returns one of the [`abi`] return codes. For plugins that
/// stream their output or parse their input their own way; the SDK still installs
/// the panic hook and embeds the metadata section. Test with [`testing::run_raw`].
#[macro_export]
macro_rules! export_raw_transform {
    ($entry:path, name = $name:literal $(,)?) => {
        $crate::__plugin_metadata!($name);

        const _: fn() -> i32 = $entry;

        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn gatepulse_transform() -> i32 {
            $crate::__private::run_raw($entry)
        }
    };
}

/// The `gatepulse.plugin` custom section (wasm32) and the name check (every target).
#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_metadata {
    ($name:literal) => {
        const _: [u8; $crate::__private::metadata_len($name)] = $crate::__private::metadata($name);

        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        #[used]
        #[unsafe(link_section = "gatepulse.plugin")]
        static GATEPULSE_PLUGIN_METADATA: [u8; $crate::__private::metadata_len($name)] =
            $crate::__private::metadata($name);
    };
}

/// What the macros expand to; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::guest::{check_transform, run_raw, run_transform};
    pub use crate::metadata::{metadata, metadata_len};
}
