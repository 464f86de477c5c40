//! Log lines a plugin writes for the operator: `log::info("cache miss")`. The host
//! attaches them to the call with the plugin's name, keeps a few lines per call and
//! cuts long ones (see docs/plugins.md); natively they go to the test harness and to
//! stderr.

use crate::abi::{self, Level};

pub fn debug(message: impl AsRef<str>) {
    abi::log(Level::Debug, message.as_ref());
}

pub fn info(message: impl AsRef<str>) {
    abi::log(Level::Info, message.as_ref());
}

pub fn warn(message: impl AsRef<str>) {
    abi::log(Level::Warn, message.as_ref());
}

pub fn error(message: impl AsRef<str>) {
    abi::log(Level::Error, message.as_ref());
}
